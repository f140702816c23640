"""Property tests of the memory layer's invariants (issue 2, section 5), black-box.

A Hypothesis state machine drives random sequences of ingest / enroll / identify / rename /
merge / misidentify / delete / delete-unknown / reprocess / undo against a real store (a
SQLite file, then PostgreSQL), through the public `SpeakerMemory` API only, and checks after
every step:

- no operation other than ingest changes the number of segments, and none changes any
  segment's text (or words, times, conversation);
- every segment's speaker exists (or is NULL);
- a refused operation (typed `SpeakerMemoryError`) changes nothing;
- identify is idempotent: the same identify again reports `changed=False` and changes nothing;
- undo restores the exact previous state (every exported row of speaker, conversation,
  segment, voiceprint and vector tables, plus what the public queries show);
- merge then undo is a no-op;
- 'Unknown N' labels are stable and never reused; suggestions exist and come strongest first;
  reprocess keeps segment ids and manual assignments.

Plus: any text is a valid keyword query, and regression tests of sequences the machine found.
Deterministic (derandomize) and modest (~20 s); for a longer hunt run the machine with other
settings, e.g. `run_state_machine_as_test(MemoryMachine, settings=settings(max_examples=300))`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from memory import SpeakerMemory
from memory.api import MAX_PAGE
from memory.errors import SpeakerMemoryError
from memory.types import IdentifyResult, IdentityChange, MatchConfig, RebuiltVoice
from tests.memory.backends import Backend, discard, open_memory
from tests.memory.fakes import VOICE_MODEL, Vec, Voices, make_result, unit

T = TypeVar("T")

VOICE_NAMES = ("ann", "bob", "cid", "dee", "eve", "nan")
TWINS = {"nan": ("ann", 0.72)}
"""'nan' sounds like 'ann' (cosine 0.72): below the match threshold, above the suggestion one."""


class TwinVoices(Voices):
    """Voices, plus a few that are deliberately close to another (to reach suggestions)."""

    def voice(self, name: str) -> Vec:
        if name not in TWINS:
            return super().voice(name)
        base, cosine = TWINS[name]
        own = super().voice(name).astype(np.float64)
        near = super().voice(base).astype(np.float64)
        own -= own.dot(near) * near  # orthogonal part, so the cosine is exactly `cosine`
        own /= np.linalg.norm(own)
        return unit(cosine * near + np.sqrt(1 - cosine**2) * own)

NEW_VOICE_MODEL = "fake-voice-2.0"
"""A voice model the store's profiles are rebuilt for."""
NAMES = ("Sarah", "sarah", "Bob", "Alice", "Dr. Who", "Unknown 3", "  ")
# Rows that an identity change may legitimately leave different after its undo:
#   identity_event: history grows (undo marks the event undone), sqlite_sequence: ids are never
#   reused, meta: process bookkeeping (text-index generation).
NOT_STATE = {"identity_event", "sqlite_sequence", "meta"}

Snapshot = dict[str, Any]


def full_state(memory: SpeakerMemory, workdir: Path, conversation_ids: list[int]) -> Snapshot:
    """Everything a user could observe: exported rows and what the public queries return."""
    path = workdir / "snapshot.json"
    memory.export_json(path)
    tables = json.loads(path.read_text(encoding="utf-8"))["tables"]
    rows = {name: t["rows"] for name, t in tables.items() if name not in NOT_STATE}
    speakers = sorted(
        (s.speaker.id, s.speaker.name, s.speaker.kind, s.speaker.label, s.speaker.match_threshold,
         s.speaker.created_at, s.speaker.updated_at, s.segment_count, s.conversation_count,
         round(s.speech_seconds, 6), s.last_heard, s.voiceprint_count)
        for s in memory.list_speakers()
    )
    segments = [
        (s.id, s.conversation_id, s.start, s.end, s.text,
         None if s.speaker is None else (s.speaker.id, s.speaker.label), s.speaker_confidence,
         s.assignment_source, s.excluded_from_profile,
         tuple((w.word, w.start, w.end, w.probability) for w in s.words))
        for cid in conversation_ids
        for s in memory.get_conversation(cid).segments
    ]
    centroids = sorted(
        (v.speaker.id, tuple(np.round(v.centroid, 5).tolist()))
        for v in memory.enrolled_voices(VOICE_MODEL)
    )
    return {"rows": rows, "speakers": speakers, "segments": segments, "centroids": centroids}


