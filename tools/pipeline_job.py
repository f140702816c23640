"""A recording's processing job: the pipeline over its audio, then its result stored, with
progress reported on the job as it goes. Whichever runner runs it (tools.local_queue in this
process, tools.procrastinate_queue in a worker) calls `run_pipeline_job`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inference.types import PipelineResult
from memory.errors import JobCancelled, SpeakerMemoryError
from memory.types import IngestResult
from tools.context import App, Job
from tools.inputs import AudioFile, discard_stored_copy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessOptions:
    title: str | None = None
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    language: str | None = None
    recorded_at: datetime | None = None
    """Overrides the file's own time (modification time) when given."""


def run_local_job(app: App, job: Job, audio: AudioFile, options: ProcessOptions) -> None:
    """A recording's job on this process's thread pool (tools.local_queue)."""
    def discard_audio() -> None:
        # A failed upload's bytes would otherwise stay for good (hundreds of MB each); sending
        # the same audio again brings them back for the retry. (A retry whose upload lands in
        # the instant between the failure and this deletion fails again, and says so.)
        if not app.settings.keep_failed_audio and discard_stored_copy(app, audio.path):
            log.info("deleted the stored audio of failed conversation %d", job.key)

    run_pipeline_job(app, job, audio.path, options,
                     store=lambda result: app.memory.ingest(int(job.key), result),
                     after_failure=discard_audio)


def run_pipeline_job(
    app: App, job: Job, path: Path, options: ProcessOptions, *,
    store: Callable[[PipelineResult], IngestResult | None], after_failure: Callable[[], None],
) -> None:
    """A conversation's job: the pipeline over its recording, then `store` its result (a new
    recording's ingest, or a live session's finalisation). A failure is recorded on the
    conversation (status 'failed' with the reason), then `after_failure` runs."""
    conversation_id = int(job.key)
    memory = app.memory
    try:
        _stop_if_cancelled(job)  # cancelled while it was queued
        memory.set_conversation_status(conversation_id, "processing")
        job.report(0.0, "loading models")
        pipeline = app.pipeline
        enrolled = memory.enrolled_voices(pipeline.voice_model_id)
        result = pipeline.run(
            path,
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
            language=options.language,  # None: the pipeline uses settings.language
            enrolled=enrolled,
            progress=lambda fraction, stage: _pipeline_progress(job, fraction, stage),
        )
        _stop_if_cancelled(job)
        job.report(PIPELINE_SHARE, "storing")
        job.ingest = store(result)
        job.report(1.0, "done")
    except Exception as exc:
        if isinstance(exc, SpeakerMemoryError):
            reason = str(exc)
            log.info("processing conversation %d failed: %s", conversation_id, reason)
        else:
            reason = f"internal error ({type(exc).__name__}: {exc}); see the server log"
            log.exception("processing conversation %d crashed", conversation_id)
        job.report(job.fraction, "cancelled" if isinstance(exc, JobCancelled) else "failed")
        try:
            memory.set_conversation_status(conversation_id, "failed", error=reason)
        except Exception:
            log.exception("could not mark conversation %d failed", conversation_id)
        after_failure()


PIPELINE_SHARE = 0.95
"""The pipeline's part of a processing job; storing its result is the rest."""


def _pipeline_progress(job: Job, fraction: float, stage: str) -> None:
    _stop_if_cancelled(job)
    # The pipeline's own end is not the job's ('storing' follows): the job says 'done' once.
    if fraction < 1.0:
        job.report(PIPELINE_SHARE * fraction, stage)


def _stop_if_cancelled(job: Job) -> None:
    """A cancelled job stops here, before its next stage (nothing is stored)."""
    if job.abort.is_set():
        raise JobCancelled("processing was cancelled on request; send the same audio "
                           "again to process it")
