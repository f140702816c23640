"""Versioned schema migrations for both backends, from one Alembic history.

The revisions are the files of memory/schema/versions/ (how to add one: memory/schema/
__init__.py): revision "0001", "0002", ... each run the DDL of the store's dialect
(`run_ddl`). The schema version a store reports (and a backup carries) is its revision as a
number. Opening a store runs `migrate`: every pending revision, all in one write transaction
of the store (SQLite: BEGIN IMMEDIATE; PostgreSQL: the writers' advisory lock), so two
processes opening one store never both migrate it, and a failing revision leaves no trace.

Stores made before Alembic recorded their version in a `schema_version` table (the runner
this replaced): such a store is stamped at the same revision, the old table dropped, and the
later revisions run, in that same transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import op
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Column, Integer, MetaData, Table, func, inspect, select
from sqlalchemy.schema import DropTable

from memory.db import Store, Tx
from memory.errors import StoreError
from memory.pg import PgTx
from memory.pg_index import check_pgvector

log = logging.getLogger(__name__)


class _UpgradesOnly(logging.Filter):
    """Alembic's runtime says which revisions run (kept) and, on every open, which dialect
    it found (dropped: noise in the server's log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage().startswith("Running ")


logging.getLogger("alembic.runtime.migration").addFilter(_UpgradesOnly())
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

SCRIPT_DIRECTORY = Path(__file__).with_name("schema")
OLD_VERSION_TABLE = Table("schema_version", MetaData(), Column("version", Integer))
"""Where the runner before Alembic recorded a store's version."""


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_DIRECTORY))
    return ScriptDirectory.from_config(config)


def latest_version() -> int:
    head = script_directory().get_current_head()
    return int(head) if head else 0


def current_tx() -> Tx:
    """Inside a revision's upgrade(): the migration's transaction as a Tx of its dialect."""
    bind = op.get_bind()
    return PgTx(bind) if bind.dialect.name == "postgresql" else Tx(bind)


def run_ddl(*, sqlite: str, postgresql: str) -> None:
    """Inside a revision's upgrade(): run the DDL of the store's dialect."""
    tx = current_tx()
    tx.script(postgresql if tx.dialect == "postgresql" else sqlite)


def migrate(db: Store) -> int:
    """Bring the store to the latest revision; returns the schema version it is at."""
    script = script_directory()
    with db.write() as tx:
        connection = tx.connection
        _adopt_version_table(tx, script)
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and not _known(script, current):
            raise StoreError(
                f"{db.label} has schema version {current.lstrip('0')}, newer than this "
                f"program's {latest_version()}; upgrade speaker-memory to open it"
            )

        def upgrade(revision: str, context: MigrationContext) -> object:
            # What alembic.command.upgrade runs: the steps from `revision` to the head.
            return script._upgrade_revs("head", revision)

        with EnvironmentContext(Config(), script, fn=upgrade, destination_rev="head") as env:
            env.configure(connection=connection)
            with env.begin_transaction():  # the store's, already open: nothing to begin
                env.run_migrations()
        reached = MigrationContext.configure(connection).get_current_revision()
        if tx.dialect == "postgresql":
            check_pgvector(tx)
    return int(reached or 0)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _adopt_version_table(tx: Tx, script: ScriptDirectory) -> None:
    """A store from before Alembic: stamp its version as the revision of that number."""
    tables = inspect(tx.connection)
    if not tables.has_table("schema_version") or tables.has_table("alembic_version"):
        return
    version = int(tx.value(
        select(func.coalesce(func.max(OLD_VERSION_TABLE.c.version), 0))
    ))
    revision = f"{version:04d}"
    if version and not _known(script, revision):
        raise StoreError(
            f"the store has schema version {version}, newer than this program's "
            f"{latest_version()}; upgrade speaker-memory to open it"
        )
    if version:
        log.info("schema version %d recorded by the old runner: stamped as revision %s",
                 version, revision)
        MigrationContext.configure(tx.connection).stamp(script, revision)
    tx.execute(DropTable(OLD_VERSION_TABLE))