def assert_same(before: Snapshot, after: Snapshot, what: str) -> None:
    for key in ("speakers", "segments", "centroids"):
        assert before[key] == after[key], f"{what}: {key} differ"
    for table in before["rows"]:
        assert before["rows"][table] == after["rows"].get(table), f"{what}: table {table} differs"


class MemoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.workdir = Path(tempfile.mkdtemp(prefix="memory-properties-"))
        self.memory = open_memory(self.workdir / "speaker_memory.db")
        self.voices = TwinVoices(seed=11)
        self.new_voices = Voices(seed=12, dim=192)
        self.texts: dict[int, str] = {}
        # everything of a segment that no identity operation may touch, as ingested
        self.content: dict[int, tuple[Any, ...]] = {}
        self.conversation_ids: list[int] = []
        self.recordings = 0
        self.suggested = 0
        self.unknown_numbers: dict[int, int] = {}  # speaker id -> N of its 'Unknown N'
        # (event id, state before it) of identity changes whose undo must restore that state;
        # emptied by ingest, whose new rows an undo does not remove.
        self.undoable: list[tuple[int, Snapshot]] = []

    def teardown(self) -> None:
        self.memory.close()
        discard(self.workdir / "speaker_memory.db")
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------ helpers
    def state(self) -> Snapshot:
        return full_state(self.memory, self.workdir, self.conversation_ids)

    def speaker_ids(self) -> list[int]:
        return [s.speaker.id for s in self.memory.list_speakers()]

    def attempt(self, what: str, op: Callable[[], T]) -> tuple[Snapshot, T | None]:
        """Run one identity operation; a refusal must be typed and change nothing."""
        before = self.state()
        try:
            result = op()
        except SpeakerMemoryError:
            assert_same(before, self.state(), f"refused {what}")
            return before, None
        return before, result

    def remember(self, event_id: int, before: Snapshot) -> None:
        if event_id:
            self.undoable.append((event_id, before))

    def undo_now(
        self, before: Snapshot, change: IdentityChange | IdentifyResult, what: str
    ) -> None:
        undone = self.memory.undo()
        assert undone.event_id == change.event_id
        assert_same(before, self.state(), f"undo of {what}")

    # ------------------------------------------------------------ rules
    @initialize(voices=st.lists(st.sampled_from(VOICE_NAMES), min_size=1, max_size=3, unique=True),
                n=st.integers(2, 6))
    def first_recording(self, voices: list[str], n: int) -> None:
        self.ingest(voices, n)

    @rule(voices=st.lists(st.sampled_from(VOICE_NAMES), min_size=1, max_size=3, unique=True),
          n=st.integers(1, 6), silent=st.booleans())
    def ingest(self, voices: list[str], n: int, silent: bool = False) -> None:
        self.recordings += 1
        result = make_result(self.voices, voices, n, seed=self.recordings)
        if silent:  # a segment the diarizer left without a speaker
            result.segments[-1].local_speaker = None
        conversation = self.memory.create_conversation(title=f"recording {self.recordings}")
        ingested = self.memory.ingest(conversation.id, result)
        assert len(ingested.segment_ids) == n
        assert not set(ingested.segment_ids) & set(self.texts)
        self.texts.update(zip(ingested.segment_ids, (s.text for s in result.segments), strict=True))
        for sid, seg in zip(ingested.segment_ids, result.segments, strict=True):
            self.content[sid] = (
                conversation.id, seg.start, seg.end, seg.text, seg.local_speaker,
                tuple((w.word, w.start, w.end, w.probability) for w in seg.words),
            )
        self.conversation_ids.append(conversation.id)
        self.undoable.clear()

    @rule(voice=st.sampled_from(VOICE_NAMES), name=st.sampled_from(NAMES), n=st.integers(1, 3),
          keep_clip=st.booleans())
    def enroll(self, voice: str, name: str, n: int, keep_clip: bool) -> None:
        clip = str(self.workdir / f"{voice}.wav") if keep_clip else None
        before, result = self.attempt("enroll", lambda: self.memory.enroll(
            name, self.voices.clips(voice, n), VOICE_MODEL, f"clip of {voice}",
            clip_path=clip))
        if result is not None:
            self.remember(result.event_id, before)

    @rule(data=st.data())
    def rebuild_profile(self, data: st.DataObject) -> None:
        """A profile rebuilt for another voice model: once per speaker, no identity event."""
        needing = self.memory.speakers_needing_profile(NEW_VOICE_MODEL)
        if not needing:
            return
        speaker = data.draw(st.sampled_from(needing), label="rebuilt speaker")
        history = self.memory.identity_history()
        voice = RebuiltVoice(NEW_VOICE_MODEL, self.new_voices.clips(speaker.label, 3),
                             "enrollment:0", 10.0)
        assert self.memory.add_rebuilt_profile(speaker.id, NEW_VOICE_MODEL, [voice]) == 4
        assert self.memory.add_rebuilt_profile(speaker.id, NEW_VOICE_MODEL, [voice]) == 0
        assert self.memory.identity_history() == history
        assert speaker.id not in {
            s.id for s in self.memory.speakers_needing_profile(NEW_VOICE_MODEL)}
        # Earlier changes stay undoable, but their undo keeps prints rebuilt from audio it did
        # not move: the state before them is no longer the one to compare with.
        self.undoable.clear()

    @rule(data=st.data(), name=st.sampled_from(NAMES), by_speaker=st.booleans())
    def identify(self, data: st.DataObject, name: str, by_speaker: bool) -> None:
        if by_speaker:
            ids = self.speaker_ids()
            if not ids:
                return
            ref: int = data.draw(st.sampled_from(ids), label="speaker")
            before, result = self.attempt(
                "identify", lambda: self.memory.identify(name, speaker=ref))
        else:
            segment_id = data.draw(st.sampled_from(sorted(self.texts)), label="segment")
            before, result = self.attempt(
                "identify", lambda: self.memory.identify(name, segment_id=segment_id))
        if result is None:
            return
        assert result.changed == (result.event_id != 0)
        config = MatchConfig()
        alive = set(self.speaker_ids())
        assert result.speaker.id in alive
        for merged in result.speakers_merged:
            assert merged.id not in alive, f"{merged.label} reported merged but still exists"
        for suggestion in result.suggestions:
            assert suggestion.speaker.id in alive and suggestion.speaker.id != result.speaker.id
            assert config.for_model(VOICE_MODEL).suggest_threshold <= suggestion.score, suggestion
            self.suggested += 1
        scores = [x.score for x in result.suggestions]
        assert scores == sorted(scores, reverse=True), "suggestions not strongest first"
        after = self.state()
        # Idempotent: naming the same voice the same again changes nothing.
        again = (self.memory.identify(name, speaker=result.speaker.id) if by_speaker
                 else self.memory.identify(name, segment_id=segment_id))
        assert not again.changed, f"identify {name!r} twice changed something the second time"
        assert again.segments_relabelled == 0 and again.speakers_merged == []
        assert again.speaker.id == result.speaker.id
        assert_same(after, self.state(), "repeated identify")
        if result.changed:
            self.remember(result.event_id, before)

    @rule(data=st.data(), name=st.sampled_from(NAMES))
    def rename(self, data: st.DataObject, name: str) -> None:
        ids = self.speaker_ids()
        if not ids:
            return
        sid = data.draw(st.sampled_from(ids), label="speaker")
        before, result = self.attempt("rename", lambda: self.memory.rename(sid, name))
        if result is not None:
            self.remember(result.event_id, before)

    @rule(data=st.data(), undo_at_once=st.booleans())
    def merge(self, data: st.DataObject, undo_at_once: bool) -> None:
        ids = self.speaker_ids()
        if not ids:
            return
        source = data.draw(st.sampled_from(ids), label="source")
        others = [i for i in ids if i != source]
        # mostly two different speakers; sometimes itself, which must be refused cleanly
        itself = not others or data.draw(st.integers(0, 4), label="itself") == 0
        target = source if itself else data.draw(st.sampled_from(others), label="target")
        before, result = self.attempt("merge", lambda: self.memory.merge(source, target))
        if result is None:
            return
        assert source != target
        assert source not in self.speaker_ids()
        if undo_at_once:  # merge then undo is a no-op
            self.undo_now(before, result, "merge")
        else:
            self.remember(result.event_id, before)

    @rule(data=st.data(), to_speaker=st.booleans())
    def mark_misidentified(self, data: st.DataObject, to_speaker: bool) -> None:
        segment_id = data.draw(st.sampled_from(sorted(self.texts)), label="segment")
        ids = self.speaker_ids()
        correct = data.draw(st.sampled_from(ids), label="correct") if to_speaker and ids else None
        before, result = self.attempt(
            "mark_misidentified", lambda: self.memory.mark_misidentified(segment_id, correct))
        if result is None:
            return
        if correct is not None:
            segment = self.memory.get_segment(segment_id)
            assert segment.speaker is not None and segment.speaker.id == correct
        self.remember(result.event_id, before)

    @rule(data=st.data())
    def delete_speaker(self, data: st.DataObject) -> None:
        ids = self.speaker_ids()
        if not ids:
            return
        sid = data.draw(st.sampled_from(ids), label="speaker")
        before, result = self.attempt("delete_speaker", lambda: self.memory.delete_speaker(sid))
        if result is None:
            return
        assert sid not in self.speaker_ids()
        self.remember(result.event_id, before)

    @rule()
    def delete_unknown_speakers(self) -> None:
        before, result = self.attempt("delete_unknown_speakers",
                                      self.memory.delete_unknown_speakers)
        if result is None:
            return
        assert not [s for s in self.memory.list_speakers() if s.speaker.kind == "unknown"]
        self.remember(result.event_id, before)

    @rule(data=st.data())
    def reprocess(self, data: st.DataObject) -> None:
        """Re-matching a recording keeps its segment ids and every manual assignment."""
        cid = data.draw(st.sampled_from(self.conversation_ids), label="conversation")
        manual = {s.id: s.speaker.id for s in self.memory.get_conversation(cid).segments
                  if s.assignment_source == "manual" and s.speaker is not None}
        before, result = self.attempt("reprocess", lambda: self.memory.reprocess(cid))
        if result is None:
            return
        after = {s.id: s for s in self.memory.get_conversation(cid).segments}
        assert sorted(result.segment_ids) == sorted(after)
        for sid, speaker_id in manual.items():
            kept = after[sid].speaker
            assert kept is not None and kept.id == speaker_id, f"manual segment {sid} moved"
        history = self.memory.identity_history(limit=1)
        if history and history[0].action == "reprocess" and not history[0].undone:
            self.remember(history[0].id, before)

    @precondition(lambda self: bool(self.undoable))
    @rule()
    def undo_last(self) -> None:
        """Undo of the latest change restores the exact state before it."""
        event_id, before = self.undoable.pop()
        undone = self.memory.undo()
        assert undone.event_id == event_id
        assert_same(before, self.state(), f"undo of event {event_id}")

    @rule()
    def undo_whatever_is_last(self) -> None:
        """Undo after anything (ingest included): refused cleanly, or applied consistently."""
        before = self.state()
        try:
            undone = self.memory.undo()
        except SpeakerMemoryError:
            assert_same(before, self.state(), "refused undo")
            return
        if self.undoable and self.undoable[-1][0] == undone.event_id:
            assert_same(self.undoable.pop()[1], self.state(), f"undo of event {undone.event_id}")
        else:
            self.undoable.clear()

    # ------------------------------------------------------------ invariants
    @invariant()
    def transcript_is_never_lost(self) -> None:
        stored: dict[int, tuple[Any, ...]] = {}
        for cid in self.conversation_ids:
            for s in self.memory.get_conversation(cid).segments:
                words = tuple((w.word, w.start, w.end, w.probability) for w in s.words)
                stored[s.id] = (s.conversation_id, s.start, s.end, s.text, s.local_speaker, words)
        assert stored.keys() == self.content.keys(), "segments appeared or vanished"
        for sid, content in self.content.items():
            assert stored[sid] == content, f"segment {sid} changed its transcript"
        assert len(self.memory.latest_segments(limit=MAX_PAGE)) == min(MAX_PAGE, len(self.content))

    @invariant()
    def unknown_labels_are_stable_and_never_reused(self) -> None:
        for summary in self.memory.list_speakers(kind="unknown"):
            label = summary.speaker.label
            assert re.fullmatch(r"Unknown [1-9][0-9]*", label), label
            number = int(label.split()[1])
            sid = summary.speaker.id
            if sid in self.unknown_numbers:
                assert self.unknown_numbers[sid] == number, f"speaker {sid} renumbered"
            else:
                owner = [k for k, n in self.unknown_numbers.items() if n == number]
                assert not owner, f"{label} reused: it was speaker {owner[0]}'s"
                self.unknown_numbers[sid] = number

    @invariant()
    def every_segment_speaker_exists(self) -> None:
        ids = set(self.speaker_ids())
        summaries = {s.speaker.id: s.segment_count for s in self.memory.list_speakers()}
        counted: dict[int, int] = {}
        for cid in self.conversation_ids:
            for segment in self.memory.get_conversation(cid).segments:
                if segment.speaker is not None:
                    assert segment.speaker.id in ids, f"segment {segment.id} on a missing speaker"
                    counted[segment.speaker.id] = counted.get(segment.speaker.id, 0) + 1
        for sid, count in summaries.items():
            assert counted.get(sid, 0) == count, f"speaker {sid}: summary says {count} segments"


