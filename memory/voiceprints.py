"""Voiceprints, per-speaker centroids, and matching a voice against the stored speakers.

Each speaker keeps, per voice model, a centroid as (sum, count) updated incrementally. The
centroids of one model are mirrored in RAM as a normalised matrix: the first stage of
matching (one matrix-vector product over all speakers). The few best speakers are then
re-scored exactly against their own voiceprints.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, delete, func, insert, select, update

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.prepared import Prepared
from memory.sql import in_ids_param, upsert
from memory.tables import meta, speaker, speaker_centroid, voice_model, voiceprint
from memory.timeutil import now_db
from memory.types import MatchConfig, Vector
from memory.vectors import (
    Matrix,
    dot_rows,
    mean_direction,
    normalize,
    normalize_rows,
    representatives,
    to_blob,
)

CANDIDATE_SPEAKERS = 16
"""Speakers re-scored exactly after the centroid stage."""
TOP_VOICEPRINTS = 3
"""A speaker's score is the mean similarity of its this-many nearest voiceprints."""
MAX_VOICEPRINTS = 64
"""Per speaker and model. A voice heard in every recording would otherwise gather prints
without end; past this, ingest drops the oldest conversation prints (never enrollment ones, nor
those rebuilt from enrollment clips) and the centroid is recomputed from the (bounded) rest."""

ENROLLMENT_SOURCE = "enrollment:"
"""Source prefix of prints learnt from an enrollment clip (never pruned)."""
REBUILT_SOURCE = "rebuilt:"
"""Source prefix of prints computed again from stored audio for a new voice model
('rebuilt:enrollment:<clip id>', 'rebuilt:conversation:<id>'); not part of any identity event."""

GENERATION = Prepared(select(meta.c.value).where(meta.c.key == bindparam("key")))
SET_GENERATION = Prepared(lambda dialect: upsert(
    dialect, meta, {"key": bindparam("key"), "value": bindparam("value")}, key=["key"]))
CENTROIDS = (
    select(speaker_centroid.c.speaker_id, speaker_centroid.c.total, speaker_centroid.c.count,
           speaker_centroid.c.dim, speaker.c.kind)
    .join(speaker, speaker.c.id == speaker_centroid.c.speaker_id)
    .where(speaker_centroid.c.model_id == bindparam("model_id"), speaker_centroid.c.count > 0)
)
"""Centroids of one model with their speakers' kinds (_normalised reads them in this order)."""
ALL_CENTROIDS = CENTROIDS.order_by(speaker_centroid.c.speaker_id)
CENTROIDS_OF = Prepared(
    CENTROIDS.where(in_ids_param(speaker_centroid.c.speaker_id, "speaker_ids")))
CANDIDATE_PRINTS = Prepared(
    select(voiceprint.c.speaker_id, voiceprint.c.vector, speaker.c.match_threshold)
    .join(speaker, speaker.c.id == voiceprint.c.speaker_id)
    .where(voiceprint.c.model_id == bindparam("model_id"),
           in_ids_param(voiceprint.c.speaker_id, "speaker_ids"))
)
"""The voiceprints of a few candidate speakers (at most CANDIDATE_SPEAKERS)."""
SPEAKER_PRINTS = Prepared(
    select(voiceprint.c.model_id, voiceprint.c.vector)
    .where(voiceprint.c.speaker_id == bindparam("speaker_id")).order_by(voiceprint.c.id)
)
VECTOR_COUNT = speaker_centroid.c.count.label("vector_count")
"""A centroid's count, read by this name: `row.count` is the tuple method of a Row."""
OF_CENTROID = (speaker_centroid.c.speaker_id == bindparam("speaker_id"),
               speaker_centroid.c.model_id == bindparam("model_id"))
CENTROID = Prepared(select(speaker_centroid.c.total, VECTOR_COUNT).where(*OF_CENTROID))
NONEMPTY_CENTROID = Prepared(select(speaker_centroid.c.total, VECTOR_COUNT)
                             .where(*OF_CENTROID, speaker_centroid.c.count > 0))
NEW_CENTROID = Prepared(insert(speaker_centroid).values(
    speaker_id=bindparam("speaker_id"), model_id=bindparam("model_id"), dim=bindparam("dim"),
    total=bindparam("total"), count=bindparam("count")))
