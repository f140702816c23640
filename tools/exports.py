"""A conversation as a file: SRT and WebVTT subtitles, RTTM speaker turns, JSON, plain text."""

from __future__ import annotations

import json
import re
from typing import Any

from memory.types import ConversationDetail, SegmentView
from tools.context import App
from tools.models import (
    ExportFormat,
    ExportOut,
    Transcript,
    detail_out,
    segment_out,
    speaker_ref,
)
from tools.processing import require_transcript

MIME_TYPES: dict[str, str] = {
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "rttm": "text/plain",
    "json": "application/json",
    "txt": "text/plain",
}


def export_conversation(app: App, conversation_id: int, format: ExportFormat = "srt") -> ExportOut:
    require_transcript(app, conversation_id)
    detail = app.memory.get_conversation(conversation_id)
    render = {"srt": to_srt, "vtt": to_vtt, "rttm": to_rttm, "json": to_json, "txt": to_txt}
    stem = _stem(detail)
    return ExportOut(
        conversation_id=conversation_id, format=format,
        filename=f"{stem}.{format}", mime_type=MIME_TYPES[format],
        content=render[format](detail),
    )


def speaker_label(segment: SegmentView) -> str:
    return segment.speaker.label if segment.speaker is not None else "Unknown speaker"


def overlap_note(segment: SegmentView) -> str:
    """'(over Sarah, Tom)' when others talk at the same time, else ''."""
    if not segment.overlapped_by:
        return ""
    return f"(over {', '.join(s.label for s in segment.overlapped_by)})"


def who(segment: SegmentView) -> str:
    """The speaker as a transcript line names it: 'Nick', or 'Nick (over Sarah)'."""
    note = overlap_note(segment)
    return f"{speaker_label(segment)} {note}" if note else speaker_label(segment)


def transcript_text(detail: ConversationDetail) -> str:
    """'[mm:ss] Speaker: text' lines, consecutive segments of one speaker kept apart."""
    return "\n".join(
        f"[{_clock(s.start)}] {who(s)}: {s.text.strip()}" for s in detail.segments
    )


def to_txt(detail: ConversationDetail) -> str:
    info = detail.conversation
    header = f"{info.title}\n{'=' * len(info.title)}\n\n"
    return header + transcript_text(detail) + "\n"


def to_srt(detail: ConversationDetail) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n"
        f"{who(s)}: {s.text.strip()}\n"
        for i, s in enumerate(detail.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(detail: ConversationDetail) -> str:
    blocks = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n"
        f"<v {_vtt_escape(speaker_label(s))}>{_vtt_escape(_cue_text(s))}\n"
        for s in detail.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _cue_text(segment: SegmentView) -> str:
    """A WebVTT cue's text: the voice tag names the speaker alone, so an overlap note
    ('(over Sarah)') starts the text."""
    note = overlap_note(segment)
    return f"{note} {segment.text.strip()}" if note else segment.text.strip()


def to_rttm(detail: ConversationDetail) -> str:
    """NIST RTTM: one SPEAKER line per diarization turn when the conversation has them
    (overlapping speech gives overlapping lines; a label no segment's speaker resolves keeps
    its local label), else one per segment with a speaker. Names have spaces replaced (fields
    are whitespace-separated)."""
    if detail.turns:
        spans = [(t.start, t.end, t.speaker.label if t.speaker else t.local_label)
                 for t in detail.turns]
    else:
        spans = [(s.start, s.end, speaker_label(s)) for s in detail.segments
                 if s.speaker is not None]
    file_id = _stem(detail)
    lines = [
        f"SPEAKER {file_id} 1 {start:.3f} {max(0.0, end - start):.3f} <NA> <NA> "
        f"{_rttm_name(name)} <NA> <NA>"
        for start, end, name in spans
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def to_json(detail: ConversationDetail) -> str:
    """The transcript (segments with words and `overlapped_by`) and the diarization turns."""
    document = Transcript(
        conversation=detail_out(detail), segments=[segment_out(s) for s in detail.segments]
    )
    data: dict[str, Any] = document.model_dump(mode="json", exclude={"text"})
    for out, view in zip(data["segments"], detail.segments, strict=True):
        out["words"] = [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for w in view.words
        ]
    data["turns"] = [
        {"start": round(t.start, 3), "end": round(t.end, 3), "local_label": t.local_label,
         "speaker": speaker_ref(t.speaker).model_dump(mode="json") if t.speaker else None}
        for t in detail.turns
    ]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _rttm_name(label: str) -> str:
    return re.sub(r"\s+", "_", label.strip())


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _clock(seconds: float) -> str:
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stem(detail: ConversationDetail) -> str:
    """The file name (and RTTM file id) of an export."""
    return _slug(detail.conversation.title) or f"conversation-{detail.conversation.id}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
