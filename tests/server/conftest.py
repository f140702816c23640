"""Fixtures of the server tests (the App fixtures come from tests.tools.fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server import cli
from tests.tools.fake_pipeline import FakePipeline
from tools.context import App
from tools.settings import Settings


@pytest.fixture
def on_fake(monkeypatch: pytest.MonkeyPatch, fake: FakePipeline) -> Iterator[FakePipeline]:
    """The command line's App runs the fake pipeline."""
    def app_with_fake(settings: Settings) -> App:
        return App(settings, pipeline=fake)

    monkeypatch.setattr(cli, "_app", app_with_fake)
    yield fake
