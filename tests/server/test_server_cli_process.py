"""`speaker-memory process` as a user meets it: what it says on stderr, on the fake pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import cli
from tests.tools.fake_pipeline import FakePipeline, Turn

TURNS = [
    Turn("ann", "Hello there, this is a test of the command line."),
    Turn("ben", "And this is the answer to that test."),
]


def test_a_duplicate_says_so_once_and_nothing_contradicts_it(
    tmp_path: Path, on_fake: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = on_fake.recording(tmp_path / "talk.wav", TURNS)
    data = ["--data-dir", str(tmp_path / "data")]
    assert cli.main(["process", str(recording), *data]) == 0
    assert "Processed conversation 1" in capsys.readouterr().err
    assert cli.main(["process", str(recording), *data]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("already processed") == 1
    assert "Processed conversation" not in captured.err
    assert "Hello there" in captured.out  # the transcript is still printed
    assert on_fake.runs == 1


def test_progress_on_a_pipe_goes_by_ten_percent_steps_to_100(
    tmp_path: Path, on_fake: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = on_fake.recording(tmp_path / "talk.wav", TURNS)
    assert cli.main(["process", str(recording), "--data-dir", str(tmp_path / "data")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("... ")]
    percents = [int(line.split()[1].rstrip("%")) for line in lines]
    assert percents == sorted(set(percents)) and all(p % 10 == 0 for p in percents)
    assert lines[-1] == "... 100% done"
