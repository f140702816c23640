"""Settings become the pipeline's configuration in one place (tools.pipeline)."""

from __future__ import annotations

from pathlib import Path

from tools.pipeline import pipeline_config
from tools.settings import Settings


def test_settings_become_the_pipeline_config(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, whisper_model="base", language="de", device="cpu",
        compute_type="int8", diarizer="builtin", voice_embedder="resemblyzer",
        max_audio_seconds=60, match_margin=0.1, weights_dir=tmp_path / "weights",
        cpu_threads=1, torch_threads=3,
    )
    config = pipeline_config(settings)
    assert (config.whisper_model, config.language, config.device, config.compute_type) == (
        "base", "de", "cpu", "int8")
    assert (config.diarizer, config.voice_embedder) == ("builtin", "resemblyzer")
    assert config.models_dir == tmp_path / "models"  # DATA_DIR/models unless set
    assert config.weights_dir == tmp_path / "weights"
    assert config.max_audio_seconds == 60.0 and config.match_margin == 0.1
    assert (config.cpu_threads, config.torch_threads) == (1, 3)
