from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from memory import SpeakerMemory
from memory.api import MAX_PAGE
from memory.errors import (
    ConversationNotFound,
    InvalidOperation,
    ModelMismatch,
    SpeakerNotFound,
)
from memory.text_index import escape_query
from memory.types import SearchFilters
from tests.memory.backends import sqlite_only
from tests.memory.fakes import TEXT_MODEL, Voices, make_result, text_vector

DAY = timedelta(days=1)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

TEXTS = [
    "we need to cut the budget before friday",
    "the weather in the mountains was lovely",
    'she said "quarterly numbers" look fine',
    "a (parenthetical) remark about NEAR misses and * stars",
    "budget review moved to next week",
    "coffee machine is broken again",
]


@pytest.fixture
def searchable(store: SpeakerMemory, voices: Voices) -> SpeakerMemory:
    for day, names in enumerate([["ann", "bob"], ["bob", "carl"], ["ann"]]):
        conversation = store.create_conversation(title=f"day {day}", recorded_at=T0 + day * DAY)
        store.ingest(conversation.id, make_result(voices, names, 6, seed=day, texts=TEXTS))
    store.rename("Unknown 1", "Ann")
    return store


NASTY = ['"', '""', "'", "*", "budget*", "NEAR", "NEAR(budget", "(", ")", "((budget", "budget)",
         "AND", "OR budget", "NOT", "-budget", "^budget", "budget:", "col:budget", "{budget}",
         "a\x00b", "\\", "''''", "💬 budget", "   ", "", "budget AND OR NOT NEAR",
         '"unterminated budget', "quarterly numbers\"", "+", "%", "_", ";DROP TABLE segment;--"]


@pytest.mark.parametrize("query", NASTY)
def test_any_string_is_a_valid_keyword_query(searchable: SpeakerMemory, query: str) -> None:
    hits = searchable.search_keyword(query)
    assert isinstance(hits, list)
    for hit in hits:
        assert hit.segment.text in TEXTS


def test_escape_query_quotes_every_word() -> None:
    assert escape_query('say "hi" NEAR(x') == '"say" """hi""" "NEAR(x"'
    assert escape_query("* ( )") is None


def test_keyword_search_finds_words_and_operators_are_literal(searchable: SpeakerMemory) -> None:
    hits = searchable.search_keyword("budget")
    assert {h.segment.text for h in hits} == {TEXTS[0], TEXTS[4]}
    assert all(h.conversation_title.startswith("day") for h in hits)
    assert all(h.score > 0 for h in hits)
    assert {h.segment.text for h in searchable.search_keyword("near misses")} == {TEXTS[3]}
    assert {h.segment.text for h in searchable.search_keyword('"quarterly')} == {TEXTS[2]}
    assert searchable.search_keyword("budget weather") == []  # every word required


def test_keyword_filters(searchable: SpeakerMemory) -> None:
    ann = searchable.resolve_speaker("Ann").id
    by_ann = searchable.search_keyword("budget", SearchFilters(speaker_id=ann))
    assert by_ann and all(h.segment.speaker and h.segment.speaker.id == ann for h in by_ann)
    in_two = searchable.search_keyword("budget", SearchFilters(conversation_id=2))
    assert in_two and {h.segment.conversation_id for h in in_two} == {2}
    since = searchable.search_keyword("budget", SearchFilters(since=T0 + DAY))
    assert {h.segment.conversation_id for h in since} == {2, 3}
    until = searchable.search_keyword("budget", SearchFilters(until=T0 + DAY))
    assert {h.segment.conversation_id for h in until} == {1, 2}
    window = SearchFilters(since=T0 + DAY, until=T0 + DAY)
    assert {h.segment.conversation_id for h in searchable.search_keyword("budget", window)} == {2}
    assert all(h.conversation_recorded_at == T0 + DAY for h in searchable.search_keyword(
        "budget", window))


def test_keyword_pagination(searchable: SpeakerMemory) -> None:
    everything = searchable.search_keyword("budget", limit=100)
    assert len(everything) == 6
    pages = [searchable.search_keyword("budget", limit=4, offset=o) for o in (0, 4, 8)]
    assert [len(p) for p in pages] == [4, 2, 0]
    assert [h.segment.id for p in pages for h in p] == [h.segment.id for h in everything]