SET_CENTROID = Prepared(update(speaker_centroid).where(*OF_CENTROID).values(
    total=bindparam("total"), count=bindparam("count")))
DROP_CENTROIDS = Prepared(
    delete(speaker_centroid).where(speaker_centroid.c.speaker_id == bindparam("speaker_id")))
VOICE_MODEL_DIM = Prepared(
    select(voice_model.c.dim).where(voice_model.c.model_id == bindparam("model_id")))
OF_PRINTS = (voiceprint.c.speaker_id == bindparam("speaker_id"),
             voiceprint.c.model_id == bindparam("model_id"))
COUNT_PRINTS = Prepared(select(func.count()).select_from(voiceprint).where(*OF_PRINTS))
DROP_OLDEST_PRINTS = Prepared(delete(voiceprint).where(voiceprint.c.id.in_(
    select(voiceprint.c.id)
    .where(*OF_PRINTS, voiceprint.c.source.not_like(f"{ENROLLMENT_SOURCE}%"),
           voiceprint.c.source.not_like(f"{REBUILT_SOURCE}{ENROLLMENT_SOURCE}%"))
    .order_by(voiceprint.c.id).limit(bindparam("excess"))
    .scalar_subquery()
)))
"""The oldest prints of a speaker's model beyond the bound (never enrollment ones)."""


def register_voice_model(tx: Tx, model_id: str, dim: int) -> None:
    """Vectors of one model always have one dimension; refuse anything else."""
    if not model_id:
        raise ModelMismatch("a voice model id (name + version) is required")
    row = tx.first(VOICE_MODEL_DIM, {"model_id": model_id})
    if row is None:
        tx.execute(insert(voice_model).values(model_id=model_id, dim=dim))
    elif int(row.dim) != dim:
        raise ModelMismatch(
            f"voice model {model_id!r} has {row.dim}-d vectors in this store, got {dim}-d; "
            "vectors of different models or dimensions are never compared"
        )


# ---------------------------------------------------------------- the RAM mirror


class _ModelCentroids:
    """Normalised centroids of one model: rows [0, size) of a matrix with spare capacity.

    Changes after a write touch only the changed speakers' rows: an update overwrites its
    row, a new speaker is appended (capacity doubles when full), a deleted one becomes an
    invalid hole (compacted once holes are many). A copy of the whole matrix per write would
    cost ~2 ms at 10k speakers."""

    def __init__(self, dim: int, capacity: int = 0) -> None:
        self.dim = dim
        self.size = 0
        self.holes = 0
        self.ids = np.zeros(capacity, np.int64)
        self.matrix: Matrix = np.zeros((capacity, dim), np.float32)
        self.unknown = np.zeros(capacity, np.bool_)
        self.valid = np.zeros(capacity, np.bool_)
        self.row_of: dict[int, int] = {}

    @property
    def count(self) -> int:
        return self.size - self.holes

    def upsert(self, ids: npt.NDArray[np.int64], matrix: Matrix,
               unknown: npt.NDArray[np.bool_]) -> None:
        for k, speaker_id in enumerate(ids.tolist()):
            row = self.row_of.get(speaker_id)
            if row is None:
                if self.size == self.ids.size:
                    self._grow(max(2 * self.size, 64))
                row = self.size
                self.size += 1
                self.row_of[speaker_id] = row
                self.ids[row] = speaker_id
                self.valid[row] = True
            self.matrix[row] = matrix[k]
            self.unknown[row] = unknown[k]

    def remove(self, speaker_id: int) -> None:
        row = self.row_of.pop(speaker_id, None)
        if row is None:
            return
        self.valid[row] = False
        self.matrix[row] = 0.0
        self.holes += 1
        if self.holes > 64 and self.holes > self.size // 2:
            self._grow(self.ids.size)  # compacts

    def _grow(self, capacity: int) -> None:
        """Move the valid rows, in order, into fresh arrays of (at least) `capacity` rows."""
        keep = np.flatnonzero(self.valid[: self.size])
        ids, matrix, unknown = self.ids[keep], self.matrix[keep], self.unknown[keep]
        capacity = max(capacity, keep.size)
        self.ids = np.zeros(capacity, np.int64)
        self.matrix = np.zeros((capacity, self.dim), np.float32)
        self.unknown = np.zeros(capacity, np.bool_)
        self.valid = np.zeros(capacity, np.bool_)
        self.ids[: keep.size] = ids
        self.matrix[: keep.size] = matrix
        self.unknown[: keep.size] = unknown
        self.valid[: keep.size] = True
        self.size, self.holes = int(keep.size), 0
        self.row_of = {int(i): row for row, i in enumerate(ids.tolist())}


