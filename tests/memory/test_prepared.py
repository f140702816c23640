"""Prepared statements (memory.prepared) answer as the same statements run through SQLAlchemy:
the same rows, read by name, with the columns' types applied, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, func, select, update

from memory import SpeakerMemory
from memory.prepared import Prepared
from memory.sql import in_ids_param
from memory.tables import conversation, segment, speaker
from tests.memory.fakes import Voices
from tests.memory.test_undo import populated

SEGMENTS_OF = (
    select(segment.c.id, segment.c.speaker_id, segment.c.start,
           segment.c.excluded_from_profile, func.count().over().label("total"))
    .where(in_ids_param(segment.c.speaker_id, "speakers"))
    .order_by(segment.c.id).limit(bindparam("limit"))
)
FIRST_SPEAKER = select(speaker.c.id, speaker.c.name).order_by(speaker.c.id).limit(1)
RETITLE = update(conversation).where(conversation.c.id == bindparam("cid")).values(
    title=bindparam("title"))


def test_rows_match_sqlalchemys_with_types_applied(store: SpeakerMemory, voices: Voices) -> None:
    populated(store, voices)
    with store._db.write() as tx:
        some = [int(s) for s, in tx.rows(select(speaker.c.id))][:2]
        tx.execute(update(segment).where(segment.c.speaker_id == some[0])
                   .values(excluded_from_profile=1))
        params = {"speakers": some, "limit": 5}
        expected = tx.rows(SEGMENTS_OF, params)
        got = tx.rows(Prepared(SEGMENTS_OF), params)
    assert len(got) == 5
    assert [tuple(r) for r in got] == [tuple(r) for r in expected]
    assert [r.speaker_id for r in got] == [r.speaker_id for r in expected]
    assert all(isinstance(r.excluded_from_profile, bool) for r in got)  # Flag, as Core reads it
    assert all(r.excluded_from_profile == (r.speaker_id == some[0]) for r in got)
    assert all(isinstance(r.start, float) and isinstance(r.total, int) for r in got)


def test_first_value_and_rowcount(store: SpeakerMemory, voices: Voices) -> None:
    populated(store, voices)
    first = Prepared(FIRST_SPEAKER)
    with store._db.write() as tx:
        row = tx.first(first)
        assert row is not None and row == tx.first(FIRST_SPEAKER)
        assert tx.value(first) == row.id
        retitle = Prepared(RETITLE)
        assert tx.execute(retitle, {"cid": 1, "title": "renamed"}) == 1
        assert tx.execute(retitle, {"cid": 10_000, "title": "nobody"}) == 0
        assert tx.value(select(conversation.c.title).where(conversation.c.id == 1)) == "renamed"
        assert tx.first(Prepared(SEGMENTS_OF), {"speakers": [], "limit": 3}) is None
        # PostgreSQL's SUM of bigints is numeric, read as a float whatever the result format
        total = select(func.sum(segment.c.id))
        assert type(tx.value(Prepared(total))) is type(tx.value(total))
        assert tx.value(Prepared(total)) == tx.value(total)


def test_a_statement_with_an_expanding_in_is_refused(store: SpeakerMemory) -> None:
    expanding = select(speaker.c.id).where(speaker.c.id.in_(bindparam("ids", expanding=True)))
    with store._db.read() as tx, pytest.raises(TypeError, match="in_ids"):
        tx.rows(Prepared(expanding), {"ids": [1]})
