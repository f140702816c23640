"""Core expressions the two dialects spell differently, written once here.

The domain modules build every statement from memory.tables with SQLAlchemy Core; SQLAlchemy
renders it for the store's dialect. Three things Core has no single spelling for:
- a long list of ids (a relabel touches 100k segments): `IN (1, 2, ...)` with one bound
  parameter per id is slow to build and hits SQLite's variable limit, so the list goes as
  one parameter: a JSON array through `json_each` on SQLite, a bigint array on PostgreSQL;
- an upsert (`INSERT ... ON CONFLICT DO UPDATE`), which each dialect's insert builds itself;
- an aggregate's Python type (memory.pg loads PostgreSQL's numeric as float, as SQLite gives).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Dialect,
    Table,
    TypeDecorator,
    bindparam,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import FromClause
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType
from sqlalchemy.types import NullType, Text, TypeEngine


class IdList(TypeDecorator[list[int]]):
    """A list of ids bound as one parameter: a JSON array on SQLite (read by json_each), a
    bigint array on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(BigInteger()))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return value
        return "[" + ",".join(map(str, value)) + "]"


class InIds(ColumnElement[bool]):
    """`column IN <ids>`, the ids bound as one parameter (see the module's docstring). The
    statement's shape does not depend on the ids, so SQLAlchemy compiles it once and caches
    it like any other."""

    inherit_cache = True
    # What the statement cache keys on: the column and the parameter, not the ids' values.
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy declares it)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]
    type = NullType()  # type: ignore[assignment]  # not Boolean: SQLite compares that with 1

    def __init__(self, column: ColumnElement[Any], ids: BindParameter[Any]) -> None:
        self.column = column
        self.ids = ids

    @property
    def _from_objects(self) -> list[FromClause]:
        return self.column._from_objects


@compiles(InIds, "sqlite")
def _in_ids_sqlite(element: InIds, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} IN "
            f"(SELECT value FROM json_each({compiler.process(element.ids, **kw)}))")


@compiles(InIds, "postgresql")
def _in_ids_postgresql(element: InIds, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)}"
            f" = ANY({compiler.process(element.ids, **kw)})")


def in_ids(column: ColumnElement[Any], ids: Iterable[int]) -> InIds:
    """`column IN ids` for a list of any length, as one bound parameter."""
    return InIds(column, bindparam(None, [int(i) for i in ids], type_=IdList(), unique=True))


def in_ids_param(column: ColumnElement[Any], name: str) -> InIds:
    """`column IN :name`, the ids given when the statement runs (memory.prepared)."""
    return InIds(column, bindparam(name, type_=IdList()))


def upsert(
    dialect: str, table: Table, values: Mapping[str, Any], key: Sequence[str],
    update: Sequence[str] | None = None,
) -> Insert:
    """INSERT `values`, or on a row with the same `key` columns UPDATE the `update` columns
    (all the others, by default) to the new values."""
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = builder(table).values(**values)
    changed = [c for c in values if c not in key] if update is None else list(update)
    return statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in key],
        set_={c: statement.excluded[c] for c in changed},
    )


def insert_ignore(dialect: str, table: Table, values: Mapping[str, Any]) -> Insert:
    """INSERT `values` unless a row with the same unique key exists."""
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return builder(table).values(**values).on_conflict_do_nothing()
