"""Speaker rows: names, 'Unknown N' labels, resolving a reference, creating speakers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, delete, insert, select, update

from memory.db import Tx, latest_id_hint
from memory.errors import InvalidName, NameTaken, SpeakerNotFound
from memory.prepared import Prepared
from memory.sql import in_ids_param
from memory.tables import meta, speaker, speaker_centroid
from memory.timeutil import from_db_required, now_db
from memory.types import SpeakerInfo, SpeakerKind

UNKNOWN_LABEL = re.compile(r"^\s*unknown[\s_#-]*(\d+)\s*$", re.IGNORECASE)
MAX_NAME_LENGTH = 120

SpeakerRow = Row[Any]
SELECT_SPEAKER = select(speaker)
SPEAKER_BY_ID = Prepared(SELECT_SPEAKER.where(speaker.c.id == bindparam("speaker_id")))
SPEAKERS_BY_ID = Prepared(SELECT_SPEAKER.where(in_ids_param(speaker.c.id, "speaker_ids")))
NEXT_UNKNOWN_KEY = meta.c.key == "next_unknown_number"
NEXT_UNKNOWN = Prepared(select(meta.c.value).where(NEXT_UNKNOWN_KEY))
SET_NEXT_UNKNOWN = Prepared(update(meta).where(NEXT_UNKNOWN_KEY).values(value=bindparam("value")))
TOUCH = Prepared(update(speaker).where(speaker.c.id == bindparam("speaker_id"))
                 .values(updated_at=bindparam("stamp")))


class SavedSpeaker(NamedTuple):
    """A speaker row as an undo payload keeps it: a list in the speaker table's column order
    (tests/memory/test_tables.py holds the fields to it)."""

    id: int
    name: str | None
    name_key: str | None
    kind: SpeakerKind
    unknown_number: int | None
    match_threshold: float | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, values: Sequence[Any]) -> SavedSpeaker:
        return cls(*values)


def name_key(name: str) -> str:
    """What makes two names the same: case-insensitive (Unicode casefold), NFC."""
    return unicodedata.normalize("NFC", name).casefold()


def clean_name(name: object) -> str:
    """Validate a speaker name; returns it trimmed. Raises InvalidName."""
    if not isinstance(name, str):
        raise InvalidName(f"a speaker name must be text, got {type(name).__name__}")
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
    if not cleaned:
        raise InvalidName("a speaker name may not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(f"a speaker name may have at most {MAX_NAME_LENGTH} characters")
    if UNKNOWN_LABEL.match(cleaned):
        raise InvalidName(
            f"{cleaned!r} looks like an automatic label; choose a real name for the speaker"
        )
    if cleaned.isdigit():
        raise InvalidName(f"{cleaned!r} is only digits, which reads as a speaker id; use a name")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise InvalidName("a speaker name may not contain control characters")
    return cleaned


def label_of(name: str | None, unknown_number: int | None) -> str:
    if name is not None:
        return name
    return f"Unknown {unknown_number}" if unknown_number is not None else "Unknown"


def info(row: SpeakerRow | SavedSpeaker) -> SpeakerInfo:
    return SpeakerInfo(
        id=int(row.id),
        name=row.name,
        kind=row.kind,
        label=label_of(row.name, row.unknown_number),
        match_threshold=row.match_threshold,
        created_at=from_db_required(row.created_at),
        updated_at=from_db_required(row.updated_at),
    )


def delete_row(tx: Tx, speaker_id: int) -> None:
    """Delete the speaker's row and its centroids (derived from prints it no longer has)."""
    tx.execute(delete(speaker_centroid).where(speaker_centroid.c.speaker_id == speaker_id))
    tx.execute(delete(speaker).where(speaker.c.id == speaker_id))


def get_row(tx: Tx, speaker_id: int) -> SpeakerRow | None:
    return tx.first(SPEAKER_BY_ID, {"speaker_id": speaker_id})