@pytest.fixture(scope="module")
def searchable(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SpeakerMemory]:
    memory = backend.open(tmp_path_factory.mktemp("search") / "speaker_memory.db")
    voices = Voices(seed=5)
    texts = ['He said "budget" (twice) -- NEAR the end*', "coffee AND deadline OR NOT",
             "l'été à Paris: café crème", "plain words about the river"]
    conversation = memory.create_conversation(title="searchable")
    memory.ingest(conversation.id, make_result(voices, ["ann"], len(texts), texts=texts))
    yield memory
    memory.close()


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40))
def test_any_text_is_a_valid_keyword_query(searchable: SpeakerMemory, query: str) -> None:
    """Quotes, '*', NEAR, AND/OR/NOT, unbalanced parentheses, control characters: never an error."""
    hits = searchable.search_keyword(query, limit=5)
    assert len(hits) <= 5
    for hit in hits:
        assert hit.segment.text


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=st.sampled_from(["budget", "NEAR", "twice", "coffee", "AND", "NOT", "café", "river"]),
       noise=st.sampled_from(["", '"', "*", "(", ")", " -", "^", ":"]))
def test_a_stored_word_is_found_whatever_punctuation_surrounds_it(
    searchable: SpeakerMemory, word: str, noise: str
) -> None:
    hits = searchable.search_keyword(f"{noise}{word}{noise}", limit=5)
    assert any(word.lower() in h.segment.text.lower() for h in hits), (word, noise)


