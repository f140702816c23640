"""Moving a memory from its SQLite file to a shared PostgreSQL (`speaker-memory migrate-store`):
open both stores (the target is created and migrated like any new store), copy every row
(memory.store_copy), and say what was copied and checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memory.api import SpeakerMemory
from memory.errors import InvalidInput
from memory.pg import display_url, is_postgresql
from memory.store_copy import CopyReport
from memory.wording import counted
from tools.settings import Settings


@dataclass(frozen=True)
class StoreMigrated:
    source: str
    target: str
    report: CopyReport

    @property
    def message(self) -> str:
        report = self.report
        width = max(len(t.table) for t in report.tables)
        lines = [f"Copied {self.source} into {self.target} in {report.seconds:.1f} s:",
                 f"  {'table':<{width}}  {'SQLite':>9}  {'PostgreSQL':>10}  compared"]
        lines += [f"  {t.table:<{width}}  {t.source_rows:>9}  {t.target_rows:>10}  {t.sampled:>8}"
                  for t in report.tables]
        sampled = sum(t.sampled for t in report.tables)
        lines.append(
            f"Every table has the same row count; {counted(sampled, 'row')} and "
            f"{counted(report.vectors_compared, 'text vector')} (of {report.vectors_indexed} "
            "in pgvector) compared exactly. The SQLite file is "
            "unchanged; point the servers at the new store with SPEAKER_MEMORY_DATABASE_URL."
        )
        return "\n".join(lines)


def migrate_store(settings: Settings, to_url: str, from_path: Path | None = None) -> StoreMigrated:
    """Copy the SQLite store at `from_path` (default: the configured data directory's) into
    the empty PostgreSQL store at `to_url`."""
    source_path = from_path or settings.db_path
    if not is_postgresql(to_url):
        raise InvalidInput(
            f"--to must be a PostgreSQL URL (postgresql+psycopg://user:password@host/database), "
            f"got {display_url(to_url)}"
        )
    if not source_path.is_file():
        raise InvalidInput(f"no SQLite store at {source_path}; give its file with --from")
    source = SpeakerMemory(source_path, settings.match_config)
    try:
        target = SpeakerMemory(source_path, settings.match_config, database_url=to_url)
        try:
            report = source.copy_to(target)
        finally:
            target.close()
    finally:
        source.close()
    return StoreMigrated(str(source_path), display_url(to_url), report)
