"""A running job as the command line shows it on stderr: a bar with the time left on a
terminal; on anything else (a pipe, a log file) one line at each 10% step, not a redraw every
poll. The job's fraction is proportional to the work done (inference.pipeline), so the time
left is the time so far scaled by what remains."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from server.jobs import POLL_SECONDS

if TYPE_CHECKING:
    from tools.job_queue import JobHandle

BAR_WIDTH = 30
STEP = 0.1
"""A non-terminal gets a line each time the job passes a multiple of this."""
MIN_FRACTION_FOR_ETA = 0.01
"""Below this, the time left would be a guess from almost nothing: none is shown."""


def follow(
    job: JobHandle, stream: TextIO, *, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Show the job's progress on `stream` until it ends; a finished job ends at 100%."""
    tty = stream.isatty()
    started = clock()
    shown_step = -1
    width = 0
    while True:
        now = job.state()  # done is read first: its last fraction is then final
        finished, fraction, stage = now.done, now.fraction, now.stage
        left = time_left(fraction, clock() - started)
        if tty:
            line = bar(fraction, stage, left)
            stream.write("\r" + line.ljust(width))
            width = max(width, len(line))
        elif (step := math.floor(fraction / STEP + 1e-9)) > shown_step:
            shown_step = step
            stream.write(f"... {step * STEP:.0%} {stage}{_left(left)}\n")
        stream.flush()
        if finished:
            break
        sleep(POLL_SECONDS)
    if tty:
        stream.write("\n")
        stream.flush()


def bar(fraction: float, stage: str, left: float | None) -> str:
    filled = round(fraction * BAR_WIDTH)
    return f"[{'#' * filled}{' ' * (BAR_WIDTH - filled)}] {fraction:4.0%} {stage}{_left(left)}"


def time_left(fraction: float, elapsed: float) -> float | None:
    """Seconds left if the rest goes at the pace so far; None before there is a pace."""
    if not MIN_FRACTION_FOR_ETA <= fraction < 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def _left(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f", about {clock} left"
