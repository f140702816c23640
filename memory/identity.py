"""Identity operations: identify, rename, merge, mark_misidentified, delete, enroll.

Each function runs inside the caller's write transaction and fills a `Change` with the
before-state that undo needs. Segments are never deleted here: only their speaker changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Row, Table, and_, delete, distinct, func, literal, select

from memory.db import Tx, latest_id_hint
from memory.errors import InvalidOperation, ModelMismatch, SegmentNotFound
from memory.events import Change
from memory.speakers import (
    SpeakerRow,
    clean_name,
    create_named,
    create_unknown,
    delete_row,
    find_by_name,
    get_row,
    label_of,
    resolve_row,
    set_name,
    touch,
)
from memory.tables import (
    conversation,
    enrollment_clip,
    segment,
    segment_voice,
    speaker,
    speaker_centroid,
    voiceprint,
)
from memory.types import MatchConfig, Vector
from memory.vectors import from_blob, mean_direction, normalize_rows, representatives, stack
from memory.voiceprints import (
    ENROLLMENT_SOURCE,
    CentroidCache,
    NewVoiceprint,
    add_voiceprints,
    centroid_of,
    decide,
    move_centroids,
    profile_prints,
    recompute_centroids,
    score_speakers,
)
from memory.wording import segments_in_conversations

PROPAGATION_CANDIDATES = 64

SELECT_SEGMENT = select(
    segment.c.id, segment.c.conversation_id, segment.c.speaker_id, segment.c.local_speaker
)
COUNT_SEGMENTS = select(
    func.count().label("segments"),
    func.count(distinct(segment.c.conversation_id)).label("conversations"),
)
SELECT_PROFILE_SEGMENTS = (
    select(segment.c.id, segment_voice.c.vector,
           (segment.c.end - segment.c.start).label("seconds"))
    .join(segment_voice, segment_voice.c.segment_id == segment.c.id)
    .order_by(segment.c.start, segment.c.id)
)
EXCLUDED = literal(1, literal_execute=True)
"""excluded_from_profile of a corrected segment, written into the SQL (not a parameter) so
that the partial index segment_excluded applies (a prepared PostgreSQL plan cannot use it for
a parameter)."""
HOLDINGS = (segment, voiceprint, enrollment_clip)
"""The tables whose rows make a speaker hold something (holds_nothing)."""


@dataclass
class Ctx:
    tx: Tx
    cache: CentroidCache
    config: MatchConfig


@dataclass
class Relabel:
    """What an identity change did to segments, for the result."""

    segments: int = 0
    conversations: int = 0
    merged: list[tuple[int, str]] = field(default_factory=list)
    """(speaker id, label it had) of speakers folded into the target."""
    suggestions: list[tuple[int, float]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Labels of speakers the change left empty and removed."""

    def add(self, segments: int, conversations: int) -> None:
        self.segments += segments
        self.conversations += conversations


def _label(row: SpeakerRow) -> str:
    return label_of(row.name, row.unknown_number)


def count_segments(tx: Tx, speaker_id: int) -> tuple[int, int]:
    row = tx.first(COUNT_SEGMENTS.where(segment.c.speaker_id == speaker_id))
    assert row is not None
    return int(row.segments), int(row.conversations)


def conversation_voice_model(tx: Tx, conversation_id: int) -> str | None:
    raw = tx.value(select(conversation.c.model_ids).where(conversation.c.id == conversation_id))
    if raw is None:
        return None
    value = json.loads(raw).get("voice")
    return str(value) if value else None


# ---------------------------------------------------------------- building blocks


def merge_into(ctx: Ctx, change: Change, source: int, target: int) -> tuple[int, int]:
    """Fold speaker `source` into `target`: segments, voiceprints, centroid; source goes."""
    tx = ctx.tx
    change.snapshot_speaker(tx, source)
    change.snapshot_speaker(tx, target)
    moved = change.move_all_segments(tx, source, target)
    change.move_voiceprints(tx, source, target)
    change.move_clips(tx, source, target)
    move_centroids(tx, source, target)
    tx.execute(delete(speaker).where(speaker.c.id == source))
    touch(tx, target)
    return moved


