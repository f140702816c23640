"""Fixtures for tools and server tests: a real store in a temp dir and a deterministic fake
pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.fake_pipeline import FakePipeline
from tools.context import App
from tools.settings import Settings


@pytest.fixture
def fake() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", wait_seconds=30, max_upload_bytes=64 * 1024)


@pytest.fixture
def app(settings: Settings, fake: FakePipeline, tmp_path: Path) -> Iterator[App]:
    start = tmp_path / "start"
    start.mkdir()
    with App(settings, pipeline=fake, start_dir=start) as built:
        yield built
