"""Identity events: the before-state each identity change records, and undoing it exactly.

A change is described by a few kinds of facts, each reversible on its own:
speaker rows as they were (re-inserted if deleted, else restored), speakers created (deleted
again), bulk segment moves from one speaker to another (ids packed compactly), individual
segment changes (before and after), voiceprints and enrollment clips moved, deleted (full
rows) and added. Undo checks that every row is still as the change left it; if a later change
touched it, it raises UndoConflict and, the transaction rolling back, nothing changes.

Voiceprints rebuilt for a new voice model (memory.profiles) are no identity change. Undoing a
change that moved a speaker's audio (segments, prints, clips) drops the prints rebuilt after it
for that speaker: they were computed from the assignment being undone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    bindparam,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    update,
)

from memory import profiles
from memory.db import Tx
from memory.errors import EventNotFound, InvalidOperation, UndoConflict
from memory.speakers import SELECT_SPEAKER, SavedSpeaker, delete_row
from memory.sql import in_ids
from memory.tables import (
    conversation,
    enrollment_clip,
    identity_event,
    segment,
    speaker,
    voiceprint,
)
from memory.timeutil import now_db
from memory.vectors import b64, pack_ids, unb64, unpack_ids
from memory.voiceprints import REBUILT_SOURCE, last_voiceprint_id, recompute_centroids
from memory.wording import counted

SEGMENT_STATE = (
    segment.c.speaker_id, segment.c.speaker_confidence, segment.c.assignment_source,
    segment.c.excluded_from_profile,
)
"""A segment's identity columns: what a segment edit keeps, before and after, as a list in
this order."""
STATE_NAMES = tuple(c.name for c in SEGMENT_STATE)
SELECT_STATE = select(segment.c.conversation_id, *SEGMENT_STATE)
# A payload keeps deleted voiceprints and enrollment clips as lists of their columns in the
# tables' order (memory.tables, held to the schema by tests/memory/test_tables.py).
VOICEPRINT_FIELDS = tuple(c.name for c in voiceprint.columns)
CLIP_FIELDS = tuple(c.name for c in enrollment_clip.columns)
SELECT_VOICEPRINTS = select(voiceprint).order_by(voiceprint.c.id)
SELECT_CLIPS = select(enrollment_clip).order_by(enrollment_clip.c.id)
SELECT_EVENT = select(
    identity_event.c.id, identity_event.c.action, identity_event.c.summary,
    identity_event.c.speaker_ids, identity_event.c.payload, identity_event.c.undone_at,
)
SELECT_LABEL = select(speaker.c.name, speaker.c.kind, speaker.c.unknown_number)
MOVE_SEGMENTS = (
    update(segment).where(segment.c.speaker_id == bindparam("source"))
    .values(speaker_id=bindparam("target"))
    .returning(segment.c.id, segment.c.conversation_id)
)
"""Move every segment of one speaker to another (or to none), reporting what it moved."""
MOVE_BATCH = 10_000


def _state(row: Row[Any]) -> list[Any]:
    """A segment's identity columns as a payload keeps them (the flag as 0/1, not a bool)."""
    return [row.speaker_id, row.speaker_confidence, row.assignment_source,
            int(row.excluded_from_profile)]


def _set_state(tx: Tx, segment_id: int, state: list[Any]) -> None:
    tx.execute(update(segment).where(segment.c.id == segment_id)
               .values(dict(zip(STATE_NAMES, state, strict=True))))


def _exists(tx: Tx, table: Table, row_id: int) -> bool:
    return tx.first(select(table.c.id).where(table.c.id == row_id).limit(1)) is not None


