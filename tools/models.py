"""What the tools return: pydantic models (MCP structured output, REST JSON), built from memory's
read models by the `from_*` helpers below. Field descriptions are what an agent reads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from memory.types import (
    ConversationDetail,
    ConversationInfo,
    ConversationSummary,
    IdentityChange,
    IdentityEventView,
    SearchHit,
    SegmentView,
    SpeakerInfo,
    SpeakerSummary,
)

JobStatus = Literal["queued", "processing", "done", "failed", "interrupted", "live"]
"""A conversation's processing state as tools show it. 'interrupted': stored as queued or
processing, but no job of this server process runs it (the server stopped mid-way). 'live':
being listened to (segments arrive as they are confirmed)."""


class SpeakerRef(BaseModel):
    id: int
    label: str = Field(description="What to call the speaker: the name, else 'Unknown N'.")
    name: str | None = None
    kind: Literal["enrolled", "unknown"]


class SpeakerOut(SpeakerRef):
    segment_count: int
    conversation_count: int
    speech_seconds: float
    last_heard: datetime | None
    voiceprint_count: int


class SegmentOut(BaseModel):
    id: int = Field(description="Segment id: pass it to identify_speaker_in_segment.")
    conversation_id: int
    start: float = Field(description="Seconds from the start of the recording.")
    end: float
    speaker: SpeakerRef | None
    text: str
    speaker_confidence: float | None = None
    assignment: Literal["auto", "manual", "enrollment"] | None = Field(
        None, description="'manual' when a person named this segment's speaker."
    )
    emotion: str | None = None
    overlapped_by: list[SpeakerRef] = Field(
        default_factory=list,
        description="Others talking at the same time as this segment (overlapping speech).",
    )


class ConversationOut(BaseModel):
    id: int
    title: str
    status: JobStatus
    duration: float | None = Field(None, description="Seconds of audio.")
    language: str | None = None
    source_name: str | None = None
    recorded_at: datetime | None = None
    created_at: datetime
    error: str | None = None
    segment_count: int | None = None
    speakers: list[SpeakerRef] = Field(default_factory=list)


class SuggestionOut(BaseModel):
    speaker: SpeakerRef
    score: float


EXAMPLE_TEXT_CHARS = 160
"""How much of a speaker's example segment a process_audio result quotes."""


class SegmentExample(BaseModel):
    """One segment that shows a voice well: what to play or quote when asking who it is."""

    segment_id: int = Field(description="Pass to identify_speaker_in_segment to name the voice.")
    start: float
    end: float
    text: str = Field(description=f"The segment's words (at most {EXAMPLE_TEXT_CHARS} "
                      "characters).")


class SpeakerFound(BaseModel):
    speaker: SpeakerRef
    segment_count: int
    example: SegmentExample | None = Field(
        None, description="The speaker's longest segment with nobody talking over it (else its "
        "longest): name this voice with identify_speaker_in_segment(example.segment_id, ...).")
    new: bool = Field(description="True when this voice was heard for the first time.")
    maybe: SuggestionOut | None = Field(
        None,
        description="An uncertain match: this unknown voice may be that speaker. Never applied "
        "on its own; ask the user and confirm with identify_speaker_in_segment.",
    )


class ProcessAudioResult(BaseModel):
    conversation_id: int
    status: JobStatus
    duplicate: bool = Field(
        False,
        description="True when this exact audio was processed before; nothing new was stored.",
    )
    duration: float | None = None
    speakers: list[SpeakerFound] = Field(default_factory=list)
    named_speakers: int = 0
    unknown_speakers: int = 0
    message: str


class ProcessingStatus(BaseModel):
    conversation_id: int
    status: JobStatus
    stage: str | None = Field(None, description="Current stage while processing (asr, diarize...).")
    progress: float | None = Field(None, description="0..1 while processing.")
    error: str | None = None
    message: str


class ConversationList(BaseModel):
    conversations: list[ConversationOut]
    total: int
    limit: int
    offset: int


class Transcript(BaseModel):
    conversation: ConversationOut
    segments: list[SegmentOut] = Field(
        default_factory=list, description="Empty when format='text' (see `text`)."
    )
    text: str | None = Field(
        None, description="'[mm:ss] Speaker: text' lines when format='text'; "
                          "'Speaker (over Other)' while someone else talks too.")