class CentroidCache:
    """Normalised centroids per model. Only used under the store's write lock."""

    GENERATION_KEY = "write_generation"

    def __init__(self) -> None:
        self._models: dict[str, _ModelCentroids] = {}
        self._lock = threading.RLock()
        self._generation: int | None = None

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._generation = None

    def begin(self, tx: Tx) -> int:
        """At the start of a write transaction: drop the mirror if another process wrote
        since (every write bumps the store's write generation); returns the next one."""
        value = tx.value(GENERATION, {"key": self.GENERATION_KEY})
        current = int(value or 0)
        with self._lock:
            if self._generation != current:
                self._models.clear()
            self._generation = None  # unknown until this transaction commits
        tx.execute(SET_GENERATION, {"key": self.GENERATION_KEY, "value": str(current + 1)})
        return current + 1

    def check(self, tx: Tx) -> None:
        """For a read under the write lock: drop the mirror if it is not the committed state."""
        value = tx.value(GENERATION, {"key": self.GENERATION_KEY})
        with self._lock:
            if self._generation != int(value or 0):
                self._models.clear()
                self._generation = int(value or 0)

    def committed(self, generation: int) -> None:
        with self._lock:
            self._generation = generation

    def _load(self, tx: Tx, model_id: str) -> _ModelCentroids:
        cached = self._models.get(model_id)
        if cached is not None:
            return cached
        # 10k speakers: plain tuples (stream), not a Row each.
        rows = list(tx.stream(ALL_CENTROIDS, {"model_id": model_id}))
        ids, matrix, unknown = _normalised(rows)
        loaded = _ModelCentroids(matrix.shape[1])
        loaded.ids, loaded.matrix, loaded.unknown = ids, matrix, unknown
        loaded.valid = np.ones(ids.size, np.bool_)
        loaded.size = int(ids.size)
        loaded.row_of = {int(i): row for row, i in enumerate(ids.tolist())}
        self._models[model_id] = loaded
        return loaded

    def warm(self, tx: Tx, model_id: str) -> None:
        with self._lock:
            self._load(tx, model_id)

    def refresh(self, tx: Tx, speaker_ids: Iterable[int]) -> None:
        """Re-read these speakers' centroids (and kinds) into every loaded model."""
        ids = sorted({int(i) for i in speaker_ids})
        if not ids:
            return
        with self._lock:
            for model_id, current in list(self._models.items()):
                rows = tx.rows(CENTROIDS_OF, {"model_id": model_id, "speaker_ids": ids})
                fresh_ids, matrix, unknown = _normalised(rows)
                if fresh_ids.size and matrix.shape[1] != current.dim:
                    if current.count:
                        self._models.pop(model_id)  # inconsistent: reload whole next time
                        continue
                    current = _ModelCentroids(matrix.shape[1])  # the model's first centroid
                    self._models[model_id] = current
                for gone in set(ids) - set(fresh_ids.tolist()):
                    current.remove(gone)
                current.upsert(fresh_ids, matrix, unknown)

    def nearest(
        self,
        tx: Tx,
        model_id: str,
        query: Vector,
        count: int,
        *,
        exclude: Collection[int] = (),
        only_unknown: bool | None = None,
    ) -> list[tuple[int, float]]:
        """(speaker id, centroid cosine) of the `count` nearest speakers, best first."""
        with self._lock:
            current = self._load(tx, model_id)
            if current.count == 0:
                return []
            if current.dim != query.shape[0]:
                raise ModelMismatch(
                    f"voice model {model_id!r} has {current.dim}-d vectors, "
                    f"got {query.shape[0]}-d"
                )
            size = current.size
            ids = current.ids[:size]
            scores = dot_rows(current.matrix[:size], query)
            mask = current.valid[:size].copy()
            if exclude:
                mask &= ~np.isin(ids, np.fromiter(exclude, dtype=np.int64))
            if only_unknown is not None:
                unknown = current.unknown[:size]
                mask &= unknown if only_unknown else ~unknown
            # Ties (equal centroids) go to the lower speaker id, whatever the row order.
            scores = np.where(mask, scores, -np.inf)
            available = int(mask.sum())
            count = min(count, available)
            if count <= 0:
                return []
            if count < scores.size:
                picked = np.argpartition(-scores, count - 1)[:count]
            else:
                picked = np.flatnonzero(mask)
            picked = picked[np.lexsort((ids[picked], -scores[picked]))]
            return [(int(ids[i]), float(scores[i])) for i in picked]


