"""Voice profiles across voice models: enrollment clips kept on disk, the speakers that lack a
profile of the current model, the audio a profile can be rebuilt from, and storing it.

A rebuilt profile is derived data, like a centroid: no identity event records it. Its prints
carry the source prefix REBUILT_SOURCE, so that undoing an earlier identity change that moved a
speaker's audio also drops the prints rebuilt from that audio afterwards (memory.events), and
the next rebuild makes them again from the restored assignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.speakers import get_info, get_row
from memory.timeutil import from_db_required, now_db
from memory.types import (
    ConversationAudio,
    EnrollmentClip,
    ProfileAudio,
    RebuiltVoice,
    SpeakerSpan,
    base_model,
    with_channel,
)
from memory.vectors import stack
from memory.voiceprints import REBUILT_SOURCE, add_voiceprints, profile_prints

CLIP_COLUMNS = "id, speaker_id, path, sha256, speech_seconds, created_at"


def add_clip(
    tx: Tx, speaker_id: int, path: str, sha256: str | None, speech_seconds: float
) -> int:
    return tx.run(
        "INSERT INTO enrollment_clip(speaker_id, path, sha256, speech_seconds, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (speaker_id, path, sha256, float(speech_seconds), now_db()),
    )


def clip_rows(tx: Tx, speaker_id: int) -> list[tuple[Any, ...]]:
    return tx.all(
        f"SELECT {CLIP_COLUMNS} FROM enrollment_clip WHERE speaker_id = ? ORDER BY id",
        (speaker_id,),
    )


def in_family(column: str, model_id: str) -> tuple[str, list[Any]]:
    """SQL for "`column` is `model_id` or one of its channels" (memory.types.with_channel)."""
    prefix = with_channel(model_id, "")
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", [model_id, len(prefix), prefix]


def speakers_needing_profile(tx: Tx, model_id: str) -> list[int]:
    """Speakers with voiceprints of other models only: none of `model_id` or its channels."""
    family, params = in_family("v.model_id", model_id)
    rows = tx.all(
        "SELECT s.id FROM speaker s"
        f" WHERE EXISTS (SELECT 1 FROM voiceprint v WHERE v.speaker_id = s.id AND NOT {family})"
        f" AND NOT EXISTS (SELECT 1 FROM voiceprint v WHERE v.speaker_id = s.id AND {family})"
        " ORDER BY s.id",
        [*params, *params],
    )
    return [int(r[0]) for r in rows]


def has_profile(tx: Tx, speaker_id: int, model_id: str) -> bool:
    family, params = in_family("model_id", model_id)
    return tx.one(
        f"SELECT 1 FROM voiceprint WHERE speaker_id = ? AND {family} LIMIT 1",
        [speaker_id, *params],
    ) is not None


def profile_audio(tx: Tx, speaker_id: int) -> ProfileAudio:
    speaker = get_info(tx, speaker_id)
    clips = [
        EnrollmentClip(int(r[0]), int(r[1]), str(r[2]), r[3], float(r[4]),
                       from_db_required(r[5]))
        for r in clip_rows(tx, speaker_id)
    ]
    rows = tx.all(
        "SELECT s.conversation_id, c.audio_path, s.id, s.start, s.\"end\","
        " COALESCE(s.assignment_source, '') = 'manual' AS manual FROM segment s"
        " JOIN conversation c ON c.id = s.conversation_id"
        " WHERE s.speaker_id = ? AND s.excluded_from_profile = 0 AND c.audio_path IS NOT NULL"
        " AND s.\"end\" > s.start"
        " ORDER BY s.conversation_id, manual DESC,"
        " s.\"end\" - s.start DESC, s.id",
        (speaker_id,),
    )
    spans: dict[int, tuple[str, list[SpeakerSpan]]] = {}
    for conversation_id, path, segment_id, start, end, manual in rows:
        entry = spans.setdefault(int(conversation_id), (str(path), []))
        entry[1].append(SpeakerSpan(int(segment_id), float(start), float(end), bool(manual)))
    conversations = [ConversationAudio(cid, path, found) for cid, (path, found) in spans.items()]
    conversations.sort(key=lambda c: (-c.manual_seconds, -c.seconds, -c.conversation_id))
    return ProfileAudio(speaker, clips, conversations)


def add_rebuilt(
    tx: Tx, speaker_id: int, model_id: str, voices: Sequence[RebuiltVoice]
) -> list[int] | None:
    """Store rebuilt voices as the speaker's profile of `model_id` (and its channels). None
    when there is nothing to do: the speaker is gone, or has such a profile already."""
    if get_row(tx, speaker_id) is None or has_profile(tx, speaker_id, model_id):
        return None
    added: list[int] = []
    for voice in voices:
        if base_model(voice.model_id) != model_id:
            raise ModelMismatch(
                f"a rebuilt {model_id!r} profile cannot hold vectors of {voice.model_id!r}"
            )
        if not len(voice.vectors):
            continue
        matrix = stack(list(voice.vectors), "rebuilt voice vectors")
        prints = profile_prints(matrix, f"{REBUILT_SOURCE}{voice.source}", voice.speech_seconds,
                                voice.conversation_id)
        added += add_voiceprints(tx, speaker_id, voice.model_id, prints)
    return added