class SegmentList(BaseModel):
    segments: list[SegmentOut]


class SearchHitOut(BaseModel):
    segment: SegmentOut
    conversation_title: str
    recorded_at: datetime | None = None
    score: float


class SearchResults(BaseModel):
    query: str
    mode: Literal["hybrid", "keyword", "semantic"]
    hits: list[SearchHitOut]


class SpeakerConversations(BaseModel):
    speaker: SpeakerRef
    conversations: list[ConversationOut]
    total: int
    limit: int
    offset: int


class SpeakerList(BaseModel):
    speakers: list[SpeakerOut]


class IdentifyOut(BaseModel):
    event_id: int | None = Field(description="Pass to undo_identity_change to reverse this; "
                                 "null when nothing changed (nothing to undo).")
    speaker: SpeakerRef
    segments_relabelled: int
    conversations_relabelled: int
    speakers_merged: list[SpeakerRef]
    suggestions: list[SuggestionOut] = Field(
        description="Other voices that may also be this person: ask the user before naming them."
    )
    changed: bool
    message: str


class EnrollOut(BaseModel):
    event_id: int
    speaker: SpeakerRef
    created: bool
    voiceprints_added: int
    speech_seconds: float
    message: str


class IdentityChangeOut(BaseModel):
    event_id: int | None = Field(description="The change's id (for undo_identity_change); "
                                 "null when nothing changed.")
    action: str
    speakers: list[SpeakerRef]
    segments_changed: int
    conversations_changed: int
    message: str


class ConversationDeletedOut(BaseModel):
    conversation_id: int
    title: str
    segments_deleted: int
    voiceprints_deleted: int = Field(
        description="Voice samples learnt from the conversation, gone from their speakers' "
        "profiles (which were recomputed from what is left).")
    speakers_removed: list[SpeakerRef] = Field(
        default_factory=list,
        description="Unknown voices heard only in this conversation; their labels are gone.")
    audio_deleted: bool = Field(
        description="True when the server's own copy of the audio (an upload or base64) was "
        "deleted. A file given by path is never deleted.")
    final: bool = Field(True, description="Always true: a deleted conversation cannot be "
                        "restored, not even by undo_identity_change.")
    message: str


ExportFormat = Literal["srt", "vtt", "rttm", "json", "txt"]


class ExportOut(BaseModel):
    conversation_id: int
    format: ExportFormat
    filename: str
    mime_type: str
    content: str


RebuildStatus = Literal["idle", "queued", "running", "done", "cancelled", "failed"]


class CompletionOut(BaseModel):
    values: list[str] = Field(description="Matching values, best first (at most 100).")
    total: int = Field(description="How many values match in all.")
    has_more: bool = Field(description="More values match than were returned.")


class RebuildOut(BaseModel):
    status: RebuildStatus = Field(
        description="idle: none ran in this server process; queued/running: in the background; "
        "cancelled: stopped early (run it again to continue); done; failed (see error)."
    )
    model_id: str = Field(description="The voice model the profiles are rebuilt for.")
    speakers_total: int = Field(
        description="Speakers that lacked a profile of this model when the rebuild started."
    )
    speakers_done: int
    progress: float = Field(description="0..1: speakers done / total.")
    rebuilt: int = Field(description="Speakers given a profile of the model from stored audio.")
    skipped: int = Field(
        description="Speakers that needed no rebuild (they had such a profile, or no voice "
        "profile at all, or changed meanwhile)."
    )
    without_audio: list[SpeakerRef] = Field(
        default_factory=list,
        description="Speakers whose enrollment clips and recordings are gone: they keep their "
        "old profile; re-enroll them or name them again in a new recording.",
    )
    error: str | None = None
    message: str


class IdentityEventOut(BaseModel):
    id: int = Field(description="Pass to undo_identity_change(event_id=...) to reverse it.")
    action: str
    created_at: datetime
    summary: str = Field(description="What the change did, in words.")
    undone: bool


class HistoryOut(BaseModel):
    events: list[IdentityEventOut] = Field(description="Identity changes, newest first.")


class InfoOut(BaseModel):
    """What this server offers a client that adapts to it (the review page)."""

    server: str
    version: str
    live: bool = Field(description="True when the live WebSocket /api/v1/live is served.")
    max_upload_bytes: int
    export_formats: list[str]


# ---------------------------------------------------------------- converters


