"""The protocol utilities beside the tools, through the SDK's in-memory client: log
notifications at the level the client set, and completions of conversation ids and speakers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import LoggingMessageNotificationParams, PromptReference, ResourceTemplateReference

from server.mcp_server import TRANSCRIPT_URI, build_server
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools.completions import MAX_VALUES
from tools.context import App
from tools.settings import Settings

pytestmark = pytest.mark.anyio

MEETING = [
    Turn("alice", "Good morning everyone, let us review the budget for the launch."),
    Turn("bob", "The marketing budget is fine, we spent less than planned."),
]
FALLBACK = "CAM++ falls back to torch, slower (no ONNX export)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FallingBackPipeline(FakePipeline):
    """The fake pipeline, logging the warning a real one logs when a model falls back."""

    def run(self, audio_or_path: Any, **kwargs: Any) -> Any:
        logging.getLogger("inference.campplus").warning(FALLBACK)
        return super().run(audio_or_path, **kwargs)


class Logs:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    async def __call__(self, params: LoggingMessageNotificationParams) -> None:
        self.entries.append((params.level, str(params.data)))

    def levels(self) -> set[str]:
        return {level for level, _ in self.entries}


async def test_job_stages_and_warnings_reach_the_client_at_the_level_it_set(
    settings: Settings, tmp_path: Path
) -> None:
    fake = FallingBackPipeline()
    logs = Logs()
    with App(settings, pipeline=fake, start_dir=tmp_path) as app:
        inbox = settings.inbox_dir
        recordings = [fake.recording(inbox / f"m{n}.wav", MEETING, frequency=200 + 50 * n)
                      for n in range(3)]
        async with Client(build_server(app), mode="legacy", logging_callback=logs) as client:
            assert client.server_capabilities.logging is not None
            first = await client.call_tool("process_audio", {"path": str(recordings[0])})
            assert not first.is_error, first.content
            cid = first.structured_content["conversation_id"]  # type: ignore[index]
            assert ("info", f"conversation {cid}: transcribing") in logs.entries
            assert ("info", f"conversation {cid}: done") in logs.entries
            assert ("warning", f"conversation {cid}: {FALLBACK}") in logs.entries

            logs.entries.clear()
            await client.set_logging_level("warning")
            assert not (await client.call_tool("process_audio",
                                               {"path": str(recordings[1])})).is_error
            assert logs.levels() == {"warning"}

            logs.entries.clear()
            await client.set_logging_level("error")
            assert not (await client.call_tool("process_audio",
                                               {"path": str(recordings[2])})).is_error
            assert logs.entries == []


def _store_conversations(app: App, titles: Sequence[str]) -> list[int]:
    """Conversations straight into the real store, oldest first (a day apart)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        app.memory.create_conversation(title=title, source_name=f"{n}.wav", sha256=f"{n:064x}",
                                       recorded_at=start + timedelta(days=n),
                                       audio_path=None).id
        for n, title in enumerate(titles)
    ]


async def complete(client: Client, ref: Any, name: str, value: str) -> tuple[list[str], int, bool]:
    result = (await client.complete(ref, {"name": name, "value": value})).completion
    assert result.total is not None and result.has_more is not None
    return result.values, result.total, result.has_more


async def test_conversation_ids_complete_on_id_or_title_newest_first(app: App) -> None:
    budget, standup, budget_again = _store_conversations(
        app, ["Budget review", "Standup", "budget follow-up"])
    template = ResourceTemplateReference(type="ref/resource", uri=TRANSCRIPT_URI)
    prompt = PromptReference(type="ref/prompt", name="name_unknown_speakers")
    async with Client(build_server(app)) as client:
        for ref in (template, prompt):
            assert await complete(client, ref, "conversation_id", "BUD") == (
                [str(budget_again), str(budget)], 2, False)
            assert await complete(client, ref, "conversation_id", "") == (
                [str(budget_again), str(standup), str(budget)], 3, False)
            assert await complete(client, ref, "conversation_id", str(standup)) == (
                [str(standup)], 1, False)
            assert await complete(client, ref, "conversation_id", "zzz") == ([], 0, False)
        # An argument or a prompt with nothing to complete: an empty completion.
        assert await complete(client, prompt, "other", "") == ([], 0, False)
        unknown = PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
        assert await complete(client, unknown, "arg1", "test") == ([], 0, False)


async def test_completions_are_bounded_to_a_hundred_with_has_more(app: App) -> None:
    ids = _store_conversations(app, [f"Call {n}" for n in range(MAX_VALUES + 5)])
    template = ResourceTemplateReference(type="ref/resource", uri=TRANSCRIPT_URI)
    async with Client(build_server(app)) as client:
        values, total, has_more = await complete(client, template, "conversation_id", "call")
    assert (len(values), total, has_more) == (MAX_VALUES, MAX_VALUES + 5, True)
    assert values == [str(i) for i in reversed(ids)][:MAX_VALUES]  # newest first


async def test_speakers_complete_by_name_or_unknown_label(
    app: App, fake: FakePipeline
) -> None:
    path = fake.recording(app.settings.inbox_dir / "meeting.wav", MEETING)
    prompt = PromptReference(type="ref/prompt", name="name_unknown_speakers")
    async with Client(build_server(app)) as client:
        assert not (await client.call_tool("process_audio", {"path": str(path)})).is_error
        values, total, _ = await complete(client, prompt, "speaker", "unknown")
        assert total == 2 and sorted(values) == ["Unknown 1", "Unknown 2"]
        segment = (await client.call_tool("get_latest_segments", {"limit": 1}))
        segment_id = segment.structured_content["segments"][0]["id"]  # type: ignore[index]
        named = await client.call_tool("identify_speaker_in_segment",
                                       {"segment_id": segment_id, "speaker_name": "Sarah"})
        assert not named.is_error, named.content
        assert await complete(client, prompt, "speaker", "sA") == (["Sarah"], 1, False)
        left = (await complete(client, prompt, "speaker", "UNK"))[0]
        assert len(left) == 1 and left[0].startswith("Unknown")

        # The prompt then walks through that one voice only.
        text = (await client.get_prompt("name_unknown_speakers", {"speaker": left[0]}))
        body = text.messages[0].content.text  # type: ignore[union-attr]
        assert f"{left[0]}:" in body and "Sarah" not in body
