"""A real run of `speaker-memory process` with stderr piped (as in a script or a log file):
only what the user needs is on it, not the libraries' own noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.tests_support import REPO, child_env
from tests.testdata import dev_conversation


@pytest.mark.models
def test_a_piped_run_shows_no_library_noise_but_real_warnings_still_show(
    tmp_path: Path,
) -> None:
    # resemblyzer as the voice model: it imports webrtcvad, the source of the pkg_resources
    # warning; the text embedder's loading drew the "Loading weights" bar.
    env = child_env(tmp_path / "data", SPEAKER_MEMORY_VOICE_EMBEDDER="resemblyzer")
    run = subprocess.run(
        [sys.executable, "-W", "default::UserWarning", "-c",
         "import sys, warnings; from server.cli import main; code = main(sys.argv[1:]); "
         "warnings.warn('a real warning'); sys.exit(code)",
         "process", str(dev_conversation("dev01-start")), "--log-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True,  # stderr is a pipe
        timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pkg_resources" not in run.stderr
    assert "Loading weights" not in run.stderr and "it/s" not in run.stderr
    assert "a real warning" in run.stderr  # the filters are narrow: other warnings show
    assert "Processed conversation 1" in run.stderr
