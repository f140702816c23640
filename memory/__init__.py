"""The memory layer: the persistent store of speakers, conversations and what was said.

Pure Python (numpy + SQLite, or PostgreSQL with pgvector); it never imports an ML library.
`SpeakerMemory` is the one entry point. Modules, one job each:

    api.py            the facade: transactions, locking, result shaping
    tables.py         the tables as SQLAlchemy Core objects: every statement is built from them
    sql.py            what the dialects spell differently, once: id lists, upserts
    db.py             SQLAlchemy engine over sqlean (+ sqlite-vec), Tx, WAL checkpointer
    pg.py             the PostgreSQL engine (psycopg 3): PgTx, the writers' advisory lock
    migrations.py     runs the schema's Alembic history (schema/versions/) on every open
    schema/           the revisions, each with its change in both dialects
    store_copy.py     a SQLite store copied into PostgreSQL, verified (migrate-store)
    speakers.py       names, 'Unknown N' labels, resolving a speaker reference
    conversations.py  create, ingest (cluster matching), reprocess
    deletion.py       deleting a conversation for good (final, not an identity event)
    voiceprints.py    voiceprints, per-speaker centroids, the RAM mirror, voice matching
    identity.py       identify (+ propagation), rename, merge, misidentify, delete, enroll
    events.py         before-state of identity changes; exact undo
    profiles.py       enrollment clips; profiles rebuilt for a new voice model
    turns.py          diarization turns: stored overlaps, who talks over which segment
    queries.py        read models: speakers, conversations, segments, search hits
    search_index.py   the search indexes' interface (SearchIndex), one implementation a backend
    vector_index.py   SQLite's (SqliteSearchIndex): meaning search with sqlite-vec binary codes
    text_index.py     its keyword search (FTS5): the only module that knows FTS5
    pg_index.py       PostgreSQL's (PgSearchIndex): tsvector + GIN, pgvector HNSW
    keywords.py       the words of a keyword query, shared by both backends
    filters.py        SearchFilters as a Core condition, shared by both backends
    backup.py         export / import of every row as JSON
"""

from memory.api import SpeakerMemory, SpeakerRef

__all__ = ["SpeakerMemory", "SpeakerRef"]
