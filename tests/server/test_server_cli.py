"""The `speaker-memory` command line, in-process through server.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import build_parser, main, settings_from
from tests.postgres import TestPostgres
from tests.testdata import dev_conversation, enrollment_clip
from tests.tools.fake_pipeline import FakePipeline, Turn
from tests.tools.runs import run_to_end
from tools.context import App
from tools.inputs import local_audio
from tools.settings import Settings


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEAKER_MEMORY_PORT", "9001")
    monkeypatch.setenv("SPEAKER_MEMORY_DATA_DIR", str(tmp_path / "env"))
    args = build_parser().parse_args(["serve", "--data-dir", str(tmp_path / "flag"),
                                      "--allowed-host", "box.lan", "--allowed-root", "/srv/a",
                                      "--allowed-root", "/srv/b"])
    settings = settings_from(args)
    assert settings.data_dir == tmp_path / "flag"
    assert settings.port == 9001
    assert settings.allowed_hosts == ["box.lan"]
    assert settings.allowed_roots == [Path("/srv/a"), Path("/srv/b")]


def test_speakers_export_and_import_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakePipeline()
    recording = fake.recording(tmp_path / "talk.wav", [
        Turn("ann", "Hello there, this is a test of the command line."),
        Turn("ben", "And this is the answer to that test."),
    ])
    source = Settings(data_dir=tmp_path / "a")
    with App(source, pipeline=fake) as app:
        first = app.memory.get_conversation(run_to_end(app, local_audio(recording))).segments[0]
        app.memory.identify("Ann", segment_id=first.id)

    assert main(["speakers", "--data-dir", str(tmp_path / "a")]) == 0
    listed = capsys.readouterr().out
    assert "Ann" in listed and "Unknown" in listed

    backup = tmp_path / "backup.json"
    assert main(["export", str(backup), "--data-dir", str(tmp_path / "a")]) == 0
    assert json.loads(backup.read_text())
    assert main(["import", str(backup), "--data-dir", str(tmp_path / "b")]) == 0
    assert main(["speakers", "--data-dir", str(tmp_path / "b"), "--kind", "enrolled"]) == 0
    assert "Ann" in capsys.readouterr().out
    # A second import into a non-empty memory is refused with a clear message.
    assert main(["import", str(backup), "--data-dir", str(tmp_path / "b")]) == 1
    assert "error:" in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["process", str(tmp_path / "nope.wav"), "--data-dir", str(tmp_path)]) == 1
    assert "no file at" in capsys.readouterr().err


@pytest.mark.models
def test_enroll_then_process_prints_named_transcript(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["enroll", "Emma", str(enrollment_clip("bf_emma")), *data]) == 0
    assert "Emma" in capsys.readouterr().out
    # The opening of dev08, a hiring debrief: bf_emma thanks am_fenrir for interviewing "the
    # final two candidates".
    assert main(["process", str(dev_conversation("dev08-start")), "--title", "Debrief",
                 *data]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "Debrief"
    emma = [line for line in lines if "] Emma: " in line]
    assert emma and any("candidates" in line for line in emma)
    assert "recognised Emma" in captured.err


@pytest.mark.parametrize("command", ["serve", "mcp"])
def test_a_missing_optional_extra_is_refused_at_start_up(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # pyannote.audio is not installed here: the server must say so before it serves anything.
    monkeypatch.setenv("SPEAKER_MEMORY_DIARIZER", "pyannote")
    assert main([command, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "'pyannote' extra" in err
    assert "SPEAKER_MEMORY_DIARIZER=builtin" in err
    assert not (tmp_path / "data").exists()  # refused before the store was created


@pytest.mark.parametrize("command", ["serve", "mcp"])
def test_missing_model_files_are_refused_at_start_up_with_the_set_up_command(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SPEAKER_MEMORY_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    assert main([command, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "pyannote-segmentation-3.0.bin is missing" in err
    assert "bash scripts/setup.sh" in err
    assert not (tmp_path / "data").exists()


def test_delete_conversation_asks_first_and_is_final(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakePipeline()
    recording = fake.recording(tmp_path / "talk.wav", [
        Turn("ann", "Hello there, this is a test of the command line."),
    ])
    settings = Settings(data_dir=tmp_path / "data")
    with App(settings, pipeline=fake) as app:
        cid = str(run_to_end(app, local_audio(recording)))
    data = ["--data-dir", str(tmp_path / "data")]
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["delete-conversation", cid, *data]) == 2  # not confirmed: nothing deleted
    assert "add --yes" in capsys.readouterr().err
    assert main(["delete-conversation", cid, "--yes", *data]) == 0
    out = capsys.readouterr().out
    assert f"Deleted conversation {cid}" in out and "final" in out
    assert recording.is_file()  # a file named on the command line is the user's
    assert main(["delete-conversation", cid, "--yes", *data]) == 1
    assert f"no conversation {cid}" in capsys.readouterr().err


def test_migrate_store_copies_the_memory_into_postgresql(
    tmp_path: Path, postgres: TestPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    from memory import SpeakerMemory
    from tests.memory.fakes import Voices, make_result

    data = tmp_path / "data"
    store = SpeakerMemory(Settings(data_dir=data).db_path)
    conversation = store.create_conversation(title="before the move")
    store.ingest(conversation.id, make_result(Voices(seed=3), ["ann", "bob"], 4))
    store.identify("Ann", speaker="Unknown 1")
    store.close()
    url = postgres.url_for(str(tmp_path / "pg"))

    assert main(["migrate-store", "--data-dir", str(data), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "Every table has the same row count" in out
    assert " segment " in out and "       4           4         4" in out
    assert "4 text vectors (of 4 in pgvector) compared" in out
    moved = SpeakerMemory(tmp_path / "pg", database_url=url)
    try:
        assert [s.speaker.label for s in moved.list_speakers()] == ["Ann", "Unknown 2"]
        assert moved.undo().message.startswith("Undid")
    finally:
        moved.close()

    # Again: the target is not empty any more; nothing changes and the message says why.
    assert main(["migrate-store", "--data-dir", str(data), "--to", url]) == 1
    assert "already holds data" in capsys.readouterr().err
    assert main(["migrate-store", "--from", str(tmp_path / "none.db"), "--to", url]) == 1
    assert "no SQLite store at" in capsys.readouterr().err
    assert main(["migrate-store", "--data-dir", str(data), "--to", "sqlite:///x.db"]) == 1
    assert "--to must be a PostgreSQL URL" in capsys.readouterr().err
    postgres.drop(str(tmp_path / "pg"))
