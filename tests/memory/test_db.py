"""The engine's connection settings and the WAL checkpointer's schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from memory import SpeakerMemory
from memory.db import checkpoint_delay


def test_checkpoint_waits_for_a_pause_in_writes() -> None:
    # woken at t=100 by a write at t=100: wait until writes have paused for 0.5 s
    assert checkpoint_delay(100.0, 100.0, 100.0, 0.5, 5.0) == pytest.approx(0.5)
    assert checkpoint_delay(100.2, 100.0, 100.0, 0.5, 5.0) == pytest.approx(0.3)
    assert checkpoint_delay(100.5, 100.0, 100.0, 0.5, 5.0) == 0.0
    # another write at t=100.4 pushes it back
    assert checkpoint_delay(100.5, 100.4, 100.0, 0.5, 5.0) == pytest.approx(0.4)


def test_checkpoint_is_not_postponed_forever_by_steady_writes() -> None:
    assert checkpoint_delay(104.8, 104.8, 100.0, 0.5, 5.0) == pytest.approx(0.2)
    assert checkpoint_delay(105.0, 104.99, 100.0, 0.5, 5.0) == 0.0
    assert checkpoint_delay(107.0, 106.9, 100.0, 0.5, 5.0) == 0.0


def test_store_connections_use_wal_and_map_the_whole_file(tmp_path: Path) -> None:
    with SpeakerMemory(tmp_path / "store.db") as memory, memory._db.read() as tx:
        assert tx.value(text("PRAGMA journal_mode")) == "wal"
        assert tx.value(text("PRAGMA synchronous")) == 1  # NORMAL: the WAL setting; never OFF
        assert tx.value(text("PRAGMA mmap_size")) >= 64 << 30


def test_closing_the_store_checkpoints_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    memory = SpeakerMemory(path)
    for i in range(20):
        memory.create_conversation(title=f"c{i}")
    memory.close()
    wal = Path(str(path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with SpeakerMemory(path) as reopened:
        assert reopened.list_conversations(limit=50).total == 20
