"""The store's tables as SQLAlchemy Core objects: what the domain modules build statements from.

The schema itself is made by the Alembic revisions in memory/schema/versions (each with both
dialects' DDL); these objects describe its current state for query building, with named
columns, and are held to it by tests/memory/test_tables.py (which compares them with a
migrated store on both backends). The search indexes (FTS5 / tsvector, sqlite-vec / pgvector
tables) are not here: each backend's index module owns its own SQL.

Types say what Python sees: `Float` is SQLite's REAL and PostgreSQL's DOUBLE PRECISION,
`LargeBinary` a float32 vector as bytes (`memory.vectors`), `Flag` a 0/1 integer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
)


class Flag(TypeDecorator[bool]):
    """A boolean stored as INTEGER 0/1 (what SQLite keeps; PostgreSQL refuses a bool in an
    integer column, so the value is converted on the way in)."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(bool(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        return None if value is None else bool(value)


metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

speaker = Table(
    "speaker", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text),
    Column("name_key", Text, unique=True),
    Column("kind", Text, nullable=False),
    Column("unknown_number", Integer, unique=True),
    Column("match_threshold", Float),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

voice_model = Table(
    "voice_model", metadata,
    Column("model_id", Text, primary_key=True),
    Column("dim", Integer, nullable=False),
)

text_model = Table(
    "text_model", metadata,
    Column("model_id", Text, primary_key=True),
    Column("dim", Integer, nullable=False),
)

conversation = Table(
    "conversation", metadata,
    Column("id", Integer, primary_key=True),
    Column("title", Text, nullable=False),
    Column("source_name", Text),
    Column("sha256", Text, unique=True),
    Column("recorded_at", Text),
    Column("created_at", Text, nullable=False),
    Column("duration", Float),
    Column("language", Text),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("audio_path", Text),
    Column("model_ids", Text, nullable=False),
)

local_cluster = Table(
    "local_cluster", metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversation.id"), nullable=False),
    Column("label", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vectors", LargeBinary, nullable=False),
    Column("speech_seconds", Float, nullable=False),
)

segment = Table(
    "segment", metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversation.id"), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("local_speaker", Text),
    Column("speaker_id", Integer, ForeignKey("speaker.id")),
    Column("speaker_confidence", Float),
    Column("assignment_source", Text),
    Column("excluded_from_profile", Flag, nullable=False),
    Column("emotion", Text),
    Column("emotion_confidence", Float),
)

segment_content = Table(
    "segment_content", metadata,
    Column("segment_id", Integer, ForeignKey("segment.id"), primary_key=True),
    Column("text", Text, nullable=False),
    Column("words", Text, nullable=False),
)

segment_voice = Table(
    "segment_voice", metadata,
    Column("segment_id", Integer, ForeignKey("segment.id"), primary_key=True),
    Column("vector", LargeBinary, nullable=False),
)

segment_text_vector = Table(
    "segment_text_vector", metadata,
    Column("segment_id", Integer, ForeignKey("segment.id"), primary_key=True),
    Column("model_id", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

voiceprint = Table(
    "voiceprint", metadata,
    Column("id", Integer, primary_key=True),
    Column("speaker_id", Integer, ForeignKey("speaker.id"), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("source", Text, nullable=False),
    Column("conversation_id", Integer, ForeignKey("conversation.id")),
    Column("segment_id", Integer, ForeignKey("segment.id")),
    Column("speech_seconds", Float, nullable=False),
    Column("created_at", Text, nullable=False),
)

speaker_centroid = Table(
    "speaker_centroid", metadata,
    Column("speaker_id", Integer, ForeignKey("speaker.id"), primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("total", LargeBinary, nullable=False),
    Column("count", Integer, nullable=False),
)

identity_event = Table(
    "identity_event", metadata,
    Column("id", Integer, primary_key=True),
    Column("action", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("speaker_ids", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("undone_at", Text),
)

diarization_turn = Table(
    "diarization_turn", metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", Integer, ForeignKey("conversation.id"), nullable=False),
    Column("local_label", Text, nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
)

enrollment_clip = Table(
    "enrollment_clip", metadata,
    Column("id", Integer, primary_key=True),
    Column("speaker_id", Integer, ForeignKey("speaker.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", Text),
    Column("speech_seconds", Float, nullable=False),
    Column("created_at", Text, nullable=False),
)

live_session = Table(
    "live_session", metadata,
    Column("conversation_id", Integer, ForeignKey("conversation.id"), primary_key=True),
    Column("audio_path", Text, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("seconds", Float, nullable=False),
)

job_progress = Table(
    "job_progress", metadata,
    Column("conversation_id", Integer, ForeignKey("conversation.id"), primary_key=True),
    Column("stage", Text, nullable=False),
    Column("fraction", Float, nullable=False),
    Column("notes", Text, nullable=False),
    Column("decisions", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

SERIAL_TABLES = frozenset(
    t.name for t in metadata.sorted_tables if "id" in t.c and t.c.id.primary_key
)
"""Tables whose `id` the store gives (SQLite INTEGER PRIMARY KEY; PostgreSQL identity)."""
