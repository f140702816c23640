"""Processing jobs on a Procrastinate queue (settings.job_queue = 'procrastinate'): the queue
lives in the store's own PostgreSQL, so a deployment adds no service. API servers queue a
conversation's job (ProcrastinateQueue); `speaker-memory worker` processes on any machine
take jobs from it (ProcessingWorker), each loading its models once for all the jobs it runs.

- Once per conversation: the job's `lock` is the conversation, so two attempts never run at
  once, and its `queueing_lock` keeps a second API server from queueing it twice.
- A worker that dies (kill -9, a lost machine) stops sending heartbeats; every worker looks
  for jobs of workers silent for settings.worker_stalled_seconds and queues them again.
  Ingest is one transaction that refuses a conversation with segments, so an attempt that
  died before it committed left nothing behind, and one that died after left the
  conversation done: the retry then stores nothing (no duplicate, no lost segment).
- Progress: the worker writes the job's stage, fraction and notes to the store
  (memory.job_progress); every API server reads them from there.
- Cancel: procrastinate's abort request; the worker sees it and stops before its next stage.
- Audio travels as a key of the shared audio store (tools.audio_store).
- The queue's tables do not grow without end: workers delete jobs finished more than
  settings.finished_job_hours ago (succeeded, failed, cancelled or aborted alike); what a
  conversation became is in the store, not in its job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job as QueueJob
from procrastinate.schema import SchemaManager
from sqlalchemy.engine import make_url

from memory.errors import (
    ConversationNotFound,
    InvalidOperation,
    SpeakerMemoryError,
    SpeakerNotFound,
)
from memory.job_progress import DecisionIds, JobProgress
from memory.types import IngestResult, MatchDecision, Suggestion
from tools.audio_store import DirectoryAudioStore
from tools.context import App, Job
from tools.inputs import AudioFile
from tools.job_queue import JobState
from tools.joblog import running_job
from tools.pipeline_job import ProcessOptions, run_pipeline_job
from tools.settings import Settings

log = logging.getLogger(__name__)

PROCESS_TASK = "speaker_memory.process_conversation"
SCHEMA_LOCK_KEY = 0x5350_4B52_5155_45  # "SPKRQUE": one server or worker creates the schema
UNFINISHED = ("todo", "doing")
PUBLISH_SECONDS = 0.5
"""How often a worker writes a running job's progress (when it changed) and checks whether
it was asked to stop."""
CLEANUP_SECONDS = 600.0
"""How often each worker deletes the jobs finished long enough ago."""


def conninfo(database_url: str) -> str:
    """libpq's spelling of the store's SQLAlchemy URL (the same server, user and options)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def queue_app(settings: Settings) -> procrastinate.App:
    """A Procrastinate app on the store's database, its schema created if missing."""
    if not settings.database_url:  # Settings refuses this combination; say so all the same
        raise InvalidOperation("the procrastinate job queue needs a PostgreSQL DATABASE_URL")
    info = conninfo(settings.database_url)
    _ensure_schema(info)
    return procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=info, min_size=1, max_size=4))


def _ensure_schema(info: str) -> None:
    # Servers and workers start together: one of them creates the queue's tables, under a
    # lock, and the others find them.
    with psycopg.connect(info) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is None or row[0] is None:
            log.info("creating the procrastinate job queue's tables")
            conn.execute(SchemaManager.get_schema())


def _lock(conversation_id: int) -> str:
    return f"conversation {conversation_id}"


def _options_payload(options: ProcessOptions) -> dict[str, Any]:
    # What the pipeline needs; title and time were stored with the conversation already.
    return {"num_speakers": options.num_speakers, "min_speakers": options.min_speakers,
            "max_speakers": options.max_speakers, "language": options.language}


def _options_from(payload: dict[str, Any]) -> ProcessOptions:
    return ProcessOptions(num_speakers=payload.get("num_speakers"),
                          min_speakers=payload.get("min_speakers"),
                          max_speakers=payload.get("max_speakers"),
                          language=payload.get("language"))


