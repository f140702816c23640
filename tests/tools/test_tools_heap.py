"""tools.heap: long-lived objects are frozen out of the collector's full passes, once there
are many of them, and a finished job is such a moment."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tools import heap
from tools.context import Job, JobRunner


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's own heap goes back to the collector


def test_a_large_old_generation_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "FREEZE_ABOVE", 40_000)
    kept = [[i] for i in range(50_000)]  # long-lived objects, tracked by the collector
    gc.collect()  # they reach the oldest generation
    assert gc.get_freeze_count() == 0
    assert heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert len(gc.get_objects(generation=2)) == 0  # nothing left for a full pass to walk


def test_a_small_old_generation_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.collect()
    monkeypatch.setattr(heap, "FREEZE_ABOVE", len(gc.get_objects(generation=2)) + 100_000)
    assert not heap.settle()
    assert gc.get_freeze_count() == 0


def test_garbage_is_collected_before_freezing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "FREEZE_ABOVE", 0)

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    gc.collect()
    gc.disable()  # the cycle must still be there when settle runs
    try:
        Node()
        assert any(type(o) is Node for o in gc.get_objects())
        assert heap.settle()
    finally:
        gc.enable()
    assert not any(type(o) is Node for o in gc.get_objects())  # collected, not frozen


def test_a_finished_job_settles_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "FREEZE_ABOVE", 0)
    runner = JobRunner(workers=1)
    try:
        def work(job: Job) -> None:
            job.outcome = [[i] for i in range(1000)]

        job = runner.submit("job", work)
        assert job.future is not None
        job.future.result(timeout=30)
        assert gc.get_freeze_count() > 0
    finally:
        runner.shutdown()