def rebuild_conversation_voiceprints(
    ctx: Ctx, change: Change, speaker_id: int, conversation_id: int
) -> None:
    """Replace a speaker's voiceprints from one conversation by ones built from its segments
    there that still count for its profile (after segments moved or were excluded)."""
    tx = ctx.tx
    model_id = conversation_voice_model(tx, conversation_id)
    change.delete_voiceprints(tx, and_(voiceprint.c.speaker_id == speaker_id,
                                       voiceprint.c.conversation_id == conversation_id))
    rows = tx.rows(SELECT_PROFILE_SEGMENTS.where(
        segment.c.conversation_id == conversation_id, segment.c.speaker_id == speaker_id,
        segment.c.excluded_from_profile == 0,
    ))
    if rows and model_id is not None:
        matrix = normalize_rows(np.vstack([from_blob(r.vector) for r in rows]))
        seconds = float(sum(r.seconds for r in rows))
        prints = [NewVoiceprint(mean_direction(matrix), f"conversation:{conversation_id}",
                                conversation_id, None, seconds)]
        prints += [
            NewVoiceprint(matrix[i], f"segment:{rows[i].id}", conversation_id, int(rows[i].id),
                          float(rows[i].seconds))
            for i in representatives(matrix)
        ]
        change.voiceprints_added += add_voiceprints(tx, speaker_id, model_id, prints)
    recompute_centroids(tx, [speaker_id])
    change.touched.add(speaker_id)


def propagate(ctx: Ctx, change: Change, target: int, relabel: Relabel) -> None:
    """Merge unknown speakers whose voice now matches `target` strictly; suggest weaker ones."""
    tx, cfg = ctx.tx, ctx.config
    ctx.cache.refresh(tx, change.touched)
    suggestions: dict[int, float] = {}
    merged: set[int] = set()
    models = [r.model_id for r in tx.rows(select(speaker_centroid.c.model_id).where(
        speaker_centroid.c.speaker_id == target, speaker_centroid.c.count > 0
    ))]
    for model_id in models:
        centroid = centroid_of(tx, target, model_id)
        if centroid is None:
            continue
        limits = cfg.for_model(model_id)
        for unknown_id, score in ctx.cache.nearest(
            tx, model_id, centroid, PROPAGATION_CANDIDATES, exclude=merged, only_unknown=True
        ):
            if score < limits.suggest_threshold:
                break
            strong = score >= limits.propagate_threshold
            if strong and _best_named(ctx, unknown_id, model_id) == target and not _corrected(
                tx, unknown_id
            ):
                row = get_row(tx, unknown_id)
                assert row is not None
                relabel.add(*merge_into(ctx, change, unknown_id, target))
                relabel.merged.append((unknown_id, _label(row)))
                merged.add(unknown_id)
                suggestions.pop(unknown_id, None)
                ctx.cache.refresh(tx, [unknown_id, target])
            elif unknown_id not in merged:
                suggestions[unknown_id] = max(score, suggestions.get(unknown_id, -1.0))
    relabel.suggestions = sorted(suggestions.items(), key=lambda kv: (-kv[1], kv[0]))


def _corrected(tx: Tx, speaker_id: int) -> bool:
    """Holds a segment the user marked as misidentified: merging it automatically could
    silently undo that correction, so it is only ever suggested."""
    return tx.first(select(segment.c.id).where(
        segment.c.speaker_id == speaker_id, segment.c.excluded_from_profile == EXCLUDED
    ).limit(1)) is not None


def _best_named(ctx: Ctx, speaker_id: int, model_id: str) -> int | None:
    centroid = centroid_of(ctx.tx, speaker_id, model_id)
    if centroid is None:
        return None
    best = ctx.cache.nearest(ctx.tx, model_id, centroid, 1, only_unknown=False)
    return best[0][0] if best else None


# ---------------------------------------------------------------- operations


@dataclass
class IdentifyOutcome:
    target: int
    relabel: Relabel
    summary: str


