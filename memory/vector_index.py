"""Semantic (meaning) search over segment text vectors. The one module that knows sqlite-vec,
so that a pgvector backend can swap in here.

Storage: exact float32 vectors in `segment_text_vector`, and binary-quantised codes in a
sqlite-vec `vec0` table `segment_text_bits_<dim>`. Search: the codes are held in RAM and a
Hamming-distance scan picks an oversampled candidate set (sqlite-vec's own brute force is
~0.2 s per query at 1M rows on this machine); candidates are re-scored exactly by cosine.
A selective filter (one conversation, a rarely heard speaker) skips the first stage and scores
just its rows exactly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.filters import filter_clause, is_empty
from memory.types import SearchFilters, Vector
from memory.vectors import as_vector, dot_rows, from_blob, normalize, to_blob

log = logging.getLogger(__name__)

EXACT_SCAN_LIMIT = 20_000
"""Filtered searches over at most this many rows score every row exactly."""
MIN_CANDIDATES = 400
OVERSAMPLE = 10
MAX_CANDIDATES = 50_000
GENERATION_KEY = "text_index_generation"

Codes = npt.NDArray[np.uint8]
Ids = npt.NDArray[np.int64]


def bits_table(dim: int) -> str:
    return f"segment_text_bits_{int(dim)}"


def quantise(vector: Vector) -> bytes:
    return np.packbits(vector > 0).tobytes()


def register_model(tx: Tx, model_id: str, dim: int) -> None:
    """Record the text model's dimension; vectors of another dimension are refused."""
    row = tx.one("SELECT dim FROM text_model WHERE model_id = ?", (model_id,))
    if row is not None:
        if int(row[0]) != dim:
            raise ModelMismatch(
                f"text model {model_id!r} has {row[0]}-d vectors in this store, got {dim}-d"
            )
        return
    if dim % 8 != 0:
        raise ModelMismatch(f"text vectors must have a dimension divisible by 8, got {dim}")
    tx.run("INSERT INTO text_model(model_id, dim) VALUES (?, ?)", (model_id, dim))
    tx.run(f"CREATE VIRTUAL TABLE IF NOT EXISTS {bits_table(dim)} USING vec0(embedding bit[{dim}])")


def model_dim(tx: Tx, model_id: str) -> int | None:
    value = tx.scalar("SELECT dim FROM text_model WHERE model_id = ?", (model_id,))
    return None if value is None else int(value)


@dataclass
class _Codes:
    ids: Ids
    codes: Codes


