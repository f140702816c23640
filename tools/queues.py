"""The App's processing queue, chosen by settings.job_queue and built on first use (the
procrastinate one opens a connection pool: a process that never processes opens none)."""

from __future__ import annotations

import threading

from tools.context import App
from tools.job_queue import ProcessingQueue

_building = threading.Lock()


def processing_queue(app: App) -> ProcessingQueue:
    if app.processing is None:
        with _building:
            if app.processing is None:
                app.processing = _build(app)
    return app.processing


def _build(app: App) -> ProcessingQueue:
    if app.settings.job_queue == "procrastinate":
        from tools.procrastinate_queue import ProcrastinateQueue

        return ProcrastinateQueue(app)
    from tools.local_queue import LocalQueue

    return LocalQueue(app)