def identify(
    ctx: Ctx, change: Change, name: str, segment_id: int | None, speaker_ref: object | None
) -> IdentifyOutcome:
    tx = ctx.tx
    name = clean_name(name)
    if (segment_id is None) == (speaker_ref is None):
        raise InvalidOperation("identify needs exactly one of segment_id or speaker")
    existing = find_by_name(tx, name)
    target: int | None = None if existing is None else int(existing.id)
    relabel = Relabel()
    summary: str

    if segment_id is not None:
        found = tx.first(SELECT_SEGMENT.where(segment.c.id == segment_id))
        if found is None:
            raise SegmentNotFound(no_segment_message(tx, segment_id))
        source_row = None if found.speaker_id is None else get_row(tx, int(found.speaker_id))
        if source_row is not None and source_row.kind == "unknown":
            target, summary = _identify_whole(ctx, change, source_row, name, target, relabel)
        elif source_row is not None and int(source_row.id) == target:
            summary = f"Segment {segment_id} was already {name}"
        else:
            target, summary = _identify_segment(ctx, change, found, name, target, relabel)
            if source_row is not None and _drop_if_empty(ctx, change, int(source_row.id)):
                relabel.removed.append(_label(source_row))
                summary += f"; {_label(source_row)} had nothing left and was removed"
    else:
        source_row = resolve_row(tx, speaker_ref)
        source = int(source_row.id)
        if source_row.kind == "unknown":
            target, summary = _identify_whole(ctx, change, source_row, name, target, relabel)
        elif source == target:
            summary = f"{_label(source_row)} was already {name}"
        elif target is None:
            change.snapshot_speaker(tx, source)
            set_name(tx, source, name)
            relabel.add(*count_segments(tx, source))
            target = source
            summary = f"Renamed {_label(source_row)} to {name}"
        else:
            relabel.add(*merge_into(ctx, change, source, target))
            relabel.merged.append((source, _label(source_row)))
            summary = f"Merged {_label(source_row)} into {name}"
    assert target is not None
    propagate(ctx, change, target, relabel)
    if relabel.merged:
        summary += "; merged " + ", ".join(label for _, label in relabel.merged)
    summary += f" ({segments_in_conversations(relabel.segments, relabel.conversations)} relabelled)"
    return IdentifyOutcome(target, relabel, summary)


def _identify_whole(
    ctx: Ctx, change: Change, source_row: SpeakerRow, name: str, target: int | None,
    relabel: Relabel,
) -> tuple[int, str]:
    """An unknown speaker is named: it becomes the named speaker, or merges into it."""
    tx = ctx.tx
    source = int(source_row.id)
    if target is None:
        change.snapshot_speaker(tx, source)
        set_name(tx, source, name)
        relabel.add(*count_segments(tx, source))
        return source, f"Named {_label(source_row)} {name}"
    relabel.add(*merge_into(ctx, change, source, target))
    relabel.merged.append((source, _label(source_row)))
    return target, f"Merged {_label(source_row)} into {name}"


def _identify_segment(
    ctx: Ctx, change: Change, found: Row[Any], name: str, target: int | None,
    relabel: Relabel,
) -> tuple[int, str]:
    """A segment (a SELECT_SEGMENT row) on the wrong (named) speaker, or on none: it and its
    cluster-mates in that conversation move to the named speaker, marked manual."""
    tx = ctx.tx
    segment_id, conversation_id = found.id, found.conversation_id
    source, local = found.speaker_id, found.local_speaker
    if target is None:
        target = create_named(tx, name)
        change.created_speaker(target)
    if local is None:
        mates = [segment_id]
    else:
        mates = [r.id for r in tx.rows(
            select(segment.c.id).where(
                segment.c.conversation_id == conversation_id, segment.c.local_speaker == local,
                segment.c.speaker_id.is_not_distinct_from(source),
            ).order_by(segment.c.start, segment.c.id)
        )]
    for mate in mates:
        change.edit_segment(
            tx, int(mate), speaker_id=target, assignment_source="manual", speaker_confidence=1.0
        )
    if source is not None:
        rebuild_conversation_voiceprints(ctx, change, int(source), int(conversation_id))
    rebuild_conversation_voiceprints(ctx, change, target, int(conversation_id))
    change.snapshot_speaker(tx, target)
    touch(tx, target)
    relabel.add(len(mates), 1)
    return target, f"Moved {len(mates)} segments of conversation {conversation_id} to {name}"


