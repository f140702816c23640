"""Waiting on a processing job from an async transport, relaying its progress as it goes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio

from tools.context import Job

log = logging.getLogger(__name__)

ProgressSink = Callable[[float, str], Awaitable[None]]
"""Receives (fraction 0-1, stage) whenever either changes."""

POLL_SECONDS = 0.2


async def follow_job(job: Job, seconds: float, on_progress: ProgressSink | None = None) -> None:
    """Wait up to `seconds` for the job (it goes on in the background after that)."""
    deadline = time.monotonic() + max(0.0, seconds)
    last: tuple[str, float] | None = None
    while True:
        finished = job.done
        state = (job.stage, round(job.fraction, 2))
        if on_progress is not None and state != last:
            last = state
            try:
                await on_progress(state[1], state[0])
            except Exception:  # the client may not accept progress; the work goes on
                log.debug("progress report failed", exc_info=True)
        if finished or time.monotonic() >= deadline:
            return
        await anyio.sleep(POLL_SECONDS)