class TextVectorIndex:
    """The in-RAM first stage (binary codes per dimension) plus the SQL around it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[int, _Codes] = {}
        self._generation: int | None = None

    # ------------------------------------------------------------ writes
    def add(self, tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> list[
        tuple[int, int, bytes]
    ]:
        """Store (segment id, vector) rows; returns what `publish` adds to RAM after commit."""
        if not rows:
            return []
        dim = rows[0][1].shape[0]
        register_model(tx, model_id, dim)
        floats: list[tuple[int, str, bytes]] = []
        bits: list[tuple[int, bytes]] = []
        for segment_id, vector in rows:
            if vector.shape[0] != dim:
                raise ModelMismatch(
                    f"text vectors of one result differ in dimension ({dim} and {vector.shape[0]})"
                )
            floats.append((segment_id, model_id, to_blob(vector)))
            bits.append((segment_id, quantise(vector)))
        tx.many(
            "INSERT INTO segment_text_vector(segment_id, model_id, vector) VALUES (?, ?, ?)",
            floats,
        )
        tx.many(f"INSERT INTO {bits_table(dim)}(rowid, embedding) VALUES (?, vec_bit(?))", bits)
        tx.run(
            "INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE"
            " SET value = CAST(value AS INTEGER) + 1",
            (GENERATION_KEY,),
        )
        return [(dim, sid, code) for sid, code in bits]

    def publish(self, tx_generation: int, added: Sequence[tuple[int, int, bytes]]) -> None:
        """After a commit in this process: append its codes, unless RAM is already stale."""
        with self._lock:
            if self._generation is None or self._generation != tx_generation - 1:
                self._codes.clear()
                self._generation = None
                return
            by_dim: dict[int, list[tuple[int, bytes]]] = {}
            for dim, sid, code in added:
                by_dim.setdefault(dim, []).append((sid, code))
            for dim, items in by_dim.items():
                current = self._codes.get(dim)
                if current is None:
                    continue  # never loaded: the next search loads it whole
                ids = np.array([i for i, _ in items], dtype=np.int64)
                codes = np.frombuffer(b"".join(c for _, c in items), dtype=np.uint8).reshape(
                    len(items), -1
                )
                self._codes[dim] = _Codes(
                    np.concatenate([current.ids, ids]), np.vstack([current.codes, codes])
                )
            self._generation = tx_generation

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()
            self._generation = None

    @staticmethod
    def generation(tx: Tx) -> int:
        value = tx.scalar("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,))
        return int(value or 0)

    # ------------------------------------------------------------ search
    def _codes_for(self, tx: Tx, dim: int) -> _Codes:
        generation = self.generation(tx)
        with self._lock:
            if self._generation != generation:
                self._codes.clear()
                self._generation = generation
            cached = self._codes.get(dim)
            if cached is not None:
                return cached
            rows = tx.all(f"SELECT rowid, embedding FROM {bits_table(dim)}")
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(
                len(rows), dim // 8
            )
            loaded = _Codes(ids, codes)
            self._codes[dim] = loaded
            return loaded

    def search(
        self, tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
    ) -> list[tuple[int, float]]:
        """(segment id, cosine similarity) best first."""
        query = as_vector(query, "query vector")
        dim = model_dim(tx, model_id)
        if dim is None:
            return []
        if query.shape[0] != dim:
            raise ModelMismatch(
                f"query vector has {query.shape[0]} dimensions; text model {model_id!r} has {dim}"
            )
        query = normalize(query)
        where, params = filter_clause(filters)
        joins = (
            " JOIN segment s ON s.id = v.segment_id"
            " JOIN conversation c ON c.id = s.conversation_id"
        )
        share = 1.0
        if not is_empty(filters):
            matching = int(tx.scalar(
                "SELECT count(*) FROM segment s JOIN conversation c ON c.id = s.conversation_id"
                f" WHERE 1 = 1{where}", params,
            ))
            if matching <= EXACT_SCAN_LIMIT:
                rows = tx.all(
                    f"SELECT v.segment_id, v.vector FROM segment_text_vector v{joins}"
                    f" WHERE v.model_id = ?{where}", [model_id, *params],
                )
                return _rank(rows, query, wanted)
            total = max(1, int(tx.scalar("SELECT COALESCE(MAX(id), 0) FROM segment")))
            share = max(matching / total, 1e-6)
        codes = self._codes_for(tx, dim)
        if codes.ids.size == 0:
            return []
        count = min(
            codes.ids.size,
            MAX_CANDIDATES,
            int(max(MIN_CANDIDATES, OVERSAMPLE * wanted) / share),
        )
        distances = np.bitwise_count(codes.codes ^ np.frombuffer(quantise(query), np.uint8)).sum(
            axis=1, dtype=np.uint16
        )
        if count < distances.size:
            picked = np.argpartition(distances, count - 1)[:count]
        else:
            picked = np.arange(distances.size)
        candidate_ids = codes.ids[picked].tolist()
        rows = tx.all(
            f"SELECT v.segment_id, v.vector FROM segment_text_vector v{joins}"
            f" WHERE v.segment_id IN (SELECT value FROM json_each(?)) AND v.model_id = ?{where}",
            [_json_ids(candidate_ids), model_id, *params],
        )
        return _rank(rows, query, wanted)


def _json_ids(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


def _rank(rows: Sequence[tuple[Any, ...]], query: Vector, wanted: int) -> list[tuple[int, float]]:
    if not rows:
        return []
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    matrix = np.vstack([from_blob(r[1]) for r in rows])
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    scores = dot_rows(matrix, query) / norms
    order = np.lexsort((-ids, -scores))[:wanted]
    return [(int(ids[i]), float(scores[i])) for i in order]