def speaker_ref(info: SpeakerInfo) -> SpeakerRef:
    return SpeakerRef(id=info.id, label=info.label, name=info.name, kind=info.kind)


def speaker_out(summary: SpeakerSummary) -> SpeakerOut:
    info = summary.speaker
    return SpeakerOut(
        id=info.id, label=info.label, name=info.name, kind=info.kind,
        segment_count=summary.segment_count, conversation_count=summary.conversation_count,
        speech_seconds=round(summary.speech_seconds, 2), last_heard=summary.last_heard,
        voiceprint_count=summary.voiceprint_count,
    )


def segment_out(view: SegmentView) -> SegmentOut:
    return SegmentOut(
        id=view.id, conversation_id=view.conversation_id,
        start=round(view.start, 3), end=round(view.end, 3),
        speaker=speaker_ref(view.speaker) if view.speaker else None, text=view.text,
        speaker_confidence=view.speaker_confidence, assignment=view.assignment_source,
        emotion=view.emotion, overlapped_by=[speaker_ref(s) for s in view.overlapped_by],
    )


def conversation_out(
    info: ConversationInfo, segment_count: int | None = None,
    speakers: list[SpeakerInfo] | None = None,
) -> ConversationOut:
    return ConversationOut(
        id=info.id, title=info.title, status=info.status, duration=info.duration,
        language=info.language, source_name=info.source_name, recorded_at=info.recorded_at,
        created_at=info.created_at, error=info.error, segment_count=segment_count,
        speakers=[speaker_ref(s) for s in speakers or []],
    )


def detail_out(detail: ConversationDetail) -> ConversationOut:
    """A transcript's header: the conversation with the speakers heard in it, in order."""
    speakers = {s.speaker.id: s.speaker for s in detail.segments if s.speaker is not None}
    return conversation_out(detail.conversation, len(detail.segments), list(speakers.values()))


def summary_out(summary: ConversationSummary) -> ConversationOut:
    return conversation_out(summary.conversation, summary.segment_count, summary.speakers)


def hit_out(hit: SearchHit) -> SearchHitOut:
    return SearchHitOut(
        segment=segment_out(hit.segment), conversation_title=hit.conversation_title,
        recorded_at=hit.conversation_recorded_at, score=round(hit.score, 4),
    )


def change_out(change: IdentityChange) -> IdentityChangeOut:
    return IdentityChangeOut(
        event_id=change.event_id or None, action=change.action,  # the store's 0: no event
        speakers=[speaker_ref(s) for s in change.speakers],
        segments_changed=change.segments_changed,
        conversations_changed=change.conversations_changed, message=change.message,
    )


def event_out(event: IdentityEventView) -> IdentityEventOut:
    return IdentityEventOut(id=event.id, action=event.action, created_at=event.created_at,
                            summary=event.summary, undone=event.undone)


# ---------------------------------------------------------------- live listening


class LiveWord(BaseModel):
    word: str
    start: float
    end: float
    probability: float


class LiveEventOut(BaseModel):
    """One event of a live session (the WebSocket sends the same, as JSON)."""

    seq: int = Field(description="1, 2, 3... per session; pass the last one as `since`.")
    type: Literal["started", "partial", "final", "speaker_update", "slow_down", "stopped",
                  "error"]
    text: str | None = Field(None, description="partial: words not confirmed yet (they may "
                             "change); final: the confirmed segment's text.")
    start: float | None = Field(None, description="Seconds from the session's start.")
    end: float | None = None
    segment_id: int | None = Field(None, description="final: the stored segment (the id stays "
                                   "valid after the session is finalised).")
    speaker: SpeakerRef | None = Field(None, description="final / speaker_update: who.")
    segment_ids: list[int] | None = Field(None, description="speaker_update: segments that "
                                          "now show `speaker`.")
    words: list[LiveWord] | None = None
    complete: bool | None = Field(None, description="final: false while the segment is still "
                                  "open (it comes again, same segment_id, as it grows).")
    conversation_id: int | None = None
    status: str | None = None
    message: str | None = None


class LiveStartOut(BaseModel):
    conversation_id: int
    status: JobStatus
    message: str


class LiveTranscript(BaseModel):
    conversation_id: int
    status: Literal["live", "stopping"]
    events: list[LiveEventOut]
    next_since: int = Field(description="Pass as `since` next time to get only newer events.")
    message: str