class ProcrastinateQueue:
    """An API server's side: queues jobs, reads where they stand, cancels them."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._store = DirectoryAudioStore(app.settings.audio_dir)
        self._queue = queue_app(app.settings)
        self._queue.open()

    def receive(self, audio: AudioFile) -> AudioFile:
        key = self._store.put(audio.path, audio.sha256)
        return replace(audio, path=Path(self._store.location(key)))

    def submit(self, conversation_id: int, audio: AudioFile,
               options: ProcessOptions) -> Job | QueuedJob:
        # A retry's old stages and warnings go before it is queued (a worker may start at once).
        self._app.memory.save_job_progress(JobProgress(conversation_id, "queued", 0.0))
        try:
            self._queue.configure_task(
                PROCESS_TASK, queue=self._app.settings.job_queue_name,
                lock=_lock(conversation_id), queueing_lock=_lock(conversation_id),
            ).defer(conversation_id=conversation_id, audio_key=audio.path.name,
                    options=_options_payload(options))
        except AlreadyEnqueued:
            log.info("conversation %d is queued already (another server queued it)",
                     conversation_id)
        return QueuedJob(self, conversation_id)

    def get(self, conversation_id: int) -> Job | QueuedJob | None:
        local = self._app.jobs.get(conversation_id)  # a live session's finalisation runs here
        if local is not None:
            return local
        return QueuedJob(self, conversation_id) if self.latest(conversation_id) else None

    def cancel(self, conversation_id: int) -> bool:
        local = self._app.jobs.get(conversation_id)
        if local is not None and not local.done:
            local.request_abort()
            return True
        job = self.latest(conversation_id)
        if job is None or job.status not in UNFINISHED or job.id is None:
            return False
        manager = self._queue.job_manager
        if not manager.cancel_job_by_id(job.id, abort=True):
            return False
        if manager.get_job_status(job.id) == procrastinate.jobs.Status.CANCELLED:
            # It never started: no worker will say it failed, so this server does.
            reason = ("processing was cancelled before it started; send the same audio "
                      "again to process it")
            self._app.memory.set_conversation_status(conversation_id, "failed", error=reason)
            self._app.memory.save_job_progress(JobProgress(conversation_id, "cancelled", 0.0))
            if not self._app.settings.keep_failed_audio:
                self._store.delete(str(job.task_kwargs["audio_key"]))
        return True

    def latest(self, conversation_id: int) -> QueueJob | None:
        """The conversation's most recent job in the queue."""
        jobs = self._queue.job_manager.list_jobs(lock=_lock(conversation_id), task=PROCESS_TASK)
        return max(jobs, key=lambda job: job.id or 0, default=None)

    def progress(self, conversation_id: int) -> JobProgress | None:
        return self._app.memory.job_progress(conversation_id)

    def decisions(self, progress: JobProgress) -> list[MatchDecision]:
        """The worker's ingest decisions with today's speakers (one merged or deleted since
        is left out: its flags would name a speaker that is gone)."""
        memory = self._app.memory
        found = []
        for d in progress.decisions:
            try:
                suggestion = (None if d.suggested_id is None else
                              Suggestion(memory.resolve_speaker(d.suggested_id),
                                         d.suggested_score or 0.0))
                found.append(MatchDecision(d.local_label, memory.resolve_speaker(d.speaker_id),
                                           d.score, d.created, suggestion))
            except SpeakerNotFound:
                continue
        return found

    def close(self) -> None:
        self._queue.close()


class QueuedJob:
    """A conversation's job in the queue, as any API server sees it."""

    def __init__(self, queue: ProcrastinateQueue, conversation_id: int) -> None:
        self._queue = queue
        self.key = conversation_id

    @property
    def ingest(self) -> IngestResult | None:
        """The decisions of the worker's ingest (segment ids are the store's to give)."""
        progress = self._queue.progress(self.key)
        if progress is None or not progress.decisions:
            return None
        return IngestResult(conversation_id=self.key, segment_ids=[],
                            decisions=self._queue.decisions(progress))

    def state(self) -> JobState:
        job = self._queue.latest(self.key)  # first: the progress read after it is then final
        done = job is None or job.status not in UNFINISHED
        progress = self._queue.progress(self.key)
        if progress is None:
            return JobState("queued", 0.0, (), done)
        return JobState(progress.stage, progress.fraction, progress.notes, done)


class ProgressPublisher:
    """While a worker runs a job: writes its progress to the store when it changes, and
    turns the queue's abort request into the job's own (tools.pipeline_job stops on it)."""

    def __init__(self, app: App, job: Job, context: JobContext) -> None:
        self._app = app
        self._job = job
        self._context = context
        self._stop = threading.Event()
        self._written: JobState | None = None
        self._thread = threading.Thread(target=self._run, name="sm-progress", daemon=True)

    def __enter__(self) -> ProgressPublisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._publish()  # the last stage ('done', 'failed') before the queue marks it finished

    def _run(self) -> None:
        while not self._stop.wait(PUBLISH_SECONDS):
            if self._context.should_abort():
                self._job.request_abort()
            self._publish()

    def _publish(self) -> None:
        now = self._job.state()
        if now == self._written:
            return
        ingest = self._job.ingest  # set once stored: its decisions go with the last report
        decisions = tuple(
            DecisionIds(d.local_label, d.speaker.id, d.score, d.created,
                        d.suggestion.speaker.id if d.suggestion else None,
                        d.suggestion.score if d.suggestion else None)
            for d in (ingest.decisions if ingest else []))
        try:
            self._app.memory.save_job_progress(JobProgress(
                int(self._job.key), now.stage, now.fraction, now.notes, decisions))
            self._written = now
        except Exception:  # progress is for display: the job goes on
            log.warning("could not record the progress of conversation %s", self._job.key,
                        exc_info=True)


