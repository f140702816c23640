"""What tools need of whatever runs processing jobs: submit a conversation's job, find it,
read where it stands, cancel it. Two implementations: the in-process thread pool
(tools.local_queue, the embedded default) and a Procrastinate queue in PostgreSQL that
`speaker-memory worker` processes on any machine take jobs from (tools.procrastinate_queue).
Transports follow a job through `JobHandle.state()` and never learn which one runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from memory.types import IngestResult

if TYPE_CHECKING:
    from tools.inputs import AudioFile
    from tools.pipeline_job import ProcessOptions

JobKey = int | str
"""A processing job's conversation id, or the name of a job over the whole store."""


@dataclass(frozen=True)
class JobState:
    """One reading of a job: what a waiting client is shown."""

    stage: str
    fraction: float
    notes: tuple[tuple[str, str], ...]
    """(level, message), oldest first: each stage entered ('info') and each warning."""
    done: bool


class JobHandle(Protocol):
    @property
    def key(self) -> JobKey: ...

    @property
    def ingest(self) -> IngestResult | None:
        """The finished ingest's decisions, when this process ran it (new-speaker flags)."""
        ...

    def state(self) -> JobState:
        """Where the job stands now (may read the database: call it off the event loop)."""
        ...


class ProcessingQueue(Protocol):
    def receive(self, audio: AudioFile) -> AudioFile:
        """The audio where this queue's jobs will read it (a worker elsewhere needs it in
        the shared audio store); called before the conversation records its path."""
        ...

    def submit(self, conversation_id: int, audio: AudioFile,
               options: ProcessOptions) -> JobHandle:
        """Queue the conversation's job (a queued or running one is returned instead)."""
        ...

    def get(self, conversation_id: int) -> JobHandle | None:
        """The conversation's job, running or finished; None when none is known."""
        ...

    def cancel(self, conversation_id: int) -> bool:
        """Ask the conversation's unfinished job to stop; whether there was one. It ends as
        'failed' (cancelled) at its next safe point; a queued one never starts."""
        ...

    def close(self) -> None: ...
