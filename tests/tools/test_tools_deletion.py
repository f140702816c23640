"""delete_conversation: final, takes the server's copy of uploaded audio, never a file given
by path, and waits for a running job."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from memory.errors import ConversationNotFound, ConversationNotReady
from tests.tools.fake_pipeline import FakePipeline, Turn
from tests.tools.runs import run_to_end, unscripted, upload
from tools import deletion, processing, queries
from tools.context import App
from tools.inputs import audio_from_path

TURNS = [
    Turn("uma", "Can everyone hear me on the call?"),
    Turn("vic", "Yes, loud and clear from here."),
    Turn("uma", "Good, then let us start with the roadmap."),
]


def test_a_file_given_by_path_is_never_deleted(app: App, fake: FakePipeline) -> None:
    mine = unscripted(app.settings.inbox_dir)
    cid = run_to_end(app, audio_from_path(app, str(mine)))  # fails: a failed conversation to clear
    result = deletion.delete_conversation(app, cid)
    assert mine.is_file() and result.audio_deleted is False
    assert f"the audio file {mine} was left where it is" in result.message


def test_deleting_a_conversation_takes_its_uploaded_audio(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    sent = upload(app, fake.recording(tmp_path / "call.wav", TURNS))
    cid = run_to_end(app, sent)
    kept = fake.recording(app.settings.inbox_dir / "other.wav", TURNS, frequency=440)
    other = run_to_end(app, audio_from_path(app, str(kept)))

    result = deletion.delete_conversation(app, cid)
    assert result.final and result.audio_deleted and not sent.path.exists()
    assert result.segments_deleted == 3 and result.voiceprints_deleted > 0
    assert result.message.startswith(f"Deleted conversation {cid} ('call') with 3 segments")
    assert "its uploaded audio was deleted too" in result.message
    assert result.message.endswith("This is final: undo_identity_change cannot bring it back.")
    # The voices were heard in the other conversation too: nobody is removed.
    assert result.speakers_removed == []
    listed = queries.list_conversations(app)
    assert [c.id for c in listed.conversations] == [other]
    with pytest.raises(ConversationNotFound):
        deletion.delete_conversation(app, cid)


def test_unknown_voices_heard_only_there_go_with_it(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    cid = run_to_end(app, audio_from_path(app, str(fake.recording(
        app.settings.inbox_dir / "call.wav", TURNS))))
    result = deletion.delete_conversation(app, cid)
    assert sorted(s.label for s in result.speakers_removed) == ["Unknown 1", "Unknown 2"]
    assert "Unknown 1, Unknown 2 (heard only there)" in result.message
    assert queries.list_speakers(app).speakers == []


def test_a_conversation_being_processed_is_not_deleted(
    app: App, fake: FakePipeline
) -> None:
    fake.gate = threading.Event()
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    started = processing.start_processing(app, audio_from_path(app, str(path)),
                                          processing.ProcessOptions())
    try:
        with pytest.raises(ConversationNotReady, match="still being processed"):
            deletion.delete_conversation(app, started.conversation_id)
    finally:
        fake.gate.set()
    assert started.job is not None and started.job.future is not None
    started.job.future.result(timeout=30)
    assert deletion.delete_conversation(app, started.conversation_id).segments_deleted == 3
