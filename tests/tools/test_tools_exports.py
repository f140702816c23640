"""Export formats on a hand-built transcript (pure functions: no store, no models)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from memory.types import ConversationDetail, ConversationInfo, SegmentView, SpeakerInfo, Word
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


def test_rttm_has_ten_fields_and_no_spaces_in_names() -> None:
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