def _normalised(
    rows: Sequence[Sequence[Any]],
) -> tuple[npt.NDArray[np.int64], Matrix, npt.NDArray[np.bool_]]:
    """(speaker ids, normalised centroids, is-unknown flags) of CENTROIDS rows."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.bool_)
    speaker_ids, totals, counts, dims, kinds = zip(*rows, strict=True)
    del counts  # all > 0 (selected so); a centroid's direction does not depend on it
    sums = np.frombuffer(b"".join(totals), dtype=np.float64).reshape(len(rows), int(dims[0]))
    ids = np.array(speaker_ids, dtype=np.int64)
    unknown = np.array([kind == "unknown" for kind in kinds], dtype=np.bool_)
    return ids, normalize_rows(sums), unknown


# ---------------------------------------------------------------- voiceprint rows


@dataclass(frozen=True)
class NewVoiceprint:
    vector: Vector
    source: str
    conversation_id: int | None = None
    segment_id: int | None = None
    speech_seconds: float = 0.0


def add_voiceprints(
    tx: Tx, speaker_id: int, model_id: str, prints: Sequence[NewVoiceprint]
) -> list[int]:
    """Insert voiceprints (vectors already normalised) and add them to the centroid."""
    if not prints:
        return []
    dim = prints[0].vector.shape[0]
    register_voice_model(tx, model_id, dim)
    stamp = now_db()
    first = last_voiceprint_id(tx) + 1
    ids = list(range(first, first + len(prints)))
    tx.insert_rows(voiceprint, [
        {"id": vid, "speaker_id": speaker_id, "model_id": model_id, "vector": to_blob(p.vector),
         "source": p.source, "conversation_id": p.conversation_id, "segment_id": p.segment_id,
         "speech_seconds": float(p.speech_seconds), "created_at": stamp}
        for vid, p in zip(ids, prints, strict=True)
    ])
    total = np.sum([p.vector.astype(np.float64) for p in prints], axis=0)
    _add_to_centroid(tx, speaker_id, model_id, total, len(prints))
    return ids


def last_voiceprint_id(tx: Tx) -> int:
    """The highest voiceprint id ever given (ids are never reused): prints above it are newer."""
    return tx.next_id("voiceprint") - 1


def profile_prints(
    profile: Matrix, source: str, speech_seconds: float, conversation_id: int | None = None
) -> list[NewVoiceprint]:
    """The prints of one voice's vectors (rows normalised): their mean direction, which
    carries the speech seconds, plus a few representatives spread through them."""
    prints = [NewVoiceprint(mean_direction(profile), source, conversation_id, None,
                            speech_seconds)]
    if profile.shape[0] > 1:
        prints += [NewVoiceprint(profile[i], f"{source}#{i}", conversation_id, None, 0.0)
                   for i in representatives(profile)]
    return prints


def _add_to_centroid(
    tx: Tx, speaker_id: int, model_id: str, total: npt.NDArray[np.float64], count: int
) -> None:
    key = {"speaker_id": speaker_id, "model_id": model_id}
    row = tx.first(CENTROID, key)
    if row is None:
        tx.execute(NEW_CENTROID, {**key, "dim": int(total.shape[0]),
                                  "total": total.astype(np.float64).tobytes(), "count": count})
        return
    new_total = np.frombuffer(row.total, dtype=np.float64) + total
    tx.execute(SET_CENTROID, {**key, "total": new_total.tobytes(),
                              "count": int(row.vector_count) + count})


def prune_voiceprints(tx: Tx, speaker_id: int, model_id: str) -> int:
    """Keep a speaker's prints of one model bounded (see MAX_VOICEPRINTS); returns dropped."""
    key = {"speaker_id": speaker_id, "model_id": model_id}
    excess = int(tx.value(COUNT_PRINTS, key)) - MAX_VOICEPRINTS
    if excess <= 0:
        return 0
    dropped = tx.execute(DROP_OLDEST_PRINTS, {**key, "excess": excess})
    recompute_centroids(tx, [speaker_id])
    return dropped


