"""Statements on the hot path, compiled once per dialect and run on the driver's cursor.

Ingesting a short recording runs ~20-40 small statements, and matching a voice reads up to
~1000 voiceprint rows. Through SQLAlchemy's execution machinery each statement costs
~30-60 us beyond the database's own work (execution context, cache lookup, result wrapping),
and a statement built anew per call ~80 us more (construction and its cache key): on SQLite,
several milliseconds of a 1-cluster ingest whose SQL takes under 1 ms. A `Prepared`
statement is built once, at module level, with its values as named `bindparam()`s;
SQLAlchemy compiles it once per dialect, and each call binds the values through the same
type processors SQLAlchemy would use and runs the SQL on the driver connection of the
transaction (`Tx`).

Rows come back as named tuples, read by column name like SQLAlchemy's `Row`s, with the
columns' result processing applied (a `Flag` reads as a bool).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql import Executable

Processor = Callable[[Any], Any]


class Form:
    """One statement compiled for one dialect."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if "POSTCOMPILE" in compiled.string:
            raise TypeError("a Prepared statement takes no expanding IN; use memory.sql.in_ids")
        self.sql: str = compiled.string
        self._construct: Callable[[Mapping[str, Any]], dict[str, Any]] = compiled.construct_params
        self._positional: tuple[str, ...] | None = (
            None if compiled.positiontup is None else tuple(compiled.positiontup))
        """The bind names in the order of the qmark placeholders (None: named ones)."""
        self._binders: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._binders[name] = process
        self._dialect = dialect
        self._columns = list(getattr(statement, "exported_columns", None) or [])
        self._row: Callable[..., tuple[Any, ...]] | None = None
        self._results: tuple[Processor | None, ...] = ()

    def bind(self, params: Mapping[str, Any] | None) -> Sequence[Any] | dict[str, Any]:
        values = self._construct(params or {})
        for name, process in self._binders.items():
            values[name] = process(values[name])
        if self._positional is None:
            return values
        return [values[name] for name in self._positional]

    def wrap(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows as named tuples, each value through its column's result processor (which
        on PostgreSQL depends on the type the driver reports, so it is found on first use)."""
        if self._row is None:
            if not self._columns:
                raise TypeError("the statement returns no rows")
            self._results = tuple(
                column.type.dialect_impl(self._dialect).result_processor(self._dialect, kind[1])
                for column, kind in zip(self._columns, cursor.description, strict=True))
            self._row = namedtuple(  # type: ignore[misc]
                "PreparedRow", [c.key for c in self._columns], rename=True)
        make = self._row
        assert make is not None
        if not any(self._results):
            return [make(*r) for r in rows]
        steps = self._results
        return [make(*[v if p is None else p(v) for p, v in zip(steps, r, strict=True)])
                for r in rows]


class Prepared:
    """A statement built once, compiled once per dialect (see the module's docstring).

    Give the statement, or (for one whose construction differs per dialect, like an upsert)
    a function of the dialect's name that builds it."""

    def __init__(self, statement: Executable | Callable[[str], Executable]) -> None:
        self._build = statement if callable(statement) else (lambda _dialect: statement)
        self._forms: dict[str, Form] = {}

    def form(self, dialect: Dialect) -> Form:
        found = self._forms.get(dialect.name)
        if found is None:
            found = self._forms[dialect.name] = Form(self._build(dialect.name), dialect)
        return found
