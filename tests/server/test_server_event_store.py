"""The resumable-stream event store on a real SQLite file: bounds, sessions kept apart, a
replay that follows its stream to the response, and events that outlive a restart (and what a
client resuming across one is answered)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification, JSONRPCResponse

from server.after_restart import INTERRUPTED, replay_after_restart
from server.event_store import EventLog

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def progress(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress",
                               params={"progressToken": 1, "progress": n})


def answer(request_id: int) -> JSONRPCResponse:
    return JSONRPCResponse(jsonrpc="2.0", id=request_id, result={"ok": True})


class Received:
    def __init__(self) -> None:
        self.events: list[EventMessage] = []

    async def __call__(self, event: EventMessage) -> None:
        self.events.append(event)

    @property
    def messages(self) -> list[JSONRPCMessage]:
        return [e.message for e in self.events]


def open_log(path: Path, clock: Clock | None = None, max_events: int = 1000) -> EventLog:
    return EventLog(path, max_events=max_events, max_age_seconds=60, clock=clock or Clock())


async def test_replays_what_followed_the_last_event_then_ends_at_the_response(
    tmp_path: Path,
) -> None:
    events = open_log(tmp_path / "events.db").for_session("a")
    priming = await events.store_event("1", None)
    first = await events.store_event("1", progress(1))
    await events.store_event("1", progress(2))
    await events.store_event("1", answer(1))

    after_priming = Received()
    assert await events.replay_events_after(priming, after_priming) is None
    assert after_priming.messages == [progress(1), progress(2), answer(1)]

    after_first = Received()
    assert await events.replay_events_after(first, after_first) is None
    assert after_first.messages == [progress(2), answer(1)]
    assert [e.event_id for e in after_first.events] == sorted(
        {e.event_id for e in after_first.events}, key=int)


async def test_sessions_never_see_each_others_events(tmp_path: Path) -> None:
    log = open_log(tmp_path / "events.db")
    alice, bob = log.for_session("alice"), log.for_session("bob")
    # Both clients number their requests alike: the same stream id "1".
    alice_start = await alice.store_event("1", None)
    bob_start = await bob.store_event("1", None)
    await alice.store_event("1", progress(10))
    await bob.store_event("1", progress(20))
    await alice.store_event("1", answer(1))
    await bob.store_event("1", answer(1))

    seen = Received()
    assert await alice.replay_events_after(alice_start, seen) is None
    assert seen.messages == [progress(10), answer(1)]
    # Another session's event id is unknown here: nothing is replayed.
    nothing = Received()
    assert await alice.replay_events_after(bob_start, nothing) is None
    assert nothing.events == []


async def test_a_replay_follows_its_stream_until_the_response(tmp_path: Path) -> None:
    events = open_log(tmp_path / "events.db").for_session("a")
    start = await events.store_event("7", None)
    await events.store_event("7", progress(1))
    seen = Received()
    ended = anyio.Event()

    async def replay() -> None:
        assert await events.replay_events_after(start, seen) is None
        ended.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(replay)
        await anyio.sleep(0.05)
        assert seen.messages == [progress(1)] and not ended.is_set()  # still following
        await events.store_event("7", progress(2))
        await events.store_event("8", progress(99))  # another request's stream
        await events.store_event("7", answer(7))
        with anyio.fail_after(5):
            await ended.wait()
    assert seen.messages == [progress(1), progress(2), answer(7)]


async def test_the_standalone_stream_is_handed_back_after_its_replay(tmp_path: Path) -> None:
    events = open_log(tmp_path / "events.db").for_session("a")
    start = await events.store_event(GET_STREAM_KEY, None)
    await events.store_event(GET_STREAM_KEY, progress(1))
    seen = Received()
    assert await events.replay_events_after(start, seen) == GET_STREAM_KEY
    assert seen.messages == [progress(1)]


async def test_bounded_by_count_oldest_first(tmp_path: Path) -> None:
    log = open_log(tmp_path / "events.db", max_events=5)
    events = log.for_session("a")
    ids = [await events.store_event("1", progress(n)) for n in range(8)]
    assert log.count() == 5
    seen = Received()
    assert await events.replay_events_after(ids[0], seen) is None  # dropped: nothing to replay
    assert seen.events == []
    kept = Received()
    with anyio.move_on_after(0.2):  # no response stored: the replay would follow on
        await events.replay_events_after(ids[3], kept)
    assert kept.messages == [progress(4), progress(5), progress(6), progress(7)]


async def test_bounded_by_age(tmp_path: Path) -> None:
    clock = Clock()
    log = open_log(tmp_path / "events.db", clock)
    events = log.for_session("a")
    old = await events.store_event("1", progress(1))
    clock.now += 61  # past max_age_seconds
    await events.store_event("2", progress(2))
    assert log.count() == 1
    seen = Received()
    assert await events.replay_events_after(old, seen) is None
    assert seen.events == []


async def test_events_outlive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    before = open_log(path)
    events = before.for_session("a")
    start = await events.store_event("1", None)
    await events.store_event("1", progress(1))
    await events.store_event("1", answer(1))
    before.close()

    after = open_log(path)
    seen = Received()
    assert await after.for_session("a").replay_events_after(start, seen) is None
    assert seen.messages == [progress(1), answer(1)]
    fresh = await after.for_session("b").store_event("1", None)
    assert int(fresh) > int(start)  # ids are never reused


async def test_a_file_of_another_layout_is_recreated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "events.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE event (something TEXT)")
        db.execute("PRAGMA user_version=99")
    log = open_log(path)
    events = log.for_session("a")
    start = await events.store_event("1", None)
    await events.store_event("1", answer(1))
    seen = Received()
    assert await events.replay_events_after(start, seen) is None
    assert seen.messages == [answer(1)]


async def test_after_a_restart_a_stream_ends_with_what_was_stored_or_interrupted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    clock = Clock()
    before = open_log(path, clock)
    events = before.for_session("old")
    finished = await events.store_event("1", None)
    await events.store_event("1", answer(1))
    cut = await events.store_event("2", None)
    await events.store_event("2", progress(5))
    before.close()

    clock.now += 1  # the server comes back
    after = open_log(path, clock)
    assert replay_after_restart(after, "old", "nonsense") is None
    assert replay_after_restart(after, "other", finished) is None  # not that session's event
    current = await after.for_session("new").store_event("1", None)
    assert replay_after_restart(after, "new", current) is None  # this process's: the SDK's

    done = replay_after_restart(after, "old", finished)
    assert done is not None and done.media_type == "text/event-stream"
    assert bytes(done.body).decode().count("data: ") == 1  # the stored answer, nothing added
    interrupted = replay_after_restart(after, "old", cut)
    assert interrupted is not None
    lines = [line for line in bytes(interrupted.body).decode().splitlines()
             if line.startswith("data: ")]
    assert len(lines) == 2 and '"progress":5' in lines[0]
    ending = json.loads(lines[1].removeprefix("data: "))
    assert ending["id"] == 2 and ending["error"]["message"] == INTERRUPTED
