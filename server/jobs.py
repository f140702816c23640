"""Waiting on a processing job from an async transport, relaying its progress and its notes
(stages, warnings) as it goes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio

from tools.job_queue import JobHandle
from tools.processing import Follow

log = logging.getLogger(__name__)

ProgressSink = Callable[[float, str], Awaitable[None]]
"""Receives (fraction 0-1, stage) whenever either changes."""

LogSink = Callable[[str, str], Awaitable[None]]
"""Receives each of the job's notes once, in order (level, message): 'info' for each stage it
entered, 'warning' (or worse) for each warning it logged."""

POLL_SECONDS = 0.2


async def follow_job(
    job: JobHandle, seconds: float, on_progress: ProgressSink | None = None,
    on_log: LogSink | None = None,
) -> None:
    """Wait up to `seconds` for the job (it goes on in the background after that)."""
    deadline = time.monotonic() + max(0.0, seconds)
    last: tuple[str, float] | None = None
    told = 0
    while True:
        # A job run by a worker elsewhere is read from the database: off the event loop.
        now = await anyio.to_thread.run_sync(job.state)
        state = (now.stage, round(now.fraction, 2))
        if on_log is not None:
            while told < len(now.notes):
                level, message = now.notes[told]
                told += 1
                await _tell(on_log(level, f"{_name(job)}: {message}"))
        if on_progress is not None and state != last:
            last = state
            await _tell(on_progress(state[1], state[0]))
        if now.done or time.monotonic() >= deadline:
            return
        await anyio.sleep(POLL_SECONDS)


def following(seconds: float | None, on_progress: ProgressSink | None = None,
              on_log: LogSink | None = None) -> Follow:
    """A tools flow's `follow`: wait up to `seconds` relaying progress and notes, or (None)
    return at once, the job going on in the background."""
    async def follow(job: JobHandle) -> None:
        if seconds is not None:
            await follow_job(job, seconds, on_progress, on_log)

    return follow


async def _tell(report: Awaitable[None]) -> None:
    try:
        await report
    except Exception:  # the client may not accept progress or logs; the work goes on
        log.debug("progress or log report failed", exc_info=True)


def _name(job: JobHandle) -> str:
    return f"conversation {job.key}" if isinstance(job.key, int) else str(job.key)