def move_centroids(tx: Tx, source_id: int, target_id: int) -> None:
    """Fold the source's centroid sums into the target's (a merge), without a scan."""
    of_source = speaker_centroid.c.speaker_id == source_id
    for row in tx.rows(select(speaker_centroid.c.model_id, speaker_centroid.c.total,
                              VECTOR_COUNT).where(of_source)):
        _add_to_centroid(tx, target_id, row.model_id, np.frombuffer(row.total, np.float64),
                         int(row.vector_count))
    tx.execute(delete(speaker_centroid).where(of_source))


def recompute_centroids(tx: Tx, speaker_ids: Iterable[int]) -> None:
    """Rebuild centroids from voiceprints (after deletions: sums cannot subtract exactly)."""
    for speaker_id in sorted(set(speaker_ids)):
        tx.execute(DROP_CENTROIDS, {"speaker_id": speaker_id})
        by_model: dict[str, list[npt.NDArray[np.float32]]] = {}
        for row in tx.rows(SPEAKER_PRINTS, {"speaker_id": speaker_id}):
            by_model.setdefault(row.model_id, []).append(
                np.frombuffer(row.vector, dtype=np.float32))
        for model_id, vectors in by_model.items():
            total = np.sum(np.vstack(vectors).astype(np.float64), axis=0)
            _add_to_centroid(tx, speaker_id, model_id, total, len(vectors))


def centroid_of(tx: Tx, speaker_id: int, model_id: str) -> Vector | None:
    row = tx.first(NONEMPTY_CENTROID, {"speaker_id": speaker_id, "model_id": model_id})
    if row is None:
        return None
    return normalize(np.frombuffer(row.total, dtype=np.float64).astype(np.float32))


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class Scored:
    speaker_id: int
    score: float
    threshold: float


def score_speakers(
    tx: Tx,
    cache: CentroidCache,
    model_id: str,
    query: Vector,
    config: MatchConfig,
    *,
    exclude: Collection[int] = (),
) -> list[Scored]:
    """Stored speakers scored against a (normalised) query vector, best first.

    Stage 1: nearest centroids in RAM. Stage 2: each candidate's score is the mean cosine of
    its nearest voiceprints (top_k voiceprints overall at most)."""
    candidates = cache.nearest(tx, model_id, query, CANDIDATE_SPEAKERS, exclude=exclude)
    if not candidates:
        return []
    # ~1000 rows: plain tuples (stream), not a named row each.
    rows = list(tx.stream(CANDIDATE_PRINTS, {
        "model_id": model_id, "speaker_ids": [speaker_id for speaker_id, _ in candidates],
    }))
    if not rows:
        return []
    owners, vectors, own_thresholds = zip(*rows, strict=True)
    speaker_ids = np.array(owners, dtype=np.int64)
    # One buffer for all rows (prints of one model share its dimension, checked at insert).
    matrix = np.frombuffer(b"".join(vectors), np.float32).reshape(len(rows), -1)
    sims = dot_rows(matrix, query)
    # Keep only the top_k voiceprints overall, as a kNN over voiceprints would.
    if sims.size > config.top_k:
        keep = np.argpartition(-sims, config.top_k - 1)[: config.top_k]
        speaker_ids, sims = speaker_ids[keep], sims[keep]
    default = config.for_model(model_id).threshold
    thresholds = {int(owner): (default if threshold is None else float(threshold))
                  for owner, threshold in zip(owners, own_thresholds, strict=True)}
    scored: list[Scored] = []
    for speaker_id in np.unique(speaker_ids):
        own = np.sort(sims[speaker_ids == speaker_id])[::-1][:TOP_VOICEPRINTS]
        sid = int(speaker_id)
        scored.append(Scored(sid, float(own.mean()), thresholds[sid]))
    scored.sort(key=lambda s: (-s.score, s.speaker_id))
    return scored


def decide(scored: Sequence[Scored], config: MatchConfig, model_id: str) -> Scored | None:
    """The best speaker if it clears its threshold and beats the runner-up by the margin."""
    if not scored:
        return None
    best = scored[0]
    runner_up = scored[1].score if len(scored) > 1 else -1.0
    if best.score >= best.threshold and best.score - runner_up >= config.for_model(model_id).margin:
        return best
    return None