@dataclass
class Change:
    speakers_before: dict[int, list[Any]] = field(default_factory=dict)
    speakers_created: list[int] = field(default_factory=list)
    segment_moves: list[dict[str, Any]] = field(default_factory=list)
    segment_edits: dict[int, list[Any]] = field(default_factory=dict)
    voiceprint_moves: list[dict[str, Any]] = field(default_factory=list)
    voiceprints_deleted: list[list[Any]] = field(default_factory=list)
    voiceprints_added: list[int] = field(default_factory=list)
    clips_added: list[int] = field(default_factory=list)
    clip_moves: list[dict[str, Any]] = field(default_factory=list)
    clips_deleted: list[list[Any]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    conversations: set[int] = field(default_factory=set)
    """Conversations whose segments changed speaker (counted again by undo)."""

    @property
    def empty(self) -> bool:
        return not (
            self.speakers_before or self.speakers_created or self.segment_moves
            or self.segment_edits or self.voiceprint_moves or self.voiceprints_deleted
            or self.voiceprints_added or self.clips_added or self.clip_moves
            or self.clips_deleted
        )

    # -------------------------------------------------------- recording before-state
    def snapshot_speaker(self, tx: Tx, speaker_id: int) -> None:
        self.touched.add(speaker_id)
        if speaker_id in self.speakers_before or speaker_id in self.speakers_created:
            return
        row = tx.first(SELECT_SPEAKER.where(speaker.c.id == speaker_id))
        if row is not None:
            self.speakers_before[speaker_id] = list(row)

    def created_speaker(self, speaker_id: int) -> None:
        self.speakers_created.append(speaker_id)
        self.touched.add(speaker_id)

    def move_all_segments(self, tx: Tx, source: int, target: int | None) -> tuple[int, int]:
        """Move every segment of `source` to `target`; returns (segments, conversations)."""
        # One statement moves the rows and reports them (no separate SELECT: at 100k
        # segments that second pass over the index cost ~0.15 s).
        rows = list(tx.stream(MOVE_SEGMENTS, {"source": source, "target": target},
                              batch=MOVE_BATCH))
        pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
        ids = np.sort(pairs[:, 0])
        touched_conversations = {int(c) for c in np.unique(pairs[:, 1])}
        self.conversations |= touched_conversations
        conversations = len(touched_conversations)
        if ids.size:
            self.segment_moves.append(
                {"from": source, "to": target, "n": int(ids.size), "ids": pack_ids(ids)}
            )
        self.touched.add(source)
        if target is not None:
            self.touched.add(target)
        return int(ids.size), conversations

    def edit_segment(self, tx: Tx, segment_id: int, **after: Any) -> None:
        """Change one segment's identity columns, remembering before and after."""
        row = tx.first(SELECT_STATE.where(segment.c.id == segment_id))
        assert row is not None
        self.conversations.add(int(row.conversation_id))
        before = _state(row)
        state = dict(zip(STATE_NAMES, before, strict=True))
        if row.speaker_id is not None:
            self.touched.add(int(row.speaker_id))
        state.update(after)
        new = [state[c] for c in STATE_NAMES]
        if state["speaker_id"] is not None:
            self.touched.add(int(state["speaker_id"]))
        _set_state(tx, segment_id, new)
        if segment_id in self.segment_edits:
            self.segment_edits[segment_id][1] = new
        else:
            self.segment_edits[segment_id] = [before, new]

    def move_voiceprints(self, tx: Tx, source: int, target: int) -> None:
        ids = [r.id for r in tx.rows(
            select(voiceprint.c.id).where(voiceprint.c.speaker_id == source)
        )]
        if ids:
            tx.execute(update(voiceprint).where(voiceprint.c.speaker_id == source)
                       .values(speaker_id=target))
            self.voiceprint_moves.append({"from": source, "to": target, "ids": pack_ids(ids)})

    def delete_voiceprints(self, tx: Tx, where: ColumnElement[bool]) -> None:
        """Delete the voiceprints `where` selects (a condition on memory.tables.voiceprint)."""
        for row in tx.rows(SELECT_VOICEPRINTS.where(where)):
            if row.id in self.voiceprints_added:
                # Added and deleted within the same change: it never existed before.
                self.voiceprints_added.remove(row.id)
            else:
                values = list(row)
                values[VOICEPRINT_FIELDS.index("vector")] = b64(row.vector)
                self.voiceprints_deleted.append(values)
            self.touched.add(int(row.speaker_id))
        tx.execute(delete(voiceprint).where(where))

    def add_clip(
        self, tx: Tx, speaker_id: int, path: str, sha256: str | None, speech_seconds: float
    ) -> int:
        clip_id = profiles.add_clip(tx, speaker_id, path, sha256, speech_seconds)
        self.clips_added.append(clip_id)
        self.touched.add(speaker_id)
        return clip_id

    def move_clips(self, tx: Tx, source: int, target: int) -> None:
        ids = [r.id for r in tx.rows(SELECT_CLIPS.where(enrollment_clip.c.speaker_id == source))]
        if ids:
            tx.execute(update(enrollment_clip).where(enrollment_clip.c.speaker_id == source)
                       .values(speaker_id=target))
            self.clip_moves.append({"from": source, "to": target, "ids": pack_ids(ids)})

    def delete_clips(self, tx: Tx, speaker_id: int) -> None:
        """Forget a speaker's enrollment clips (the rows; the files stay for undo)."""
        for row in tx.rows(SELECT_CLIPS.where(enrollment_clip.c.speaker_id == speaker_id)):
            if row.id in self.clips_added:
                self.clips_added.remove(row.id)
            else:
                self.clips_deleted.append(list(row))
        tx.execute(delete(enrollment_clip).where(enrollment_clip.c.speaker_id == speaker_id))

    def payload(self, last_voiceprint: int = 0) -> str:
        return json.dumps({
            "speakers_before": [self.speakers_before[k] for k in sorted(self.speakers_before)],
            "speakers_created": self.speakers_created,
            "segment_moves": self.segment_moves,
            "segment_edits": [[k, *v] for k, v in sorted(self.segment_edits.items())],
            "voiceprint_moves": self.voiceprint_moves,
            "voiceprints_deleted": self.voiceprints_deleted,
            "voiceprints_added": self.voiceprints_added,
            "clips_added": self.clips_added,
            "clip_moves": self.clip_moves,
            "clips_deleted": self.clips_deleted,
            "extra": {"conversations": sorted(self.conversations),
                      "last_voiceprint": last_voiceprint},
        }, separators=(",", ":"))


def record(tx: Tx, action: str, summary: str, change: Change) -> int:
    return tx.insert(insert(identity_event).values(
        action=action, created_at=now_db(), summary=summary,
        speaker_ids=json.dumps(sorted(change.touched)),
        payload=change.payload(last_voiceprint_id(tx)),
    ))


# ---------------------------------------------------------------- undo


@dataclass(frozen=True)
class Undone:
    event_id: int
    action: str
    summary: str
    speakers: set[int]
    segments_changed: int
    conversations_changed: int
    payload: dict[str, Any]


def pick_event(tx: Tx, event_id: int | None) -> Row[Any]:
    row: Row[Any] | None
    if event_id is None:
        row = tx.first(SELECT_EVENT.where(identity_event.c.undone_at.is_(None))
                       .order_by(identity_event.c.id.desc()).limit(1))
        if row is None:
            raise EventNotFound("nothing to undo: no identity change is left that was not undone")
        return row
    row = tx.first(SELECT_EVENT.where(identity_event.c.id == event_id))
    if row is None:
        latest = tx.value(select(func.max(identity_event.c.id)))
        hint = "there are no identity events yet" if latest is None else (
            f"the latest event id is {latest}"
        )
        raise EventNotFound(f"no identity event {event_id}; {hint}")
    if row.undone_at is not None:
        raise InvalidOperation(f"event {event_id} ({row.action}) was already undone")
    return row


def undo(tx: Tx, event_id: int | None) -> Undone:
    row = pick_event(tx, event_id)
    eid, action, summary = int(row.id), str(row.action), str(row.summary)
    speakers = set(json.loads(row.speaker_ids))
    for later in tx.rows(
        select(identity_event.c.id, identity_event.c.action, identity_event.c.speaker_ids)
        .where(identity_event.c.id > eid, identity_event.c.undone_at.is_(None))
        .order_by(identity_event.c.id)
    ):
        if speakers & set(json.loads(later.speaker_ids)):
            raise UndoConflict(
                f"event {eid} ({action}) cannot be undone: the later event {later.id} "
                f"({later.action}) changed the same speakers; undo event {later.id} first"
            )
    payload: dict[str, Any] = json.loads(row.payload)
    shown_before = _shown_labels(
        tx, [int(SavedSpeaker.of(b).id) for b in payload["speakers_before"]]
    )
    touched = _reverse(tx, eid, payload)
    shown_after = _shown_labels(tx, list(shown_before))
    renamed = [sid for sid, shown in shown_before.items() if shown_after.get(sid) != shown]
    segments, conversations = _segments_shown_differently(tx, touched, renamed)
    recompute_centroids(tx, [s for s in speakers if _exists(tx, speaker, s)])
    tx.execute(update(identity_event).where(identity_event.c.id == eid)
               .values(undone_at=now_db()))
    return Undone(eid, action, summary, speakers, segments, conversations, payload)


def _conflict(eid: int, what: str) -> UndoConflict:
    return UndoConflict(f"event {eid} cannot be undone exactly: {what} changed since")


def _gone(eid: int, what: str) -> UndoConflict:
    return UndoConflict(f"event {eid} cannot be undone: it needs {what}, which deleting a "
                        "conversation removed since (that is final); nothing was changed")


def _check_source_kept(tx: Tx, eid: int, values: dict[str, Any]) -> None:
    """A voice sample can be put back only while the conversation and segment it was learnt
    from exist: one from a deleted conversation would point at nothing."""
    conversation_id, segment_id = values["conversation_id"], values["segment_id"]
    if conversation_id is not None and not _exists(tx, conversation, conversation_id):
        raise _gone(eid, f"conversation {conversation_id}")
    if segment_id is not None and not _exists(tx, segment, segment_id):
        raise _gone(eid, f"segment {segment_id}")


def _shown_labels(tx: Tx, speaker_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """What a segment of each speaker shows: its name, or its kind and Unknown number."""
    found: dict[int, tuple[Any, ...]] = {}
    for sid in speaker_ids:
        row = tx.first(SELECT_LABEL.where(speaker.c.id == sid))
        if row is not None:
            found[sid] = tuple(row)
    return found


def _segments_shown_differently(tx: Tx, moved: set[int], renamed: list[int]) -> tuple[int, int]:
    """(segments, conversations) whose shown speaker an undo changed: the segments it moved
    or edited, and every segment of a speaker whose name or label it put back. An undone
    identify of an Unknown moves no segment, yet every segment of that voice changes name."""
    row = tx.first(
        select(func.count().label("segments"),
               func.count(distinct(segment.c.conversation_id)).label("conversations"))
        .where(or_(in_ids(segment.c.id, sorted(moved)),
                   in_ids(segment.c.speaker_id, sorted(renamed))))
    )
    assert row is not None
    return int(row.segments), int(row.conversations)


def _reverse(tx: Tx, eid: int, payload: dict[str, Any]) -> set[int]:
    """Put back what event `eid` changed; returns the ids of the segments it moved or edited."""
    # 1. Speakers as they were: re-create deleted ones first (segments will point at them).
    saved = [SavedSpeaker.of(before) for before in payload["speakers_before"]]
    restoring = {int(before.id) for before in saved}
    for before in saved:
        if before.name_key is not None:
            holder = tx.value(select(speaker.c.id).where(speaker.c.name_key == before.name_key))
            if holder is not None and int(holder) not in restoring:
                raise _conflict(eid, f"the name {before.name!r} now belongs to speaker {holder};")
    # Names may move between the restored speakers (merge kept the source's name): clear
    # them first so that the unique index never sees two holders.
    for sid in sorted(restoring):
        tx.execute(update(speaker).where(speaker.c.id == sid).values(name=None, name_key=None))
    for before in saved:
        if not _exists(tx, speaker, before.id):
            tx.insert(insert(speaker).values(before._asdict()))
        else:
            tx.execute(update(speaker).where(speaker.c.id == before.id)
                       .values({c: v for c, v in before._asdict().items() if c != "id"}))

    # 2. Segments back, newest change first.
    for segment_id, before, after in reversed(payload["segment_edits"]):
        current = tx.first(SELECT_STATE.where(segment.c.id == segment_id))
        if current is None:
            raise _gone(eid, f"segment {segment_id}")
        if _state(current) != after:
            raise _conflict(eid, f"segment {segment_id}")
        _set_state(tx, segment_id, before)
    touched = {int(edit[0]) for edit in payload["segment_edits"]}
    for move in reversed(payload["segment_moves"]):
        ids = unpack_ids(move["ids"])
        # Only rows still where the change put them move back; any other means a later
        # change touched them, and raising rolls this whole undo back.
        still = tx.execute(
            update(segment)
            .where(in_ids(segment.c.id, ids),
                   segment.c.speaker_id.is_not_distinct_from(move["to"]))
            .values(speaker_id=move["from"])
        )
        if still != len(ids):
            kept = int(tx.value(select(func.count()).where(in_ids(segment.c.id, ids))))
            if kept != len(ids):
                raise _gone(eid, f"{counted(len(ids) - kept, 'segment')} it moved")
            raise _conflict(eid, f"{len(ids) - still} of the segments it moved")
        touched.update(ids)

    # 3. Voiceprints: drop the added, move back the moved, re-insert the deleted. Ingest may
    # have pruned some since (prints are bounded per speaker): those stay gone; a later
    # identity change to the same speakers was refused above.
    for vid in payload["voiceprints_added"]:
        tx.execute(delete(voiceprint).where(voiceprint.c.id == vid))
    for move in reversed(payload["voiceprint_moves"]):
        tx.execute(
            update(voiceprint)
            .where(in_ids(voiceprint.c.id, unpack_ids(move["ids"])),
                   voiceprint.c.speaker_id == move["to"])
            .values(speaker_id=move["from"])
        )
    restored: list[dict[str, Any]] = []
    for values in payload["voiceprints_deleted"]:
        row = dict(zip(VOICEPRINT_FIELDS, values, strict=True))
        row["vector"] = unb64(row["vector"])
        _check_source_kept(tx, eid, row)
        restored.append(row)
    tx.insert_rows(voiceprint, restored)

    # 3b. Enrollment clips likewise (events recorded before clips were kept have none).
    for clip_id in payload.get("clips_added", []):
        tx.execute(delete(enrollment_clip).where(enrollment_clip.c.id == clip_id))
    for move in reversed(payload.get("clip_moves", [])):
        tx.execute(
            update(enrollment_clip)
            .where(in_ids(enrollment_clip.c.id, unpack_ids(move["ids"])),
                   enrollment_clip.c.speaker_id == move["to"])
            .values(speaker_id=move["from"])
        )
    tx.insert_rows(enrollment_clip, [dict(zip(CLIP_FIELDS, values, strict=True))
                                     for values in payload.get("clips_deleted", [])])

    # 3c. Prints rebuilt after this change from audio it moved were computed from the
    # assignment undone here: they go (the next profile rebuild makes them again).
    moved_audio = _audio_speakers(payload)
    if moved_audio:
        tx.execute(delete(voiceprint).where(
            in_ids(voiceprint.c.speaker_id, sorted(moved_audio)),
            voiceprint.c.id > int(payload["extra"].get("last_voiceprint", 0)),
            func.substr(voiceprint.c.source, 1, len(REBUILT_SOURCE)) == REBUILT_SOURCE,
        ))

    # 4. Speakers the change created go again (they must be empty by now).
    for sid in payload["speakers_created"]:
        if tx.first(select(segment.c.id).where(segment.c.speaker_id == sid).limit(1)):
            raise _conflict(eid, f"speaker {sid} (created by it) has segments that")
        if tx.first(select(voiceprint.c.id).where(voiceprint.c.speaker_id == sid).limit(1)):
            raise _conflict(eid, f"speaker {sid} (created by it) has voiceprints that")
        delete_row(tx, sid)
    return touched


def _audio_speakers(payload: dict[str, Any]) -> set[int]:
    """Speakers whose audio (segments, prints or clips) the change moved or created."""
    ids: set[Any] = set(payload["speakers_created"])
    for move in (payload["segment_moves"] + payload["voiceprint_moves"]
                 + payload.get("clip_moves", [])):
        ids |= {move["from"], move["to"]}
    for _, before, after in payload["segment_edits"]:
        ids |= {before[0], after[0]}
    return {int(i) for i in ids if i is not None}
