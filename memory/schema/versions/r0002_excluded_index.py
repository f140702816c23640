"""Index of segments marked misidentified.

Propagation asks "does this unknown hold a corrected segment?" for large speakers.
"""

from memory.migrations import run_ddl

revision = "0002"
down_revision = "0001"

SQLITE = """
CREATE INDEX segment_excluded ON segment (speaker_id) WHERE excluded_from_profile = 1
"""

POSTGRESQL = """
CREATE INDEX segment_excluded ON segment (speaker_id) WHERE excluded_from_profile = 1
"""


def upgrade() -> None:
    run_ddl(sqlite=SQLITE, postgresql=POSTGRESQL)
