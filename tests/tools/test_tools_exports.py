"""Export formats on a hand-built transcript (pure functions: no store, no models)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from memory.types import (
    ConversationDetail,
    ConversationInfo,
    SegmentView,
    SpeakerInfo,
    SpeakerTurn,
    Word,
)
from tools.exports import to_json, to_rttm, to_srt, to_txt, to_vtt, transcript_text

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _speaker(id: int, name: str | None) -> SpeakerInfo:
    return SpeakerInfo(
        id=id, name=name, kind="enrolled" if name else "unknown",
        label=name or f"Unknown {id}", match_threshold=None, created_at=NOW, updated_at=NOW,
    )


def _detail() -> ConversationDetail:
    info = ConversationInfo(
        id=7, title="Budget review", source_name="b.wav", sha256=None, recorded_at=None,
        created_at=NOW, duration=75.0, language="en", status="done", error=None,
        audio_path=None, model_ids={},
    )
    nick, unknown = _speaker(1, "Nick Smith"), _speaker(2, None)
    segments = [
        SegmentView(id=10, conversation_id=7, start=0.0, end=2.5, text=" We are over budget.",
                    speaker=nick, speaker_confidence=0.9, assignment_source="manual",
                    excluded_from_profile=False, emotion=None, emotion_confidence=None,
                    words=[Word("We", 0.0, 0.3, 0.9)]),
        SegmentView(id=11, conversation_id=7, start=61.25, end=3723.5, text="a <b> & c",
                    speaker=unknown, speaker_confidence=None, assignment_source="auto",
                    excluded_from_profile=False, emotion=None, emotion_confidence=None),
        SegmentView(id=12, conversation_id=7, start=3724.0, end=3725.0, text="noise",
                    speaker=None, speaker_confidence=None, assignment_source=None,
                    excluded_from_profile=False, emotion=None, emotion_confidence=None),
    ]
    return ConversationDetail(conversation=info, segments=segments)


def test_srt_numbers_cues_and_uses_comma_milliseconds() -> None:
    srt = to_srt(_detail())
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nNick Smith: We are over budget.\n")
    assert "2\n00:01:01,250 --> 01:02:03,500\nUnknown 2: a <b> & c\n" in srt


def test_vtt_has_header_voice_tags_and_escapes_markup() -> None:
    vtt = to_vtt(_detail())
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n<v Nick Smith>We are")
    assert "<v Unknown 2>a &lt;b&gt; &amp; c" in vtt


def test_rttm_without_turns_has_one_line_per_segment_with_a_speaker() -> None:
    lines = to_rttm(_detail()).splitlines()
    assert len(lines) == 2  # the segment without a speaker has no turn
    fields = lines[0].split()
    assert fields == ["SPEAKER", "budget-review", "1", "0.000", "2.500", "<NA>", "<NA>",
                      "Nick_Smith", "<NA>", "<NA>"]
    assert lines[1].split()[7] == "Unknown_2"


def test_json_round_trips_segments_with_words() -> None:
    data = json.loads(to_json(_detail()))
    assert data["conversation"]["title"] == "Budget review"
    assert [s["id"] for s in data["segments"]] == [10, 11, 12]
    assert data["segments"][0]["speaker"]["label"] == "Nick Smith"
    assert data["segments"][0]["words"][0]["word"] == "We"


def test_text_lines_name_the_speaker() -> None:
    text = transcript_text(_detail()).splitlines()
    assert text[0] == "[00:00] Nick Smith: We are over budget."
    assert text[1] == "[01:01] Unknown 2: a <b> & c"
    assert text[2] == "[1:02:04] Unknown speaker: noise"
    assert to_txt(_detail()).startswith("Budget review\n=============\n\n[00:00] Nick")


def _overlapping() -> ConversationDetail:
    """Nick's segment is talked over by Unknown 2; the diarization has a voice no segment got."""
    detail = _detail()
    nick, unknown = detail.segments[0].speaker, detail.segments[1].speaker
    assert nick is not None and unknown is not None
    segments = [replace(detail.segments[0], overlapped_by=[unknown]), *detail.segments[1:]]
    turns = [
        SpeakerTurn(0.0, 2.5, "SPEAKER_00", nick),
        SpeakerTurn(1.75, 2.25, "SPEAKER_01", unknown),
        SpeakerTurn(2.0, 3.0, "SPEAKER_05", None),
        SpeakerTurn(61.25, 3723.5, "SPEAKER_01", unknown),
    ]
    return replace(detail, segments=segments, turns=turns)


def test_rttm_of_a_diarized_conversation_has_one_line_per_turn_overlaps_included() -> None:
    lines = [line.split() for line in to_rttm(_overlapping()).splitlines()]
    assert [(f[3], f[4], f[7]) for f in lines] == [
        ("0.000", "2.500", "Nick_Smith"), ("1.750", "0.500", "Unknown_2"),
        ("2.000", "1.000", "SPEAKER_05"), ("61.250", "3662.250", "Unknown_2"),
    ]
    assert all(len(f) == 10 for f in lines)


def test_json_carries_overlaps_and_the_speaker_timeline() -> None:
    data = json.loads(to_json(_overlapping()))
    assert [[s["label"] for s in seg["overlapped_by"]] for seg in data["segments"]] == [
        ["Unknown 2"], [], []]
    assert data["turns"][1] == {
        "start": 1.75, "end": 2.25, "local_label": "SPEAKER_01",
        "speaker": {"id": 2, "label": "Unknown 2", "name": None, "kind": "unknown"}}
    assert data["turns"][2]["speaker"] is None


def test_text_formats_mark_overlap_briefly() -> None:
    detail = _overlapping()
    assert transcript_text(detail).splitlines()[0] == (
        "[00:00] Nick Smith (over Unknown 2): We are over budget.")
    assert "\nNick Smith (over Unknown 2): We are over budget.\n" in to_srt(detail)
    assert "<v Nick Smith>(over Unknown 2) We are over budget.\n" in to_vtt(detail)
    assert "\nUnknown 2: a <b> & c\n" in to_srt(detail)  # no overlap, no note
