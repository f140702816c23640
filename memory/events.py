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

from memory import profiles
from memory.db import Tx
from memory.errors import EventNotFound, InvalidOperation, UndoConflict
from memory.speakers import SELECT_SPEAKER, SPEAKER_COLUMNS, delete_row
from memory.tables import speaker
from memory.timeutil import now_db
from memory.vectors import b64, pack_ids, unb64, unpack_ids
from memory.voiceprints import (
    REBUILT_SOURCE,
    VOICEPRINT_COLUMNS,
    last_voiceprint_id,
    recompute_centroids,
    voiceprint_rows,
)
from memory.wording import counted

SEGMENT_STATE = "speaker_id, speaker_confidence, assignment_source, excluded_from_profile"


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
        rows = tx.all(
            "UPDATE segment SET speaker_id = ? WHERE speaker_id = ? RETURNING id, conversation_id",
            (target, source),
        )
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
        before = tx.one(f"SELECT {SEGMENT_STATE} FROM segment WHERE id = ?", (segment_id,))
        assert before is not None
        self.conversations.add(int(tx.scalar(
            "SELECT conversation_id FROM segment WHERE id = ?", (segment_id,)
        )))
        state = dict(zip(SEGMENT_STATE.split(", "), before, strict=True))
        if before[0] is not None:
            self.touched.add(int(before[0]))
        state.update(after)
        new = [state[c] for c in SEGMENT_STATE.split(", ")]
        if new[0] is not None:
            self.touched.add(int(new[0]))
        sets = ", ".join(f"{c} = ?" for c in SEGMENT_STATE.split(", "))
        tx.run(f"UPDATE segment SET {sets} WHERE id = ?", (*new, segment_id))
        if segment_id in self.segment_edits:
            self.segment_edits[segment_id][1] = new
        else:
            self.segment_edits[segment_id] = [list(before), new]

    def move_voiceprints(self, tx: Tx, source: int, target: int) -> None:
        ids = [r[0] for r in tx.all("SELECT id FROM voiceprint WHERE speaker_id = ?", (source,))]
        if ids:
            tx.run("UPDATE voiceprint SET speaker_id = ? WHERE speaker_id = ?", (target, source))
            self.voiceprint_moves.append({"from": source, "to": target, "ids": pack_ids(ids)})

    def delete_voiceprints(self, tx: Tx, where: str, params: list[Any]) -> None:
        rows = voiceprint_rows(tx, where, params)
        for row in rows:
            values = list(row)
            if values[0] in self.voiceprints_added:
                # Added and deleted within the same change: it never existed before.
                self.voiceprints_added.remove(values[0])
            else:
                values[3] = b64(values[3])
                self.voiceprints_deleted.append(values)
            self.touched.add(int(values[1]))
        tx.run(f"DELETE FROM voiceprint WHERE {where}", params)

    def add_clip(
        self, tx: Tx, speaker_id: int, path: str, sha256: str | None, speech_seconds: float
    ) -> int:
        clip_id = profiles.add_clip(tx, speaker_id, path, sha256, speech_seconds)
        self.clips_added.append(clip_id)
        self.touched.add(speaker_id)
        return clip_id

    def move_clips(self, tx: Tx, source: int, target: int) -> None:
        ids = [r[0] for r in profiles.clip_rows(tx, source)]
        if ids:
            tx.run("UPDATE enrollment_clip SET speaker_id = ? WHERE speaker_id = ?",
                   (target, source))
            self.clip_moves.append({"from": source, "to": target, "ids": pack_ids(ids)})

    def delete_clips(self, tx: Tx, speaker_id: int) -> None:
        """Forget a speaker's enrollment clips (the rows; the files stay for undo)."""
        for row in profiles.clip_rows(tx, speaker_id):
            if row[0] in self.clips_added:
                self.clips_added.remove(row[0])
            else:
                self.clips_deleted.append(list(row))
        tx.run("DELETE FROM enrollment_clip WHERE speaker_id = ?", (speaker_id,))

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
    return tx.run(
        "INSERT INTO identity_event(action, created_at, summary, speaker_ids, payload)"
        " VALUES (?, ?, ?, ?, ?)",
        (action, now_db(), summary, json.dumps(sorted(change.touched)),
         change.payload(last_voiceprint_id(tx))),
    )


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