def test_semantic_search(searchable: SpeakerMemory) -> None:
    query = text_vector("budget review")
    hits = searchable.search_semantic(query, TEXT_MODEL, limit=3)
    assert hits[0].segment.text == TEXTS[4]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    filtered = searchable.search_semantic(query, TEXT_MODEL, SearchFilters(conversation_id=3))
    assert filtered and {h.segment.conversation_id for h in filtered} == {3}
    ann = searchable.resolve_speaker("ann").id
    by_ann = searchable.search_semantic(query, TEXT_MODEL, SearchFilters(speaker_id=ann))
    assert by_ann and all(h.segment.speaker and h.segment.speaker.id == ann for h in by_ann)
    page = searchable.search_semantic(query, TEXT_MODEL, limit=2, offset=1)
    assert [h.segment.id for h in page] == [
        h.segment.id for h in searchable.search_semantic(query, TEXT_MODEL, limit=3)][1:]
    assert searchable.search_semantic(query, "never-used-model") == []


def test_semantic_search_sees_new_ingests(searchable: SpeakerMemory, voices: Voices) -> None:
    query = text_vector("penguins dancing")
    assert searchable.search_semantic(query, TEXT_MODEL)[0].segment.text != "penguins dancing"
    conversation = searchable.create_conversation(title="zoo")
    searchable.ingest(conversation.id, make_result(voices, ["ann"], 1, texts=["penguins dancing"]))
    assert searchable.search_semantic(query, TEXT_MODEL)[0].segment.text == "penguins dancing"


def test_hybrid_search_fuses_both(searchable: SpeakerMemory) -> None:
    hits = searchable.search_hybrid("coffee", text_vector("coffee machine"), TEXT_MODEL, limit=5)
    assert hits[0].segment.text == TEXTS[5]
    # The semantic side still finds meaning when no word matches.
    fuzzy = searchable.search_hybrid("zzz", text_vector("budget"), TEXT_MODEL, limit=3)
    assert fuzzy and "budget" in fuzzy[0].segment.text


def test_search_errors(searchable: SpeakerMemory) -> None:
    with pytest.raises(ModelMismatch, match="query vector has 3 dimensions"):
        searchable.search_semantic([0.1, 0.2, 0.3], TEXT_MODEL)  # type: ignore[arg-type]
    with pytest.raises(SpeakerNotFound, match="no speaker with id 99"):
        searchable.search_keyword("budget", SearchFilters(speaker_id=99))
    with pytest.raises(ConversationNotFound, match="no conversation 42"):
        searchable.search_keyword("budget", SearchFilters(conversation_id=42))
    with pytest.raises(InvalidOperation, match="'since' is after 'until'"):
        searchable.search_keyword("budget", SearchFilters(since=T0 + DAY, until=T0))
    with pytest.raises(InvalidOperation, match=f"limit must be between 1 and {MAX_PAGE}"):
        searchable.search_keyword("budget", limit=0)
    with pytest.raises(InvalidOperation, match="offset must be 0 or more"):
        searchable.search_keyword("budget", offset=-1)


def test_list_conversations_and_filters(searchable: SpeakerMemory) -> None:
    page = searchable.list_conversations(limit=2)
    assert [c.conversation.title for c in page.items] == ["day 2", "day 1"]
    assert page.total == 3 and page.limit == 2 and page.offset == 0
    assert [c.conversation.title for c in searchable.list_conversations(offset=2).items] == [
        "day 0"]
    ann = searchable.list_conversations(speaker="Ann")
    assert [c.conversation.title for c in ann.items] == ["day 2", "day 0"]
    assert ann.items[0].segment_count == 6
    assert [s.label for s in ann.items[1].speakers] == ["Ann", "Unknown 2"]
    since = searchable.list_conversations(since=T0 + DAY)
    assert since.total == 2
    assert searchable.conversations_by_speaker("Unknown 3").total == 1
    with pytest.raises(SpeakerNotFound):
        searchable.list_conversations(speaker="Nobody")


