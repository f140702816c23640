"""Where the tests find recordings: tests/data/, inside the clone, so a fresh clone runs every
test. The full corpora in ../shared/corpus are only for scripts/evaluate.py and the benchmarks.

tests/data/README.md says where each file comes from and under which licence.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

DEV = DATA / "dev-excerpts"
"""A corpus split in the layout of ../shared/corpus/<split>/ (manifest.json, conversations/,
enroll/): the opening turns of dev01, dev04 and dev08 and three enrollment clips."""


def dev_conversation(conversation: str, suffix: str = ".flac") -> Path:
    """A file of one excerpt, e.g. dev_conversation("dev01-start", ".rttm")."""
    return DEV / "conversations" / f"{conversation}{suffix}"


def enrollment_clip(voice: str) -> Path:
    """10-13 s of one voice: a synthetic voice of the dev split ("bf_emma") or a LibriSpeech
    reader ("ls_3080", "ls_2033")."""
    if voice.startswith("ls_"):
        return DATA / f"{voice}_enroll.wav"
    return DEV / "enroll" / f"{voice}.flac"


def reference_speaker(conversation: str, start: float, end: float) -> str | None:
    """The voice that speaks at the midpoint of start..end in an excerpt's transcript."""
    turns = json.loads(dev_conversation(conversation, ".json").read_text())["turns"]
    middle = (start + end) / 2
    return next((t["speaker"] for t in turns if t["start"] <= middle <= t["end"]), None)