def holds(tx: Tx, table: Table, speaker_id: int) -> bool:
    """Some row of `table` (one of HOLDINGS) is the speaker's."""
    return tx.first(
        select(table.c.id).where(table.c.speaker_id == speaker_id).limit(1)
    ) is not None


def holds_nothing(tx: Tx, speaker_id: int) -> bool:
    """No segment, voiceprint or enrollment clip is the speaker's: its label names nothing."""
    return not any(holds(tx, table, speaker_id) for table in HOLDINGS)


def drop_empty_unknown(tx: Tx, speaker_id: int) -> SpeakerRow | None:
    """Delete an unknown speaker nothing is left of (its recording deleted, its segments
    replaced); returns its row as it was. Not an identity event: nothing named is lost."""
    row = get_row(tx, speaker_id)
    if row is None or row.kind != "unknown" or not holds_nothing(tx, speaker_id):
        return None
    delete_row(tx, speaker_id)
    return row


def _drop_if_empty(ctx: Ctx, change: Change, speaker_id: int) -> bool:
    """Delete a speaker left with no segment, voiceprint or enrollment clip (a name given by
    mistake and then corrected): it would linger as an empty name. One enrolled on purpose
    keeps its enrollment prints and clips, so it stays. Undo brings it back."""
    tx = ctx.tx
    if not holds_nothing(tx, speaker_id):
        return False
    change.snapshot_speaker(tx, speaker_id)
    delete_row(tx, speaker_id)
    return True


def rename(ctx: Ctx, change: Change, ref: object, new_name: str) -> tuple[int, str, int, int]:
    tx = ctx.tx
    row = resolve_row(tx, ref)
    name = clean_name(new_name)
    if row.name == name:
        raise InvalidOperation(f"speaker {row.id} is already called {name!r}")
    speaker_id = int(row.id)
    change.snapshot_speaker(tx, speaker_id)
    set_name(tx, speaker_id, name)
    segments, conversations = count_segments(tx, speaker_id)
    return speaker_id, f"Renamed {_label(row)} to {name}", segments, conversations


def merge(ctx: Ctx, change: Change, source_ref: object, target_ref: object) -> tuple[
    int, str, int, int
]:
    tx = ctx.tx
    source_row = resolve_row(tx, source_ref)
    target_row = resolve_row(tx, target_ref)
    source, target = int(source_row.id), int(target_row.id)
    if source == target:
        raise InvalidOperation(f"cannot merge {_label(source_row)} into itself")
    segments, conversations = merge_into(ctx, change, source, target)
    if target_row.name is None and source_row.name is not None:
        # "Merge Sarah into Unknown 4": the voice is Sarah's; keep her name.
        set_name(tx, target, str(source_row.name))
    return target, (
        f"Merged {_label(source_row)} into {_label(target_row)}"
        f" ({segments_in_conversations(segments, conversations)})"
    ), segments, conversations


