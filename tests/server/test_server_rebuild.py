"""The voice profile rebuild through every transport: the MCP tool (with progress), REST, the
command line, and the start-up of `serve` (the HTTP app's lifespan)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mcp import Client
from starlette.testclient import TestClient

from memory.types import CAMPPLUS_MODEL_ID, GE2E_MODEL_ID
from server.cli import main
from server.http import create_http_app
from server.mcp_server import build_server
from tests.memory.fakes import Voices
from tests.tools.fake_pipeline import FakePipeline
from tests.tools.test_tools_rebuild import build_ge2e_store
from tools.context import App
from tools.rebuild import REBUILD_JOB
from tools.settings import Settings


@pytest.fixture
def ge2e_app(app: App, fake: FakePipeline, tmp_path: Path) -> App:
    """A store built with GE2E, served with CAM++ as the voice model."""
    fake.voice_model_id = CAMPPLUS_MODEL_ID
    build_ge2e_store(app, fake, tmp_path / "audio")
    return app


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_mcp_tool_rebuilds_with_progress_and_is_idempotent(ge2e_app: App) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(build_server(ge2e_app)) as client:
        result = await client.call_tool("rebuild_voice_profiles", {},
                                        progress_callback=on_progress)
        assert not result.is_error, result.content
        out = result.structured_content
        assert out is not None
        assert out["status"] == "done" and out["model_id"] == CAMPPLUS_MODEL_ID
        assert (out["rebuilt"], out["skipped"], out["speakers_total"]) == (2, 0, 4)
        assert [s["label"] for s in out["without_audio"]] == ["Unknown 2", "Dee"]
        assert "Re-enroll them" in out["message"]
        assert updates and updates[-1][0] == 100

        again = await client.call_tool("rebuild_voice_profiles", {"wait": False})
        assert again.structured_content is not None
        assert again.structured_content["rebuilt"] == 0
        cancelled = await client.call_tool("rebuild_voice_profiles", {"cancel": True})
        assert cancelled.structured_content is not None
        assert cancelled.structured_content["status"] in ("queued", "running", "done")


def test_rest_starts_and_reports_the_rebuild(ge2e_app: App) -> None:
    with TestClient(create_http_app(ge2e_app), base_url="http://127.0.0.1:8000") as client:
        started = client.post("/api/v1/voice-profiles/rebuild", json={"wait": True})
        assert started.status_code == 200, started.text
        assert started.json()["rebuilt"] + started.json()["skipped"] == 2  # start-up did some
        status = client.get("/api/v1/voice-profiles/rebuild")
        assert status.status_code == 200 and status.json()["status"] == "done"
        refused = client.post("/api/v1/voice-profiles/rebuild", json={"wait": "yes"})
        assert refused.status_code == 400 and "wait must be true or false" in refused.text


def test_serve_start_up_rebuilds_speakers_that_lack_a_profile(ge2e_app: App) -> None:
    with TestClient(create_http_app(ge2e_app), base_url="http://127.0.0.1:8000"):
        deadline = time.monotonic() + 30
        while (job := ge2e_app.jobs.get(REBUILD_JOB)) is None or not job.done:
            assert time.monotonic() < deadline, "no rebuild ran after start-up"
            time.sleep(0.05)
    assert [s.label for s in ge2e_app.memory.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [
        "Unknown 2", "Dee"]


def test_a_store_that_needs_nothing_starts_no_rebuild(app: App) -> None:
    with TestClient(create_http_app(app), base_url="http://127.0.0.1:8000"):
        time.sleep(0.3)
        assert app.jobs.get(REBUILD_JOB) is None


def test_the_command_line_reports_speakers_without_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A GE2E store whose audio is all gone: the real pipeline (CAM++ by default) is built, but
    # no model has to run.
    with App(Settings(data_dir=tmp_path / "data"), pipeline=FakePipeline()) as app:
        voices = Voices(seed=3, dim=256)
        app.memory.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 10.0,
                          clip_path=str(tmp_path / "gone.wav"))
    assert main(["rebuild-profiles", "--data-dir", str(tmp_path / "data")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("None of the 1 speakers without a campplus")
    assert "no stored audio left (Ann)" in captured.out
    assert "... 100% done" in captured.err
    assert main(["rebuild-profiles", "--data-dir", str(tmp_path / "data")]) == 0
    assert "no stored audio left (Ann)" in capsys.readouterr().out  # still none: reported again