class ProcessingWorker:
    """One worker process: one App (one pipeline, models loaded once) serving job after job."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._store = DirectoryAudioStore(app.settings.audio_dir)
        self.queue = queue_app(app.settings)
        self.queue.task(name=PROCESS_TASK, pass_context=True)(self.process)

    async def run(self, queues: Sequence[str], name: str | None = None, *,
                  wait: bool = True, install_signal_handlers: bool = True) -> None:
        """Take jobs until stopped (SIGTERM, SIGINT: the running job finishes first), or with
        `wait` False until the queue is empty."""
        settings = self._app.settings
        async with self.queue.open_async():
            watcher = asyncio.create_task(self._look_after_queue())
            try:
                await self.queue.run_worker_async(
                    queues=list(queues), concurrency=1,  # a job holds the CPU (or the GPU)
                    name=name or f"{socket.gethostname()}-{os.getpid()}",
                    update_heartbeat_interval=settings.worker_heartbeat_seconds,
                    stalled_worker_timeout=settings.worker_stalled_seconds,
                    wait=wait, install_signal_handlers=install_signal_handlers,
                )
            finally:
                watcher.cancel()

    def process(self, context: JobContext, conversation_id: int, audio_key: str,
                options: dict[str, Any]) -> None:
        """The task: one conversation's job (run on a thread of the worker's)."""
        app = self._app
        try:
            info = app.memory.get_conversation_info(conversation_id)
        except ConversationNotFound:
            log.info("conversation %d was deleted before its job ran", conversation_id)
            return
        if info.status == "done":
            log.info("conversation %d was stored by an earlier attempt whose worker stopped "
                     "before the queue heard of it; nothing to do", conversation_id)
            return
        log.info("%s takes conversation %d (attempt %d)", context.worker_name,
                 conversation_id, context.job.attempts + 1)
        job = Job(conversation_id)
        token = running_job.set(job)  # its warnings become the job's notes
        try:
            with ProgressPublisher(app, job, context):
                self._run(job, audio_key, _options_from(options))
        finally:
            running_job.reset(token)

    def _run(self, job: Job, audio_key: str, options: ProcessOptions) -> None:
        app = self._app
        conversation_id = int(job.key)

        def discard_audio() -> None:
            if not app.settings.keep_failed_audio and self._store.delete(audio_key):
                log.info("deleted the stored audio of failed conversation %d", conversation_id)

        try:
            with self._store.open(audio_key) as path:
                run_pipeline_job(app, job, path, options,
                                 store=lambda result: self._ingest_once(conversation_id, result),
                                 after_failure=discard_audio)
        except SpeakerMemoryError as exc:  # the audio is not in the store
            job.report(job.fraction, "failed")
            app.memory.set_conversation_status(conversation_id, "failed", error=str(exc))

    def _ingest_once(self, conversation_id: int, result: Any) -> IngestResult | None:
        try:
            return self._app.memory.ingest(conversation_id, result)
        except InvalidOperation:
            # Ingest refuses a conversation that has segments, in the transaction that would
            # add them: another attempt (its worker thought dead) stored it first.
            if self._app.memory.get_conversation_info(conversation_id).status == "done":
                log.warning("conversation %d was stored by another attempt meanwhile; this "
                            "one adds nothing", conversation_id)
                return None
            raise

    async def _look_after_queue(self) -> None:
        """Every heartbeat, retry stalled jobs; every CLEANUP_SECONDS, delete old ones."""
        cleaned = float("-inf")
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._app.settings.worker_heartbeat_seconds)
            await self._retry_stalled()
            if loop.time() - cleaned >= CLEANUP_SECONDS:
                cleaned = loop.time()
                await self.remove_finished_jobs()

    async def remove_finished_jobs(self) -> None:
        """Delete the jobs that finished more than settings.finished_job_hours ago (every
        worker may; deleting twice deletes nothing more)."""
        try:
            await self.queue.job_manager.delete_old_jobs(
                nb_hours=self._app.settings.finished_job_hours, include_failed=True,
                include_cancelled=True, include_aborted=True)
        except ConnectorException:
            log.warning("could not delete old finished jobs", exc_info=True)

    async def _retry_stalled(self) -> None:
        """Queue again the jobs of workers that stopped sending heartbeats (every worker
        looks; the first to retry a job wins, the others find it retried)."""
        settings = self._app.settings
        manager = self.queue.job_manager
        try:
            stalled = await manager.get_stalled_jobs(
                task_name=PROCESS_TASK, seconds_since_heartbeat=settings.worker_stalled_seconds)
        except ConnectorException:
            log.warning("could not look for stalled jobs", exc_info=True)
            return
        for job in stalled:
            try:
                await manager.retry_job(job)
            except ConnectorException:
                continue  # another worker retried it first
            log.warning("the worker running conversation %s stopped answering; its job "
                        "is queued again", job.task_kwargs.get("conversation_id"))
