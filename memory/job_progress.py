"""Where a processing job run by a worker process stands (migration 6): its stage, fraction
done and notes, and at the end the ingest's decisions, written by the worker and read by every
API server. The in-process job runner keeps the same facts in memory (tools.context.Job)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select

from memory.conversations import get_conversation_row
from memory.db import Tx
from memory.limits import cut
from memory.sql import upsert
from memory.tables import job_progress
from memory.timeutil import now_db

MAX_NOTE_LENGTH = 500
"""A note (a stage, a warning) longer than this is cut: notes are shown, not parsed."""

SELECT_PROGRESS = select(
    job_progress.c.stage, job_progress.c.fraction, job_progress.c.notes, job_progress.c.decisions
)


@dataclass(frozen=True)
class DecisionIds:
    """One cluster's MatchDecision by speaker ids: what a summary on another server needs
    (which speakers the recording created, which it suggests)."""

    local_label: str
    speaker_id: int
    score: float | None
    created: bool
    suggested_id: int | None = None
    suggested_score: float | None = None


@dataclass(frozen=True)
class JobProgress:
    conversation_id: int
    stage: str
    fraction: float
    notes: tuple[tuple[str, str], ...] = field(default=())
    """(level, message), oldest first: the stages entered and the warnings logged."""
    decisions: tuple[DecisionIds, ...] = field(default=())
    """The finished ingest's decisions (empty until then)."""


def save(tx: Tx, progress: JobProgress) -> None:
    """Insert or replace the conversation's row."""
    get_conversation_row(tx, progress.conversation_id)
    notes = json.dumps([[level, cut(message, MAX_NOTE_LENGTH)]
                        for level, message in progress.notes])
    decisions = json.dumps([[d.local_label, d.speaker_id, d.score, d.created, d.suggested_id,
                             d.suggested_score] for d in progress.decisions])
    tx.execute(upsert(tx.dialect, job_progress, {
        "conversation_id": progress.conversation_id, "stage": progress.stage,
        "fraction": max(0.0, min(1.0, progress.fraction)), "notes": notes,
        "decisions": decisions, "updated_at": now_db(),
    }, key=["conversation_id"]))


def load(tx: Tx, conversation_id: int) -> JobProgress | None:
    row = tx.first(SELECT_PROGRESS.where(job_progress.c.conversation_id == conversation_id))
    if row is None:
        return None
    return JobProgress(
        conversation_id=conversation_id, stage=str(row.stage), fraction=float(row.fraction),
        notes=tuple((str(level), str(message)) for level, message in json.loads(row.notes)),
        decisions=tuple(DecisionIds(str(label), int(speaker), score, bool(created), suggested,
                                    suggested_score)
                        for label, speaker, score, created, suggested, suggested_score
                        in json.loads(row.decisions)),
    )