def mark_misidentified(
    ctx: Ctx, change: Change, segment_id: int, correct_ref: object | None
) -> tuple[int, str]:
    """Exclude the segment from its speaker's profile and reassign it: to the given speaker,
    else the next best match, else a new unknown speaker."""
    tx, cfg = ctx.tx, ctx.config
    found = tx.first(SELECT_SEGMENT.where(segment.c.id == segment_id))
    if found is None:
        raise SegmentNotFound(no_segment_message(tx, segment_id))
    conversation_id = int(found.conversation_id)
    old = None if found.speaker_id is None else int(found.speaker_id)
    correct_row = None if correct_ref is None else resolve_row(tx, correct_ref)
    if correct_row is not None and int(correct_row.id) == old:
        raise InvalidOperation(
            f"segment {segment_id} is already on {_label(correct_row)}; name another speaker"
        )
    change.edit_segment(tx, segment_id, excluded_from_profile=1)
    if old is not None:
        change.snapshot_speaker(tx, old)
        rebuild_conversation_voiceprints(ctx, change, old, conversation_id)
        ctx.cache.refresh(tx, [old])

    model_id = conversation_voice_model(tx, conversation_id)
    blob = tx.value(
        select(segment_voice.c.vector).where(segment_voice.c.segment_id == segment_id)
    )
    vector: Vector | None = None
    if blob is not None:
        vector = normalize_rows(from_blob(blob).reshape(1, -1))[0]
    new: int
    confidence: float | None
    if correct_row is not None:
        new, source, confidence = int(correct_row.id), "manual", 1.0
        change.snapshot_speaker(tx, new)
        touch(tx, new)
        how = f"moved to {_label(correct_row)}"
    else:
        best = None
        if vector is not None and model_id is not None:
            exclude = [] if old is None else [old]
            scored = score_speakers(tx, ctx.cache, model_id, vector, cfg, exclude=exclude)
            best = decide(scored, cfg, model_id)
        if best is not None:
            new, source, confidence = best.speaker_id, "auto", best.score
            best_row = get_row(tx, new)
            assert best_row is not None
            change.snapshot_speaker(tx, new)
            touch(tx, new)
            how = f"moved to its next best match, {_label(best_row)} ({best.score:.2f})"
        else:
            new, source, confidence = create_unknown(tx), "auto", None
            change.created_speaker(new)
            if vector is not None and model_id is not None:
                change.voiceprints_added += add_voiceprints(tx, new, model_id, [NewVoiceprint(
                    vector, f"segment:{segment_id}", conversation_id, segment_id, 0.0)])
            new_row = get_row(tx, new)
            assert new_row is not None
            how = f"moved to a new speaker, {_label(new_row)}"
    change.edit_segment(
        tx, segment_id, speaker_id=new, assignment_source=source, speaker_confidence=confidence
    )
    return new, f"Segment {segment_id} excluded from its old speaker's profile and {how}"


def delete_speaker(ctx: Ctx, change: Change, speaker_id: int) -> tuple[int, int]:
    """Remove a speaker and its voiceprints; its segments stay, unassigned."""
    tx = ctx.tx
    change.snapshot_speaker(tx, speaker_id)
    moved = change.move_all_segments(tx, speaker_id, None)
    change.delete_voiceprints(tx, voiceprint.c.speaker_id == speaker_id)
    change.delete_clips(tx, speaker_id)
    delete_row(tx, speaker_id)
    return moved


def enroll(
    ctx: Ctx, change: Change, name: str, vectors: list[Any], model_id: str, source: str,
    speech_seconds: float, channel_vectors: Mapping[str, Sequence[Any]] | None = None,
    clip: tuple[str, str | None] | None = None,
) -> tuple[int, bool, int, str]:
    """Store a voice under `name`; `channel_vectors`: the same clip's vectors as other
    channels carry it (model id → vectors, e.g. its telephone-band profile); `clip`: (path,
    sha256) of the clip as kept on disk, recorded for rebuilding the profile later."""
    tx = ctx.tx
    name = clean_name(name)
    if not vectors:
        raise ModelMismatch("enrollment needs at least one voice vector")
    if not model_id:
        raise ModelMismatch("enrollment needs the voice model id (name + version)")
    matrix = stack(vectors, "enrollment vectors")
    existing = find_by_name(tx, name)
    created = existing is None
    if existing is None:
        speaker_id = create_named(tx, name)
        change.created_speaker(speaker_id)
    else:
        speaker_id = int(existing.id)
        change.snapshot_speaker(tx, speaker_id)
        touch(tx, speaker_id)
    seconds = float(speech_seconds)
    added: list[int] = []
    profiles = [(model_id, matrix)] + [
        (channel_model, stack(list(channel), "enrollment vectors"))
        for channel_model, channel in sorted((channel_vectors or {}).items()) if len(channel)
    ]
    for profile_model, profile in profiles:
        prints = profile_prints(profile, f"{ENROLLMENT_SOURCE}{source}", seconds)
        added += add_voiceprints(tx, speaker_id, profile_model, prints)
    change.voiceprints_added += added
    if clip is not None:
        change.add_clip(tx, speaker_id, clip[0], clip[1], seconds)
    verb = "Enrolled" if created else "Strengthened"
    return speaker_id, created, len(added), f"{verb} {name} with {len(added)} voiceprints"


def no_segment_message(tx: Tx, segment_id: int) -> str:
    return f"no segment {segment_id}; {latest_id_hint(tx, 'segment', 'segment', 'segments')}"
