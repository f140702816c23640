"""Every free-text argument is bounded before any work is done, by the constants of the layer
that owns it, and the refusal says what is allowed without echoing the text back."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from memory.errors import InvalidInput, InvalidName, SpeakerNotFound
from memory.limits import MAX_LANGUAGE_LENGTH, MAX_SOURCE_NAME_LENGTH, MAX_TITLE_LENGTH
from memory.speakers import MAX_NAME_LENGTH
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools import identity, processing, queries
from tools.context import App
from tools.inputs import MAX_PATH_LENGTH, audio_from_base64, audio_from_path, safe_filename

TURNS = [Turn("uma", "Can everyone hear me on the call?"), Turn("vic", "Yes, loud and clear.")]
HUGE = 1_000_000


def _short(exc: pytest.ExceptionInfo[Exception]) -> str:
    message = str(exc.value)
    assert len(message) < 300, "the refusal echoes the text back"
    return message


def test_process_options_are_bounded_before_anything_is_stored(
    app: App, fake: FakePipeline
) -> None:
    audio = audio_from_path(app, str(fake.recording(app.settings.inbox_dir / "call.wav", TURNS)))
    for options, what in (
        (processing.ProcessOptions(title="t" * (MAX_TITLE_LENGTH + 1)), "title"),
        (processing.ProcessOptions(title="t" * HUGE), "title"),
        (processing.ProcessOptions(language="x" * (MAX_LANGUAGE_LENGTH + 1)), "language code"),
    ):
        with pytest.raises(InvalidInput) as caught:
            processing.start_processing(app, audio, options)
        assert _short(caught).startswith(f"{what} is ")
    assert app.memory.list_conversations().total == 0 and fake.runs == 0
    started = processing.start_processing(
        app, audio, processing.ProcessOptions(title=" " + "t" * MAX_TITLE_LENGTH + " "))
    assert started.job is not None and started.job.future is not None
    started.job.future.result(timeout=30)
    assert app.memory.get_conversation_info(started.conversation_id).title == (
        "t" * MAX_TITLE_LENGTH)


def test_a_new_title_is_bounded(app: App) -> None:
    conversation = app.memory.create_conversation(title="standup")
    with pytest.raises(InvalidInput) as caught:
        identity.update_conversation_title(app, conversation.id, "t" * HUGE)
    assert "at most 500 are allowed" in _short(caught)
    assert app.memory.get_conversation_info(conversation.id).title == "standup"


def test_search_text_is_bounded(app: App) -> None:
    with pytest.raises(InvalidInput) as caught:
        queries.search_conversations(app, "word " * (queries.MAX_QUERY_LENGTH // 5 + 1),
                                     mode="keyword")
    assert f"at most {queries.MAX_QUERY_LENGTH:,} are allowed" in _short(caught)
    assert queries.search_conversations(app, "w" * queries.MAX_QUERY_LENGTH,
                                        mode="keyword").hits == []


def test_file_names_and_paths_are_bounded(app: App) -> None:
    data = base64.b64encode(b"RIFF....").decode()
    with pytest.raises(InvalidInput) as caught:
        audio_from_base64(app, data, "n" * HUGE + ".wav")
    assert _short(caught).startswith("file name is")
    assert list(app.settings.audio_dir.iterdir()) == []  # refused before anything was kept
    with pytest.raises(InvalidInput) as caught:
        audio_from_path(app, "p" * (MAX_PATH_LENGTH + 1))
    assert _short(caught).startswith("path is")
    # A long name a client sends within a path keeps only the base name, bounded.
    assert safe_filename("/".join(["folder"] * 500) + "/call.wav") == "call.wav"
    assert len(safe_filename("n" * 1000)) == MAX_SOURCE_NAME_LENGTH


def test_speaker_names_are_bounded_before_an_enrolment_is_queued(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    clip = audio_from_path(app, str(fake.clip(app.settings.inbox_dir / "uma.wav", "uma")))
    with pytest.raises(InvalidName) as caught:
        identity.start_enrollment(app, "u" * HUGE, clip)
    assert f"at most {MAX_NAME_LENGTH} characters" in _short(caught)
    with pytest.raises(SpeakerNotFound) as missing:
        queries.search_conversations_by_speaker(app, "u" * HUGE)
    _short(missing)
