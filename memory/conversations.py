"""Conversations: creating them, storing a pipeline result (ingest), re-matching (reprocess)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, bindparam, func, insert, or_, select, update

from memory import turns
from memory.db import Tx, latest_id_hint
from memory.errors import ConversationNotFound, DuplicateAudio, InvalidOperation, ModelMismatch
from memory.events import Change
from memory.identity import Ctx, holds
from memory.limits import (
    MAX_ERROR_LENGTH,
    MAX_LANGUAGE_LENGTH,
    MAX_SOURCE_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    bounded,
    cut,
)
from memory.prepared import Prepared
from memory.search_index import SearchIndex, TextCodes
from memory.speakers import create_unknown, delete_row, get_row
from memory.tables import (
    conversation,
    local_cluster,
    segment,
    segment_content,
    segment_voice,
    voiceprint,
)
from memory.timeutil import from_db, from_db_required, now_db, to_db
from memory.types import (
    ConversationInfo,
    ConversationStatus,
    MatchConfig,
    PipelineResultLike,
    Vector,
    base_model,
)
from memory.vectors import (
    Matrix,
    check_matrix,
    matrix_from_blob,
    matrix_to_blob,
    mean_direction,
    normalize_rows,
    representatives,
    stack,
    to_blob,
)
from memory.voiceprints import (
    NewVoiceprint,
    Scored,
    add_voiceprints,
    centroid_of,
    decide,
    prune_voiceprints,
    recompute_centroids,
    register_voice_model,
    score_speakers,
)

SELECT_CONVERSATION = select(conversation)
CONVERSATION_BY_ID = Prepared(
    SELECT_CONVERSATION.where(conversation.c.id == bindparam("conversation_id")))
ANY_SEGMENT = Prepared(
    select(segment.c.id).where(segment.c.conversation_id == bindparam("conversation_id")).limit(1))
INGESTED = Prepared(update(conversation).where(conversation.c.id == bindparam("conversation_id"))
                    .values(duration=bindparam("duration"), language=bindparam("language"),
                            model_ids=bindparam("model_ids"), status="done", error=None))
ConversationRow = Row[Any]
STATUSES = ("queued", "processing", "done", "failed")


def conversation_info(row: ConversationRow) -> ConversationInfo:
    return ConversationInfo(
        id=int(row.id), title=row.title, source_name=row.source_name, sha256=row.sha256,
        recorded_at=from_db(row.recorded_at), created_at=from_db_required(row.created_at),
        duration=row.duration, language=row.language, status=row.status, error=row.error,
        audio_path=row.audio_path, model_ids=json.loads(row.model_ids),
    )


def get_conversation_row(tx: Tx, conversation_id: int) -> ConversationRow:
    row = tx.first(CONVERSATION_BY_ID, {"conversation_id": conversation_id})
    if row is None:
        hint = latest_id_hint(tx, "conversation", "conversation", "conversations")
        raise ConversationNotFound(f"no conversation {conversation_id}; {hint}")
    return row


def find_by_sha256(tx: Tx, sha256: str) -> ConversationRow | None:
    return tx.first(SELECT_CONVERSATION.where(conversation.c.sha256 == sha256))


def create(
    tx: Tx, *, title: str, source_name: str | None, sha256: str | None,
    recorded_at: datetime | None, audio_path: str | None,
) -> int:
    bounded(title, "title", MAX_TITLE_LENGTH)
    if source_name is not None:
        bounded(source_name, "file name", MAX_SOURCE_NAME_LENGTH)
    if sha256 is not None:
        existing = find_by_sha256(tx, sha256)
        if existing is not None:
            raise DuplicateAudio(
                f"this audio was stored before as conversation {existing.id} "
                f"({existing.title!r}); nothing new was stored",
                int(existing.id),
            )
    return tx.insert(insert(conversation).values(
        title=title, source_name=source_name, sha256=sha256, recorded_at=to_db(recorded_at),
        created_at=now_db(), status="queued", audio_path=audio_path,
    ))


def set_status(tx: Tx, conversation_id: int, status: ConversationStatus, error: str | None) -> None:
    get_conversation_row(tx, conversation_id)
    if status not in STATUSES:
        raise InvalidOperation(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    tx.execute(update(conversation).where(conversation.c.id == conversation_id).values(
        status=status, error=cut(error, MAX_ERROR_LENGTH) if status == "failed" else None,
    ))


# ---------------------------------------------------------------- ingest


@dataclass
class Cluster:
    label: str
    vectors: Matrix
    """Normalised (n, d); may be empty (0 rows) when nothing was measured."""
    speech_seconds: float
    matched_speaker_id: int | None
    segment_indexes: list[int]
    model_id: str
    """Voice model id of `vectors` (the result's, or its telephone-channel variant)."""


@dataclass(frozen=True)
class Decision:
    label: str
    speaker_id: int
    score: float | None
    created: bool
    suggested: Scored | None = None
    """An uncertain match (>= the suggest threshold, below the match threshold or margin):
    stored as an unknown, offered to the agent to confirm."""


@dataclass(frozen=True)
class Ingested:
    segment_ids: list[int]
    decisions: list[Decision]
    text_codes: TextCodes


def _clusters(result: PipelineResultLike, voice_vectors: list[Vector | None]) -> list[Cluster]:
    by_label: dict[str, list[int]] = {}
    for i, said in enumerate(result.segments):
        if said.local_speaker is not None:
            by_label.setdefault(said.local_speaker, []).append(i)
    clusters: list[Cluster] = []
    seen: set[str] = set()
    for local in result.local_speakers:
        if local.label in seen:
            raise InvalidOperation(f"local speaker {local.label!r} is listed twice")
        seen.add(local.label)
        vectors = stack(list(local.vectors), f"vectors of {local.label}") if local.vectors else None
        clusters.append(Cluster(
            local.label, vectors if vectors is not None else np.zeros((0, 0), np.float32),
            float(local.speech_seconds), local.matched_speaker_id, by_label.get(local.label, []),
            local.voice_model_id or result.voice_model_id,
        ))
    for label, indexes in by_label.items():
        if label in seen:
            continue
        # A label only the segments know: build its cluster from their own voice vectors.
        own = [v for v in (voice_vectors[i] for i in indexes) if v is not None]
        matrix = stack(own) if own else np.zeros((0, 0), np.float32)
        seconds = float(sum(result.segments[i].end - result.segments[i].start for i in indexes))
        clusters.append(Cluster(label, matrix, seconds, None, indexes, result.voice_model_id))
    return clusters


def _check_dims(clusters: Sequence[Cluster], voice_vectors: Sequence[Vector | None]) -> int | None:
    dims = {c.vectors.shape[1] for c in clusters if c.vectors.shape[0]}
    dims |= {v.shape[0] for v in voice_vectors if v is not None}
    if len(dims) > 1:
        raise ModelMismatch(f"voice vectors of one result differ in dimension: {sorted(dims)}")
    return dims.pop() if dims else None


@dataclass(frozen=True)
class Prior:
    """What a live session already showed for one cluster's stretch of time (memory.live)."""

    chosen: int | None = None
    """A speaker a person gave this voice during the session: it stays."""
    shown: int | None = None
    """The speaker the session showed: kept when no stored voice matches the cluster, so the
    labels an agent saw do not change for nothing."""


def ingest(
    ctx: Ctx, index: SearchIndex, conversation_id: int, result: PipelineResultLike,
    *, segment_ids: Sequence[int] | None = None, priors: dict[str, Prior] | None = None,
) -> Ingested:
    """Store a pipeline result. `segment_ids` (one per segment) gives ids to use instead of
    new ones, and `priors` what a live session showed for some clusters (memory.live)."""
    tx, cfg = ctx.tx, ctx.config
    priors = priors or {}
    get_conversation_row(tx, conversation_id)
    if has_segments(tx, conversation_id):
        raise InvalidOperation(
            f"conversation {conversation_id} already has segments; use reprocess to re-match it"
        )
    model_id = result.voice_model_id
    segments = list(result.segments)
    voice_vectors = _vectors([s.voice_vector for s in segments], "voice vectors", unit=True)
    # A cluster that no segment belongs to has nobody to label: no phantom "Unknown N".
    clusters = [c for c in _clusters(result, voice_vectors) if c.segment_indexes]
    dim = _check_dims(clusters, voice_vectors)
    if dim is not None:
        for cluster_model in sorted({model_id} | {c.model_id for c in clusters}):
            register_voice_model(tx, cluster_model, dim)
    text_vectors = _vectors([s.text_vector for s in segments], "text vectors", unit=False)
    if any(v is not None for v in text_vectors) and not result.text_model_id:
        raise ModelMismatch("text vectors were given without a text model id")
    for i, s in enumerate(segments):
        if not (s.end >= s.start >= 0):
            raise InvalidOperation(f"segment {i} has invalid times {s.start}..{s.end}")
    turn_rows = turns.checked(result.turns)
    if result.language is not None:
        bounded(result.language, "language code", MAX_LANGUAGE_LENGTH)

    # 1. Decide every cluster against the store as it was before this recording. The
    # diarizer heard the clusters as different people, so one stored speaker takes at most
    # one of them: the cluster that sounds most like it (two people on one phone line can
    # both sound like a third voice heard over a phone before).
    decided: dict[str, tuple[int | None, float | None]] = {}
    suggested: dict[str, Scored] = {}
    scores: dict[str, list[Scored]] = {}
    for cluster in clusters:
        query = mean_direction(cluster.vectors) if cluster.vectors.shape[0] > 0 else None
        scores[cluster.label] = (score_speakers(tx, ctx.cache, cluster.model_id, query, cfg)
                                 if query is not None else [])
    taken: set[int] = set()
    for cluster in sorted(clusters, key=lambda c: _claim_order(c, scores[c.label],
                                                               priors.get(c.label))):
        scored = scores[cluster.label]
        speaker_id: int | None = None
        score: float | None = None
        prior = priors.get(cluster.label, Prior())
        chosen = cluster.matched_speaker_id
        if chosen is None and prior.chosen is not None and prior.chosen not in taken:
            chosen = prior.chosen
        if chosen is not None and get_row(tx, chosen):
            speaker_id = chosen
            score = next((s.score for s in scored if s.speaker_id == speaker_id), None)
        else:
            # A speaker another cluster already took is no reason to name the runner-up.
            best = decide(scored, cfg, cluster.model_id)
            if best is not None and best.speaker_id not in taken and _consistent(
                tx, cluster, best, cfg
            ):
                speaker_id, score = best.speaker_id, best.score
            elif (prior.shown is not None and prior.shown not in taken
                  and get_row(tx, prior.shown)):
                speaker_id = prior.shown
            elif scored:
                score = scored[0].score
                if (score >= cfg.for_model(cluster.model_id).suggest_threshold
                        and scored[0].speaker_id not in taken):
                    suggested[cluster.label] = scored[0]
        if speaker_id is not None:
            taken.add(speaker_id)
        decided[cluster.label] = (speaker_id, score)

    # 2. Segments, text, vectors: one bulk insert each.
    if segment_ids is None:
        first_id = next_segment_id(tx)
        segment_ids = list(range(first_id, first_id + len(segments)))
    elif len(segment_ids) != len(segments):
        raise InvalidOperation(f"{len(segment_ids)} ids for {len(segments)} segments")
    segment_ids = list(segment_ids)
    speaker_of: dict[int, tuple[int, float | None]] = {}
    decisions: list[Decision] = []
    for cluster in clusters:
        speaker_id, score = decided[cluster.label]
        created = speaker_id is None
        if speaker_id is None:
            speaker_id = create_unknown(tx)
        decisions.append(Decision(cluster.label, speaker_id, score, created,
                                  suggested.get(cluster.label)))
        for i in cluster.segment_indexes:
            speaker_of[i] = (speaker_id, None if created else score)

    unassigned: tuple[int | None, float | None] = (None, None)
    segment_rows: list[dict[str, Any]] = []
    for i, (sid, s) in enumerate(zip(segment_ids, segments, strict=True)):
        speaker_id, confidence = speaker_of.get(i, unassigned)
        segment_rows.append({
            "id": sid, "conversation_id": conversation_id, "start": float(s.start),
            "end": float(s.end), "local_speaker": s.local_speaker, "speaker_id": speaker_id,
            "speaker_confidence": confidence,
            "assignment_source": None if speaker_id is None else "auto",
            "excluded_from_profile": 0, "emotion": s.emotion,
            "emotion_confidence": (None if s.emotion_confidence is None
                                   else float(s.emotion_confidence)),
        })
    tx.insert_rows(segment, segment_rows)
    tx.insert_rows(segment_content, [
        {"segment_id": sid, "text": s.text, "words": words_json(s.words)}
        for sid, s in zip(segment_ids, segments, strict=True)
    ])
    index.add_text(tx, [(sid, s.text) for sid, s in zip(segment_ids, segments, strict=True)])
    tx.insert_rows(segment_voice, [
        {"segment_id": sid, "vector": to_blob(v)}
        for sid, v in zip(segment_ids, voice_vectors, strict=True) if v is not None
    ])
    codes: TextCodes = []
    if result.text_model_id:
        rows = [(sid, v) for sid, v in zip(segment_ids, text_vectors, strict=True) if v is not None]
        codes = index.add_vectors(tx, result.text_model_id, rows)

    # 3. Clusters and voiceprints (bounded per cluster: its mean + a few representatives).
    tx.insert_rows(local_cluster, [
        _cluster_row(conversation_id, cluster) for cluster in clusters if cluster.vectors.shape[0]
    ])
    for cluster, decision in zip(clusters, decisions, strict=True):
        if cluster.vectors.shape[0] and learns_from(tx, cluster.model_id, decision.speaker_id):
            prints = _cluster_voiceprints(
                conversation_id, cluster, segment_ids, voice_vectors, segments
            )
            add_voiceprints(tx, decision.speaker_id, cluster.model_id, prints)
            prune_voiceprints(tx, decision.speaker_id, cluster.model_id)
    ctx.cache.refresh(tx, [d.speaker_id for d in decisions])
    turns.store(tx, conversation_id, turn_rows)

    model_ids = {"voice": model_id}
    if result.text_model_id:
        model_ids["text"] = result.text_model_id
    if result.asr_model_id:
        model_ids["asr"] = result.asr_model_id
    tx.execute(INGESTED, {
        "conversation_id": conversation_id, "duration": float(result.duration),
        "language": result.language, "model_ids": json.dumps(model_ids, sort_keys=True),
    })
    return Ingested(segment_ids, decisions, codes)


def has_segments(tx: Tx, conversation_id: int) -> bool:
    return tx.first(ANY_SEGMENT, {"conversation_id": conversation_id}) is not None


def next_segment_id(tx: Tx) -> int:
    """The id the next new segment gets (ids are never reused)."""
    return tx.next_id("segment")


def _claim_order(
    cluster: Cluster, scored: Sequence[Scored], prior: Prior | None
) -> tuple[int, float]:
    """Clusters the diarizer already recognised, or a person named live, first; then by
    their best score."""
    settled = cluster.matched_speaker_id is not None or (prior is not None
                                                         and prior.chosen is not None)
    return (0 if settled else 1, -scored[0].score if scored else 0.0)


def learns_from(tx: Tx, model_id: str, speaker_id: int) -> bool:
    """Whether a recording's automatically matched cluster adds its voiceprints to the
    speaker. Not on a phone line (a channel variant of the model) for a named or enrolled
    speaker: once a profile holds a real call, other callers on a phone line score up to 0.77
    against it (real-dev), over the telephone threshold. Its telephone profile stays what
    enrollment made it; an unknown speaker keeps learning, since its calls are all it has."""
    if model_id == base_model(model_id):
        return True
    row = get_row(tx, speaker_id)
    return row is None or row.kind == "unknown"


CONSISTENT_SHARE = 0.7
"""A cluster is named only when at least this share of its own vectors, one by one, sound like
the speaker its mean matched (>= the model's vector threshold). A cluster that mixes an
enrolled voice with a stranger's (a diarization error) can still average above the threshold;
naming it would put the name on the stranger's speech, so it stays an unknown with a
suggestion."""
MIN_VECTORS_TO_CHECK = 3


def _consistent(tx: Tx, cluster: Cluster, best: Scored, cfg: MatchConfig) -> bool:
    vectors = cluster.vectors
    if vectors.shape[0] < MIN_VECTORS_TO_CHECK:
        return True
    centroid = centroid_of(tx, best.speaker_id, cluster.model_id)
    if centroid is None:
        return True
    scores = normalize_rows(vectors) @ centroid
    bar = cfg.for_model(cluster.model_id).vector_threshold
    return float(np.mean(scores >= bar)) >= CONSISTENT_SHARE


def _vectors(values: Sequence[object | None], what: str, unit: bool) -> list[Vector | None]:
    """Validate all of a result's vectors at once (one array op, not one per segment)."""
    present = [i for i, v in enumerate(values) if v is not None]
    out: list[Vector | None] = [None] * len(values)
    if present:
        matrix = check_matrix([values[i] for i in present], what)
        if unit:
            matrix = normalize_rows(matrix)
        for k, i in enumerate(present):
            out[i] = matrix[k]
    return out


def words_json(words: Sequence[Any]) -> str:
    """[[word, start, end, probability], ...]; tuples of plain values keep json in C."""
    try:
        return json.dumps([(w.word, w.start, w.end, w.probability) for w in words],
                          separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # numpy scalars, NaN: coerce, slowly
        return json.dumps(
            [(str(w.word), _number(w.start), _number(w.end), _number(w.probability))
             for w in words],
            separators=(",", ":"),
        )


def _number(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _cluster_row(conversation_id: int, cluster: Cluster) -> dict[str, Any]:
    """The local_cluster row of a cluster with vectors: its mean and a few representatives."""
    vectors = cluster.vectors
    kept = [mean_direction(vectors)] + [vectors[i] for i in representatives(vectors)]
    return {
        "conversation_id": conversation_id, "label": cluster.label,
        "model_id": cluster.model_id, "dim": int(vectors.shape[1]),
        "vectors": matrix_to_blob(np.vstack(kept)), "speech_seconds": cluster.speech_seconds,
    }


def _cluster_voiceprints(
    conversation_id: int, cluster: Cluster, segment_ids: Sequence[int],
    voice_vectors: Sequence[Vector | None], segments: Sequence[Any],
) -> list[NewVoiceprint]:
    prints = [NewVoiceprint(mean_direction(cluster.vectors), f"conversation:{conversation_id}",
                            conversation_id, None, cluster.speech_seconds)]
    own = [i for i in cluster.segment_indexes if voice_vectors[i] is not None]
    if own:
        matrix = np.vstack([v for v in (voice_vectors[i] for i in own) if v is not None])
        for k in representatives(matrix):
            i = own[k]
            vector = voice_vectors[i]
            assert vector is not None
            prints.append(NewVoiceprint(
                vector, f"segment:{segment_ids[i]}", conversation_id, segment_ids[i],
                float(segments[i].end - segments[i].start),
            ))
    else:
        prints += [NewVoiceprint(cluster.vectors[k], f"conversation:{conversation_id}",
                                 conversation_id, None, 0.0)
                   for k in representatives(cluster.vectors)]
    return prints


# ---------------------------------------------------------------- reprocess

_not_manual = or_(segment.c.assignment_source.is_(None),
                  segment.c.assignment_source != "manual")
"""A segment whose speaker was not given by hand (reprocess leaves those alone)."""


def reprocess(ctx: Ctx, change: Change, conversation_id: int) -> list[Decision]:
    """Re-match the conversation's stored clusters against the current profiles (its own
    voiceprints left out). Manual assignments stay; segment ids survive."""
    tx, cfg = ctx.tx, ctx.config
    get_conversation_row(tx, conversation_id)
    clusters = tx.rows(
        select(local_cluster.c.label, local_cluster.c.model_id, local_cluster.c.dim,
               local_cluster.c.vectors, local_cluster.c.speech_seconds)
        .where(local_cluster.c.conversation_id == conversation_id)
        .order_by(local_cluster.c.id)
    )
    before = {int(r.speaker_id) for r in tx.rows(
        select(segment.c.speaker_id).distinct()
        .where(segment.c.conversation_id == conversation_id, segment.c.speaker_id.is_not(None))
    )}
    for sid in before:
        change.snapshot_speaker(tx, sid)
    change.delete_voiceprints(tx, voiceprint.c.conversation_id == conversation_id)
    recompute_centroids(tx, change.touched)
    ctx.cache.refresh(tx, change.touched)
    decisions: list[Decision] = []
    taken: set[int] = set()  # one stored speaker per cluster, as at ingest
    for stored in clusters:
        label, model_id = stored.label, stored.model_id
        kept = matrix_from_blob(stored.vectors, int(stored.dim))
        query = kept[0]
        best = decide(score_speakers(tx, ctx.cache, model_id, query, cfg), cfg, model_id)
        if best is not None and best.speaker_id in taken:
            best = None
        of_label = (segment.c.conversation_id == conversation_id,
                    segment.c.local_speaker == label, _not_manual)
        current = tx.value(
            select(segment.c.speaker_id)
            .where(*of_label, segment.c.speaker_id.is_not(None))
            .group_by(segment.c.speaker_id)
            .order_by(func.count().desc(), segment.c.speaker_id).limit(1)
        )
        created = False
        score: float | None = None
        if best is not None:
            speaker_id, score = best.speaker_id, best.score
            taken.add(speaker_id)
            change.snapshot_speaker(tx, speaker_id)
        elif current is not None and int(current) not in taken:
            # Nothing else matches: the cluster keeps the speaker it had (no relabel).
            speaker_id = int(current)
            taken.add(speaker_id)
            change.snapshot_speaker(tx, speaker_id)
        else:
            speaker_id = create_unknown(tx)
            change.created_speaker(speaker_id)
            created = True
        decisions.append(Decision(label, speaker_id, score, created))
        for moved in tx.rows(select(segment.c.id).where(*of_label).order_by(segment.c.id)):
            change.edit_segment(tx, int(moved.id), speaker_id=speaker_id,
                                speaker_confidence=score, assignment_source="auto")
        if not learns_from(tx, model_id, speaker_id):
            continue
        prints = [NewVoiceprint(kept[0], f"conversation:{conversation_id}", conversation_id,
                                None, float(stored.speech_seconds))]
        prints += [NewVoiceprint(kept[i], f"conversation:{conversation_id}", conversation_id,
                                 None, 0.0) for i in range(1, kept.shape[0])]
        change.voiceprints_added += add_voiceprints(tx, speaker_id, model_id, prints)
    # Unknown speakers this left without any segment or voice are dropped.
    for sid in sorted(before):
        row = get_row(tx, sid)
        if row is None or row.kind != "unknown":
            continue
        if holds(tx, segment, sid):
            continue
        change.delete_voiceprints(tx, voiceprint.c.speaker_id == sid)
        change.delete_clips(tx, sid)
        delete_row(tx, sid)
    recompute_centroids(tx, [d.speaker_id for d in decisions if get_row(tx, d.speaker_id)])
    ctx.cache.refresh(tx, change.touched)
    return decisions

