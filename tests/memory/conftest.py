from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import SpeakerMemory
from tests.memory import backends
from tests.memory.backends import Backend
from tests.memory.fakes import Voices


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every test that asks for it (or for `store`) runs on both backends."""
    if request.param == "sqlite":
        chosen = backends.SQLITE
    else:
        chosen = Backend("postgresql", request.getfixturevalue("postgres"))
    backends.current = chosen
    yield chosen
    backends.current = backends.SQLITE


@pytest.fixture
def voices() -> Voices:
    """Synthetic voices: each a random unit vector; clips are it plus small noise."""
    return Voices(seed=7)


@pytest.fixture
def store(backend: Backend, tmp_path: Path) -> Iterator[SpeakerMemory]:
    path = tmp_path / "data" / "speaker_memory.db"
    memory = backend.open(path)
    yield memory
    memory.close()
    backends.discard(path)
