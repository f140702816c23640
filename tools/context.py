"""`App`: what every tool shares in one process — Settings, the SpeakerMemory store, the audio
pipeline (built lazily, once: models load on first use) and a job runner, so that processing
runs on worker threads and never blocks tools that only read."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inference.types import EnrollmentVoice, PipelineResult, Vector
from memory.api import SpeakerMemory
from memory.types import EnrolledVoice, IngestResult
from tools.settings import Settings

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
"""(fraction 0..1 of the whole job, stage) — inference.pipeline.Progress."""


class PipelineLike(Protocol):
    """What tools need from inference.pipeline.Pipeline (a fake implements it in tests)."""

    @property
    def voice_model_id(self) -> str: ...

    @property
    def text_model_id(self) -> str | None:
        """None when no text embedding model is available (semantic search is then off)."""
        ...

    def run(
        self,
        audio_or_path: Path,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        language: str | None = None,
        enrolled: Sequence[EnrolledVoice] = (),
        progress: ProgressFn | None = None,
    ) -> PipelineResult: ...

    def embed_voice(self, audio_or_path: Path) -> EnrollmentVoice:
        """L2-normalised vectors (per channel), voice model id, seconds of speech of a
        one-voice clip."""
        ...

    def embed_text(self, texts: Sequence[str]) -> list[Vector]: ...


@dataclass
class Job:
    """One conversation being processed on a worker thread."""

    conversation_id: int
    stage: str = "queued"
    fraction: float = 0.0
    ingest: IngestResult | None = None
    future: Future[None] | None = field(default=None, repr=False)

    def report(self, fraction: float, stage: str) -> None:
        # Called from the worker thread; plain attribute writes are atomic enough for a display.
        self.stage = stage
        self.fraction = max(0.0, min(1.0, fraction))

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()


class JobRunner:
    """A small thread pool for audio processing, with per-conversation progress."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sm-job")
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    KEEP_FINISHED = 256
    """Finished jobs remembered (for the 'new speaker' flags of their summary)."""

    def submit(self, conversation_id: int, work: Callable[[Job], None]) -> Job:
        job = Job(conversation_id)
        with self._lock:
            self._jobs[conversation_id] = job
            finished = [cid for cid, j in self._jobs.items() if j.done]
            for cid in finished[: max(0, len(finished) - self.KEEP_FINISHED)]:
                del self._jobs[cid]
        job.future = self._pool.submit(work, job)
        return job

    def get(self, conversation_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(conversation_id)

    def shutdown(self, wait: bool = True) -> None:
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
        for folder in (settings.data_dir, settings.inbox_dir, settings.audio_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.start_dir = (start_dir or Path.cwd()).resolve()
        self.memory = SpeakerMemory(settings.db_path, settings.match_config)
        self.jobs = JobRunner(settings.processing_workers)
        self._pipeline = pipeline
        self._pipeline_factory = pipeline_factory
        self._pipeline_lock = threading.Lock()

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
                    factory = self._pipeline_factory or default_pipeline_factory
                    self._pipeline = factory(self.settings)
        return self._pipeline

    def close(self) -> None:
        self.jobs.shutdown(wait=True)
        self.memory.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_pipeline_factory(settings: Settings) -> PipelineLike:
    # Imported here: inference pulls in torch and friends, which only processing needs.
    from tools.pipeline_config import build_pipeline

    return build_pipeline(settings)
