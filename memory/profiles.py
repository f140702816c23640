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

from sqlalchemy import ColumnElement, Row, exists, func, insert, not_, or_, select

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.speakers import get_info, get_row
from memory.tables import conversation, enrollment_clip, segment, speaker, voiceprint
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

SELECT_CLIPS = select(enrollment_clip).order_by(enrollment_clip.c.id)
MANUAL = (func.coalesce(segment.c.assignment_source, "") == "manual").label("manual")
SELECT_SPANS = (
    select(segment.c.conversation_id, conversation.c.audio_path, segment.c.id.label("segment_id"),
           segment.c.start, segment.c.end, MANUAL)
    .join(conversation, conversation.c.id == segment.c.conversation_id)
    .where(segment.c.excluded_from_profile == 0, conversation.c.audio_path.is_not(None),
           segment.c.end > segment.c.start)
    .order_by(segment.c.conversation_id, MANUAL.desc(),
              (segment.c.end - segment.c.start).desc(), segment.c.id)
)
"""The speaker's segments a profile can be rebuilt from, per conversation: those a person
labelled first, then the longest."""


def add_clip(
    tx: Tx, speaker_id: int, path: str, sha256: str | None, speech_seconds: float
) -> int:
    return tx.insert(insert(enrollment_clip).values(
        speaker_id=speaker_id, path=path, sha256=sha256, speech_seconds=float(speech_seconds),
        created_at=now_db(),
    ))


def clip_rows(tx: Tx, speaker_id: int) -> Sequence[Row[Any]]:
    """The speaker's enrollment clips, every column in the table's order, oldest first."""
    return tx.rows(SELECT_CLIPS.where(enrollment_clip.c.speaker_id == speaker_id))


def in_family(column: ColumnElement[str], model_id: str) -> ColumnElement[bool]:
    """`column` is `model_id` or one of its channels (memory.types.with_channel)."""
    prefix = with_channel(model_id, "")
    return or_(column == model_id, func.substr(column, 1, len(prefix)) == prefix)


def speakers_needing_profile(tx: Tx, model_id: str) -> list[int]:
    """Speakers with voiceprints of other models only: none of `model_id` or its channels."""
    family = in_family(voiceprint.c.model_id, model_id)
    own = voiceprint.c.speaker_id == speaker.c.id
    rows = tx.rows(
        select(speaker.c.id)
        .where(exists().where(own, not_(family)), ~exists().where(own, family))
        .order_by(speaker.c.id)
    )
    return [int(r.id) for r in rows]


def has_profile(tx: Tx, speaker_id: int, model_id: str) -> bool:
    return tx.first(select(voiceprint.c.id).where(
        voiceprint.c.speaker_id == speaker_id, in_family(voiceprint.c.model_id, model_id)
    ).limit(1)) is not None


def profile_audio(tx: Tx, speaker_id: int) -> ProfileAudio:
    speaker_info = get_info(tx, speaker_id)
    clips = [
        EnrollmentClip(int(r.id), int(r.speaker_id), str(r.path), r.sha256,
                       float(r.speech_seconds), from_db_required(r.created_at))
        for r in clip_rows(tx, speaker_id)
    ]
    spans: dict[int, tuple[str, list[SpeakerSpan]]] = {}
    # A speaker may hold 100k segments: plain tuples, in SELECT_SPANS's column order.
    for conversation_id, audio_path, segment_id, start, end, manual in tx.stream(
        SELECT_SPANS.where(segment.c.speaker_id == speaker_id)
    ):
        entry = spans.setdefault(int(conversation_id), (str(audio_path), []))
        entry[1].append(SpeakerSpan(int(segment_id), float(start), float(end), bool(manual)))
    conversations = [ConversationAudio(cid, path, found) for cid, (path, found) in spans.items()]
    conversations.sort(key=lambda c: (-c.manual_seconds, -c.seconds, -c.conversation_id))
    return ProfileAudio(speaker_info, clips, conversations)


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
