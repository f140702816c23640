"""Fixtures for server tests. The fake pipeline lives with the tools tests; its folder is put
on sys.path here so both suites share the one implementation."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from fake_pipeline import FakePipeline

from tools.context import App
from tools.settings import Settings

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


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
