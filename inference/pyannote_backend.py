"""Optional backends from pyannote.audio (the 'pyannote' extra), for users with a HF token.

- `PyannoteDiarizer`: the `pyannote/speaker-diarization-community-1` pipeline; turns come from
  its exclusive (one speaker at a time) diarization, vectors from its per-speaker embeddings.
- `PyannoteEmbedder`: the pipeline's embedding model (WeSpeaker ResNet34-LM, 256-d) as a
  VoiceEmbedder, so enrollment vectors compare with the diarizer's.

pyannote.audio is imported only when a model loads; without it a MissingExtra names the extra.
The weights are gated on the hub: the token comes from SPEAKER_MEMORY_HF_TOKEN or HF_TOKEN, and
once downloaded they are read from the Hugging Face cache (HF_HUB_OFFLINE=1 works then).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.lazy import Lazy
from inference.types import SAMPLE_RATE, Audio, Diarization, Turn, Vector
from memory.errors import MissingExtra, ModelUnavailable

log = logging.getLogger(__name__)

PIPELINE_NAME = "pyannote/speaker-diarization-community-1"
EMBEDDING_NAME = "pyannote/wespeaker-voxceleb-resnet34-LM"
MODEL_ID = "pyannote-wespeaker-resnet34-lm"
"""Voice model id of both backends: the community-1 pipeline embeds with this model."""
DIMENSION = 256
_MIN_CLIP_SECONDS = 0.5


_MISSING = ("the pyannote backends need the 'pyannote' extra: pip install "
            "'speaker-memory[pyannote]' (or set SPEAKER_MEMORY_DIARIZER=builtin and "
            "SPEAKER_MEMORY_VOICE_EMBEDDER=resemblyzer)")


def check_available() -> None:
    """Raise MissingExtra now (at startup) rather than in the middle of a recording."""
    try:
        found = importlib.util.find_spec("pyannote.audio") is not None
    except ModuleNotFoundError:  # not even the pyannote namespace
        found = False
    if not found:
        raise MissingExtra(_MISSING)


def _require_pyannote() -> Any:
    try:
        import pyannote.audio
    except ImportError as exc:
        raise MissingExtra(_MISSING) from exc
    return pyannote.audio


def _unavailable(name: str, token: str | None, exc: Exception) -> ModelUnavailable:
    hint = ("set HF_TOKEN and accept the model's conditions on huggingface.co"
            if not token else "check that the token has accepted the model's conditions")
    return ModelUnavailable(f"pyannote model {name} cannot be loaded ({exc}); {hint}")


def _load_pretrained(cls: Any, name: str, token: str | None) -> Any:
    """`cls.from_pretrained(name)`, or ModelUnavailable saying how to get access."""
    try:
        loaded = _from_pretrained(cls, name, token)
    except Exception as exc:
        raise _unavailable(name, token, exc) from exc
    if loaded is None:  # pyannote 3 returns None on auth failure
        raise _unavailable(name, token, RuntimeError("no access"))
    return loaded


def _from_pretrained(cls: Any, name: str, token: str | None) -> Any:
    """pyannote.audio 4 takes `token=`; 3.x took `use_auth_token=`."""
    try:
        return cls.from_pretrained(name, token=token)
    except TypeError:
        return cls.from_pretrained(name, use_auth_token=token)


def _torch_device(setting: str) -> Any:
    import torch

    from inference.device import choose_device

    return torch.device(choose_device(setting).device)


def _waveform(samples: npt.NDArray[np.float32]) -> dict[str, Any]:
    import torch

    return {"waveform": torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0),
            "sample_rate": SAMPLE_RATE}


# ---------------------------------------------------------------- output conversion


def annotation_turns(annotation: Any) -> list[Turn]:
    """pyannote.core.Annotation → sorted Turns."""
    turns = [Turn(float(segment.start), float(segment.end), str(label))
             for segment, _track, label in annotation.itertracks(yield_label=True)
             if segment.end > segment.start]
    return sorted(turns, key=lambda t: (t.start, t.end))


def convert_output(output: Any, model_id: str = MODEL_ID) -> Diarization:
    """A community-1 pipeline output → Diarization.

    pyannote.audio 4 returns an object with `speaker_diarization`,
    `exclusive_speaker_diarization` and `speaker_embeddings` (rows in the order of
    `speaker_diarization.labels()`); pyannote.audio 3 returns a bare Annotation (no vectors).
    """
    full = getattr(output, "speaker_diarization", None)
    exclusive = getattr(output, "exclusive_speaker_diarization", None)
    if full is None and hasattr(output, "itertracks"):
        full = output
    if full is None:
        raise TypeError(f"unexpected pyannote output {type(output).__name__}")
    turns = annotation_turns(exclusive if exclusive is not None else full)
    vectors: dict[str, list[Vector]] = {}
    embeddings = getattr(output, "speaker_embeddings", None)
    if embeddings is not None:
        matrix = np.asarray(embeddings, dtype=np.float32)
        for label, row in zip(full.labels(), matrix, strict=False):
            norm = float(np.linalg.norm(row))
            if np.all(np.isfinite(row)) and norm > 0:  # NaN rows: too little speech
                vectors[str(label)] = [(row / norm).astype(np.float32)]
    return Diarization(turns=turns, vectors=vectors, model_id=model_id)


# ---------------------------------------------------------------- backends


class PyannoteDiarizer:
    """Diarizer over pyannote's community-1 pipeline (lazy, once, thread-safe)."""

    model_id = MODEL_ID

    def __init__(self, token: str | None = None, device: str = "auto",
                 pipeline_name: str = PIPELINE_NAME) -> None:
        self._token = token
        self._device = device
        self._name = pipeline_name
        self._pipeline: Lazy[Any] = Lazy(self._create)
        self._lock = threading.Lock()

    def load(self) -> Any:
        return self._pipeline.get()

    def _create(self) -> Any:
        audio_module = _require_pyannote()
        pipeline = _load_pretrained(audio_module.Pipeline, self._name, self._token)
        pipeline.to(_torch_device(self._device))
        return pipeline

    def diarize(
        self, audio: Audio, num_speakers: int | None = None, min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        pipeline = self.load()
        kwargs = {k: v for k, v in (("num_speakers", num_speakers),
                                    ("min_speakers", min_speakers),
                                    ("max_speakers", max_speakers)) if v is not None}
        with self._lock:
            output = pipeline(_waveform(audio.samples), **kwargs)
        return convert_output(output)


class PyannoteEmbedder:
    """VoiceEmbedder over pyannote's WeSpeaker embedding model (whole-clip windows)."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, token: str | None = None, device: str = "auto",
                 model_name: str = EMBEDDING_NAME) -> None:
        self._token = token
        self._device = device
        self._name = model_name
        self._inference: Lazy[Any] = Lazy(self._create)
        self._lock = threading.Lock()

    def load(self) -> Any:
        return self._inference.get()

    def _create(self) -> Any:
        audio_module = _require_pyannote()
        model = _load_pretrained(audio_module.Model, self._name, self._token)
        inference = audio_module.Inference(model, window="whole")
        inference.to(_torch_device(self._device))
        return inference

    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        if not clips:
            return []
        inference = self.load()
        out: list[Vector] = []
        min_samples = int(_MIN_CLIP_SECONDS * SAMPLE_RATE)
        with self._lock:
            for clip in clips:
                samples = np.asarray(clip, dtype=np.float32).reshape(-1)
                if len(samples) < min_samples:
                    samples = np.pad(samples, (0, min_samples - len(samples)))
                out.append(normalise_embedding(inference(_waveform(samples))))
        return out


def normalise_embedding(raw: Any) -> Vector:
    """An Inference output (1-D or (1, D)) → L2-normalised float32 (zeros if degenerate)."""
    vector = np.asarray(raw, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        return np.zeros(vector.shape[0], dtype=np.float32)
    return (vector / norm).astype(np.float32)
