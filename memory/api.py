"""`SpeakerMemory`: the memory layer's one public entry point (a facade over the store).

CONTRACT — signatures here are what tools/ and scripts/ code against. Every method that
changes identity runs in one transaction and records an identity event that undo can reverse.
Speaker arguments take an id (int, or a decimal string) or a name (case-insensitive), or an
'Unknown N' label.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from memory.types import (
    ConversationDetail,
    ConversationInfo,
    ConversationStatus,
    ConversationSummary,
    EnrolledVoice,
    EnrollResult,
    IdentifyResult,
    IdentityChange,
    IdentityEventView,
    IngestResult,
    MatchConfig,
    Page,
    PipelineResultLike,
    SearchFilters,
    SearchHit,
    SegmentView,
    SpeakerInfo,
    SpeakerKind,
    SpeakerSummary,
    Vector,
)

SpeakerRef = int | str


class SpeakerMemory:
    def __init__(self, db_path: Path, match: MatchConfig | None = None) -> None:
        """Open (creating and migrating as needed) the SQLite store at `db_path`. Thread-safe:
        one instance is shared by the server's threads."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ conversations
    def create_conversation(
        self,
        *,
        title: str,
        source_name: str | None = None,
        sha256: str | None = None,
        recorded_at: datetime | None = None,
        audio_path: str | None = None,
    ) -> ConversationInfo:
        """A new conversation in status 'queued'. Raises DuplicateAudio (with the existing id)
        when a conversation with the same sha256 exists."""
        raise NotImplementedError

    def find_conversation_by_sha256(self, sha256: str) -> ConversationInfo | None:
        raise NotImplementedError

    def set_conversation_status(
        self, conversation_id: int, status: ConversationStatus, error: str | None = None
    ) -> ConversationInfo:
        raise NotImplementedError

    def update_conversation_title(self, conversation_id: int, title: str) -> ConversationInfo:
        raise NotImplementedError

    def ingest(self, conversation_id: int, result: PipelineResultLike) -> IngestResult:
        """Store the pipeline's segments and match its per-recording speakers against stored
        voices (one transaction). Sets duration/language/model ids and status 'done'."""
        raise NotImplementedError

    def reprocess(self, conversation_id: int) -> IngestResult:
        """Re-run matching of the conversation's stored clusters against current profiles.
        Segments with assignment 'manual' keep their speaker; segment ids survive."""
        raise NotImplementedError

    # ------------------------------------------------------------ identity
    def resolve_speaker(self, ref: SpeakerRef) -> SpeakerInfo:
        raise NotImplementedError

    def enroll(
        self, name: str, vectors: Sequence[Vector], model_id: str, source: str,
        speech_seconds: float = 0.0,
    ) -> EnrollResult:
        raise NotImplementedError

    def identify(
        self, name: str, *, segment_id: int | None = None, speaker: SpeakerRef | None = None
    ) -> IdentifyResult:
        """"That was my colleague Sarah": name the voice of a segment (or a speaker)."""
        raise NotImplementedError

    def rename(self, speaker: SpeakerRef, new_name: str) -> IdentityChange:
        raise NotImplementedError

    def merge(self, source: SpeakerRef, target: SpeakerRef) -> IdentityChange:
        raise NotImplementedError

    def mark_misidentified(
        self, segment_id: int, correct_speaker: SpeakerRef | None = None
    ) -> IdentityChange:
        raise NotImplementedError

    def delete_speaker(self, speaker: SpeakerRef) -> IdentityChange:
        raise NotImplementedError

    def delete_unknown_speakers(self) -> IdentityChange:
        raise NotImplementedError

    def undo(self, event_id: int | None = None) -> IdentityChange:
        raise NotImplementedError

    def identity_history(self, limit: int = 20) -> list[IdentityEventView]:
        raise NotImplementedError

    def enrolled_voices(self, model_id: str) -> list[EnrolledVoice]:
        """Centroids of named speakers for one model (for memory-informed diarization)."""
        raise NotImplementedError

    # ------------------------------------------------------------ queries
    def list_speakers(self, kind: SpeakerKind | None = None) -> list[SpeakerSummary]:
        raise NotImplementedError

    def list_conversations(
        self, *, limit: int = 20, offset: int = 0, speaker: SpeakerRef | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> Page[ConversationSummary]:
        raise NotImplementedError

    def get_conversation(self, conversation_id: int) -> ConversationDetail:
        raise NotImplementedError

    def get_conversation_info(self, conversation_id: int) -> ConversationInfo:
        raise NotImplementedError

    def get_segment(self, segment_id: int) -> SegmentView:
        raise NotImplementedError

    def latest_segments(
        self, limit: int = 20, conversation_id: int | None = None
    ) -> list[SegmentView]:
        raise NotImplementedError

    def conversations_by_speaker(
        self, speaker: SpeakerRef, *, limit: int = 20, offset: int = 0
    ) -> Page[ConversationSummary]:
        raise NotImplementedError

    def search_keyword(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[SearchHit]:
        raise NotImplementedError

    def search_semantic(
        self, query_vector: Vector, text_model_id: str, filters: SearchFilters | None = None,
        *, limit: int = 20, offset: int = 0,
    ) -> list[SearchHit]:
        raise NotImplementedError

    def search_hybrid(
        self, query: str, query_vector: Vector, text_model_id: str,
        filters: SearchFilters | None = None, *, limit: int = 20, offset: int = 0,
    ) -> list[SearchHit]:
        """Reciprocal-rank fusion of keyword and semantic hits."""
        raise NotImplementedError

    def segment_vectors(self, conversation_id: int) -> dict[int, Vector]:
        """Stored voice vectors of a conversation's segments, by segment id."""
        raise NotImplementedError

    # ------------------------------------------------------------ backup
    def export_json(self, path: Path) -> None:
        raise NotImplementedError

    def import_json(self, path: Path) -> None:
        """Into an empty store only (ImportNotEmpty otherwise); reproduces every row."""
        raise NotImplementedError
