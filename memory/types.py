"""The memory layer's public data: what ingest reads, and what every operation returns.

Inputs are Protocols so that the audio pipeline's own dataclasses (inference.PipelineResult)
are taken as they are, without memory importing inference. Outputs are small frozen
dataclasses that say what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

Vector = npt.NDArray[np.float32]
"""A 1-D float32 vector. Voice vectors are L2-normalised by the store before use."""

MAX_ID = 2**63 - 1
"""The largest row id the store can hold (SQLite integers are signed 64-bit): the bound on
every id an agent or a URL gives."""

SpeakerKind = Literal["enrolled", "unknown"]
AssignmentSource = Literal["auto", "manual", "enrollment"]
ConversationStatus = Literal["queued", "processing", "done", "failed"]
IdentityAction = Literal["identify", "rename", "merge", "misidentify", "delete", "enroll",
                         "delete_unknown", "reprocess"]


# ---------------------------------------------------------------- ingest input (Protocols)

# Members are read-only properties: read-only Protocol members are covariant, so a
# dataclass holding list[PipelineSegment] satisfies Sequence[SegmentLike].

class WordLike(Protocol):
    @property
    def word(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def probability(self) -> float: ...


class SegmentLike(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def words(self) -> Sequence[WordLike]: ...
    @property
    def local_speaker(self) -> str | None: ...
    """The diarizer's per-recording label ("SPEAKER_00"), None if no speaker."""
    @property
    def voice_vector(self) -> Vector | None: ...
    """The segment's own voice vector when it has >= 1 s of speech."""
    @property
    def text_vector(self) -> Vector | None: ...
    """Semantic vector of `text` (text embedding model)."""
    @property
    def emotion(self) -> str | None: ...
    @property
    def emotion_confidence(self) -> float | None: ...