def test_merge_of_a_named_speaker_into_an_unknown_then_undo_is_a_no_op(
    backend: Backend, tmp_path: Path
) -> None:
    """The first sequence the state machine found (shrunk), kept as a fast regression test."""
    memory = backend.open(tmp_path / "speaker_memory.db")
    try:
        voices = Voices(seed=11)
        conversation = memory.create_conversation(title="recording 1")
        ingested = memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 2, seed=1))
        first, second = (d.speaker.id for d in ingested.decisions)
        memory.rename(first, "Sarah")
        before = full_state(memory, tmp_path, [conversation.id])
        merged = memory.merge(first, second)
        undone = memory.undo()
        assert undone.event_id == merged.event_id
        assert_same(before, full_state(memory, tmp_path, [conversation.id]), "undo of merge")
        assert memory.resolve_speaker("Sarah").id == first
    finally:
        memory.close()


def test_a_misidentified_segment_is_not_pulled_back_by_propagation(
    backend: Backend, tmp_path: Path
) -> None:
    """The user said "that segment was not this voice": naming the voice later must not fold the
    segment back into it (propagation merging the new unknown would silently undo the user's
    correction)."""
    memory = backend.open(tmp_path / "speaker_memory.db")
    try:
        voices = Voices(seed=3)
        conversation = memory.create_conversation(title="recording 1")
        ingested = memory.ingest(conversation.id, make_result(voices, ["ann", "bob"], 6, seed=1))
        ann = ingested.decisions[0].speaker.id
        segment_id = ingested.segment_ids[0]
        memory.mark_misidentified(segment_id)
        moved_to = memory.get_segment(segment_id).speaker
        assert moved_to is not None and moved_to.id != ann

        named = memory.identify("Sarah", speaker=ann)

        segment = memory.get_segment(segment_id)
        pulled_back = segment.speaker is not None and segment.speaker.id == named.speaker.id
        assert not pulled_back, (
            f"segment {segment_id}, marked as not speaker {ann}'s and moved to {moved_to.label}, "
            f"is back on {named.speaker.label} (merged: "
            f"{[s.label for s in named.speakers_merged]})"
        )
    finally:
        memory.close()


MACHINE_SETTINGS = settings(
    max_examples=50,
    stateful_step_count=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_memory_invariants(backend: Backend) -> None:
    """The state machine, on each backend."""
    run_state_machine_as_test(MemoryMachine, settings=MACHINE_SETTINGS)
