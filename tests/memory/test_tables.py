"""memory.tables against a migrated store, and the Tx's Core calls on both backends."""

from __future__ import annotations

from sqlalchemy import func, insert, inspect, select, update

from memory import SpeakerMemory
from memory.speakers import SavedSpeaker
from memory.sql import in_ids, insert_ignore, upsert
from memory.tables import meta, metadata, speaker
from memory.timeutil import now_db


def test_the_tables_describe_the_migrated_schema(store: SpeakerMemory) -> None:
    with store._db.read() as tx:
        found = inspect(tx.connection)
        for table in metadata.sorted_tables:
            stored = {c["name"]: c for c in found.get_columns(table.name)
                      if "computed" not in c}  # PostgreSQL's tsvector: the keyword index's
            assert list(stored) == [c.name for c in table.columns], table.name
            for column in table.columns:
                if column.primary_key:
                    continue  # SQLite reports its INTEGER PRIMARY KEY as nullable
                assert stored[column.name]["nullable"] == column.nullable, (
                    f"{table.name}.{column.name}"
                )
            keys = found.get_pk_constraint(table.name)["constrained_columns"]
            assert set(keys) == {c.name for c in table.primary_key}, table.name


def test_a_saved_speaker_has_the_speaker_tables_columns_in_order() -> None:
    assert SavedSpeaker._fields == tuple(c.name for c in speaker.columns)


def _speaker(name: str | None, number: int | None) -> dict[str, object]:
    stamp = now_db()
    return {"name": name, "name_key": None if name is None else name.lower(),
            "kind": "unknown" if name is None else "enrolled", "unknown_number": number,
            "created_at": stamp, "updated_at": stamp}


def test_inserts_return_their_ids_and_explicit_ids_move_the_counter_on(
    store: SpeakerMemory,
) -> None:
    with store._db.write() as tx:
        first = tx.insert(insert(speaker).values(**_speaker("Ada", None)))
        explicit = tx.insert(insert(speaker).values(id=first + 10, **_speaker("Bea", None)))
        after = tx.insert(insert(speaker).values(**_speaker("Cy", None)))
        tx.insert_rows(speaker, [
            {"id": after + 5 + i, **_speaker(f"P{i}", None)} for i in range(30)
        ])
        last = tx.insert(insert(speaker).values(**_speaker("Di", None)))
    assert explicit == first + 10
    assert after == first + 11  # never an id already given
    assert last == after + 35


def test_id_lists_of_any_length_bind_as_one_parameter(store: SpeakerMemory) -> None:
    with store._db.write() as tx:
        tx.insert_rows(speaker, [_speaker(None, n) for n in range(1, 40_001)])
        ids = [r.id for r in tx.rows(select(speaker.c.id).order_by(speaker.c.id))]
        wanted = ids[::2]
        assert tx.value(select(func.count()).where(in_ids(speaker.c.id, wanted))) == len(wanted)
        assert tx.value(select(func.count()).where(in_ids(speaker.c.id, []))) == 0
        changed = tx.execute(
            update(speaker).where(in_ids(speaker.c.id, ids[:3])).values(match_threshold=0.5)
        )
        assert changed == 3
    with store._db.read() as tx:
        streamed = list(tx.stream(select(speaker.c.id, speaker.c.unknown_number)
                                  .where(in_ids(speaker.c.id, ids[:5])).order_by(speaker.c.id)))
        assert streamed == [(i, n) for i, n in zip(ids[:5], range(1, 6), strict=True)]


def test_upsert_inserts_then_updates_and_insert_ignore_keeps_the_first(
    store: SpeakerMemory,
) -> None:
    with store._db.write() as tx:
        dialect = tx.dialect
        tx.execute(upsert(dialect, meta, {"key": "k", "value": "1"}, key=["key"]))
        tx.execute(upsert(dialect, meta, {"key": "k", "value": "2"}, key=["key"]))
        tx.execute(insert_ignore(dialect, meta, {"key": "k", "value": "3"}))
        assert tx.value(select(meta.c.value).where(meta.c.key == "k")) == "2"
