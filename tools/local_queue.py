"""Processing jobs on this process's own thread pool (App.jobs): the embedded default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.context import App, Job
from tools.pipeline_job import ProcessOptions, run_local_job

if TYPE_CHECKING:
    from tools.inputs import AudioFile


class LocalQueue:
    def __init__(self, app: App) -> None:
        self._app = app

    def receive(self, audio: AudioFile) -> AudioFile:
        return audio  # this process reads it where it is

    def submit(self, conversation_id: int, audio: AudioFile, options: ProcessOptions) -> Job:
        app = self._app
        return app.jobs.submit(conversation_id,
                               lambda job: run_local_job(app, job, audio, options))

    def get(self, conversation_id: int) -> Job | None:
        return self._app.jobs.get(conversation_id)

    def cancel(self, conversation_id: int) -> bool:
        job = self._app.jobs.get(conversation_id)
        if job is None or job.done:
            return False
        job.request_abort()
        return True

    def close(self) -> None:
        """The jobs are App.jobs': App.close stops them."""
