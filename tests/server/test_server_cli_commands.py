"""Every MCP tool is a command of `speaker-memory`, calling the same tools/ function: text by
default, the tool's structured result with --json, and the MCP tool's message on refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server import cli
from server.cli_commands import COMMAND_OF_TOOL
from server.mcp_server import build_server
from tests.tools.fake_pipeline import FakePipeline, Turn
from tools.context import App

TURNS = [
    Turn("ann", "Hello there, this is a test of the command line."),
    Turn("ben", "And this is the answer to that budget question."),
    Turn("ann", "Thanks, that settles it."),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def subcommands() -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices or {})


@pytest.mark.anyio
async def test_every_mcp_tool_has_a_command(app: App) -> None:
    async with Client(build_server(app)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert tools == set(COMMAND_OF_TOOL), "a tool without a command (or a command of no tool)"
    assert set(COMMAND_OF_TOOL.values()) <= subcommands()
    assert {"name", "rename", "merge", "undo", "search", "conversations", "show"} <= subcommands()


class Cli:
    def __init__(self, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data = data
        self.capsys = capsys

    def __call__(self, *argv: str, code: int = 0) -> str:
        assert cli.main([*argv, "--data-dir", str(self.data)]) == code, self.capsys.readouterr()
        captured = self.capsys.readouterr()
        return captured.out if code == 0 else captured.err

    def json(self, *argv: str) -> Any:
        return json.loads(self(*argv, "--json"))


def test_naming_searching_and_undoing_from_the_command_line(
    tmp_path: Path, on_fake: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Cli(tmp_path / "data", capsys)
    run("process", str(on_fake.recording(tmp_path / "talk.wav", TURNS)))
    segments = run.json("latest", "--conversation", "1")["segments"]
    first = min(segments, key=lambda s: s["id"])
    assert first["speaker"]["label"] == "Unknown 1"

    assert "now Ann: 2 segments in 1 conversation" in run("name", str(first["id"]), "Ann")
    shown = run("show", "1")
    assert shown.startswith("# talk (conversation 1, done)") and "Ann: Hello there" in shown
    assert "Ann, Unknown 2" in run("conversations")
    hits = run("search", "budget", "--mode", "keyword")
    assert "Unknown 2: And this is the answer" in hits
    assert "Anna" in run("rename", "Ann", "Anna")
    assert "Anna" in run("merge", "Unknown 2", "Anna")
    assert run.json("speakers")["speakers"][0]["segment_count"] == 3
    run("undo")
    run("undo")
    assert "Ann " in run("speakers") and "Unknown 2" in run("speakers")
    assert run("export-conversation", "1", "--format", "txt").strip()
    assert "titled 'Budget talk'" in run("title", "1", "Budget talk")


def test_a_refused_call_exits_2_with_the_message_the_mcp_tool_gives(
    tmp_path: Path, on_fake: FakePipeline, capsys: pytest.CaptureFixture[str], app: App,
) -> None:
    run = Cli(app.settings.data_dir, capsys)
    run("process", str(on_fake.recording(tmp_path / "talk.wav", TURNS)))
    err = run("name", "999", "Sarah", code=2)

    import anyio

    async def from_mcp() -> str:
        async with Client(build_server(app)) as client:
            result = await client.call_tool("identify_speaker_in_segment",
                                            {"segment_id": 999, "speaker_name": "Sarah"})
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert isinstance(text, str)
        return text

    message = err.removeprefix("error: ").removesuffix("\n")
    # The SDK puts "Error executing tool identify_speaker_in_segment: " before it.
    assert err.startswith("error: ") and anyio.run(from_mcp).endswith(f": {message}")
    assert "the latest segment id is 3" in err
    # An id no store holds is refused while parsing, as the MCP schema refuses it.
    with pytest.raises(SystemExit) as refused:
        cli.main(["show", str(2**63), "--data-dir", str(app.settings.data_dir)])
    assert refused.value.code == 2
    assert "id must be a whole number from 1 to" in capsys.readouterr().err
