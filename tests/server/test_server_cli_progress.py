"""The command line's progress display, driven step by step (a scripted job and clock)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from server.cli_progress import bar, follow, time_left
from tools.context import Job


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def scripted(job: Job, steps: list[tuple[float, str]]) -> tuple[Iterator[None], list[float]]:
    """Each poll's sleep moves the job (and a clock, 10 s a poll) to its next step; after the
    last one the job ends."""
    now = [0.0]
    future: Future[None] = Future()
    job.future = future

    def moves() -> Iterator[None]:
        for fraction, stage in steps:
            now[0] += 10.0
            job.report(fraction, stage)
            yield None
        future.set_result(None)
        yield None

    return moves(), now


def run(job: Job, steps: list[tuple[float, str]], stream: io.StringIO) -> str:
    moves, now = scripted(job, steps)
    follow(job, stream, sleep=lambda _: next(moves), clock=lambda: now[0])
    return stream.getvalue()


STEPS = [(0.02, "decoding"), (0.12, "transcribing and diarizing"), (0.15, "transcribing"),
         (0.5, "transcribing"), (0.97, "storing"), (1.0, "done")]


def test_a_pipe_gets_a_line_at_each_ten_percent_step_with_the_time_left() -> None:
    out = run(Job(1), STEPS, io.StringIO())
    assert out.splitlines() == [
        "... 0% queued",
        "... 10% transcribing and diarizing, about 2:27 left",  # 20 s for 12%
        "... 50% transcribing, about 0:40 left",
        "... 90% storing, about 0:02 left",
        "... 100% done",
    ]


def test_a_terminal_gets_one_bar_redrawn_that_ends_full() -> None:
    out = run(Job(1), STEPS, Terminal())
    frames = out.split("\r")[1:]
    assert len(frames) == len(STEPS) + 2  # before the first step, each step, once ended
    assert frames[-1].rstrip("\n").rstrip() == f"[{'#' * 30}] 100% done"
    assert out.endswith("\n") and "0:40 left" in frames[4]
    # A shorter line wipes what a longer one left behind.
    assert len({len(f.rstrip("\n")) for f in frames[3:]}) == 1


def test_a_failed_job_does_not_claim_to_be_complete() -> None:
    out = run(Job(1), [(0.3, "transcribing"), (0.3, "failed")], io.StringIO())
    assert out.splitlines()[-1] == "... 30% transcribing, about 0:23 left"
    assert "100%" not in out


@pytest.mark.parametrize(("fraction", "elapsed", "left"), [
    (0.0, 5.0, None), (0.005, 5.0, None), (0.25, 10.0, 30.0), (1.0, 60.0, None)])
def test_time_left_is_the_pace_so_far_over_what_remains(
    fraction: float, elapsed: float, left: float | None
) -> None:
    assert time_left(fraction, elapsed) == left


def test_a_bar_of_an_hour_long_wait_shows_hours() -> None:
    assert bar(0.5, "transcribing", 3725.0).endswith("50% transcribing, about 1:02:05 left")
