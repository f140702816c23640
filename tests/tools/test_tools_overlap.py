"""Overlapping speech through the tools: a recording where one voice talks over another, from
processing to transcripts, search hits and exports (real store, fake pipeline)."""

from __future__ import annotations

import json

from tests.tools.fake_pipeline import FakePipeline, Turn
from tools import exports, identity, processing, queries
from tools.context import App
from tools.inputs import audio_from_path

TURNS = [
    Turn("uma", "Can everyone hear me on the call?", interrupted_by="vic"),  # 0-3 s, vic 2-3 s
    Turn("vic", "Yes, loud and clear from here."),  # 3-6 s
    Turn("uma", "Good, then let us start with the roadmap."),  # 6-9 s
]


def _processed(app: App, fake: FakePipeline) -> int:
    path = fake.recording(app.settings.inbox_dir / "call.wav", TURNS)
    started = processing.start_processing(app, audio_from_path(app, str(path)),
                                          processing.ProcessOptions())
    assert started.job is not None and started.job.future is not None
    started.job.future.result(timeout=30)
    return started.conversation_id


def test_transcripts_say_who_talks_over_whom(app: App, fake: FakePipeline) -> None:
    cid = _processed(app, fake)
    segments = queries.get_conversation(app, cid).segments
    assert [[s.label for s in seg.overlapped_by] for seg in segments] == [["Unknown 2"], [], []]
    vic = segments[1].speaker
    assert vic is not None and segments[0].overlapped_by == [vic]
    text = queries.get_conversation(app, cid, "text").text
    assert text is not None
    assert text.splitlines()[0] == (
        "[00:00] Unknown 1 (over Unknown 2): Can everyone hear me on the call?")
    latest = queries.get_latest_segments(app, limit=3, conversation_id=cid).segments
    assert [s.overlapped_by for s in latest if s.id == segments[0].id] == [[vic]]
    hit = queries.search_conversations(app, "hear", mode="keyword").hits[0]
    assert hit.segment.id == segments[0].id and hit.segment.overlapped_by == [vic]

    # Naming the voice that talked over shows everywhere, with no reprocessing.
    identity.identify_speaker_in_segment(app, segments[1].id, "Vic")
    named = queries.get_conversation(app, cid).segments[0]
    assert [s.label for s in named.overlapped_by] == ["Vic"]


def test_exports_carry_the_overlap(app: App, fake: FakePipeline) -> None:
    cid = _processed(app, fake)
    first = queries.get_conversation(app, cid).segments[0]
    identity.identify_speaker_in_segment(app, first.id, "Uma Thurman")
    rttm = exports.export_conversation(app, cid, "rttm").content.splitlines()
    assert [(f[3], f[4], f[7]) for f in (line.split() for line in rttm)] == [
        ("0.000", "3.000", "Uma_Thurman"), ("2.000", "1.000", "Unknown_2"),
        ("3.000", "3.000", "Unknown_2"), ("6.000", "3.000", "Uma_Thurman"),
    ]
    data = json.loads(exports.export_conversation(app, cid, "json").content)
    assert [len(s["overlapped_by"]) for s in data["segments"]] == [1, 0, 0]
    assert [(t["start"], t["end"], t["speaker"]["label"]) for t in data["turns"]] == [
        (0.0, 3.0, "Uma Thurman"), (2.0, 3.0, "Unknown 2"), (3.0, 6.0, "Unknown 2"),
        (6.0, 9.0, "Uma Thurman"),
    ]
    srt = exports.export_conversation(app, cid, "srt").content
    assert "Uma Thurman (over Unknown 2): Can everyone hear me" in srt
    vtt = exports.export_conversation(app, cid, "vtt").content
    assert "<v Uma Thurman>(over Unknown 2) Can everyone hear me" in vtt
