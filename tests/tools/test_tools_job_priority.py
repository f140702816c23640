"""Background work (processing, rebuilds) runs at a lower CPU priority than the server, and so
do the threads it starts (the pipeline's pool, the models' thread pools): reads stay quick
while a recording is processed."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from tools.context import JOB_NICENESS, Job, JobRunner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a thread's own CPU priority is a Linux feature")


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_job_and_the_threads_it_starts_run_at_a_lower_priority() -> None:
    seen: dict[str, int] = {}

    def work(job: Job) -> None:
        seen["job"] = niceness()
        helper = threading.Thread(target=lambda: seen.__setitem__("started", niceness()))
        helper.start()
        helper.join()

    here = niceness()
    runner = JobRunner(workers=1)
    try:
        job = runner.submit("probe", work)
        assert job.future is not None
        job.future.result(timeout=60)
    finally:
        runner.shutdown(wait=True)
    lowered = min(here + JOB_NICENESS, 19)  # 19 is the lowest priority there is
    assert seen == {"job": lowered, "started": lowered}
    assert niceness() == here  # the server's own threads keep theirs
