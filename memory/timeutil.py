"""Timestamps are stored as fixed-format UTC ISO text, so that text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def to_db(value: datetime | None) -> str | None:
    """Naive datetimes are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def now_db() -> str:
    text = to_db(now())
    assert text is not None
    return text


def from_db(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def from_db_required(value: str) -> datetime:
    return datetime.fromisoformat(value)