class LocalSpeakerLike(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def vectors(self) -> Sequence[Vector]: ...
    """Voice vectors of this per-recording cluster (windows or segments)."""
    @property
    def speech_seconds(self) -> float: ...
    @property
    def matched_speaker_id(self) -> int | None: ...
    """Set when memory-informed diarization already matched the cluster to a stored speaker."""
    @property
    def voice_model_id(self) -> str | None: ...
    """The model id of this cluster's vectors when it is not the result's (a voice heard
    through a telephone band: memory.types.with_channel); None = the result's."""


class TurnLike(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def label(self) -> str: ...
    """The same per-recording label as the segments' `local_speaker`."""


class PipelineResultLike(Protocol):
    @property
    def segments(self) -> Sequence[SegmentLike]: ...
    @property
    def local_speakers(self) -> Sequence[LocalSpeakerLike]: ...
    @property
    def voice_model_id(self) -> str: ...
    """Name + version of the voice embedding model, e.g. 'resemblyzer-ge2e-0.1.4'."""
    @property
    def text_model_id(self) -> str | None: ...
    @property
    def language(self) -> str | None: ...
    @property
    def duration(self) -> float: ...
    @property
    def asr_model_id(self) -> str | None: ...
    @property
    def turns(self) -> Sequence[TurnLike]: ...
    """The whole diarization: every label's turns; turns of two labels overlap where two
    people talk at once. May be empty (then no overlap is known)."""


# ---------------------------------------------------------------- settings of matching

@dataclass(frozen=True)
class Thresholds:
    """Cosine-similarity thresholds of one voice model (L2-normalised vectors).

    A false accept silently puts a wrong name on speech; a miss only creates an Unknown the
    user can name, so each threshold sits above the highest impostor score measured."""

    threshold: float
    """A cluster joins a stored speaker only at or above this score (per-speaker override)."""
    margin: float
    """...and only if it beats the runner-up speaker by this much."""
    propagate_threshold: float
    """After identify, unknown speakers this close to the named speaker are merged into it."""
    suggest_threshold: float
    """Weaker matches (>= this) are returned as suggestions, not merged."""
    vector_threshold: float
    """One vector of a matched cluster (a few seconds of its speech) sounds like the speaker at
    or above this score (the consistency rule, memory.conversations)."""


CAMPPLUS_MODEL_ID = "campplus-cn-en-common-3dspeaker"
GE2E_MODEL_ID = "resemblyzer-ge2e-0.1.4"
TELEPHONE_CHANNEL = "telephone"


CHANNEL_SEPARATOR = "/"


def with_channel(model_id: str, channel: str) -> str:
    """The model id of one model's vectors of voices heard through `channel`: a voice on a
    phone line is compared only with telephone-band profiles, on thresholds of their own."""
    return f"{model_id}{CHANNEL_SEPARATOR}{channel}"


def base_model(model_id: str) -> str:
    """The voice model of a (possibly channel-specific) model id."""
    return model_id.split(CHANNEL_SEPARATOR, 1)[0]


MODEL_THRESHOLDS: dict[str, Thresholds] = {
    # CAM++ (the default voice model) on wideband audio. Measured with scripts/evaluate.py
    # (cluster against stored speakers): recurring voices 0.75-0.88 on real-dev, 0.84-0.97 on
    # dev; the highest one-off voice 0.37 on real-dev, 0.52 on dev (0.57 in reverberant rooms
    # in ../shared/research/real-voice-identity.md).
    CAMPPLUS_MODEL_ID: Thresholds(
        threshold=0.60, margin=0.02, propagate_threshold=0.70, suggest_threshold=0.45,
        vector_threshold=0.45,
    ),
    # CAM++ through a telephone band, against telephone-band profiles. Measured with the
    # diarizer's 7 s pooled vectors (scripts/evaluate.py decision tables): recurring voices
    # 0.69-0.80 on real-dev's phone calls; impostors against profiles made by enrollment at
    # most 0.60 (an enrolled voice as runner-up), pyannote-sample's real callers 0.38. A
    # profile that has learned a real call draws other callers up to 0.77, so named profiles
    # do not learn from calls (memory.conversations.learns_from). One 7 s vector of a
    # recurring voice on a noisy line scores 0.47-0.83 alone, so the consistency rule's bar
    # is the wideband one.
    with_channel(CAMPPLUS_MODEL_ID, TELEPHONE_CHANNEL): Thresholds(
        threshold=0.65, margin=0.02, propagate_threshold=0.78, suggest_threshold=0.58,
        vector_threshold=0.45,
    ),
    # GE2E, measured on the dev corpus: a known voice's cluster scored 0.836-0.988 against its
    # stored speaker, the closest impostor 0.789.
    GE2E_MODEL_ID: Thresholds(
        threshold=0.82, margin=0.04, propagate_threshold=0.86, suggest_threshold=0.70,
        vector_threshold=0.70,
    ),
}
DEFAULT_THRESHOLDS = MODEL_THRESHOLDS[CAMPPLUS_MODEL_ID]
"""For a voice model without measured thresholds of its own (re-measure before relying on it)."""


@dataclass(frozen=True)
class MatchConfig:
    """Voice matching settings. Each threshold left None is the voice model's own measured
    value (MODEL_THRESHOLDS): scores of different models live on different scales."""

    threshold: float | None = None
    margin: float | None = None
    propagate_threshold: float | None = None
    suggest_threshold: float | None = None
    top_k: int = 64
    """Nearest voiceprints fetched per query vector before scoring per speaker."""

    def for_model(self, model_id: str) -> Thresholds:
        base = MODEL_THRESHOLDS.get(model_id) or MODEL_THRESHOLDS.get(
            base_model(model_id), DEFAULT_THRESHOLDS)
        return Thresholds(
            threshold=base.threshold if self.threshold is None else self.threshold,
            margin=base.margin if self.margin is None else self.margin,
            propagate_threshold=(base.propagate_threshold if self.propagate_threshold is None
                                 else self.propagate_threshold),
            suggest_threshold=(base.suggest_threshold if self.suggest_threshold is None
                               else self.suggest_threshold),
            vector_threshold=base.vector_threshold,
        )


# ---------------------------------------------------------------- read models

@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class SpeakerInfo:
    id: int
    name: str | None
    kind: SpeakerKind
    label: str
    """What to show: the name, else 'Unknown N'."""
    match_threshold: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SpeakerSummary:
    speaker: SpeakerInfo
    segment_count: int
    conversation_count: int
    speech_seconds: float
    last_heard: datetime | None
    voiceprint_count: int


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    title: str
    source_name: str | None
    sha256: str | None
    recorded_at: datetime | None
    created_at: datetime
    duration: float | None
    language: str | None
    status: ConversationStatus
    error: str | None
    audio_path: str | None
    model_ids: dict[str, str]


@dataclass(frozen=True)
class ConversationSummary:
    conversation: ConversationInfo
    segment_count: int
    speakers: list[SpeakerInfo]


@dataclass(frozen=True)
class SegmentView:
    id: int
    conversation_id: int
    start: float
    end: float
    text: str
    speaker: SpeakerInfo | None
    speaker_confidence: float | None
    assignment_source: AssignmentSource | None
    excluded_from_profile: bool
    emotion: str | None
    emotion_confidence: float | None
    words: list[Word] = field(default_factory=list)
    local_speaker: str | None = None
    overlapped_by: list[SpeakerInfo] = field(default_factory=list)
    """Other speakers talking at the same time (their diarization turns cover at least
    memory.turns.MIN_OVERLAP_SECONDS of this segment), most overlap first."""


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of the diarization, with the speaker its label resolves to now."""

    start: float
    end: float
    local_label: str
    speaker: SpeakerInfo | None
    """The speaker most of this label's segments have; None when none has one."""


@dataclass(frozen=True)
class ConversationDetail:
    conversation: ConversationInfo
    segments: list[SegmentView]
    turns: list[SpeakerTurn] = field(default_factory=list)
    """The diarization by start time (turns may overlap); empty when none was stored."""


@dataclass(frozen=True)
class SpeakerTally:
    """One speaker of a conversation: how many segments it has there, and the one that shows
    its voice best (the longest nobody talks over, else its longest)."""

    speaker: SpeakerInfo
    segment_count: int
    example: SegmentView


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class SearchFilters:
    speaker_id: int | None = None
    conversation_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SearchHit:
    segment: SegmentView
    conversation_title: str
    conversation_recorded_at: datetime | None
    score: float


# ---------------------------------------------------------------- results of changes

@dataclass(frozen=True)
class MatchDecision:
    local_label: str
    speaker: SpeakerInfo
    score: float | None
    """Best score against stored voices; None when nothing comparable was stored."""
    created: bool
    """True when a new unknown speaker was created for this cluster."""
    suggestion: Suggestion | None = None
    """An uncertain match: stored as an unknown, this may be the suggested speaker (an agent
    asks the user and confirms with identify). Never applied silently."""


@dataclass(frozen=True)
class IngestResult:
    conversation_id: int
    segment_ids: list[int]
    decisions: list[MatchDecision]


@dataclass(frozen=True)
class EnrollResult:
    speaker: SpeakerInfo
    created: bool
    voiceprints_added: int
    event_id: int


@dataclass(frozen=True)
class Suggestion:
    speaker: SpeakerInfo
    score: float


@dataclass(frozen=True)
class IdentifyResult:
    event_id: int
    speaker: SpeakerInfo
    """The named speaker every relabelled segment now belongs to."""
    segments_relabelled: int
    conversations_relabelled: int
    speakers_merged: list[SpeakerInfo]
    """Unknown speakers folded into `speaker` (the segment's own and propagated ones)."""
    suggestions: list[Suggestion]
    """Weaker matches to confirm, strongest first."""
    changed: bool
    """False when nothing had to change (identify is idempotent)."""
    speakers_removed: list[str] = field(default_factory=list)
    """Labels of named speakers the change left with nothing (a name given by mistake and
    corrected), which were removed; undo brings them back."""


@dataclass(frozen=True)
class IdentityChange:
    """Result of rename, merge, misidentify, delete and undo."""

    event_id: int
    action: IdentityAction | Literal["undo"]
    speakers: list[SpeakerInfo]
    """Speakers affected, as they are after the change (deleted ones as they were)."""
    segments_changed: int
    conversations_changed: int
    message: str
    """One sentence an agent can relay
    ("Renamed Unknown 3 to Sarah; 41 segments in 3 conversations")."""


@dataclass(frozen=True)
class DeletedConversation:
    """Result of delete_conversation: what went with it. Final: no identity event records it
    and nothing restores it."""

    conversation: ConversationInfo
    """The conversation as it was (audio_path: the file it was made from, still on disk)."""
    segments: int
    voiceprints: int
    """Voice samples learnt from the conversation, gone from their speakers' profiles."""
    speakers_removed: list[SpeakerInfo]
    """Unknown speakers heard only there (no segment or voice sample left), as they were."""
    speakers_changed: list[SpeakerInfo]
    """Remaining speakers who lost segments or voice samples, as they are now."""


@dataclass(frozen=True)
class IdentityEventView:
    id: int
    action: IdentityAction
    created_at: datetime
    summary: str
    undone: bool


@dataclass(frozen=True)
class EnrolledVoice:
    """A stored speaker's centroid for one model: what memory-informed diarization compares with."""

    speaker: SpeakerInfo
    centroid: Vector
    threshold: float


# ---------------------------------------------------------------- profile rebuild

@dataclass(frozen=True)
class EnrollmentClip:
    """An enrollment clip kept on disk (the audio an enroll event learnt the voice from)."""

    id: int
    speaker_id: int
    path: str
    sha256: str | None
    speech_seconds: float
    created_at: datetime


@dataclass(frozen=True)
class SpeakerSpan:
    """One of a speaker's segments, as a stretch of its conversation's audio."""

    segment_id: int
    start: float
    end: float
    manual: bool
    """A person assigned it (assignment 'manual'): the surest evidence of the voice."""


@dataclass(frozen=True)
class ConversationAudio:
    """Where a speaker talks in one conversation whose recording path is stored."""

    conversation_id: int
    audio_path: str
    spans: list[SpeakerSpan]
    """Segments that count for the profile (not excluded): manual first, then longest."""

    @property
    def manual_seconds(self) -> float:
        return sum(s.end - s.start for s in self.spans if s.manual)

    @property
    def seconds(self) -> float:
        return sum(s.end - s.start for s in self.spans)


@dataclass(frozen=True)
class ProfileAudio:
    """The stored audio a speaker's voice profile can be rebuilt from (files may be gone)."""

    speaker: SpeakerInfo
    clips: list[EnrollmentClip]
    conversations: list[ConversationAudio]
    """Most manual speech first, then most speech, then newest."""


@dataclass(frozen=True)
class RebuiltVoice:
    """Vectors of one voice model computed again from stored audio (memory.add_rebuilt_profile)."""

    model_id: str
    vectors: Sequence[Vector]
    source: str
    """What they came from: 'enrollment:<clip id>' or 'conversation:<id>'."""
    speech_seconds: float
    conversation_id: int | None = None
