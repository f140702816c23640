"""A live session's own logic on the deterministic fake world (tests/tools/fake_live.py): words
confirmed as two passes agree, segments stored with their speakers at once, a voice named
mid-session, the buffer kept short, and finalisation keeping ids and manual labels. The store
is real; the audio, the Whisper passes and the voice vectors are the fake world's."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import numpy as np
import pytest

from memory.errors import ConversationNotReady, NotListening, TooManyLiveSessions
from tests.tools.fake_live import BLOCK
from tests.tools.fake_pipeline import FakePipeline, voice_vector
from tools import deletion, live, processing
from tools.context import App
from tools.live_session import LiveEvent, LiveSession

TURNS = [
    ("ann", "good morning everyone shall we start"),
    ("bob", "yes the budget is ready"),
    ("ann", "great thanks bob"),
    ("bob", "one more thing about the schedule"),
]


def feed(session: LiveSession, samples: np.ndarray, upto: float | None = None) -> None:
    """Push audio in word-sized frames, as a paced client would (faster than real time)."""
    end = len(samples) if upto is None else int(upto * 16000)
    for i in range(0, end, BLOCK):
        session.push(samples[i:min(i + BLOCK, end)])


def wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def no_follow(job: Any) -> None:
    while not job.done:
        await anyio.sleep(0.02)


def finals(events: list[LiveEvent]) -> list[dict[str, Any]]:
    """Each segment as its latest `final` event has it (an open segment is sent again as it
    grows), in the order the segments began."""
    latest: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "final":
            latest[event.data["segment_id"]] = event.data
    return list(latest.values())


def test_a_session_names_known_voices_and_keeps_new_ones_stable(
    app: App, fake: FakePipeline
) -> None:
    ann = app.memory.enroll("Ann", [voice_vector("ann", i) for i in range(3)],
                            fake.voice_model_id, "ann.wav", 20.0).speaker
    audio = fake.live_script(TURNS).audio()
    session = live.start_session(app, "standup", "test")
    events: list[LiveEvent] = []
    events += session.subscribe(events.append)
    feed(session, audio)
    anyio.run(live.stop_listening, app, session.conversation_id, no_follow)

    said = finals(events)
    assert " ".join(f["text"] for f in said).split() == " ".join(t for _, t in TURNS).split()
    assert all(f["complete"] for f in said)
    # A segment goes out with its first confirmed words, then again as it grows, same id.
    sent = [e.data for e in events if e.type == "final"]
    assert any(not f["complete"] for f in sent) and len(sent) > len(said)
    for f in sent:
        whole = next(w for w in said if w["segment_id"] == f["segment_id"])
        assert whole["text"].startswith(f["text"])
    labels = [f["speaker"]["label"] for f in said]
    assert labels[0] == "Ann" and said[0]["speaker"]["id"] == ann.id
    bob_labels = {f["speaker"]["label"] for f in said if "budget" in f["text"]
                  or "schedule" in f["text"]}
    assert bob_labels == {"Unknown 1"}  # a new voice, the same label all session
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "started" and events[-1].type == "stopped"
    assert fake.live_window().longest <= 30.0 + 5.0


def test_naming_a_voice_mid_session_reaches_the_next_events_and_survives_finalising(
    app: App, fake: FakePipeline
) -> None:
    audio = fake.live_script(TURNS).audio()
    session = live.start_session(app, None, "test")
    events: list[LiveEvent] = []
    events += session.subscribe(events.append)
    # Up to the end of the second turn (bob), with the pause after it; then the room is
    # quiet for a while (a microphone keeps sending silence).
    second_end = (6 + 5) * 0.4 + 2 * 1.2
    feed(session, audio, upto=second_end)
    feed(session, np.zeros(BLOCK * 12, np.float32))
    wait_for(lambda: any("budget" in f["text"] for f in finals(events)))
    bob_segment = next(f for f in finals(events) if "budget" in f["text"])
    ann_segment = finals(events)[0]
    # A person names bob's voice, and says ann's first segment was someone else (Carol).
    app.memory.identify("Bob", segment_id=bob_segment["segment_id"])
    app.memory.identify("Carol", segment_id=ann_segment["segment_id"])
    feed(session, audio[int(second_end * 16000) // BLOCK * BLOCK:])
    result = anyio.run(live.stop_listening, app, session.conversation_id, no_follow)

    later = [f for f in finals(events) if "schedule" in f["text"]]
    assert later and later[0]["speaker"]["label"] == "Bob"
    updates = [e.data for e in events if e.type == "speaker_update"]
    assert any(bob_segment["segment_id"] in u["segment_ids"]
               and u["speaker"]["label"] == "Bob" for u in updates)
    # Finalised: the ids the events gave still point at the same words, with the labels
    # the person gave.
    assert result.status == "done"
    stored = {s.id: s for s in app.memory.get_conversation(session.conversation_id).segments}
    assert "budget" in stored[bob_segment["segment_id"]].text
    assert stored[bob_segment["segment_id"]].speaker.label == "Bob"
    assert stored[ann_segment["segment_id"]].speaker.label == "Carol"
    assert stored[ann_segment["segment_id"]].text.startswith("good morning")
    assert app.memory.live_sessions() == []


class Rendezvous:
    """A session's Whisper pass that, the first time, waits until the other session's pass is
    running too (a barrier): passes taken in turn would never meet, and the session fails.
    It also counts how many passes of its own session run at once (must stay 1)."""

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        self.inner = inner
        self.barrier = barrier
        self.met = False
        self.inside = 0
        self.most_inside = 0

    def transcribe_window(self, samples: np.ndarray, prompt: str) -> Any:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if not self.met:
                self.barrier.wait()
                self.met = True
            time.sleep(0.01)  # a pass takes time: a second one of this session would overlap
            return self.inner.transcribe_window(samples, prompt)
        finally:
            self.inside -= 1


def test_two_sessions_pass_side_by_side_and_each_one_in_order(
    app: App, fake: FakePipeline
) -> None:
    assert app.settings.live_parallel_passes == 2
    audio = fake.live_script(TURNS).audio()
    barrier = threading.Barrier(2, timeout=10)
    sessions, passes, said = [], [], []
    for title in ("left", "right"):
        session = live.start_session(app, title, "test")
        passes.append(Rendezvous(session.stream.transcriber, barrier))
        session.stream.transcriber = passes[-1]
        heard: list[LiveEvent] = []
        heard += session.subscribe(heard.append)
        said.append(heard)
        sessions.append(session)
    for session in sessions:
        feed(session, audio)
    for session in sessions:
        anyio.run(live.stop_listening, app, session.conversation_id, no_follow)
    assert all(p.met for p in passes)  # the two sessions' passes ran at the same time
    assert [p.most_inside for p in passes] == [1, 1]  # a session is stepped by one thread
    words = " ".join(t for _, t in TURNS).split()
    for heard, session in zip(said, sessions, strict=True):
        assert session.error is None
        assert " ".join(f["text"] for f in finals(heard)).split() == words


def test_limits_and_polling(app: App, fake: FakePipeline) -> None:
    audio = fake.live_script(TURNS).audio()
    app.settings.live_max_sessions = 1
    session = live.start_session(app, None, "test")
    with pytest.raises(TooManyLiveSessions, match="LIVE_MAX_SESSIONS"):
        live.start_session(app, None, "test")
    feed(session, audio)
    wait_for(lambda: len(live.live_transcript(app, None, 0).events) > 3)
    page = live.live_transcript(app, None, 0)
    assert page.events[0].type == "started"
    newer = live.live_transcript(app, session.conversation_id, page.next_since)
    assert all(e.seq > page.next_since for e in newer.events)
    with pytest.raises(ConversationNotReady, match="stop_listening first"):
        deletion.delete_conversation(app, session.conversation_id)
    anyio.run(live.stop_listening, app, None, no_follow)
    with pytest.raises(NotListening, match="no live session"):
        live.live_transcript(app, None, 0)
    # Once finalised it can be deleted, its recording with it.
    recording = session.recorder.path
    assert recording.exists()
    assert deletion.delete_conversation(app, session.conversation_id).audio_deleted
    assert not recording.exists()


def die_with_a_session_open(app: App, fake: FakePipeline) -> tuple[int, list[int]]:
    """A session hears two turns, then its process "dies": the session is dropped without
    stopping; the recording's header was last written at a flush, and the store still lists
    the session as open. Returns (conversation id, the segment ids it sent as final)."""
    audio = fake.live_script(TURNS[:2]).audio()
    session = live.start_session(app, None, "test")
    events: list[LiveEvent] = []
    events += session.subscribe(events.append)
    feed(session, audio)
    feed(session, np.zeros(BLOCK * 12, np.float32))  # the room goes quiet
    wait_for(lambda: len(finals(events)) >= 2)
    app.live.scheduler.close()
    session.recorder.flush()
    app.live._sessions.clear()
    return session.conversation_id, [f["segment_id"] for f in finals(events)]


def finalised_left_open(app: App, conversation_id: int) -> None:
    assert live.finalise_left_open(app) == [conversation_id]
    job = app.jobs.get(conversation_id)
    assert job is not None
    wait_for(lambda: job.done)


def test_a_session_left_open_by_a_dead_process_is_finalised_later(
    app: App, fake: FakePipeline
) -> None:
    cid, seen = die_with_a_session_open(app, fake)
    assert [s.conversation_id for s in app.memory.live_sessions()] == [cid]
    finalised_left_open(app, cid)
    stored = app.memory.get_conversation(cid)
    assert stored.conversation.status == "done"
    assert set(seen) <= {s.id for s in stored.segments}


def test_a_failed_finalising_says_to_finalise_again_and_stop_listening_does(
    app: App, fake: FakePipeline
) -> None:
    cid, _ = die_with_a_session_open(app, fake)
    world, fake.live = fake.live, None  # the offline pipeline now refuses the recording
    finalised_left_open(app, cid)
    status = processing.processing_status(app, cid)
    assert status.status == "failed"
    assert f"call stop_listening with conversation_id {cid}" in status.message
    fake.live = world
    result = anyio.run(live.stop_listening, app, cid, no_follow)
    assert result.status == "done"
    assert app.memory.get_conversation_info(cid).status == "done"
