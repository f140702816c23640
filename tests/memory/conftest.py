from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import SpeakerMemory
from tests.memory.fakes import Voices


@pytest.fixture
def voices() -> Voices:
    """Synthetic voices: each a random unit vector; clips are it plus small noise."""
    return Voices(seed=7)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpeakerMemory]:
    memory = SpeakerMemory(tmp_path / "data" / "speaker_memory.db")
    yield memory
    memory.close()
