"""Pending text vectors (PostgreSQL: HNSW indexing off the ingest path).

Each text-vector dimension gains its pending table (memory.pg_index.PendingIndexer). Nothing
on SQLite: its binary codes are appended to the RAM copy after the commit.
"""

from memory import pg_index
from memory.migrations import current_tx

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    tx = current_tx()
    if tx.dialect == "postgresql":
        for (dim,) in tx.rows(pg_index.SELECT_DIMS):
            pg_index.create_embedding_table(tx, int(dim))  # its pending table is the one missing
