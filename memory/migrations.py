"""Versioned schema migrations: each a registered function, run in one transaction together
with the row that records it as applied (the sqlite-utils pattern)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from memory.db import Store, Tx
from memory.errors import StoreError
from memory.pg_schema import MIGRATIONS as POSTGRESQL_DDL

log = logging.getLogger(__name__)


def _sqlite_only(tx: Tx) -> None:
    raise StoreError("this migration has no PostgreSQL version")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Tx], None]
    """The SQLite DDL."""
    apply_postgresql: Callable[[Tx], None] = _sqlite_only
    """The same change on PostgreSQL (memory.pg_schema)."""


MIGRATIONS: list[Migration] = []


def migration(version: int, name: str) -> Callable[[Callable[[Tx], None]], Callable[[Tx], None]]:
    def register(fn: Callable[[Tx], None]) -> Callable[[Tx], None]:
        if any(m.version == version for m in MIGRATIONS):
            raise RuntimeError(f"migration {version} registered twice")
        MIGRATIONS.append(Migration(version, name, fn, POSTGRESQL_DDL[version]))
        MIGRATIONS.sort(key=lambda m: m.version)
        return fn

    return register


def latest_version() -> int:
    return MIGRATIONS[-1].version if MIGRATIONS else 0


def migrate(db: Store) -> int:
    """Bring the store to the latest version; returns the version it is at."""
    with db.write() as tx:
        tx.run(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current = int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    if current > latest_version():
        raise StoreError(
            f"{db.label} has schema version {current}, newer than this program's "
            f"{latest_version()}; upgrade speaker-memory to open it"
        )
    for m in MIGRATIONS:
        if m.version <= current:
            continue
        with db.write() as tx:
            # Re-check inside the transaction: another process may have migrated meanwhile.
            if tx.one("SELECT 1 FROM schema_version WHERE version = ?", (m.version,)):
                continue
            log.info("migrating %s to version %d (%s)", db.label, m.version, m.name)
            (m.apply_postgresql if tx.dialect == "postgresql" else m.apply)(tx)
            tx.run(
                "INSERT INTO schema_version(version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, datetime.now(UTC).isoformat()),
            )
        current = m.version
    return current


@migration(1, "initial schema")
def _initial(tx: Tx) -> None:
    tx.script(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta(key, value) VALUES ('next_unknown_number', '1');

        CREATE TABLE speaker (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            name_key TEXT UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('enrolled', 'unknown')),
            unknown_number INTEGER UNIQUE,
            match_threshold REAL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            CHECK ((name IS NULL) = (name_key IS NULL))
        );

        CREATE TABLE voice_model (model_id TEXT PRIMARY KEY, dim INTEGER NOT NULL);
        CREATE TABLE text_model (model_id TEXT PRIMARY KEY, dim INTEGER NOT NULL);

        CREATE TABLE conversation (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            source_name TEXT,
            sha256 TEXT UNIQUE,
            recorded_at TEXT,
            created_at TEXT NOT NULL,
            duration REAL,
            language TEXT,
            status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed')),
            error TEXT,
            audio_path TEXT,
            model_ids TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX conversation_time ON conversation (COALESCE(recorded_at, created_at), id);

        -- The diarizer's per-recording clusters, kept so that reprocess can re-match them.
        CREATE TABLE local_cluster (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversation(id),
            label TEXT NOT NULL,
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vectors BLOB NOT NULL,
            speech_seconds REAL NOT NULL,
            UNIQUE (conversation_id, label)
        );

        -- Narrow on purpose: relabelling rewrites only these small rows.
        CREATE TABLE segment (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversation(id),
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            local_speaker TEXT,
            speaker_id INTEGER REFERENCES speaker(id),
            speaker_confidence REAL,
            assignment_source TEXT CHECK (assignment_source IN ('auto', 'manual', 'enrollment')),
            excluded_from_profile INTEGER NOT NULL DEFAULT 0,
            emotion TEXT,
            emotion_confidence REAL
        );
        CREATE INDEX segment_speaker ON segment (speaker_id, conversation_id);
        CREATE INDEX segment_conversation ON segment (conversation_id, start);

        CREATE TABLE segment_content (
            segment_id INTEGER PRIMARY KEY REFERENCES segment(id),
            text TEXT NOT NULL,
            words TEXT NOT NULL
        );
        CREATE TABLE segment_voice (
            segment_id INTEGER PRIMARY KEY REFERENCES segment(id),
            vector BLOB NOT NULL
        );
        CREATE TABLE segment_text_vector (
            segment_id INTEGER PRIMARY KEY REFERENCES segment(id),
            model_id TEXT NOT NULL,
            vector BLOB NOT NULL
        );

        CREATE TABLE voiceprint (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            speaker_id INTEGER NOT NULL REFERENCES speaker(id),
            model_id TEXT NOT NULL,
            vector BLOB NOT NULL,
            source TEXT NOT NULL,
            conversation_id INTEGER REFERENCES conversation(id),
            segment_id INTEGER REFERENCES segment(id),
            speech_seconds REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX voiceprint_speaker ON voiceprint (speaker_id, model_id);
        CREATE INDEX voiceprint_conversation ON voiceprint (conversation_id);

        -- Maintained incrementally (sum + count): no scan of voiceprints per query.
        CREATE TABLE speaker_centroid (
            speaker_id INTEGER NOT NULL REFERENCES speaker(id),
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            total BLOB NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (speaker_id, model_id)
        ) WITHOUT ROWID;

        CREATE TABLE identity_event (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            action TEXT NOT NULL,
            created_at TEXT NOT NULL,
            summary TEXT NOT NULL,
            speaker_ids TEXT NOT NULL,
            payload TEXT NOT NULL,
            undone_at TEXT
        );

        CREATE VIRTUAL TABLE segment_fts USING fts5(
            text, content='segment_content', content_rowid='segment_id',
            tokenize='unicode61 remove_diacritics 2'
        );

        -- Binary-quantised text vectors (first stage of semantic search), one table per dim.
        CREATE VIRTUAL TABLE segment_text_bits_384 USING vec0(embedding bit[384]);
        """
    )


