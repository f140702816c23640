"""Vector and id packing helpers: float32 blobs, L2 normalisation, compact id lists."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from memory.errors import ModelMismatch
from memory.types import Vector

Matrix = npt.NDArray[np.float32]


def as_vector(value: object, what: str = "vector") -> Vector:
    """A finite 1-D float32 copy of `value`; raises ModelMismatch on anything else."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ModelMismatch(f"{what} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ModelMismatch(f"{what} contains NaN or infinite values")
    return np.ascontiguousarray(array)


def stack(vectors: Sequence[object], what: str = "vectors") -> Matrix:
    """Vectors of one model as an (n, d) float32 matrix, rows L2-normalised."""
    rows = [as_vector(v, what) for v in vectors]
    dims = {r.shape[0] for r in rows}
    if len(dims) > 1:
        raise ModelMismatch(f"{what} have different dimensions: {sorted(dims)}")
    matrix = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    return normalize_rows(matrix)


def normalize(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return vector.astype(np.float32)
    return (vector / norm).astype(np.float32)


def normalize_rows(matrix: npt.NDArray[np.floating[Any]]) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    if matrix.size == 0:
        return matrix.astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Matrix = (matrix / norms).astype(np.float32)
    return normalised


def mean_direction(matrix: Matrix) -> Vector:
    """The normalised mean of normalised rows: a cluster's centroid."""
    return normalize(matrix.mean(axis=0).astype(np.float32))


def representatives(matrix: Matrix, extra: int = 3) -> list[int]:
    """Indices of up to `extra` rows spread evenly through the sequence (time order)."""
    n = matrix.shape[0]
    if n == 0 or extra <= 0:
        return []
    if n <= extra:
        return list(range(n))
    return sorted({round(float(x)) for x in np.linspace(0, n - 1, extra)})


def dot_rows(matrix: Matrix, vector: Vector) -> Vector:
    """matrix @ vector without BLAS threads: on a busy small machine OpenBLAS's threaded
    matrix-vector product is ~10x slower than this single-threaded loop."""
    result: Vector = np.einsum("ij,j->i", matrix, vector.astype(matrix.dtype, copy=False))
    return result


def check_matrix(values: Sequence[object], what: str) -> Matrix:
    """Many vectors of one dimension as an (n, d) float32 matrix, validated at once."""
    shapes = {np.asarray(v).shape for v in values}
    if len(shapes) > 1:
        raise ModelMismatch(f"{what} have different shapes: {sorted(shapes)}")
    matrix = np.asarray(values, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ModelMismatch(f"{what} must be non-empty 1-D vectors of one dimension")
    if not np.all(np.isfinite(matrix)):
        raise ModelMismatch(f"{what} contain NaN or infinite values")
    return matrix


def to_blob(vector: Vector) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype=np.float32).copy()


def matrix_to_blob(matrix: Matrix) -> bytes:
    return np.ascontiguousarray(matrix, dtype=np.float32).tobytes()


def matrix_from_blob(blob: bytes, dim: int) -> Matrix:
    return np.frombuffer(blob, dtype=np.float32).reshape(-1, dim).copy()


def pack_ids(ids: Iterable[int]) -> str:
    """A list of row ids as compact text (zlib-compressed int64, base64) for event payloads."""
    array = np.fromiter(ids, dtype=np.int64)
    return base64.b64encode(zlib.compress(array.tobytes(), 1)).decode("ascii")


def unpack_ids(text: str) -> list[int]:
    raw = zlib.decompress(base64.b64decode(text))
    return [int(x) for x in np.frombuffer(raw, dtype=np.int64)]


def b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
