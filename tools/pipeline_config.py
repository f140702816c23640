"""Settings → the audio pipeline: inference defines its own plain config; tools converts."""

from __future__ import annotations

from inference.config import PipelineConfig
from tools.context import PipelineLike
from tools.settings import Settings


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig.from_settings(settings)


def build_pipeline(settings: Settings) -> PipelineLike:
    """The real pipeline (models load lazily inside it, on first use)."""
    from inference.pipeline import shared_pipeline  # torch & co: imported only when needed

    return shared_pipeline(pipeline_config(settings))


def check_optional_backends(settings: Settings) -> None:
    """Raise MissingExtra at start-up when settings ask for a backend whose extra is missing,
    and ModelUnavailable when the default models' files are not installed, rather than on the
    first recording. Imports no model library."""
    if "pyannote" in (settings.diarizer, settings.voice_embedder):
        from inference.pyannote_backend import check_available as pyannote_available

        pyannote_available()
    if settings.emotion:
        from inference.emotion import check_available as emotion_available

        emotion_available()
    # The default models' files come from set-up, not from a package import: check them too
    # (ModelUnavailable names the set-up command).
    from inference.weights import CAMPPLUS, SEGMENTATION, locate

    if settings.diarizer == "neural":
        locate(SEGMENTATION, settings.weights_dir)
    if settings.voice_embedder == "campplus":
        locate(CAMPPLUS, settings.weights_dir)
