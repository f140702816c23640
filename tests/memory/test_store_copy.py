"""migrate-store's copy: a real SQLite store, filled through the public API, copied into the
test PostgreSQL; the copy must answer every query as the original does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import SpeakerMemory, store_copy
from memory.errors import StoreError, StoreNotEmpty
from tests.memory.fakes import TEXT_MODEL, VOICE_MODEL, Voices, make_result, text_vector
from tests.memory.measure import peak_allocation
from tests.memory.test_backup import fill
from tests.postgres import TestPostgres


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SpeakerMemory]:
    memory = SpeakerMemory(tmp_path / "sqlite" / "speaker_memory.db")
    yield memory
    memory.close()


@pytest.fixture
def pg_store(postgres: TestPostgres, tmp_path: Path) -> Iterator[SpeakerMemory]:
    key = str(tmp_path / "pg")
    memory = SpeakerMemory(tmp_path / "pg", database_url=postgres.url_for(key))
    yield memory
    memory.close()
    postgres.drop(key)


def history(store: SpeakerMemory) -> None:
    """Identity changes of every kind, some undone, on top of backup's fill."""
    store.rename("Ann", "Anna")
    store.identify("Carl", speaker="Unknown 2")
    store.delete_speaker("Carl")
    store.undo()
    store.merge("Anna", "Bob")
    store.undo()


def same_answers(ours: SpeakerMemory, theirs: SpeakerMemory) -> None:
    assert theirs.list_speakers() == ours.list_speakers()
    assert theirs.identity_history(limit=100) == ours.identity_history(limit=100)
    assert theirs.list_conversations(limit=100) == ours.list_conversations(limit=100)
    for summary in ours.list_conversations(limit=100).items:
        conversation_id = summary.conversation.id
        assert theirs.get_conversation(conversation_id) == ours.get_conversation(conversation_id)
    for word in {ours.get_segment(i).text.split()[0] for i in (1, 4, 7)}:
        assert [h.segment for h in theirs.search_keyword(word)] == [
            h.segment for h in ours.search_keyword(word)]
    query = text_vector(ours.get_segment(3).text)
    assert [(h.segment, round(h.score, 5)) for h in theirs.search_semantic(query, TEXT_MODEL)] == [
        (h.segment, round(h.score, 5)) for h in ours.search_semantic(query, TEXT_MODEL)]
    word = ours.get_segment(3).text.split()[1]
    assert [h.segment.id for h in theirs.search_hybrid(word, query, TEXT_MODEL)] == [
        h.segment.id for h in ours.search_hybrid(word, query, TEXT_MODEL)]


def test_the_copy_answers_as_the_original(sqlite_store: SpeakerMemory, pg_store: SpeakerMemory,
                                          voices: Voices) -> None:
    fill(sqlite_store, voices)
    history(sqlite_store)
    report = sqlite_store.copy_to(pg_store)

    counts = {t.table: (t.source_rows, t.target_rows) for t in report.tables}
    assert counts["segment"] == (10, 10) and counts["identity_event"][0] >= 8
    assert set(counts) == {t.name for t in store_copy.COPIED_TABLES}
    assert all(t.sampled == t.source_rows for t in report.tables)  # small: compared whole
    assert report.vectors_indexed == 10 and report.vectors_compared == 10
    same_answers(sqlite_store, pg_store)
    clips = voices.clips("bob", 2)
    assert pg_store.match_voice(clips, VOICE_MODEL) == sqlite_store.match_voice(clips, VOICE_MODEL)

    # The undo history carries over: undoing on both gives the same message and state.
    for _ in range(2):
        assert pg_store.undo().message == sqlite_store.undo().message
        same_answers(sqlite_store, pg_store)
    # Ids go on where SQLite's counters were (none reused), and new rows match the same way.
    result = make_result(voices, ["ann", "dora"], 3, seed=5)
    added = []
    for memory in (sqlite_store, pg_store):
        conversation = memory.create_conversation(title="after the move")
        ingested = memory.ingest(conversation.id, result)
        added.append((conversation.id, ingested.segment_ids,
                      [d.speaker.label for d in ingested.decisions]))
    assert added[1] == added[0]
    assert added[0][1] == [11, 12, 13] and added[0][2] == ["Ann", "Unknown 4"]


def test_a_non_empty_target_is_refused(sqlite_store: SpeakerMemory, pg_store: SpeakerMemory,
                                       voices: Voices) -> None:
    fill(sqlite_store, voices)
    sqlite_store.copy_to(pg_store)
    before = pg_store.list_speakers()
    with pytest.raises(StoreNotEmpty, match="already holds data"):
        sqlite_store.copy_to(pg_store)
    assert pg_store.list_speakers() == before
    assert len(pg_store.list_conversations(limit=100).items) == 3


def test_a_copy_that_differs_is_rolled_back(sqlite_store: SpeakerMemory,
                                            pg_store: SpeakerMemory, postgres: TestPostgres,
                                            voices: Voices, tmp_path: Path) -> None:
    fill(sqlite_store, voices)
    # A trigger on the target that changes what is written: the check must catch it.
    schema = postgres.schema_for(str(tmp_path / "pg"))
    with postgres.connect() as conn:
        conn.execute(
            f"CREATE FUNCTION {schema}.garble() RETURNS trigger AS"
            " $$ BEGIN NEW.speech_seconds := NEW.speech_seconds + 1; RETURN NEW; END $$"
            " LANGUAGE plpgsql"
        )
        conn.execute(f"CREATE TRIGGER garble BEFORE INSERT ON {schema}.voiceprint"
                     f" FOR EACH ROW EXECUTE FUNCTION {schema}.garble()")
    with pytest.raises(StoreError, match=r"row .* of table voiceprint differs"):
        sqlite_store.copy_to(pg_store)
    assert pg_store.list_speakers() == [] and pg_store.list_conversations().items == []


def test_the_copy_holds_a_batch_not_the_store(sqlite_store: SpeakerMemory, postgres: TestPostgres,
                                              voices: Voices, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_copy, "COPY_BATCH", 100)

    def grow(conversations: range) -> None:
        for seed in conversations:
            conversation = sqlite_store.create_conversation(title=f"long {seed}")
            sqlite_store.ingest(conversation.id,
                                make_result(voices, ["ann", "bob"], 300, seed=seed))

    def copy(name: str) -> int:
        key = str(tmp_path / name)
        target = SpeakerMemory(tmp_path / name, database_url=postgres.url_for(key))
        try:
            # Its background indexer would allocate (a pooled connection) whenever it runs.
            target._db.indexer.stop()  # type: ignore[attr-defined]
            peak = peak_allocation(lambda: sqlite_store.copy_to(target))
        finally:
            target.close()
            postgres.drop(key)
        return peak

    grow(range(2))
    small_peak = copy("small")
    grow(range(2, 8))
    large_peak = copy("large")
    # 4x the rows: a copy that held the store would peak near 4x. What remains grows with
    # garbage the cyclic collector has not freed yet (1.26x to 1.36x, by test order).
    assert large_peak < 1.6 * small_peak, (small_peak, large_peak)