def pick_event(tx: Tx, event_id: int | None) -> tuple[Any, ...]:
    if event_id is None:
        row = tx.one(
            "SELECT id, action, summary, speaker_ids, payload, undone_at FROM identity_event"
            " WHERE undone_at IS NULL ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            raise EventNotFound("nothing to undo: no identity change is left that was not undone")
        return row
    row = tx.one(
        "SELECT id, action, summary, speaker_ids, payload, undone_at FROM identity_event"
        " WHERE id = ?",
        (event_id,),
    )
    if row is None:
        latest = tx.scalar("SELECT MAX(id) FROM identity_event")
        hint = "there are no identity events yet" if latest is None else (
            f"the latest event id is {latest}"
        )
        raise EventNotFound(f"no identity event {event_id}; {hint}")
    if row[5] is not None:
        raise InvalidOperation(f"event {event_id} ({row[1]}) was already undone")
    return row


def undo(tx: Tx, event_id: int | None) -> Undone:
    row = pick_event(tx, event_id)
    eid, action, summary = int(row[0]), str(row[1]), str(row[2])
    speakers = set(json.loads(row[3]))
    for later_id, later_action, later_speakers in tx.all(
        "SELECT id, action, speaker_ids FROM identity_event"
        " WHERE id > ? AND undone_at IS NULL ORDER BY id",
        (eid,),
    ):
        if speakers & set(json.loads(later_speakers)):
            raise UndoConflict(
                f"event {eid} ({action}) cannot be undone: the later event {later_id} "
                f"({later_action}) changed the same speakers; undo event {later_id} first"
            )
    payload: dict[str, Any] = json.loads(row[4])
    shown_before = _shown_labels(tx, [int(b[0]) for b in payload["speakers_before"]])
    touched = _reverse(tx, eid, payload)
    shown_after = _shown_labels(tx, list(shown_before))
    renamed = [sid for sid, shown in shown_before.items() if shown_after.get(sid) != shown]
    segments, conversations = _segments_shown_differently(tx, touched, renamed)
    recompute_centroids(
        tx, [s for s in speakers if tx.one("SELECT 1 FROM speaker WHERE id = ?", (s,))]
    )
    tx.run("UPDATE identity_event SET undone_at = ? WHERE id = ?", (now_db(), eid))
    return Undone(eid, action, summary, speakers, segments, conversations, payload)


def _conflict(eid: int, what: str) -> UndoConflict:
    return UndoConflict(f"event {eid} cannot be undone exactly: {what} changed since")


def _gone(eid: int, what: str) -> UndoConflict:
    return UndoConflict(f"event {eid} cannot be undone: it needs {what}, which deleting a "
                        "conversation removed since (that is final); nothing was changed")


def _check_source_kept(tx: Tx, eid: int, voiceprint: list[Any]) -> None:
    """A voice sample can be put back only while the conversation and segment it was learnt
    from exist: one from a deleted conversation would point at nothing."""
    conversation_id, segment_id = voiceprint[5], voiceprint[6]
    if conversation_id is not None and not tx.one(
        "SELECT 1 FROM conversation WHERE id = ?", (conversation_id,)
    ):
        raise _gone(eid, f"conversation {conversation_id}")
    if segment_id is not None and not tx.one("SELECT 1 FROM segment WHERE id = ?", (segment_id,)):
        raise _gone(eid, f"segment {segment_id}")


def _shown_labels(tx: Tx, speaker_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """What a segment of each speaker shows: its name, or its kind and Unknown number."""
    found: dict[int, tuple[Any, ...]] = {}
    for sid in speaker_ids:
        row = tx.one("SELECT name, kind, unknown_number FROM speaker WHERE id = ?", (sid,))
        if row is not None:
            found[sid] = tuple(row)
    return found


def _segments_shown_differently(tx: Tx, moved: set[int], renamed: list[int]) -> tuple[int, int]:
    """(segments, conversations) whose shown speaker an undo changed: the segments it moved
    or edited, and every segment of a speaker whose name or label it put back. An undone
    identify of an Unknown moves no segment, yet every segment of that voice changes name."""
    row = tx.one(
        "SELECT COUNT(*), COUNT(DISTINCT conversation_id) FROM segment"
        " WHERE id IN (SELECT value FROM json_each(?))"
        " OR speaker_id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(moved)), json.dumps(sorted(renamed))),
    )
    assert row is not None
    return int(row[0]), int(row[1])


def _reverse(tx: Tx, eid: int, payload: dict[str, Any]) -> set[int]:
    """Put back what event `eid` changed; returns the ids of the segments it moved or edited."""
    columns = list(SPEAKER_COLUMNS)
    placeholders = ", ".join("?" for _ in columns)
    # 1. Speakers as they were: re-create deleted ones first (segments will point at them).
    restoring = {int(before[0]) for before in payload["speakers_before"]}
    for before in payload["speakers_before"]:
        if before[2] is not None:
            holder = tx.scalar("SELECT id FROM speaker WHERE name_key = ?", (before[2],))
            if holder is not None and int(holder) not in restoring:
                raise _conflict(eid, f"the name {before[1]!r} now belongs to speaker {holder};")
    # Names may move between the restored speakers (merge kept the source's name): clear
    # them first so that the unique index never sees two holders.
    for sid in sorted(restoring):
        tx.run("UPDATE speaker SET name = NULL, name_key = NULL WHERE id = ?", (sid,))
    for before in payload["speakers_before"]:
        sid = before[0]
        if tx.one("SELECT 1 FROM speaker WHERE id = ?", (sid,)) is None:
            tx.run(f"INSERT INTO speaker({', '.join(columns)}) VALUES ({placeholders})", before)
        else:
            sets = ", ".join(f"{c} = ?" for c in columns[1:])
            tx.run(f"UPDATE speaker SET {sets} WHERE id = ?", (*before[1:], sid))

    # 2. Segments back, newest change first.
    for edit in reversed(payload["segment_edits"]):
        segment_id, before, after = edit
        current = tx.one(f"SELECT {SEGMENT_STATE} FROM segment WHERE id = ?", (segment_id,))
        if current is None:
            raise _gone(eid, f"segment {segment_id}")
        if list(current) != after:
            raise _conflict(eid, f"segment {segment_id}")
        sets = ", ".join(f"{c} = ?" for c in SEGMENT_STATE.split(", "))
        tx.run(f"UPDATE segment SET {sets} WHERE id = ?", (*before, segment_id))
    touched = {int(edit[0]) for edit in payload["segment_edits"]}
    for move in reversed(payload["segment_moves"]):
        ids = unpack_ids(move["ids"])
        id_json = "[" + ",".join(map(str, ids)) + "]"
        # Only rows still where the change put them move back; any other means a later
        # change touched them, and raising rolls this whole undo back.
        still = tx.run(
            "UPDATE segment SET speaker_id = ? WHERE id IN (SELECT value FROM json_each(?))"
            " AND speaker_id IS NOT DISTINCT FROM ?",
            (move["from"], id_json, move["to"]),
        )
        if still != len(ids):
            kept = int(tx.scalar(
                "SELECT count(*) FROM segment WHERE id IN (SELECT value FROM json_each(?))",
                (id_json,),
            ))
            if kept != len(ids):
                raise _gone(eid, f"{counted(len(ids) - kept, 'segment')} it moved")
            raise _conflict(eid, f"{len(ids) - still} of the segments it moved")
        touched.update(ids)

    # 3. Voiceprints: drop the added, move back the moved, re-insert the deleted. Ingest may
    # have pruned some since (prints are bounded per speaker): those stay gone; a later
    # identity change to the same speakers was refused above.
    for vid in payload["voiceprints_added"]:
        tx.run("DELETE FROM voiceprint WHERE id = ?", (vid,))
    for move in reversed(payload["voiceprint_moves"]):
        ids = unpack_ids(move["ids"])
        tx.run(
            "UPDATE voiceprint SET speaker_id = ? WHERE id IN (SELECT value FROM json_each(?))"
            " AND speaker_id = ?",
            (move["from"], "[" + ",".join(map(str, ids)) + "]", move["to"]),
        )
    vp_columns = VOICEPRINT_COLUMNS.replace(" ", "")
    for values in payload["voiceprints_deleted"]:
        restored = list(values)
        restored[3] = unb64(restored[3])
        _check_source_kept(tx, eid, restored)
        tx.run(
            f"INSERT INTO voiceprint({vp_columns}) VALUES ({', '.join('?' for _ in restored)})",
            restored,
        )

    # 3b. Enrollment clips likewise (events recorded before clips were kept have none).
    for clip_id in payload.get("clips_added", []):
        tx.run("DELETE FROM enrollment_clip WHERE id = ?", (clip_id,))
    for move in reversed(payload.get("clip_moves", [])):
        ids = unpack_ids(move["ids"])
        tx.run(
            "UPDATE enrollment_clip SET speaker_id = ? WHERE id IN (SELECT value FROM"
            " json_each(?)) AND speaker_id = ?",
            (move["from"], "[" + ",".join(map(str, ids)) + "]", move["to"]),
        )
    clip_columns = profiles.CLIP_COLUMNS.replace(" ", "")
    for values in payload.get("clips_deleted", []):
        tx.run(f"INSERT INTO enrollment_clip({clip_columns}) VALUES"
               f" ({', '.join('?' for _ in values)})", values)

    # 3c. Prints rebuilt after this change from audio it moved were computed from the
    # assignment undone here: they go (the next profile rebuild makes them again).
    moved_audio = _audio_speakers(payload)
    if moved_audio:
        tx.run(
            "DELETE FROM voiceprint WHERE speaker_id IN (SELECT value FROM json_each(?))"
            " AND id > ? AND substr(source, 1, ?) = ?",
            ("[" + ",".join(map(str, sorted(moved_audio))) + "]",
             int(payload["extra"].get("last_voiceprint", 0)), len(REBUILT_SOURCE),
             REBUILT_SOURCE),
        )

    # 4. Speakers the change created go again (they must be empty by now).
    for sid in payload["speakers_created"]:
        if tx.one("SELECT 1 FROM segment WHERE speaker_id = ? LIMIT 1", (sid,)):
            raise _conflict(eid, f"speaker {sid} (created by it) has segments that")
        if tx.one("SELECT 1 FROM voiceprint WHERE speaker_id = ? LIMIT 1", (sid,)):
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
