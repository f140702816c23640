"""Warnings raised while a job runs (a model falling back, audio skipped) are kept on the job,
so that a transport can pass them on to the client that waits for it (MCP: log notifications).
They still go to stderr like every other log record: this only adds a copy.

The job a record belongs to is a context variable, set by JobRunner around the job's work;
work that fans out to helper threads carries the context along (inference.pipeline does).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.context import Job

running_job: ContextVar[Job | None] = ContextVar("running_job", default=None)
"""The job whose work is running in this context, if any."""


class JobWarnings(logging.Handler):
    """Copies WARNING and worse records to the running job's notes."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        job = running_job.get()
        if job is not None:
            job.note(record.levelname.lower(), record.getMessage())


_installed = JobWarnings()


def capture_job_warnings() -> None:
    """Install the handler on the root logger, once per process."""
    root = logging.getLogger()
    if _installed not in root.handlers:
        root.addHandler(_installed)
