"""Many machines, on one: 2 API servers and 3 `speaker-memory worker` processes share one
PostgreSQL (the job queue and the memory) and one shared audio folder, all real subprocesses
running the real bundled models on short clips of tests/data.

- 12 recordings, each uploaded to both servers at once: 12 conversations, each processed
  exactly once (one queue job, succeeded; one set of segments);
- progress is read from the store, so both servers report every job's stage;
- a worker killed with SIGKILL in the middle of a job: another worker runs it again after
  the dead one's heartbeat goes stale, and the conversation ends done, with its segments
  stored once;
- identity operations sent to both servers at once leave every invariant holding;
- an MCP client gets progress notifications from a server whose job a worker runs.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from inference.device import cuda_available
from memory import SpeakerMemory
from tests.postgres import TestPostgres
from tests.server.tests_support import REPO, child_env, running_server
from tests.testdata import DATA

pytestmark = [pytest.mark.slow, pytest.mark.models]

SERVERS = 2
WORKERS = 3
FILES = 12
CLIP_SECONDS = 8.0
TIMEOUT_S = 900.0
"""Generous: 3 workers load the models on 2 shared cores before the first job moves."""
STALLED_SECONDS = 5.0


def clips(folder: Path, first: int = 0, count: int = FILES) -> list[Path]:
    """Different recordings: overlapping windows of the two-speaker sample call, `count` of
    them from window `first` (FILES + 1 windows in all)."""
    folder.mkdir(exist_ok=True)
    with wave.open(str(DATA / "sample_call.wav")) as source:
        rate, width, channels = source.getframerate(), source.getsampwidth(), source.getnchannels()
        frames = source.readframes(source.getnframes())
    step = width * channels
    total = len(frames) // step
    window = int(CLIP_SECONDS * rate)
    stride = (total - window) // FILES
    paths = []
    for i in range(first, first + count):
        path = folder / f"call-{i:02d}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(width)
            out.setframerate(rate)
            out.writeframes(frames[i * stride * step:(i * stride + window) * step])
        paths.append(path)
    return paths


async def process_over_mcp(base: str, path: str) -> tuple[dict[str, Any], list[float]]:
    reported: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=TIMEOUT_S)) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool("process_audio", {"path": path},
                                        progress_callback=on_progress)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content), reported


def worker(folder: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (folder / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "worker", "--name", name], cwd=REPO,
        env=child_env(folder / name, **env, SPEAKER_MEMORY_LOG_LEVEL="INFO"),
        stdout=log, stderr=subprocess.STDOUT)


def wait_for(what: str, check: Callable[[], bool], logs: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                              for p in sorted(logs.glob("*.log")))
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.2)


@pytest.fixture
def cluster(postgres: TestPostgres, tmp_path: Path) -> Iterator[dict[str, Any]]:
    url = postgres.url_for(str(tmp_path / "cluster"))
    shared = tmp_path / "shared-audio"
    shared.mkdir()
    env = {"SPEAKER_MEMORY_DATABASE_URL": url, "SPEAKER_MEMORY_JOB_QUEUE": "procrastinate",
           "SPEAKER_MEMORY_AUDIO_STORE_DIR": str(shared),
           "SPEAKER_MEMORY_WORKER_HEARTBEAT_SECONDS": "1",
           "SPEAKER_MEMORY_WORKER_STALLED_SECONDS": str(STALLED_SECONDS)}
    with ExitStack() as stack:
        bases = []
        for i in range(SERVERS):
            folder = tmp_path / f"server-{i}"
            folder.mkdir()
            bases.append(stack.enter_context(running_server(folder, None, **env))[1])
        workers: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(WORKERS):
            name = f"worker-{i}"
            workers[name] = worker(tmp_path, name, env)
        try:
            yield {"url": url, "bases": bases, "workers": workers, "logs": tmp_path,
                   "schema": postgres.schema_for(str(tmp_path / "cluster")),
                   "postgres": postgres}
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers.values():
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def sql(cluster: dict[str, Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    postgres: TestPostgres = cluster["postgres"]
    with postgres.connect() as conn:
        conn.execute(f"SET search_path = {cluster['schema']}, public")
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def taken(logs: Path) -> dict[str, list[int]]:
    """Which conversations each worker's log says it took, in order."""
    found: dict[str, list[int]] = {}
    for path in logs.glob("worker-*.log"):
        found[path.stem] = [int(n) for n in re.findall(r"takes conversation (\d+)",
                                                        path.read_text())]
    return found


