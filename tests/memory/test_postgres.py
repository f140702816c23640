"""What only the PostgreSQL backend has: the writers' advisory lock across processes, pgvector's
HNSW path of semantic search, and the URL that selects the backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from memory import SpeakerMemory, pg_index
from memory.errors import StoreError
from memory.pg import WRITE_LOCK_KEY
from tests.memory.backends import Backend
from tests.memory.fakes import TEXT_MODEL, Voices, make_result, text_vector
from tests.memory.state import query

postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
WAIT_S = 60


@postgresql_only
def test_a_write_waits_for_the_advisory_lock_another_store_holds(
    backend: Backend, tmp_path: Path, voices: Voices
) -> None:
    """Two API servers on one database: while one holds a write transaction open, the other's
    identity change waits on the store's advisory lock (not on some row), then goes through."""
    path = tmp_path / "shared.db"
    first, second = backend.open(path), backend.open(path)
    try:
        conversation = first.create_conversation(title="one")
        ann = first.ingest(conversation.id, make_result(voices, ["ann"], 4)).decisions[0].speaker
        done: list[str] = []
        with first._db.write():
            renamer = threading.Thread(
                target=lambda: done.append(second.rename(ann.id, "Sarah").message)
            )
            renamer.start()
            deadline = time.monotonic() + WAIT_S
            waiting: list[tuple[object, ...]] = []
            while not waiting and time.monotonic() < deadline:
                waiting = query(path, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                                " AND NOT granted AND objid = ?", (WRITE_LOCK_KEY & 0xFFFFFFFF,))
                time.sleep(0.02)
            assert waiting, "the second store's write never waited on the advisory lock"
            assert not done
        renamer.join(WAIT_S)
        assert done and first.resolve_speaker(ann.id).name == "Sarah"
    finally:
        second.close()
        first.close()


@postgresql_only
def test_hnsw_candidates_find_what_exact_scoring_finds(
    backend: Backend, tmp_path: Path, voices: Voices, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["budget review moved to friday", "the weather was lovely", "coffee is broken",
             "quarterly numbers look fine", "we cut the budget", "mountains in the rain"]
    memory = backend.open(tmp_path / "s.db")
    try:
        for seed in range(4):
            conversation = memory.create_conversation(title=f"c{seed}")
            memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 6, seed=seed,
                                                       texts=texts))
        probe = text_vector("budget friday")
        exact = memory.search_semantic(probe, TEXT_MODEL, limit=5)
        monkeypatch.setattr(pg_index, "EXACT_SCAN_LIMIT", 0)  # every search through HNSW
        approximate = memory.search_semantic(probe, TEXT_MODEL, limit=5)
        assert [h.segment.id for h in approximate] == [h.segment.id for h in exact]
        assert [h.score for h in approximate] == pytest.approx([h.score for h in exact])
        assert exact[0].segment.text == texts[0]
        indexes = query(tmp_path / "s.db", "SELECT indexdef FROM pg_indexes"
                        " WHERE tablename = 'segment_text_embedding_384'"
                        " AND schemaname = current_schema()")
        assert any("hnsw" in str(r[0]) and "vector_cosine_ops" in str(r[0]) for r in indexes)
    finally:
        memory.close()


def test_a_database_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a PostgreSQL one"):
        SpeakerMemory(tmp_path / "x.db", database_url="mysql://u@host/db")
    with pytest.raises(StoreError, match="not a PostgreSQL one"):
        SpeakerMemory(tmp_path / "x.db", database_url="not a url")
