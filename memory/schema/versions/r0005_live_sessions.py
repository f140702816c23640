"""Live sessions (a conversation recorded and transcribed as it is spoken).

A conversation being listened to: its segments are stored as they are confirmed and
its recording grows at audio_path. The row goes when the session is finalised (the
whole recording run through the offline pipeline); one left behind by a process that
died marks a session to finalise later (tools/live.py).
"""

from memory.migrations import run_ddl

revision = "0005"
down_revision = "0004"

SQLITE = """
CREATE TABLE live_session (
    conversation_id INTEGER PRIMARY KEY
        REFERENCES conversation(id) ON DELETE CASCADE,
    audio_path TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0
);
"""

POSTGRESQL = """
CREATE TABLE live_session (
    conversation_id BIGINT PRIMARY KEY REFERENCES conversation(id) ON DELETE CASCADE,
    audio_path TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL DEFAULT 0
);
"""


def upgrade() -> None:
    run_ddl(sqlite=SQLITE, postgresql=POSTGRESQL)
