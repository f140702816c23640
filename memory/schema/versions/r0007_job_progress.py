"""Job progress (processing jobs run by workers, perhaps on other machines).

With the distributed job queue (tools/job_queue.py) a job runs in a worker process while any
API server answers get_processing_status and relays MCP progress: the stage, fraction, notes
and ingest decisions a worker reports live here. The in-process runner keeps them in memory
and never writes this table. Transient bookkeeping, not memory content: backups leave it out.
"""

from memory.migrations import run_ddl

revision = "0007"
down_revision = "0006"

SQLITE = """
CREATE TABLE job_progress (
    conversation_id INTEGER PRIMARY KEY
        REFERENCES conversation(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    fraction REAL NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',
    decisions TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
);
"""

POSTGRESQL = """
CREATE TABLE job_progress (
    conversation_id BIGINT PRIMARY KEY REFERENCES conversation(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    fraction DOUBLE PRECISION NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',
    decisions TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
);
"""


def upgrade() -> None:
    run_ddl(sqlite=SQLITE, postgresql=POSTGRESQL)