def get_info(tx: Tx, speaker_id: int) -> SpeakerInfo:
    row = get_row(tx, speaker_id)
    if row is None:
        raise SpeakerNotFound(f"no speaker with id {speaker_id}")
    return info(row)


def infos(tx: Tx, ids: Iterable[int]) -> dict[int, SpeakerInfo]:
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = tx.rows(SPEAKERS_BY_ID, {"speaker_ids": wanted})
    return {int(r.id): info(r) for r in rows}


def find_by_name(tx: Tx, name: str) -> SpeakerRow | None:
    return tx.first(SELECT_SPEAKER.where(speaker.c.name_key == name_key(name)))


def resolve_row(tx: Tx, ref: object) -> SpeakerRow:
    """A speaker by id (int or decimal text), 'Unknown N' label, or name (case-insensitive)."""
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        raise SpeakerNotFound(f"a speaker is given by id or name, got {type(ref).__name__}")
    row: SpeakerRow | None
    if isinstance(ref, int) or ref.strip().isdigit():
        speaker_id = int(ref)
        row = get_row(tx, speaker_id)
        if row is None:
            hint = latest_id_hint(tx, "speaker", "speaker", "speakers")
            raise SpeakerNotFound(f"no speaker with id {speaker_id}; {hint}")
        return row
    text = ref.strip()
    label = UNKNOWN_LABEL.match(text)
    if label:
        row = tx.first(SELECT_SPEAKER.where(speaker.c.unknown_number == int(label[1])))
        if row is None:
            raise SpeakerNotFound(f"no speaker labelled {text!r}; list_speakers shows the labels")
        return row
    if len(text) > MAX_NAME_LENGTH:  # no such name can exist; and never echo it back
        raise SpeakerNotFound(
            f"no speaker has a name of {len(text):,} characters (names have at most "
            f"{MAX_NAME_LENGTH}); give a speaker id, name or 'Unknown N' label"
        )
    row = find_by_name(tx, text)
    if row is None:
        names = [r.name for r in tx.rows(
            select(speaker.c.name).where(speaker.c.name.is_not(None))
            .order_by(speaker.c.name_key).limit(10)
        )]
        hint = f"known names: {', '.join(names)}" if names else "no speaker has a name yet"
        raise SpeakerNotFound(f"no speaker named {text!r}; {hint}")
    return row


def next_unknown_number(tx: Tx) -> int:
    """Take the next 'Unknown N' number; numbers are never reused."""
    number = int(tx.value(NEXT_UNKNOWN))
    tx.execute(SET_NEXT_UNKNOWN, {"value": str(number + 1)})
    return number


def create_unknown(tx: Tx) -> int:
    stamp = now_db()
    return tx.insert(insert(speaker).values(
        kind="unknown", unknown_number=next_unknown_number(tx), created_at=stamp,
        updated_at=stamp,
    ))


def create_named(tx: Tx, name: str) -> int:
    ensure_name_free(tx, name)
    stamp = now_db()
    return tx.insert(insert(speaker).values(
        name=name, name_key=name_key(name), kind="enrolled", created_at=stamp, updated_at=stamp,
    ))


def ensure_name_free(tx: Tx, name: str, except_id: int | None = None) -> None:
    row = find_by_name(tx, name)
    if row is not None and int(row.id) != except_id:
        raise NameTaken(
            f"the name {name!r} belongs to speaker {row.id} ({row.name}); "
            "merge into it, or choose another name"
        )


def set_name(tx: Tx, speaker_id: int, name: str) -> None:
    ensure_name_free(tx, name, except_id=speaker_id)
    tx.execute(update(speaker).where(speaker.c.id == speaker_id).values(
        name=name, name_key=name_key(name), kind="enrolled", updated_at=now_db(),
    ))


def touch(tx: Tx, speaker_id: int) -> None:
    tx.execute(TOUCH, {"speaker_id": speaker_id, "stamp": now_db()})