def test_two_servers_and_three_workers_process_every_file_once(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    bases: list[str] = cluster["bases"]
    logs: Path = cluster["logs"]
    files = clips(tmp_path)

    def upload(base: str, path: Path) -> int:
        with path.open("rb") as handle:
            answer = httpx.post(f"{base}/api/v1/conversations", timeout=120,
                                files={"file": (path.name, handle, "audio/wav")})
        assert answer.status_code in (200, 202), answer.text
        conversation_id: int = answer.json()["conversation_id"]
        return conversation_id

    # Every file to both servers at once: each becomes one conversation, whichever wins.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda job: (job[1], upload(*job)),
                                [(base, path) for path in files for base in bases]))
    by_file: dict[Path, set[int]] = {}
    for path, conversation_id in answers:
        by_file.setdefault(path, set()).add(conversation_id)
    assert all(len(ids) == 1 for ids in by_file.values()), by_file
    conversations = sorted(next(iter(ids)) for ids in by_file.values())
    assert len(set(conversations)) == FILES

    # Kill a worker in the middle of its first job (the models load inside it: seconds).
    victim, killed = "", 0
    def a_worker_is_busy() -> bool:
        nonlocal victim, killed
        for name, ids in taken(logs).items():
            if ids and sql(cluster, "SELECT status FROM conversation WHERE id = %s",
                           ids[-1])[0][0] == "processing":
                victim, killed = name, ids[-1]
                return True
        return False
    wait_for("a worker to start a job", a_worker_is_busy, logs)
    cluster["workers"][victim].send_signal(signal.SIGKILL)
    cluster["workers"][victim].wait(timeout=30)
    assert sql(cluster, "SELECT status FROM conversation WHERE id = %s", killed)[0][0] \
        == "processing", "the job ended before its worker was killed: nothing was tested"

    # Both servers report the jobs' stages while they run, then every one done.
    stages: dict[str, set[str]] = {base: set() for base in bases}

    def all_done() -> bool:
        statuses = []
        for i, conversation_id in enumerate(conversations):
            base = bases[i % len(bases)]
            answer = httpx.get(f"{base}/api/v1/conversations/{conversation_id}/status",
                               timeout=30).json()
            if answer.get("stage"):
                stages[base].add(answer["stage"])
            statuses.append(answer["status"])
        assert "failed" not in statuses and "interrupted" not in statuses, statuses
        return all(status == "done" for status in statuses)
    wait_for("every conversation to be done", all_done, logs)
    assert all(stages[base] - {"queued"} for base in bases), stages

    # Exactly once: one queue job per conversation, succeeded; the killed one retried.
    jobs = sql(cluster, "SELECT lock, status, attempts FROM procrastinate_jobs "
                        "WHERE task_name = 'speaker_memory.process_conversation'")
    assert sorted(lock for lock, _, _ in jobs) == sorted(f"conversation {c}"
                                                         for c in conversations)
    assert {status for _, status, _ in jobs} == {"succeeded"}
    attempts = {lock: n for lock, _, n in jobs}
    assert attempts[f"conversation {killed}"] >= 1
    assert any(killed in ids for name, ids in taken(logs).items() if name != victim)
    # One set of segments each: no segment twice, none lost (each clip has speech).
    per_conversation = dict(sql(
        cluster, "SELECT conversation_id, count(*) FROM segment GROUP BY conversation_id"))
    assert sorted(per_conversation) == conversations
    duplicated = sql(cluster, "SELECT conversation_id, start FROM segment "
                              "GROUP BY conversation_id, start HAVING count(*) > 1")
    assert duplicated == []
    assert len(sql(cluster, "SELECT id FROM conversation")) == FILES

    # Identity operations at once through both servers: every invariant holds after.
    memory = SpeakerMemory(tmp_path / "unused.db", database_url=cluster["url"])
    try:
        segments_before = sum(per_conversation.values())
        speakers = [s.speaker.id for s in memory.list_speakers()]
        segment_ids = [r[0] for r in sql(cluster, "SELECT id FROM segment ORDER BY id")]
        names = ["Ann", "Bob", "Cy"]
        calls: list[tuple[str, str, dict[str, Any]]] = []
        for i, segment_id in enumerate(segment_ids[:24]):
            calls.append(("POST", f"/api/v1/segments/{segment_id}/identify",
                          {"speaker_name": names[i % len(names)]}))
        for a, b in zip(speakers[0::2], speakers[1::2], strict=False):
            calls.append(("POST", f"/api/v1/speakers/{a}/merge", {"into": b}))

        def send(i: int) -> int:
            method, path, body = calls[i]
            answer = httpx.request(method, f"{bases[i % len(bases)]}{path}", json=body,
                                   timeout=120)
            assert answer.status_code < 500, answer.text
            return answer.status_code
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(send, range(len(calls))))
        assert codes.count(200) > len(calls) // 2, codes

        listed = memory.list_speakers()
        labels = [s.speaker.label for s in listed]
        assert len(labels) == len(set(labels)), "two speakers show the same label"
        counted = dict(sql(cluster, "SELECT speaker_id, count(*) FROM segment "
                                    "GROUP BY speaker_id"))
        counted.pop(None, None)  # a segment with no voice to go by has no speaker
        assert {s.speaker.id: s.segment_count for s in listed if s.segment_count} == counted
        assert sum(counted.values()) == segments_before
    finally:
        memory.close()

    # An MCP client on the second server waits for a recording a worker processes: the
    # progress notifications come from the worker's reports in the store.
    inbox = tmp_path / "server-1" / "data" / "inbox"
    extra = clips(tmp_path / "extra", first=FILES, count=1)[0]
    extra.replace(inbox / extra.name)
    result, reported = anyio.run(process_over_mcp, bases[1], extra.name)
    assert result["status"] == "done", result
    assert len(set(reported)) > 2, reported  # several stages, not just the end


def test_a_worker_refuses_to_start_without_the_shared_queue_or_its_gpu(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "server.cli", "worker"], cwd=REPO,
                          env=child_env(tmp_path / "data"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "SPEAKER_MEMORY_JOB_QUEUE=procrastinate" in done.stderr
    queued = child_env(tmp_path / "data", SPEAKER_MEMORY_JOB_QUEUE="procrastinate")
    done = subprocess.run([sys.executable, "-m", "server.cli", "worker"], cwd=REPO, env=queued,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "SPEAKER_MEMORY_DATABASE_URL=postgresql+psycopg://" in done.stderr
    if not cuda_available():  # (the development machines and CI have no GPU)
        # A GPU worker without one would take GPU jobs and run them on the CPU.
        queued["SPEAKER_MEMORY_DATABASE_URL"] = "postgresql+psycopg://nobody@/never-opened"
        done = subprocess.run([sys.executable, "-m", "server.cli", "worker", "--device",
                               "cuda"], cwd=REPO, env=queued, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2
        assert "torch sees no GPU" in done.stderr
