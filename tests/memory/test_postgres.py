"""What only the PostgreSQL backend has: the writers' advisory lock across processes, pgvector's
HNSW path of semantic search, and the URL that selects the backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from memory import SpeakerMemory, pg_index
from memory.errors import StoreError
from memory.pg import WRITE_LOCK_KEY
from memory.types import SearchFilters
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
                                " AND NOT granted AND objid = :key",
                                {"key": WRITE_LOCK_KEY & 0xFFFFFFFF})
                time.sleep(0.02)
            assert waiting, "the second store's write never waited on the advisory lock"
            assert not done
        renamer.join(WAIT_S)
        assert done and first.resolve_speaker(ann.id).name == "Sarah"
    finally:
        second.close()
        first.close()


@postgresql_only
def test_commits_have_sqlites_durability_unless_the_url_asks_for_more(
    backend: Backend, tmp_path: Path
) -> None:
    assert backend.postgres is not None
    url = backend.postgres.url_for(str(tmp_path / "s.db"))
    durable = url.replace("options=", "options=-csynchronous_commit%3Don%20")
    for given, expected in ((url, "off"), (durable, "on")):
        store = SpeakerMemory(tmp_path / "s.db", database_url=given)
        try:
            with store._db.read() as tx:
                assert tx.value(text("SHOW synchronous_commit")) == expected
                assert tx.value(text("SHOW search_path")).startswith("store_")  # kept
        finally:
            store.close()


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


@postgresql_only
def test_the_graph_scan_reads_on_past_its_search_breadth(
    backend: Backend, tmp_path: Path, voices: Voices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgvector's iterative scan: with a search breadth of 4, the graph still gives 40
    candidates, and they are ordered exactly (a first pass alone stops at 4)."""
    memory = backend.open(tmp_path / "s.db")
    try:
        for seed in range(8):
            conversation = memory.create_conversation(title=f"c{seed}")
            memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 10, seed=seed))
        memory.index_pending()
        probe = text_vector("budget friday")
        exact = memory.search_semantic(probe, TEXT_MODEL, limit=40)
        monkeypatch.setattr(pg_index, "EXACT_SCAN_LIMIT", 0)
        monkeypatch.setattr(pg_index, "HNSW_EF_SEARCH", 4)
        monkeypatch.setattr(pg_index, "HNSW_CANDIDATES", 40)
        found = memory.search_semantic(probe, TEXT_MODEL, limit=40)
        assert len(found) == 40
        assert len({h.segment.id for h in found} & {h.segment.id for h in exact}) >= 36
        scores = [h.score for h in found]
        assert scores == sorted(scores, reverse=True)
    finally:
        memory.close()


@postgresql_only
def test_a_pgvector_without_iterative_scans_is_refused_with_what_to_do(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_index, "PGVECTOR_MIN", (99, 0, 0))
    with pytest.raises(StoreError, match=r"needs 99\.0\.0 or newer.*ALTER EXTENSION vector UPDATE"):
        backend.open(tmp_path / "s.db")


def test_a_database_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a PostgreSQL one"):
        SpeakerMemory(tmp_path / "x.db", database_url="mysql://u@host/db")
    with pytest.raises(StoreError, match="not a PostgreSQL one"):
        SpeakerMemory(tmp_path / "x.db", database_url="not a url")


def vector_rows(path: Path) -> tuple[int, int]:
    """(rows in the HNSW table, rows pending) of the 384-d text vectors."""
    def count(table: str) -> int:
        return int(query(path, f"SELECT count(*) FROM {table}")[0][0])

    return count(pg_index.embedding_table(384)), count(pg_index.pending_table(384))


@postgresql_only
def test_new_vectors_are_found_while_pending_and_once_indexed(
    backend: Backend, tmp_path: Path, voices: Voices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest puts its text vectors in the pending table (no HNSW insert on its path);
    searches find them there, exactly, and the same once the indexer moved them."""
    path = tmp_path / "s.db"
    memory = backend.open(path)
    try:
        memory._db.indexer.stop()  # type: ignore[attr-defined]  # hold them pending
        conversations = []
        for seed in range(3):
            conversation = memory.create_conversation(title=f"c{seed}")
            memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 6, seed=seed))
            conversations.append(conversation.id)
        assert vector_rows(path) == (0, 18)
        probe = text_vector(memory.get_segment(7).text)

        def ids(**filters: int) -> list[list[int]]:
            found = []
            for limit in (20_000, 0):  # exact, then HNSW candidates plus the pending rows
                monkeypatch.setattr(pg_index, "EXACT_SCAN_LIMIT", limit)
                hits = memory.search_semantic(probe, TEXT_MODEL, SearchFilters(**filters),
                                              limit=10)
                found.append([h.segment.id for h in hits])
            return found

        pending = ids(), ids(conversation_id=conversations[1])
        assert pending[0][0] == pending[0][1] and pending[0][0][0] == 7
        assert pending[1][0] == pending[1][1] and set(pending[1][0]) == set(range(7, 13))
        memory.index_pending()
        assert vector_rows(path) == (18, 0)
        assert (ids(), ids(conversation_id=conversations[1])) == pending
        # A deletion removes a conversation's vectors wherever they are.
        memory.create_conversation(title="late")
        memory.ingest(4, make_result(voices, ["ann"], 4, seed=9))
        assert vector_rows(path) == (18, 4)
        memory.delete_conversation(conversations[0])
        memory.delete_conversation(4)
        assert vector_rows(path) == (12, 0)
    finally:
        memory.close()


@postgresql_only
def test_the_indexer_moves_pending_vectors_in_the_background(
    backend: Backend, tmp_path: Path, voices: Voices
) -> None:
    path = tmp_path / "s.db"
    memory = backend.open(path)
    try:
        conversation = memory.create_conversation(title="c")
        memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 8))
        deadline = time.monotonic() + WAIT_S
        while vector_rows(path) != (8, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert vector_rows(path) == (8, 0)
    finally:
        memory.close()
