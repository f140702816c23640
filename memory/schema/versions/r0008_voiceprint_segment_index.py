"""An index on voiceprint.segment_id, the one foreign key into segment without one.

Deleting a conversation deletes its segments, and for every segment row the database checks
that no voiceprint still points at it: without an index that is a scan of every voiceprint
per segment. On a PostgreSQL store of 1M segments, deleting one hour of conversation (900
segments) took minutes; with the index, each check is one index probe. SQLite checks foreign
keys the same way.
"""

from memory.migrations import run_ddl

revision = "0008"
down_revision = "0007"

DDL = "CREATE INDEX voiceprint_segment ON voiceprint (segment_id);"


def upgrade() -> None:
    run_ddl(sqlite=DDL, postgresql=DDL)
