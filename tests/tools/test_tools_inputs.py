"""Audio arguments: paths confined to the allowed roots, base64 and uploads capped."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from memory.errors import InputTooLarge, InvalidInput, PathNotAllowed
from tools.context import App
from tools.inputs import (
    audio_from_base64,
    audio_from_path,
    resolve_path,
    safe_filename,
    save_audio_bytes,
    speaker_arg,
)
from tools.settings import Settings


def test_default_roots_are_the_inbox_and_the_start_directory(app: App) -> None:
    assert app.allowed_roots == [app.settings.inbox_dir.resolve(), app.start_dir]


def test_relative_and_absolute_paths_inside_a_root(app: App) -> None:
    inbox_file = app.settings.inbox_dir / "a.wav"
    inbox_file.write_bytes(b"RIFFdata")
    start_file = app.start_dir / "sub" / "b.wav"
    start_file.parent.mkdir()
    start_file.write_bytes(b"RIFFother")
    assert resolve_path(app, "a.wav") == inbox_file.resolve()
    assert resolve_path(app, "sub/b.wav") == start_file.resolve()
    assert resolve_path(app, str(start_file)) == start_file.resolve()
    audio = audio_from_path(app, "a.wav")
    assert audio.sha256 == hashlib.sha256(b"RIFFdata").hexdigest()
    assert audio.source_name == "a.wav"


def test_escapes_are_refused(app: App, tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    (app.settings.inbox_dir / "escape.wav").symlink_to(secret)
    os.symlink(tmp_path, app.start_dir / "up")
    for attempt in [str(secret), "../secret.wav", "escape.wav", "up/secret.wav",
                    str(app.settings.inbox_dir / ".." / ".." / "secret.wav")]:
        with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
            resolve_path(app, attempt)


def test_missing_files_and_folders_get_a_clear_error(app: App) -> None:
    with pytest.raises(InvalidInput, match=r"no file at 'nope\.wav'"):
        resolve_path(app, "nope.wav")
    with pytest.raises(InvalidInput, match="not a file"):
        resolve_path(app, str(app.start_dir))
    with pytest.raises(InvalidInput, match="empty"):
        resolve_path(app, "  ")


def test_configured_roots_replace_the_defaults(tmp_path: Path) -> None:
    music = tmp_path / "music"
    music.mkdir()
    (music / "x.wav").write_bytes(b"RIFF")
    settings = Settings(data_dir=tmp_path / "d", allowed_roots=[music])
    with App(settings, start_dir=tmp_path) as app:
        assert resolve_path(app, "x.wav") == (music / "x.wav").resolve()
        (settings.inbox_dir / "y.wav").write_bytes(b"RIFF")
        with pytest.raises(PathNotAllowed):
            resolve_path(app, str(settings.inbox_dir / "y.wav"))


def test_base64_is_decoded_saved_once_and_capped(app: App) -> None:
    payload = b"RIFF" + bytes(range(200))
    encoded = base64.b64encode(payload).decode()
    first = audio_from_base64(app, encoded, "../../evil name?.WAV")
    second = audio_from_base64(app, encoded[:40] + "\n" + encoded[40:], "other.wav")
    assert first.path == second.path  # content-addressed: the same bytes, one file
    assert first.path.read_bytes() == payload
    assert first.path.parent == app.settings.audio_dir.resolve()
    assert first.source_name == "evil name_.WAV"
    with pytest.raises(InvalidInput, match="not valid base64"):
        audio_from_base64(app, "%%%", None)
    too_big = base64.b64encode(b"\0" * (app.settings.max_upload_bytes + 100)).decode()
    with pytest.raises(InputTooLarge, match="limit for audio inside a call"):
        audio_from_base64(app, too_big, None)
    with pytest.raises(InputTooLarge):
        save_audio_bytes(app, b"\0" * (app.settings.max_upload_bytes + 1), "a.wav")
    with pytest.raises(InvalidInput, match="empty"):
        save_audio_bytes(app, b"", "a.wav")


def test_safe_filename_keeps_only_a_plain_base_name() -> None:
    assert safe_filename("C:\\Users\\me\\standup.m4a") == "standup.m4a"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a;rm -rf $(x).wav") == "a_rm -rf _x_.wav"
    assert safe_filename("...") == "audio"


def test_speaker_arguments_accept_ids_as_text() -> None:
    assert speaker_arg("12") == 12
    assert speaker_arg(" Nick ") == "Nick"
    assert speaker_arg(3) == 3
    with pytest.raises(InvalidInput):
        speaker_arg("  ")


def test_settings_lists_accept_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKER_MEMORY_ALLOWED_HOSTS", "example.org, box.local:8000")
    monkeypatch.setenv("SPEAKER_MEMORY_ALLOWED_ROOTS", '["/srv/audio", "/tmp"]')
    settings = Settings()
    assert settings.allowed_hosts == ["example.org", "box.local:8000"]
    assert settings.allowed_roots == [Path("/srv/audio"), Path("/tmp")]


def test_a_server_started_in_the_filesystem_root_does_not_open_the_disk(
    settings: Settings,
) -> None:
    elsewhere = settings.data_dir.parent / "elsewhere.wav"
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    elsewhere.write_bytes(b"RIFF")
    with App(settings, start_dir=Path("/")) as app:
        assert app.allowed_roots == [settings.inbox_dir.resolve()]
        with pytest.raises(PathNotAllowed):
            resolve_path(app, str(elsewhere))


def test_uploads_stream_to_disk_and_leave_nothing_behind_when_refused(app: App) -> None:
    from tools.inputs import UploadWriter

    audio_dir = app.settings.audio_dir
    with UploadWriter(app, "meeting.M4A") as writer:
        writer.write(b"RIFF")
        writer.write(b"rest of the file")
        kept = writer.finish()
    assert kept.path.read_bytes() == b"RIFFrest of the file"
    assert kept.path.suffix == ".m4a" and kept.source_name == "meeting.M4A"
    assert kept.sha256 == hashlib.sha256(b"RIFFrest of the file").hexdigest()

    with pytest.raises(InputTooLarge), UploadWriter(app, "big.wav") as writer:
        for _ in range(10):
            writer.write(b"\0" * (app.settings.max_upload_bytes // 4))
    assert sorted(p.name for p in audio_dir.iterdir()) == [kept.path.name]
