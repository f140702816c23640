"""The issue's end-to-end scenario with the real bundled models: `speaker-memory serve` (as
the README's Quick start runs it, plus a token) driven by the SDK client over Streamable HTTP.

The opening of dev08 (hiring debrief, 29.5 s) has two voices, bf_emma and am_fenrir, both new
to the store. We name bf_emma "Nick" from one of her segments; the opening of dev04 (the
half-year budget review, 15.9 s) is a later conversation where bf_emma opens with "...we're
about six percent over budget...", so the search for "budget" said by Nick must find her
segment there. Both are excerpts in tests/data; ground truth comes from their transcript JSON
(speaker turns with start/end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.server.tests_support import serve_subprocess
from tests.testdata import dev_conversation, reference_speaker

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]

FIRST, LATER, VOICE = "dev08-start", "dev04-start", "bf_emma"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str | None]]:
    conversations = dev_conversation(FIRST).parent
    yield from serve_subprocess(tmp_path_factory.mktemp("scenario"), token="scenario-token",
                                SPEAKER_MEMORY_ALLOWED_ROOTS=str(conversations))


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_name_a_voice_once_and_find_it_everywhere(
    server: tuple[str, str | None],
) -> None:
    base, token = server
    reported: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"},
                           timeout=httpx2.Timeout(30, read=900)) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        # 1. A conversation with two voices the store has never heard.
        result = await client.call_tool("process_audio", {"path": dev_conversation(FIRST).name},
                                        progress_callback=on_progress)
        assert not result.is_error, result.content
        first = result.structured_content
        assert first is not None and first["status"] == "done", first
        assert first["unknown_speakers"] == 2 and first["named_speakers"] == 0
        assert reported and max(reported) <= 100

        segments = (await ok(client, "get_conversation",
                             conversation_id=first["conversation_id"]))["segments"]
        hers = [s for s in segments if reference_speaker(FIRST, s["start"], s["end"]) == VOICE]
        chosen = max(hers, key=lambda s: len(s["text"]))
        unknown = chosen["speaker"]
        assert unknown["kind"] == "unknown"

        # 2. "That was Nick": every segment of that voice becomes Nick.
        named = await ok(client, "identify_speaker_in_segment", segment_id=chosen["id"],
                         speaker_name="Nick")
        assert named["speaker"]["label"] == "Nick"
        relabelled = (await ok(client, "get_conversation",
                               conversation_id=first["conversation_id"]))["segments"]
        before = {s["id"]: s["speaker"]["id"] for s in segments if s["speaker"]}
        for segment in relabelled:
            if before.get(segment["id"]) == unknown["id"]:
                assert segment["speaker"]["label"] == "Nick", segment
            else:
                assert segment["speaker"] is None or segment["speaker"]["label"] != "Nick"
        assert named["segments_relabelled"] == sum(
            1 for v in before.values() if v == unknown["id"])

        # 3. A later conversation where the same voice speaks: it comes back named.
        later = await ok(client, "process_audio", path=dev_conversation(LATER).name)
        assert later["status"] == "done", later
        assert "Nick" in [s["speaker"]["label"] for s in later["speakers"]]

        # 4. What did Nick say about the budget?
        hits = (await ok(client, "search_conversations", query="budget",
                         speaker="Nick"))["hits"]
        budget = [h for h in hits if "budget" in h["segment"]["text"].lower()]
        assert budget, hits
        segment = budget[0]["segment"]
        assert segment["conversation_id"] == later["conversation_id"]
        assert segment["speaker"]["label"] == "Nick"
        assert reference_speaker(LATER, segment["start"], segment["end"]) == VOICE

        # 5. Undo: the voice is unknown again, under its old label.
        undone = await ok(client, "undo_identity_change")
        assert undone["action"] == "undo"
        restored = (await ok(client, "get_conversation",
                             conversation_id=first["conversation_id"]))["segments"]
        by_id = {s["id"]: s for s in restored}
        assert by_id[chosen["id"]]["speaker"]["label"] == unknown["label"]
        assert by_id[chosen["id"]]["speaker"]["kind"] == "unknown"
        speakers = (await ok(client, "list_speakers", kind="enrolled"))["speakers"]
        assert "Nick" not in [s["label"] for s in speakers]