def test_list_speakers_statistics(searchable: SpeakerMemory) -> None:
    summaries = {s.speaker.label: s for s in searchable.list_speakers()}
    assert set(summaries) == {"Ann", "Unknown 2", "Unknown 3"}
    ann = summaries["Ann"]
    assert (ann.segment_count, ann.conversation_count) == (9, 2)
    assert ann.speech_seconds == pytest.approx(18.0)
    assert ann.last_heard == T0 + 2 * DAY
    assert [s.speaker.label for s in searchable.list_speakers("enrolled")] == ["Ann"]
    with pytest.raises(InvalidOperation, match="kind must be"):
        searchable.list_speakers("robot")  # type: ignore[arg-type]


def test_latest_segments(searchable: SpeakerMemory) -> None:
    latest = searchable.latest_segments(limit=8)
    assert [s.conversation_id for s in latest] == [3] * 6 + [2] * 2
    assert latest[0].start > latest[1].start
    only = searchable.latest_segments(limit=3, conversation_id=1)
    assert [s.conversation_id for s in only] == [1, 1, 1]
    with pytest.raises(ConversationNotFound):
        searchable.latest_segments(conversation_id=77)


def test_get_segment_and_words(searchable: SpeakerMemory) -> None:
    segment = searchable.get_segment(1)
    assert segment.text == TEXTS[0]
    assert [w.word for w in segment.words] == TEXTS[0].split()
    assert segment.words[0].start == segment.start
    from memory.errors import SegmentNotFound

    with pytest.raises(SegmentNotFound, match="no segment 500; the latest segment id is 18"):
        searchable.get_segment(500)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_any_generated_text_is_a_valid_keyword_query(
    searchable: SpeakerMemory, query: str
) -> None:
    # Hypothesis text covers quotes, operators, surrogates' neighbours, NUL and the rest.
    assert isinstance(searchable.search_keyword(query), list)


def test_filtered_semantic_search_through_the_quantised_stage(
    searchable: SpeakerMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memory import vector_index

    query = text_vector("budget review")
    exact = searchable.search_semantic(query, TEXT_MODEL, SearchFilters(conversation_id=2))
    monkeypatch.setattr(vector_index, "EXACT_SCAN_LIMIT", 0)  # force oversampling instead
    sampled = searchable.search_semantic(query, TEXT_MODEL, SearchFilters(conversation_id=2))
    assert [h.segment.id for h in sampled] == [h.segment.id for h in exact]


@sqlite_only
def test_code_loader_reads_what_the_vec0_table_holds(searchable: SpeakerMemory) -> None:
    from memory.vector_index import _load_codes

    with searchable._db.read() as tx:
        ids, codes = _load_codes(tx, 384)
        scanned = dict(tx.stream(text("SELECT rowid, embedding FROM segment_text_bits_384")))
    assert sorted(ids.tolist()) == sorted(scanned)
    assert all(codes[i].tobytes() == scanned[int(sid)] for i, sid in enumerate(ids))


def test_warm_up_loads_search_structures(searchable: SpeakerMemory) -> None:
    searchable.warm_up()
    query = text_vector("budget review")
    assert searchable.search_semantic(query, TEXT_MODEL, limit=1)[0].segment.text == TEXTS[4]


def test_speaker_tallies_count_segments_and_pick_a_clean_example(
    store: SpeakerMemory, voices: Voices
) -> None:
    # ann's segments start at 0, 4.5 and 9.0 s (2 s each, bob's between them); ann's first
    # one is lengthened, and bob talks over it: her example is her longest clean segment.
    from dataclasses import replace

    from inference.types import Turn

    result = make_result(voices, ["ann", "bob"], 6)
    result.segments[0] = replace(result.segments[0], end=2.2)
    result.turns.append(Turn(0.5, 1.8, "SPEAKER_01"))
    conversation = store.create_conversation(title="tally")
    store.ingest(conversation.id, result)
    tallies = store.speaker_tallies(conversation.id)
    detail = store.get_conversation(conversation.id)
    assert [(t.speaker.id, t.segment_count) for t in tallies] == sorted(
        {(s.speaker.id, sum(1 for o in detail.segments if o.speaker == s.speaker))
         for s in detail.segments if s.speaker}, key=lambda pair: (-pair[1], pair[0]))
    ann = next(t for t in tallies if t.example.local_speaker == "SPEAKER_00")
    first = detail.segments[0]
    assert first.overlapped_by and first.end - first.start > ann.example.end - ann.example.start
    assert ann.example.id != first.id and not ann.example.overlapped_by
    with pytest.raises(ConversationNotFound):
        store.speaker_tallies(conversation.id + 1)
