"""The Procrastinate job queue's own logic, on a real PostgreSQL with the fake pipeline: a
server App queues, a worker App (another process in production: a thread here) runs, and a
second server App reads progress and cancels. The multi-process scenario with the real
models is tests/server/test_server_workers.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.postgres import TestPostgres
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools import processing
from tools.context import App
from tools.inputs import audio_from_path
from tools.procrastinate_queue import ProcessingWorker
from tools.queues import processing_queue
from tools.settings import Settings

TURNS = [Turn("uma", "Shall we start with the budget?"), Turn("vic", "Yes, the budget first.")]
TIMEOUT_S = 60.0


@pytest.fixture
def settings(postgres: TestPostgres, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=postgres.url_for(str(tmp_path)),
                    job_queue="procrastinate", audio_store_dir=tmp_path / "shared",
                    worker_heartbeat_seconds=0.5, worker_stalled_seconds=2)


@pytest.fixture
def apps(settings: Settings, fake: FakePipeline, tmp_path: Path) -> Iterator[list[App]]:
    """Two API servers' Apps and a worker's, on one database and one audio store."""
    (tmp_path / "shared").mkdir()
    built = [App(settings, pipeline=fake, start_dir=tmp_path) for _ in range(3)]
    try:
        yield built
    finally:
        for app in built:
            app.close()


def run_worker(app: App) -> threading.Thread:
    """A worker that takes the queued jobs and stops when the queue is empty."""
    worker = ProcessingWorker(app)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run(
        ["processing"], "test-worker", wait=False, install_signal_handlers=False)))
    thread.start()
    return thread


def queue_call(server: App, fake: FakePipeline) -> processing.Started:
    """The scripted call, sent to `server` as a file in its inbox."""
    path = fake.recording(server.settings.inbox_dir / "call.wav", TURNS)
    return processing.start_processing(server, audio_from_path(server, str(path)),
                                       processing.ProcessOptions())


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_queued_on_one_server_runs_on_a_worker_and_both_servers_see_it(
    apps: list[App], fake: FakePipeline, postgres: TestPostgres, tmp_path: Path
) -> None:
    server, other, worker_app = apps
    fake.gate = threading.Event()
    started = queue_call(server, fake)
    cid = started.conversation_id
    # The audio went into the shared store; the conversation records it there.
    stored = Path(server.memory.get_conversation_info(cid).audio_path or "")
    assert stored.parent == server.settings.audio_dir.resolve() and stored.is_file()
    assert processing.processing_status(other, cid).status == "queued"
    thread = run_worker(worker_app)
    # The worker's progress, read by the server that did not queue the job.
    eventually(lambda: processing.processing_status(other, cid).stage == "transcribing")
    assert processing.processing_status(other, cid).progress == pytest.approx(0.3 * 0.95)
    fake.gate.set()
    thread.join(TIMEOUT_S)
    status = processing.processing_status(other, cid)
    assert status.status == "done"
    summary = processing.summarise(server, cid)
    assert summary.status == "done" and len(summary.speakers) == 2
    assert [s.new for s in summary.speakers] == [True, True]  # the worker's decisions
    assert started.job is not None and started.job.state().done
    assert [n for n in started.job.state().notes if n[0] == "info"][-1] == ("info", "done")
    assert fake.runs == 1

    # The same job run again, as the stalled-job retry queues the job of a worker that died
    # after its ingest committed: it stores nothing more.
    segments = len(server.memory.get_conversation(cid).segments)
    with postgres.connect() as conn:
        conn.execute(f"SET search_path = {postgres.schema_for(str(tmp_path))}, public")
        conn.execute("UPDATE procrastinate_jobs SET status = 'todo', attempts = attempts + 1 "
                     "WHERE lock = %s", (f"conversation {cid}",))
    run_worker(worker_app).join(TIMEOUT_S)
    assert fake.runs == 1
    assert len(server.memory.get_conversation(cid).segments) == segments
    assert processing.processing_status(other, cid).status == "done"


def test_a_queued_job_cancelled_on_another_server_never_runs(
    apps: list[App], fake: FakePipeline
) -> None:
    server, other, worker_app = apps
    cid = queue_call(server, fake).conversation_id
    processing.cancel_processing(other, cid)
    info = server.memory.get_conversation_info(cid)
    assert info.status == "failed" and "cancelled before it started" in (info.error or "")
    run_worker(worker_app).join(TIMEOUT_S)
    assert fake.runs == 0
    # Sending it again processes it.
    again = queue_call(server, fake)
    assert again.conversation_id == cid and again.job is not None
    run_worker(worker_app).join(TIMEOUT_S)
    assert processing.processing_status(other, cid).status == "done"


def test_a_running_job_cancelled_stops_and_stores_nothing(
    apps: list[App], fake: FakePipeline
) -> None:
    server, other, worker_app = apps
    fake.gate = threading.Event()
    cid = queue_call(server, fake).conversation_id
    thread = run_worker(worker_app)
    eventually(lambda: processing.processing_status(other, cid).stage == "transcribing")
    processing.cancel_processing(other, cid)
    # The worker hears of it (and says so), then the job stops at its next stage.
    job = processing_queue(other).get(cid)
    assert job is not None
    eventually(lambda: ("info", "cancel requested: stopping before the next stage")
               in job.state().notes)
    assert fake.gate is not None
    fake.gate.set()
    thread.join(TIMEOUT_S)
    info = server.memory.get_conversation_info(cid)
    assert info.status == "failed" and "cancelled" in (info.error or "")
    assert server.memory.get_conversation(cid).segments == []
    assert processing.processing_status(server, cid).status == "failed"



def test_workers_delete_finished_jobs_and_the_conversations_keep_their_state(
    apps: list[App], fake: FakePipeline, postgres: TestPostgres, tmp_path: Path
) -> None:
    server, other, worker_app = apps
    done = queue_call(server, fake).conversation_id
    run_worker(worker_app).join(TIMEOUT_S)
    cancelled = processing.start_processing(
        server, audio_from_path(server, str(fake.recording(
            server.settings.inbox_dir / "second.wav", TURNS, frequency=330.0))),
        processing.ProcessOptions()).conversation_id
    processing.cancel_processing(other, cancelled)

    def jobs() -> int:
        with postgres.connect() as conn:
            conn.execute(f"SET search_path = {postgres.schema_for(str(tmp_path))}, public")
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
            return int(row[0]) if row else 0

    worker = ProcessingWorker(worker_app)

    async def clean_up() -> None:
        async with worker.queue.open_async():
            await worker.remove_finished_jobs()

    asyncio.run(clean_up())  # finished_job_hours = 24: both are recent
    assert jobs() == 2
    worker_app.settings = worker_app.settings.model_copy(update={"finished_job_hours": 0})
    asyncio.run(clean_up())
    assert jobs() == 0
    assert processing.processing_status(other, done).status == "done"
    assert len(processing.summarise(other, done).speakers) == 2
    assert processing.processing_status(other, cancelled).status == "failed"
