"""Optional emotion recognition: FunASR emotion2vec_plus (9 classes), the 'emotion' extra.

funasr is imported only when the recognizer loads; without it a MissingExtra names the extra.
The weights come from the hub (`iic/emotion2vec_plus_base` on ModelScope, or
`emotion2vec/emotion2vec_plus_base` on Hugging Face with hub='hf') or a local folder.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.lazy import Lazy
from inference.types import SAMPLE_RATE, EmotionResult
from memory.errors import MissingExtra, ModelUnavailable

log = logging.getLogger(__name__)

DEFAULT_MODEL = "iic/emotion2vec_plus_base"
LABELS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised",
          "unknown")
MIN_CLIP_SECONDS = 0.5
"""Shorter clips carry too little prosody: they are labelled 'unknown' without a model call."""


_MISSING = ("emotion recognition needs the 'emotion' extra: pip install "
            "'speaker-memory[emotion]' (or set SPEAKER_MEMORY_EMOTION=false)")


def check_available() -> None:
    """Raise MissingExtra now (at startup) rather than after a recording was transcribed."""
    if importlib.util.find_spec("funasr") is None:
        raise MissingExtra(_MISSING)


def english_label(raw: str) -> str:
    """'生气/angry' → 'angry'; '<unk>' or '' → 'unknown'."""
    label = raw.split("/")[-1].strip().lower()
    if not label or label in ("<unk>", "unk", "unknown"):
        return "unknown"
    return label


def convert_output(item: dict[str, Any]) -> EmotionResult:
    """One funasr result ({'labels': [...], 'scores': [...]}) → the top emotion."""
    labels = list(item.get("labels") or [])
    scores = np.asarray(item.get("scores") or [], dtype=np.float64).reshape(-1)
    if not labels or scores.size != len(labels):
        return EmotionResult(label="unknown", confidence=0.0)
    best = int(np.argmax(scores))
    return EmotionResult(label=english_label(str(labels[best])), confidence=float(scores[best]))


class Emotion2VecRecognizer:
    """EmotionRecognizer over FunASR's AutoModel (lazy, once, thread-safe)."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", hub: str = "ms") -> None:
        self.model_name = model
        self.model_id = f"emotion2vec-{Path(model).name}"
        self._device = device
        self._hub = hub
        self._model: Lazy[Any] = Lazy(self._create)
        self._lock = threading.Lock()

    def load(self) -> Any:
        return self._model.get()

    def _create(self) -> Any:
        try:
            from funasr import AutoModel
        except ImportError as exc:
            raise MissingExtra(_MISSING) from exc
        from inference.device import choose_device

        device = choose_device(self._device).device
        try:
            return AutoModel(model=self.model_name, hub=self._hub, device=device,
                             disable_update=True)
        except Exception as exc:
            raise ModelUnavailable(
                f"emotion model {self.model_name!r} cannot be loaded ({exc}); download it once "
                "with hub access or point to a local folder"
            ) from exc

    def recognize(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[EmotionResult]:
        if not clips:
            return []
        model = self.load()
        results: list[EmotionResult] = []
        with self._lock:
            for clip in clips:
                if len(clip) < MIN_CLIP_SECONDS * SAMPLE_RATE:
                    results.append(EmotionResult(label="unknown", confidence=0.0))
                    continue
                output = model.generate(
                    np.asarray(clip, dtype=np.float32), granularity="utterance",
                    extract_embedding=False, disable_pbar=True,
                )
                results.append(convert_output(output[0]) if output else
                               EmotionResult(label="unknown", confidence=0.0))
        return results
