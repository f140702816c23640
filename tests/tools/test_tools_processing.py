"""Processing jobs, summaries and identity tools, called directly (no MCP in between)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from memory.errors import InvalidInput, InvalidOperation
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools import identity, processing, queries
from tools.context import App
from tools.inputs import audio_from_path

TURNS = [
    Turn("uma", "Can everyone hear me on the call?"),
    Turn("vic", "Yes, loud and clear from here."),
    Turn("uma", "Good, then let us start with the roadmap."),
]


def _run(app: App, path: Path, title: str | None = None) -> int:
    started = processing.start_processing(app, audio_from_path(app, str(path)),
                                          processing.ProcessOptions(title=title))
    if started.job is not None:
        assert started.job.future is not None
        started.job.future.result(timeout=30)
    return started.conversation_id


def test_a_job_reports_progress_and_its_summary_counts_voices(
    app: App, fake: FakePipeline
) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    cid = _run(app, path, title="  Weekly call ")
    job = app.jobs.get(cid)
    assert job is not None and job.done and job.fraction == 1.0 and job.stage == "done"
    summary = processing.summarise(app, cid)
    assert summary.status == "done" and summary.duration == 9.0
    assert [(s.segment_count, s.new) for s in summary.speakers] == [(2, True), (1, True)]
    assert summary.message.startswith("Processed conversation")
    info = app.memory.get_conversation_info(cid)
    assert info.title == "Weekly call" and info.source_name == "call.wav"
    assert info.recorded_at is not None  # the file's modification time
    assert processing.processing_status(app, cid).status == "done"


def test_a_running_job_cancelled_stores_nothing_and_the_same_audio_runs_again(
    app: App, fake: FakePipeline
) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    fake.gate = threading.Event()
    started = processing.start_processing(app, audio_from_path(app, str(path)),
                                          processing.ProcessOptions())
    cid = started.conversation_id
    assert fake.at_gate.wait(timeout=30)  # running, not still queued (that never starts)
    status = processing.cancel_processing(app, cid)
    assert status.status == "processing"  # it stops at its next stage
    fake.gate.set()
    assert started.job is not None
    job = app.jobs.get(cid)
    assert job is not None and job.future is not None
    job.future.result(timeout=30)
    info = app.memory.get_conversation_info(cid)
    assert info.status == "failed" and "cancelled" in (info.error or "")
    assert app.memory.get_conversation(cid).segments == []
    assert job.state().stage == "cancelled"
    with pytest.raises(InvalidOperation, match="no queued or running job"):
        processing.cancel_processing(app, cid)
    assert _run(app, path) == cid  # sending it again processes it
    assert app.memory.get_conversation_info(cid).status == "done"


def test_a_status_read_just_before_its_job_ended_is_shown_as_the_outcome(
    app: App, fake: FakePipeline
) -> None:
    """A listing reads the row, then the job: one that ended in between stored its outcome,
    and is not shown as interrupted."""
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    cid = _run(app, path)
    assert processing.shown_status(app, cid, "processing") == "done"
    app.memory.set_conversation_status(cid, "processing")  # as if it ended storing nothing
    assert processing.shown_status(app, cid, "processing") == "interrupted"


def test_duplicates_are_not_processed_twice(app: App, fake: FakePipeline) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    first = _run(app, path)
    copy = app.start_dir / "copy of call.wav"
    copy.write_bytes(path.read_bytes())
    started = processing.start_processing(app, audio_from_path(app, str(copy)),
                                          processing.ProcessOptions())
    assert started.job is None and started.conversation_id == first
    assert processing.summarise(app, first, duplicate=True).duplicate is True
    assert fake.runs == 1


def test_reprocess_keeps_manual_labels(app: App, fake: FakePipeline) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    cid = _run(app, path)
    segments = app.memory.get_conversation(cid).segments
    uma = segments[0].speaker
    assert uma is not None
    identity.mark_segment_misidentified(app, segments[1].id, uma.id)
    before = [s.id for s in app.memory.get_conversation(cid).segments]
    result = processing.reprocess(app, cid)
    after = app.memory.get_conversation(cid).segments
    assert [s.id for s in after] == before  # segment ids survive
    assert after[1].speaker is not None and after[1].speaker.id == uma.id
    assert after[1].assignment_source == "manual"
    assert "manual labels kept" in result.message


def test_naming_and_searching_without_the_server(app: App, fake: FakePipeline) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    cid = _run(app, path)
    first = app.memory.get_conversation(cid).segments[0]
    named = identity.identify_speaker_in_segment(app, first.id, " Uma ")
    assert named.speaker.label == "Uma" and named.segments_relabelled == 2
    assert "undo_identity_change" in named.message
    again = identity.identify_speaker_in_segment(app, first.id, "Uma")
    assert again.changed is False and "nothing changed" in again.message
    hits = queries.search_conversations(app, "roadmap", mode="keyword", speaker="uma")
    assert [h.segment.text for h in hits.hits] == ["Good, then let us start with the roadmap."]
    text = queries.get_conversation(app, cid, "text").text
    assert text is not None
    assert text.splitlines()[0] == "[00:00] Uma: Can everyone hear me on the call?"


def test_audio_left_queued_by_a_stopped_server_is_processed_again(
    app: App, fake: FakePipeline
) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    audio = audio_from_path(app, str(path))
    # What a server that died before running the job leaves behind: a queued conversation.
    stale = app.memory.create_conversation(title="call", sha256=audio.sha256)
    cid = _run(app, path)
    assert cid == stale.id and fake.runs == 1
    assert processing.processing_status(app, cid).status == "done"


def test_speaker_counts_are_checked_before_anything_is_stored(
    app: App, fake: FakePipeline
) -> None:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    audio = audio_from_path(app, str(path))
    bad = [
        (processing.ProcessOptions(num_speakers=0), "num_speakers must be between 1 and 20"),
        (processing.ProcessOptions(max_speakers=99), "max_speakers must be between 1 and 20"),
        (processing.ProcessOptions(min_speakers=3, max_speakers=2), "min_speakers (3) is more"),
    ]
    for options, message in bad:
        with pytest.raises(InvalidInput, match=re.escape(message)):
            processing.start_processing(app, audio, options)
    assert app.memory.list_conversations().total == 0 and fake.runs == 0


def test_a_segment_clip_is_that_stretch_of_the_recording(app: App, fake: FakePipeline) -> None:
    import io
    import wave

    import numpy as np

    from inference.audio import decode
    from tools.clips import PAD_SECONDS, segment_wav

    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    cid = _run(app, path)
    segment = app.memory.get_conversation(cid).segments[1]
    with wave.open(io.BytesIO(segment_wav(app, segment.id))) as clip:
        pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2") / 32767.0
    expected = decode(path).slice(segment.start - PAD_SECONDS, segment.end + PAD_SECONDS)
    assert len(pcm) == len(expected)
    assert np.allclose(pcm, expected, atol=1e-3)


def test_unknown_voices_are_listed_by_their_number(app: App, fake: FakePipeline) -> None:
    # Eleven new voices; the last one talks most, so by segment count it would come first,
    # and by text 'Unknown 10' would come before 'Unknown 2'.
    turns = [Turn(f"voice {n}", f"Sentence number {n} of the meeting.") for n in range(1, 12)]
    turns += [Turn("voice 11", "And I have more to say than anyone.")] * 2
    cid = _run(app, fake.recording(app.settings.inbox_dir / "crowd.wav", turns))
    message = processing.summarise(app, cid).message
    numbers = [int(n) for n in re.findall(r"Unknown (\d+)", message)]
    assert len(numbers) == 11 and numbers == sorted(numbers)


def test_a_jobs_stages_go_forward_and_end_once_at_done(app: App, fake: FakePipeline) -> None:
    cid = _run(app, fake.recording(app.settings.inbox_dir / "call.wav", TURNS))
    job = app.jobs.get(cid)
    assert job is not None and (job.fraction, job.stage) == (1.0, "done")
    stages = [message for level, message in job.notes if level == "info"]
    assert stages == ["loading models", "transcribing", "storing", "done"]
