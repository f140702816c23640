"""Every tool through the SDK's in-memory Client(server): a real store, the fake pipeline."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from server.mcp_server import INSTRUCTIONS, TOOL_NAMES, build_server
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools.context import App

pytestmark = pytest.mark.anyio

MEETING = [
    Turn("alice", "Good morning everyone, let us review the budget for the launch."),
    Turn("bob", "The marketing budget is fine, we spent less than planned."),
    Turn("alice", "Great. What about the hiring plan for next quarter?"),
    Turn("bob", "We will open two positions in March."),
]
FOLLOW_UP = [
    Turn("carol", "Hello, I am joining from the Berlin office today."),
    Turn("bob", "Welcome Carol. I checked the travel costs again this morning."),
    Turn("carol", "Thanks, the travel costs look reasonable to me."),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text  # type: ignore[union-attr]
    assert isinstance(text, str)
    return text


@pytest.fixture
def inbox(app: App) -> Path:
    return app.settings.inbox_dir


async def _process(client: Client, path: Path) -> dict[str, Any]:
    return await ok(client, "process_audio", path=str(path))


async def test_lists_every_tool_with_description_and_output_schema(app: App) -> None:
    async with Client(build_server(app)) as client:
        assert client.instructions == INSTRUCTIONS
        tools = (await client.list_tools()).tools
        assert sorted(t.name for t in tools) == sorted(TOOL_NAMES)
        for tool in tools:
            assert tool.description and len(tool.description) > 20, tool.name
            assert tool.output_schema is not None, tool.name
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), f"{tool.name}.{name} lacks a description"
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["name_unknown_speakers"]
        templates = (await client.list_resource_templates()).resource_templates
        assert templates[0].uri_template == "speaker-memory://conversations/{conversation_id}"


async def test_process_reports_progress_and_finds_two_unknown_voices(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    path = fake.recording(inbox / "meeting.wav", MEETING)
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(build_server(app)) as client:
        result = await client.call_tool("process_audio", {"path": str(path), "title": "Launch"},
                                        progress_callback=on_progress)
        assert not result.is_error, result.content
        out = result.structured_content
        assert out is not None
        assert out["status"] == "done" and out["duplicate"] is False
        assert out["unknown_speakers"] == 2 and out["named_speakers"] == 0
        assert sorted(s["segment_count"] for s in out["speakers"]) == [2, 2]
        assert all(s["new"] for s in out["speakers"])
        assert "identify_speaker_in_segment" in out["message"]
        assert updates, "no progress notification arrived"
        assert all(total == 100 for _, total, _ in updates)

        again = await _process(client, path)
        assert again["duplicate"] is True
        assert again["conversation_id"] == out["conversation_id"]
        assert fake.runs == 1

        listed = await ok(client, "list_conversations")
        assert listed["total"] == 1
        assert listed["conversations"][0]["title"] == "Launch"
        assert listed["conversations"][0]["segment_count"] == 4


async def test_transcript_resource_prompt_and_exports(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        cid = (await _process(client, path))["conversation_id"]
        transcript = await ok(client, "get_conversation", conversation_id=cid)
        segments = transcript["segments"]
        assert [s["text"] for s in segments] == [t.text for t in MEETING]
        assert segments[0]["speaker"]["label"].startswith("Unknown")
        assert segments[0]["speaker"]["id"] == segments[2]["speaker"]["id"]
        assert segments[0]["speaker"]["id"] != segments[1]["speaker"]["id"]

        text = await ok(client, "get_conversation", conversation_id=cid, format="text")
        assert text["segments"] == []
        assert "budget for the launch" in text["text"]

        listed = (await client.list_resources()).resources
        assert [str(r.uri) for r in listed] == ["speaker-memory://conversations"]
        index = (await client.read_resource("speaker-memory://conversations")).contents[0]
        assert f"speaker-memory://conversations/{cid}\tmeeting\tdone" in index.text  # type: ignore[union-attr]
        resource = await client.read_resource(f"speaker-memory://conversations/{cid}")
        body = resource.contents[0].text  # type: ignore[union-attr]
        assert "meeting" in body and "hiring plan" in body

        prompt = await client.get_prompt("name_unknown_speakers", {"conversation_id": str(cid)})
        prompt_text = prompt.messages[0].content.text  # type: ignore[union-attr]
        assert "identify_speaker_in_segment" in prompt_text
        assert f"segment {segments[0]['id']}" in prompt_text

        for fmt, marker in [("srt", "-->"), ("vtt", "WEBVTT"), ("rttm", "SPEAKER "),
                            ("json", '"segments"'), ("txt", "hiring plan")]:
            exported = await ok(client, "export_conversation", conversation_id=cid, format=fmt)
            assert marker in exported["content"], fmt
            assert exported["filename"].endswith(f".{fmt}")

        latest = await ok(client, "get_latest_segments", limit=2)
        assert len(latest["segments"]) == 2
        status = await ok(client, "get_processing_status", conversation_id=cid)
        assert status["status"] == "done"

        retitled = await ok(client, "update_conversation_title", conversation_id=cid,
                            title="Launch sync")
        assert retitled["title"] == "Launch sync"


async def test_naming_a_voice_relabels_every_conversation_and_undo_restores(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    first = fake.recording(inbox / "meeting.wav", MEETING)
    second = fake.recording(inbox / "follow-up.wav", FOLLOW_UP, frequency=440)
    async with Client(build_server(app)) as client:
        c1 = (await _process(client, first))["conversation_id"]
        segments = (await ok(client, "get_conversation", conversation_id=c1))["segments"]
        bob_segment = segments[1]
        unknown_label = bob_segment["speaker"]["label"]

        named = await ok(client, "identify_speaker_in_segment",
                         segment_id=bob_segment["id"], speaker_name="Nick")
        assert named["speaker"]["label"] == "Nick" and named["changed"] is True
        assert named["segments_relabelled"] == 2

        later = await _process(client, second)
        nick = [s for s in later["speakers"] if s["speaker"]["label"] == "Nick"]
        assert nick and nick[0]["segment_count"] == 1 and later["named_speakers"] == 1

        hits = await ok(client, "search_conversations", query="travel costs", mode="keyword",
                        speaker="Nick")
        assert [h["segment"]["speaker"]["label"] for h in hits["hits"]] == ["Nick"]
        assert "travel costs" in hits["hits"][0]["segment"]["text"]
        hybrid = await ok(client, "search_conversations", query="budget", speaker="nick")
        assert hybrid["hits"] and all(
            h["segment"]["speaker"]["label"] == "Nick" for h in hybrid["hits"])
        semantic = await ok(client, "search_conversations", query="marketing budget",
                            mode="semantic", limit=3)
        assert semantic["hits"]

        by_speaker = await ok(client, "search_conversations_by_speaker", speaker="Nick")
        assert by_speaker["total"] == 2
        enrolled = await ok(client, "list_speakers", kind="enrolled")
        assert [s["label"] for s in enrolled["speakers"]] == ["Nick"]
        assert enrolled["speakers"][0]["conversation_count"] == 2

        undone = await ok(client, "undo_identity_change")
        assert undone["action"] == "undo"
        restored = (await ok(client, "get_conversation", conversation_id=c1))["segments"]
        assert restored[1]["speaker"]["label"] == unknown_label


async def test_corrections_rename_merge_misidentify_delete(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        cid = (await _process(client, path))["conversation_id"]
        segments = (await ok(client, "get_conversation", conversation_id=cid))["segments"]
        alice_id = segments[0]["speaker"]["id"]
        bob_id = segments[1]["speaker"]["id"]

        renamed = await ok(client, "rename_speaker", speaker=alice_id, new_name="Alice")
        assert renamed["speakers"][0]["label"] == "Alice"
        assert (await ok(client, "rename_speaker", speaker="alice", new_name="Alicia"))[
            "speakers"][0]["name"] == "Alicia"

        moved = await ok(client, "mark_segment_misidentified", segment_id=segments[3]["id"],
                         correct_speaker="Alicia")
        assert moved["segments_changed"] == 1
        after = (await ok(client, "get_conversation", conversation_id=cid))["segments"]
        assert after[3]["speaker"]["label"] == "Alicia"
        assert after[3]["assignment"] == "manual"

        merged = await ok(client, "merge_speakers", source=str(bob_id), target="Alicia")
        assert merged["segments_changed"] >= 1
        after = (await ok(client, "get_conversation", conversation_id=cid))["segments"]
        assert {s["speaker"]["label"] for s in after} == {"Alicia"}

        deleted = await ok(client, "delete_speaker", speaker="Alicia")
        assert deleted["action"] == "delete"
        assert (await ok(client, "list_speakers"))["speakers"] == []
        await ok(client, "undo_identity_change", event_id=deleted["event_id"])
        assert [s["label"] for s in (await ok(client, "list_speakers"))["speakers"]] == [
            "Alicia"]


async def test_delete_all_unknown_and_reprocess(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        cid = (await _process(client, path))["conversation_id"]
        reprocessed = await ok(client, "reprocess_conversation", conversation_id=cid)
        assert reprocessed["status"] == "done" and reprocessed["unknown_speakers"] == 2
        assert fake.runs == 1  # matching only: no audio re-run
        cleared = await ok(client, "delete_all_unknown_speakers")
        assert cleared["action"] == "delete_unknown"
        assert (await ok(client, "list_speakers", kind="unknown"))["speakers"] == []


async def test_enrolled_voice_is_recognised_by_name(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    clip = fake.clip(inbox / "bob-clip.wav", "bob")
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        enrolled = await ok(client, "enroll_speaker", name="Bob", path=str(clip))
        assert enrolled["created"] is True and enrolled["voiceprints_added"] >= 1
        out = await _process(client, path)
        labels = {s["speaker"]["label"] for s in out["speakers"]}
        assert "Bob" in labels and out["named_speakers"] == 1


async def test_base64_audio_and_its_size_cap(app: App, fake: FakePipeline, tmp_path: Path) -> None:
    path = fake.recording(tmp_path / "upload.wav", MEETING)
    data = base64.b64encode(path.read_bytes()).decode()
    async with Client(build_server(app)) as client:
        out = await ok(client, "process_audio", audio_base64=data, filename="upload.wav")
        assert out["status"] == "done" and out["unknown_speakers"] == 2
        huge = base64.b64encode(b"\0" * (app.settings.max_upload_bytes + 10)).decode()
        message = await fails(client, "process_audio", audio_base64=huge, filename="x.wav")
        assert "limit for audio inside a call" in message and "/api/v1/conversations" in message
        assert "not valid base64" in await fails(client, "process_audio",
                                                 audio_base64="@@@not base64@@@")
        assert "exactly one" in await fails(client, "process_audio")


async def test_paths_outside_the_roots_are_refused(
    app: App, fake: FakePipeline, tmp_path: Path, inbox: Path
) -> None:
    outside = fake.recording(tmp_path / "secret" / "outside.wav", MEETING)
    link = inbox / "link.wav"
    os.symlink(outside, link)
    async with Client(build_server(app)) as client:
        for attempt in [str(outside), "../../secret/outside.wav", str(link), "link.wav"]:
            message = await fails(client, "process_audio", path=attempt)
            assert "outside the allowed folders" in message, attempt
        assert "no file at" in await fails(client, "process_audio", path="missing.wav")
    assert fake.runs == 0


async def test_errors_name_what_exists(app: App, fake: FakePipeline, inbox: Path) -> None:
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        # Whole messages: the hint is said once (the store and the tools both added it).
        assert await fails(client, "get_conversation", conversation_id=5) == (
            "Error executing tool get_conversation: no conversation 5; the store has no "
            "conversations yet; call process_audio first.")
        cid = (await _process(client, path))["conversation_id"]
        latest = (await ok(client, "get_latest_segments", limit=1))["segments"][0]["id"]
        message = await fails(client, "identify_speaker_in_segment", segment_id=99999,
                              speaker_name="Zed")
        assert message == (
            "Error executing tool identify_speaker_in_segment: no segment 99999; the latest "
            f"segment id is {latest}; get_latest_segments lists recent segments.")
        message = await fails(client, "get_conversation", conversation_id=cid + 50)
        assert message == (
            f"Error executing tool get_conversation: no conversation {cid + 50}; the latest "
            f"conversation id is {cid}; list_conversations lists them.")
        message = await fails(client, "rename_speaker", speaker="Nobody", new_name="X")
        assert message == ("Error executing tool rename_speaker: no speaker named 'Nobody'; no "
                           "speaker has a name yet; "
                           "known speakers: Unknown 1, Unknown 2.")
        # Malformed calls are protocol errors, not tool results.
        with pytest.raises(MCPError, match=r"invalid arguments for list_conversations: limit"):
            await client.call_tool("list_conversations", {"limit": 0})
        with pytest.raises(MCPError, match=r"unknown tool 'forget_everything'.*list_speakers"):
            await client.call_tool("forget_everything", {})
        with pytest.raises(MCPError):  # a missing resource is a protocol error
            await client.read_resource("speaker-memory://conversations/99999")


async def test_wait_false_returns_at_once_and_reads_do_not_block(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    import threading

    fake.gate = threading.Event()
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        started = await ok(client, "process_audio", path=str(path), wait=False)
        assert started["status"] in ("queued", "processing")
        # The message tells the same moment as the status (it once said "queued" beside
        # "processing: decoding (0%)").
        assert f"is {started['status']}" in started["message"]
        cid = started["conversation_id"]
        # The job is blocked inside the pipeline; read-only tools still answer.
        listed = await ok(client, "list_conversations")
        assert listed["conversations"][0]["status"] in ("queued", "processing")
        status = await ok(client, "get_processing_status", conversation_id=cid)
        assert status["status"] in ("queued", "processing")
        assert "get_processing_status" in status["message"]
        fake.gate.set()
        with anyio.fail_after(30):
            while status["status"] != "done":
                await anyio.sleep(0.05)
                status = await ok(client, "get_processing_status", conversation_id=cid)
        assert status["progress"] is None and status["error"] is None


async def test_wait_limit_returns_a_running_job(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    import threading

    app.settings.wait_seconds = 0.3
    fake.gate = threading.Event()
    path = fake.recording(inbox / "meeting.wav", MEETING)
    try:
        async with Client(build_server(app)) as client:
            out = await ok(client, "process_audio", path=str(path))  # wait=true, but capped
            assert out["status"] in ("queued", "processing")
            assert "get_processing_status" in out["message"]
    finally:
        fake.gate.set()


async def test_a_failed_job_is_an_error_and_can_be_retried(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    unscripted = inbox / "noise.wav"
    unscripted.write_bytes(b"RIFF....not really audio")
    async with Client(build_server(app)) as client:
        message = await fails(client, "process_audio", path=str(unscripted))
        assert "not a scripted test recording" in message and "send the same audio again" in message
        assert ".." not in message
        listed = (await ok(client, "list_conversations"))["conversations"]
        assert [c["status"] for c in listed] == ["failed"]
        status = await ok(client, "get_processing_status", conversation_id=listed[0]["id"])
        assert status["error"] and "scripted" in status["error"]

        fake.script(unscripted, MEETING)  # the cause is fixed: the same audio again retries
        retried = await ok(client, "process_audio", path=str(unscripted))
        assert retried["status"] == "done" and retried["duplicate"] is False
        assert retried["conversation_id"] == listed[0]["id"]
        assert retried["unknown_speakers"] == 2


async def test_recording_time_filters_conversations(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    winter = fake.recording(inbox / "winter.wav", MEETING)
    summer = fake.recording(inbox / "summer.wav", FOLLOW_UP, frequency=500)
    async with Client(build_server(app)) as client:
        await ok(client, "process_audio", path=str(winter), recorded_at="2025-01-15T10:00:00Z")
        await ok(client, "process_audio", path=str(summer), recorded_at="2025-07-01T09:30:00")
        later = await ok(client, "list_conversations", since="2025-03-01T00:00:00Z")
        assert [c["title"] for c in later["conversations"]] == ["summer"]
        earlier = await ok(client, "list_conversations", until="2025-03-01T00:00:00Z")
        assert [c["title"] for c in earlier["conversations"]] == ["winter"]
        hits = await ok(client, "search_conversations", query="travel", mode="keyword",
                        until="2025-03-01T00:00:00Z")
        assert hits["hits"] == []


async def test_ids_out_of_range_and_odd_paths_get_actionable_errors(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    # 2^63 and over used to reach SQLite (a bare "Error executing tool"), and true was id 1.
    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        await _process(client, path)
        for tool, arguments in [
            ("get_conversation", {"conversation_id": 2**63}),
            ("get_conversation", {"conversation_id": 0}),
            ("get_conversation", {"conversation_id": True}),
            ("identify_speaker_in_segment", {"segment_id": 2**64, "speaker_name": "Zed"}),
            ("undo_identity_change", {"event_id": True}),
            ("list_conversations", {"offset": 2**63}),
            ("merge_speakers", {"source": True, "target": "Unknown 1"}),
        ]:
            with pytest.raises(MCPError, match=rf"invalid arguments for {tool}: \w+"):
                await client.call_tool(tool, arguments)
        message = await fails(client, "rename_speaker", speaker=str(2**63), new_name="X")
        assert "speaker id must be a whole number from 1 to 9223372036854775807" in message
        message = await fails(client, "process_audio", path="meet\0ing.wav")
        assert "NUL" in message and "audio_base64" in message
        for bad in (str(2**63), "0", "9" * 40, "²"):
            with pytest.raises(MCPError, match="speaker-memory://conversations lists them"):
                await client.read_resource(f"speaker-memory://conversations/{bad}")


async def test_results_report_what_changed_and_where_to_start(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    first = fake.recording(inbox / "meeting.wav", MEETING)
    second = fake.recording(inbox / "follow-up.wav", FOLLOW_UP, frequency=440)
    async with Client(build_server(app)) as client:
        processed = await _process(client, first)
        # Each speaker comes with a segment to name it by: its longest one, quoted.
        transcript = (await ok(client, "get_conversation",
                               conversation_id=processed["conversation_id"]))["segments"]
        for found in processed["speakers"]:
            own = [t for t in transcript if t["speaker"]["id"] == found["speaker"]["id"]]
            longest = max(own, key=lambda t: t["end"] - t["start"])
            assert found["example"]["segment_id"] == longest["id"]
            assert found["example"]["text"] == longest["text"].strip()
            assert f"e.g. segment {longest['id']}" in processed["message"]
        assert "2 unknown voices" in processed["message"]

        again = await _process(client, first)
        assert again["duplicate"] is True
        assert [s["new"] for s in again["speakers"]] == [False, False]

        bob = transcript[1]
        named = await ok(client, "identify_speaker_in_segment", segment_id=bob["id"],
                         speaker_name="Nick")
        assert named["message"].count("2 segments in 1 conversation relabelled") == 1
        same = await ok(client, "identify_speaker_in_segment", segment_id=bob["id"],
                        speaker_name="Nick")
        assert same["changed"] is False and same["event_id"] is None
        assert "nothing changed" in same["message"]

        await _process(client, second)  # Nick talks once more, in a second conversation
        undone = await ok(client, "undo_identity_change", event_id=named["event_id"])
        # Nothing moved (the Unknown was renamed), but 3 segments in 2 conversations show
        # their earlier label again.
        assert (undone["segments_changed"], undone["conversations_changed"]) == (3, 2)
        assert "3 segments in 2 conversations show their earlier speaker again" in (
            undone["message"])


async def test_text_content_is_the_structured_result_as_compact_json(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    # The SDK's indented copy cost agents 2.5x the tokens on a 1-hour transcript.
    import json

    path = fake.recording(inbox / "meeting.wav", MEETING)
    async with Client(build_server(app)) as client:
        await _process(client, path)
        result = await client.call_tool("get_conversation", {"conversation_id": 1})
        text = result.content[0].text  # type: ignore[union-attr]
        assert json.loads(text) == result.structured_content
        assert "\n" not in text and '": ' not in text



async def test_an_interrupted_conversation_says_so_and_refuses_what_needs_a_transcript(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    # A server stopped mid-job leaves the conversation 'processing' with no job behind it.
    from inference.audio import sha256

    path = fake.recording(inbox / "meeting.wav", MEETING)
    info = app.memory.create_conversation(title="meeting", source_name="meeting.wav",
                                          sha256=sha256(path), audio_path=str(path))
    app.memory.set_conversation_status(info.id, "processing")
    async with Client(build_server(app)) as client:
        listed = (await ok(client, "list_conversations"))["conversations"]
        assert [c["status"] for c in listed] == ["interrupted"]
        status = await ok(client, "get_processing_status", conversation_id=info.id)
        assert status["status"] == "interrupted" and "send the same audio again" in (
            status["message"])
        for tool, arguments in [("reprocess_conversation", {"conversation_id": info.id}),
                                ("export_conversation", {"conversation_id": info.id})]:
            message = await fails(client, tool, **arguments)
            assert message.endswith(
                f"conversation {info.id} has no transcript yet: its processing was interrupted "
                "(the server stopped); send the same audio again with process_audio to "
                "finish it.")
        finished = await _process(client, path)
        assert finished["conversation_id"] == info.id and finished["status"] == "done"
        exported = await ok(client, "export_conversation", conversation_id=info.id)
        assert exported["content"]


async def test_enrolment_waits_its_turn_and_refuses_a_clip_of_two_people(
    app: App, fake: FakePipeline, inbox: Path
) -> None:
    import threading

    duo = fake.clip(inbox / "duo.wav", "bob", voice_seconds=(40.0, 30.0))
    async with Client(build_server(app)) as client:
        message = await fails(client, "enroll_speaker", name="Bob", path=str(duo))
        assert "holds 2 voices (40 s, 30 s of speech each), not one person alone" in message
        assert (await ok(client, "list_speakers"))["speakers"] == []
        # A short interjection of someone else is no reason to refuse.
        mostly = fake.clip(inbox / "mostly.wav", "bob", frequency=350,
                           voice_seconds=(25.0, 1.5))
        assert (await ok(client, "enroll_speaker", name="Bob", path=str(mostly)))["created"]

        # Enrolment runs on the processing queue: behind a running recording, it waits.
        fake.gate = threading.Event()
        meeting = fake.recording(inbox / "meeting.wav", MEETING)
        await ok(client, "process_audio", path=str(meeting), wait=False)
        carol = fake.clip(inbox / "carol.wav", "carol", frequency=370)
        app.settings.wait_seconds = 0.3
        message = await fails(client, "enroll_speaker", name="Carol", path=str(carol))
        assert "queued behind other processing" in message
        assert [s["label"] for s in (await ok(client, "list_speakers"))["speakers"]] == ["Bob"]
        fake.gate.set()
        with anyio.fail_after(30):
            while "Carol" not in [s["label"] for s in
                                  (await ok(client, "list_speakers"))["speakers"]]:
                await anyio.sleep(0.05)


async def test_delete_conversation_is_destructive_final_and_leaves_no_trace(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    recording = fake.recording(tmp_path / "meeting.wav", MEETING)
    data = base64.b64encode(recording.read_bytes()).decode()
    async with Client(build_server(app)) as client:
        tool = next(t for t in (await client.list_tools()).tools
                    if t.name == "delete_conversation")
        assert tool.annotations is not None and tool.annotations.destructive_hint is True
        assert tool.description and "FINAL" in tool.description
        out = await ok(client, "process_audio", audio_base64=data, filename="meeting.wav")
        cid = out["conversation_id"]
        stored = list(app.settings.audio_dir.glob("*.wav"))
        assert len(stored) == 1

        deleted = await ok(client, "delete_conversation", conversation_id=cid)
        assert deleted["final"] is True and deleted["audio_deleted"] is True
        assert deleted["segments_deleted"] == 4
        assert "cannot bring it back" in deleted["message"]
        assert not stored[0].exists()
        assert (await ok(client, "list_conversations"))["conversations"] == []
        assert (await ok(client, "list_speakers"))["speakers"] == []
        again = await fails(client, "delete_conversation", conversation_id=cid)
        assert f"no conversation {cid}" in again
        # The same audio is new again: it is processed, not reported as a duplicate.
        redo = await ok(client, "process_audio", audio_base64=data, filename="meeting.wav")
        assert redo["duplicate"] is False and redo["conversation_id"] != cid


async def test_free_text_arguments_carry_their_limits(app: App, fake: FakePipeline) -> None:
    from memory.limits import MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH
    from memory.speakers import MAX_NAME_LENGTH
    from tools.inputs import MAX_PATH_LENGTH
    from tools.queries import MAX_QUERY_LENGTH

    expected = {
        ("process_audio", "title"): MAX_TITLE_LENGTH,
        ("process_audio", "language"): MAX_LANGUAGE_LENGTH,
        ("process_audio", "filename"): MAX_PATH_LENGTH,
        ("process_audio", "path"): MAX_PATH_LENGTH,
        ("update_conversation_title", "title"): MAX_TITLE_LENGTH,
        ("search_conversations", "query"): MAX_QUERY_LENGTH,
        ("identify_speaker_in_segment", "speaker_name"): MAX_NAME_LENGTH,
        ("rename_speaker", "new_name"): MAX_NAME_LENGTH,
        ("enroll_speaker", "name"): MAX_NAME_LENGTH,
    }
    async with Client(build_server(app)) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        for (tool, argument), limit in expected.items():
            prop = schemas[tool]["properties"][argument]
            lengths = [prop.get("maxLength")] + [o.get("maxLength") for o in prop.get("anyOf", [])]
            assert limit in lengths, (tool, argument, prop)
        with pytest.raises(MCPError, match="title"):
            await client.call_tool("process_audio", {
                "audio_base64": base64.b64encode(b"RIFF....").decode(),
                "title": "t" * (MAX_TITLE_LENGTH + 1)})
        assert list(app.settings.audio_dir.glob("*")) == []
        listed = await ok(client, "list_conversations")
        assert listed["conversations"] == []