@migration(2, "index of segments marked misidentified")
def _excluded_index(tx: Tx) -> None:
    # Propagation asks "does this unknown hold a corrected segment?" for large speakers.
    tx.run(
        "CREATE INDEX segment_excluded ON segment (speaker_id) WHERE excluded_from_profile = 1"
    )


@migration(3, "diarization turns (overlapping speech)")
def _diarization_turns(tx: Tx) -> None:
    # The whole diarization of a conversation, by the same local labels as its segments;
    # turns of two labels overlap where two people talk at once.
    tx.script(
        """
        CREATE TABLE diarization_turn (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
            local_label TEXT NOT NULL,
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            CHECK ("end" >= start AND start >= 0)
        );
        CREATE INDEX diarization_turn_conversation ON diarization_turn (conversation_id, start);
        """
    )


@migration(4, "enrollment clips (audio kept for rebuilding voice profiles)")
def _enrollment_clips(tx: Tx) -> None:
    # The audio an enroll event learnt a voice from, kept under DATA_DIR/audio/enroll, so that
    # a new voice model can rebuild the speaker's profile from it (tools/rebuild.py).
    tx.script(
        """
        CREATE TABLE enrollment_clip (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            speaker_id INTEGER NOT NULL REFERENCES speaker(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT,
            speech_seconds REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX enrollment_clip_speaker ON enrollment_clip (speaker_id);
        """
    )


@migration(5, "live sessions (a conversation recorded and transcribed as it is spoken)")
def _live_sessions(tx: Tx) -> None:
    # A conversation being listened to: its segments are stored as they are confirmed and
    # its recording grows at audio_path. The row goes when the session is finalised (the
    # whole recording run through the offline pipeline); one left behind by a process that
    # died marks a session to finalise later (tools/live.py).
    tx.script(
        """
        CREATE TABLE live_session (
            conversation_id INTEGER PRIMARY KEY
                REFERENCES conversation(id) ON DELETE CASCADE,
            audio_path TEXT NOT NULL,
            started_at TEXT NOT NULL,
            seconds REAL NOT NULL DEFAULT 0
        );
        """
    )


@migration(6, "pending text vectors (PostgreSQL: HNSW indexing off the ingest path)")
def _pending_text_vectors(tx: Tx) -> None:
    # Nothing on SQLite: its binary codes are appended to the RAM copy after the commit. On
    # PostgreSQL each dimension gains its pending table (memory.pg_index.PendingIndexer).
    pass
