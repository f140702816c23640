"""`App`: what every tool shares in one process — Settings, the SpeakerMemory store, the audio
pipeline (built lazily, once: models load on first use) and a job runner, so that processing
runs on worker threads and never blocks tools that only read."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memory.api import SpeakerMemory
from memory.types import IngestResult
from tools.heap import settle
from tools.job_queue import JobKey, JobState, ProcessingQueue
from tools.joblog import capture_job_warnings, running_job
from tools.live_session import LiveHub
from tools.pipeline import PipelineLike, build_pipeline
from tools.query_vectors import QueryVectors
from tools.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class Job:
    """One piece of background work on a worker thread: a conversation being processed, or a
    job over the whole store (tools.rebuild)."""

    key: JobKey
    stage: str = "queued"
    fraction: float = 0.0
    ingest: IngestResult | None = None
    outcome: object | None = None
    """What a store-wide job has produced so far (tools.rebuild: its tally)."""
    error: str | None = None
    """Why a store-wide job failed (processing jobs record it on their conversation)."""
    exclusive: bool = False
    """Jobs submitted while this one runs wait until it ends (see JobRunner.submit)."""
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set to ask the job to stop at its next safe point (jobs that can stop check it);
    the runner's shutdown sets it (a processing job finishes all the same)."""
    abort: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set by cancel_processing: a processing job stops at its next stage and fails as
    cancelled."""
    future: Future[None] | None = field(default=None, repr=False)
    notes: list[tuple[str, str]] = field(default_factory=list, repr=False)
    """(level, message), oldest first: each stage the job entered ('info'), and the warnings
    logged while it ran (tools.joblog); at most MAX_NOTES. What a waiting client is told."""

    MAX_NOTES = 1000

    def note(self, level: str, message: str) -> None:
        # Called from worker threads; appending to a list is atomic in CPython.
        if len(self.notes) < self.MAX_NOTES:
            self.notes.append((level, message))

    def report(self, fraction: float, stage: str) -> None:
        # Called from the worker thread; plain attribute writes are atomic enough for a display.
        if stage != self.stage:
            self.note("info", stage)  # kept: a stage may be over before anyone looks
        self.stage = stage
        self.fraction = max(0.0, min(1.0, fraction))

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def request_abort(self) -> None:
        """cancel_processing: stop before the next stage (tools.pipeline_job checks)."""
        if not self.abort.is_set():
            self.abort.set()
            self.note("info", "cancel requested: stopping before the next stage")

    def state(self) -> JobState:
        finished = self.done  # read first: what is read after it is then final
        return JobState(self.stage, self.fraction, tuple(self.notes), finished)


JOB_NICENESS = 10
"""How much lower than the server's own the CPU priority of background work is (Linux `nice`
steps). Reads are what a waiting agent sees; processing is batch work. At equal priority a
recording being processed took the cores from reads, whose p99 went from 0.26 s to 1.7 s with
32 clients (scripts/bench_load.py); at +10 the scheduler gives reads about nine tenths of the
CPU when both want it, and processing still gets every cycle reads leave."""


def lower_priority() -> None:
    """Lower the calling thread's CPU priority by JOB_NICENESS. Threads it starts afterwards
    (the pipeline's pool, the models' own thread pools) inherit it. Only where the system
    allows one thread's priority to be set (Linux); elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread,
                       os.getpriority(os.PRIO_PROCESS, thread) + JOB_NICENESS)
    except OSError as exc:  # e.g. a sandbox that forbids it: the work runs as before
        log.debug("background work keeps its CPU priority: %s", exc)


class JobRunner:
    """A small thread pool for background work (audio processing, profile rebuilds), with
    per-job progress. Its threads run at a lower CPU priority than the server's (JOB_NICENESS)."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sm-job",
                                        initializer=lower_priority)
        self._jobs: dict[JobKey, Job] = {}
        self._lock = threading.Lock()

    KEEP_FINISHED = 256
    """Finished jobs remembered (for the 'new speaker' flags of their summary)."""

    def submit(
        self, key: JobKey, work: Callable[[Job], None], *, exclusive: bool = False
    ) -> Job:
        """Run `work` on a worker thread; a job of the same key that is still running is
        returned instead of starting a second one. A job submitted while an `exclusive` one
        is unfinished starts only after it (so recordings queued during a profile rebuild are
        matched against the rebuilt profiles, however many workers there are); its stage says
        so meanwhile. A store-wide job's key names it ("voice profile rebuild")."""
        with self._lock:
            running = self._jobs.get(key)
            if running is not None and not running.done:
                return running
            job = Job(key, exclusive=exclusive)
            ahead = [j for j in self._jobs.values() if j.exclusive and not j.done]
            self._jobs[key] = job
            finished = [k for k, j in self._jobs.items() if j.done]
            for k in finished[: max(0, len(finished) - self.KEEP_FINISHED)]:
                del self._jobs[k]

            def run(job: Job) -> None:
                for other in ahead:
                    if other.future is not None and not other.future.done():
                        job.report(0.0, f"waiting for the {other.key}")
                        wait_for([other.future])
                token = running_job.set(job)  # its warnings become the job's notes
                try:
                    work(job)
                finally:
                    running_job.reset(token)
                    settle()  # the first job loads the models: keep them out of GC passes

            job.future = self._pool.submit(run, job)
        return job

    def get(self, key: JobKey) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def shutdown(self, wait: bool = True) -> None:
        """Stop: jobs that can stop early are asked to (a profile rebuild ends after the
        current speaker); with `wait`, the others finish first."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class App:
    """Built once per process by the server or CLI; passed to every tool function."""

    def __init__(
        self,
        settings: Settings,
        *,
        pipeline: PipelineLike | None = None,
        pipeline_factory: Callable[[Settings], PipelineLike] | None = None,
        start_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        capture_job_warnings()
        for folder in (settings.data_dir, settings.inbox_dir, settings.audio_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.start_dir = (start_dir or Path.cwd()).resolve()
        self.memory = SpeakerMemory(settings.db_path, settings.match_config,
                                    database_url=settings.database_url)
        self.jobs = JobRunner(settings.processing_workers)
        self.processing: ProcessingQueue | None = None
        """Where processing jobs run: tools.queues builds it on first use."""
        self.live = LiveHub(settings.live_parallel_passes)
        self._pipeline = pipeline
        self._pipeline_factory = pipeline_factory
        self._pipeline_lock = threading.Lock()
        self.query_vectors = QueryVectors()

    @property
    def allowed_roots(self) -> list[Path]:
        if self.settings.allowed_roots:
            return [root.expanduser().resolve() for root in self.settings.allowed_roots]
        roots = [self.settings.inbox_dir.resolve()]
        # A client that starts the server in "/" (Claude Desktop may) must not open the whole
        # disk: the filesystem root is never a default root.
        if self.start_dir.parent != self.start_dir:
            roots.append(self.start_dir)
        return roots

    @property
    def pipeline(self) -> PipelineLike:
        """The shared pipeline; the first caller builds it (model loading happens lazily inside)."""
        if self._pipeline is None:
            with self._pipeline_lock:
                if self._pipeline is None:
                    factory = self._pipeline_factory or build_pipeline
                    self._pipeline = factory(self.settings)
        return self._pipeline

    def close(self) -> None:
        self.live.close()  # their finalisations are jobs: before the jobs stop
        if self.processing is not None:
            self.processing.close()
        self.jobs.shutdown(wait=True)
        self.memory.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
