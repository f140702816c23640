"""Every MCP tool as a `speaker-memory` subcommand, so that a message naming a tool
("call identify_speaker_in_segment") names something a command-line user can run too.

The commands are made by going through the MCP tools' one list (server/mcp_tools.TOOLS): each
tool's entry here gives its command name, arguments, the tools/ function it calls (the same one
as the MCP tool) and how its result reads as text; `--json` prints the structured result the
MCP tool returns. A tool without an entry stops the parser from being built (and fails a test).
Processing, enrolment, the profile rebuild and deletion follow a job with a progress display or
ask for confirmation: they are written out in server/cli.py and only named here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from pydantic import BaseModel

from memory.errors import InvalidInput
from server.mcp_tools import TOOLS
from tools import exports, identity, processing, queries
from tools.context import App
from tools.inputs import require_id
from tools.models import (
    ConversationList,
    ConversationOut,
    ExportFormat,
    SearchResults,
    SegmentList,
    SegmentOut,
    SpeakerConversations,
    SpeakerList,
    Transcript,
)

Call = Callable[[App, argparse.Namespace], BaseModel]


@dataclass(frozen=True)
class Command:
    name: str
    tool: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    call: Call
    text: Callable[[Any], str]


def _message(result: Any) -> str:
    return str(result.message)


def row_id(text: str) -> int:
    """An id argument, checked as the MCP schema checks it (a whole number the store holds)."""
    try:
        return require_id(int(text), "id")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date") from None


# ---------------------------------------------------------------- arguments
def _none(parser: argparse.ArgumentParser) -> None:
    return None


def _page(parser: argparse.ArgumentParser, offset: bool = True) -> None:
    parser.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    if offset:
        parser.add_argument("--offset", type=int, default=0, help="skip this many, for paging")


def _dates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_when, help="recorded at or after (ISO 8601)")
    parser.add_argument("--until", type=_when, help="recorded before (ISO 8601)")


def _positional(*names: str, kinds: dict[str, Any] | None = None
                ) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        for name in names:
            parser.add_argument(name, type=(kinds or {}).get(name, str))

    return add


def _conversations_args(parser: argparse.ArgumentParser) -> None:
    _page(parser)
    parser.add_argument("--speaker", help="only conversations this speaker took part in")
    _dates(parser)


def _latest_args(parser: argparse.ArgumentParser) -> None:
    _page(parser, offset=False)
    parser.add_argument("--conversation", type=row_id, help="only this conversation")


def _search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query")
    parser.add_argument("--mode", choices=["hybrid", "keyword", "semantic"], default="hybrid")
    parser.add_argument("--speaker", help="only what this speaker said")
    parser.add_argument("--conversation", type=row_id, help="only this conversation")
    _dates(parser)
    _page(parser, offset=False)


def _speaker_page_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("speaker")
    _page(parser)


def _kind_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=["enrolled", "unknown"])


def _misidentified_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment_id", type=row_id)
    parser.add_argument("--speaker", help="who really spoke (omit if not known)")


def _undo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event_id", type=row_id, nargs="?",
                        help="the change to undo (default: the last one)")


def _export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conversation_id", type=row_id)
    parser.add_argument("--format", choices=get_args(ExportFormat), default="srt")


# ---------------------------------------------------------------- text
def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _conversation_line(c: ConversationOut) -> str:
    when = (c.recorded_at or c.created_at).strftime("%Y-%m-%d %H:%M")
    length = _clock(c.duration) if c.duration is not None else "--:--"
    speakers = ", ".join(s.label for s in c.speakers)
    return f"{c.id:>5}  {when}  {length}  {c.status:<11} {c.title}" + (
        f"  ({speakers})" if speakers else "")


def _conversations(result: ConversationList | SpeakerConversations) -> str:
    if not result.conversations:
        return "No conversations."
    lines = [_conversation_line(c) for c in result.conversations]
    shown = result.offset + len(result.conversations)
    if shown < result.total:
        lines.append(f"({shown} of {result.total}; --offset {shown} for more)")
    return "\n".join(lines)


def _segment_line(s: SegmentOut) -> str:
    who = s.speaker.label if s.speaker else "(unassigned)"
    return f"segment {s.id:>6}  [{s.conversation_id}:{_clock(s.start)}] {who}: {s.text}"


def _segments(result: SegmentList) -> str:
    return "\n".join(_segment_line(s) for s in result.segments) or "No segments."


def _hits(result: SearchResults) -> str:
    return "\n".join(f"{_segment_line(h.segment)}  ({h.conversation_title}, {h.score:.2f})"
                     for h in result.hits) or f"Nothing found for {result.query!r}."


def _transcript(result: Transcript) -> str:
    c = result.conversation
    body = result.text or "\n".join(_segment_line(s) for s in result.segments)
    return f"# {c.title} (conversation {c.id}, {c.status})\n\n{body}"


def _speakers(result: SpeakerList) -> str:
    return "\n".join(
        f"{s.id:>5}  {s.label:<24} {s.kind:<9} {s.segment_count:>6} segments  "
        f"{s.conversation_count:>4} conversations  {s.speech_seconds:>8.1f} s"
        for s in result.speakers) or "No speakers yet."


def _titled(result: ConversationOut) -> str:
    return f"Conversation {result.id} is now titled {result.title!r}."


def _content(result: Any) -> str:
    return str(result.content).rstrip("\n")


# ---------------------------------------------------------------- the table
COMMANDS: tuple[Command, ...] = (
    Command("status", "get_processing_status", "how far the processing of a conversation is",
            _positional("conversation_id", kinds={"conversation_id": row_id}),
            lambda app, a: processing.processing_status(app, a.conversation_id), _message),
    Command("cancel", "cancel_processing", "stop a conversation's queued or running processing",
            _positional("conversation_id", kinds={"conversation_id": row_id}),
            lambda app, a: processing.cancel_processing(app, a.conversation_id), _message),
    Command("conversations", "list_conversations", "stored conversations, newest first",
            _conversations_args,
            lambda app, a: queries.list_conversations(app, a.limit, a.offset, a.speaker,
                                                      a.since, a.until), _conversations),
    Command("show", "get_conversation", "a conversation's transcript with speaker names",
            _positional("conversation_id", kinds={"conversation_id": row_id}),
            lambda app, a: queries.get_conversation(app, a.conversation_id,
                                                    "json" if a.json else "text"), _transcript),
    Command("latest", "get_latest_segments", "the most recent segments, with their ids",
            _latest_args,
            lambda app, a: queries.get_latest_segments(app, a.limit, a.conversation),
            _segments),
    Command("search", "search_conversations", "find segments by words or meaning",
            _search_args,
            lambda app, a: queries.search_conversations(app, a.query, a.mode, a.speaker,
                                                        a.conversation, a.since, a.until,
                                                        a.limit), _hits),
    Command("speaker-conversations", "search_conversations_by_speaker",
            "every conversation a speaker took part in", _speaker_page_args,
            lambda app, a: queries.search_conversations_by_speaker(app, a.speaker, a.limit,
                                                                   a.offset), _conversations),
    Command("speakers", "list_speakers", "known speakers", _kind_args,
            lambda app, a: queries.list_speakers(app, a.kind), _speakers),
    Command("name", "identify_speaker_in_segment",
            "name the voice of a segment: every segment of that voice is relabelled",
            _positional("segment_id", "speaker_name", kinds={"segment_id": row_id}),
            lambda app, a: identity.identify_speaker_in_segment(app, a.segment_id,
                                                                a.speaker_name), _message),
    Command("rename", "rename_speaker", "give a speaker a (new) name",
            _positional("speaker", "new_name"),
            lambda app, a: identity.rename_speaker(app, a.speaker, a.new_name), _message),
    Command("merge", "merge_speakers", "two labels are one person: fold SOURCE into TARGET",
            _positional("source", "target"),
            lambda app, a: identity.merge_speakers(app, a.source, a.target), _message),
    Command("misidentified", "mark_segment_misidentified",
            "one segment was someone else: reassign it", _misidentified_args,
            lambda app, a: identity.mark_segment_misidentified(app, a.segment_id, a.speaker),
            _message),
    Command("delete-speaker", "delete_speaker", "forget a speaker's name and voice samples",
            _positional("speaker"),
            lambda app, a: identity.delete_speaker(app, a.speaker), _message),
    Command("delete-unknown", "delete_all_unknown_speakers",
            "forget every voice that was never named", _none,
            lambda app, a: identity.delete_all_unknown_speakers(app), _message),
    Command("undo", "undo_identity_change", "reverse an identity change (default: the last)",
            _undo_args, lambda app, a: identity.undo_identity_change(app, a.event_id),
            _message),
    Command("title", "update_conversation_title", "give a conversation a new title",
            _positional("conversation_id", "title", kinds={"conversation_id": row_id}),
            lambda app, a: identity.update_conversation_title(app, a.conversation_id, a.title),
            _titled),
    Command("reprocess", "reprocess_conversation",
            "re-match a conversation's voices with the current profiles",
            _positional("conversation_id", kinds={"conversation_id": row_id}),
            lambda app, a: processing.reprocess(app, a.conversation_id), _message),
    Command("export-conversation", "export_conversation",
            "a conversation as SRT, WebVTT, RTTM, JSON or text", _export_args,
            lambda app, a: exports.export_conversation(app, a.conversation_id, a.format),
            _content),
)

WRITTEN_OUT: dict[str, str] = {
    "process_audio": "process",
    "enroll_speaker": "enroll",
    "rebuild_voice_profiles": "rebuild-profiles",
    "delete_conversation": "delete-conversation",
    # One command for a whole live session: it starts listening, prints the transcript as
    # it is confirmed, and on Ctrl-C stops and finalises.
    "start_listening": "listen",
    "get_live_transcript": "listen",
    "stop_listening": "listen",
}
"""Tools whose command is written out in server/cli.py (deleting asks for confirmation)."""

_ENTRY_OF_TOOL = {command.tool: command for command in COMMANDS}


def command_of_tool() -> dict[str, str]:
    """Every MCP tool's command name, in the tools' order. Raises LookupError for a tool
    without a command, or an entry of COMMANDS that names no tool."""
    tools = [spec.name for spec in TOOLS]
    strays = sorted(set(_ENTRY_OF_TOOL) - set(tools))
    if strays:
        raise LookupError(f"CLI commands of no MCP tool: {', '.join(strays)}")
    commands: dict[str, str] = {}
    for name in tools:
        entry = _ENTRY_OF_TOOL.get(name)
        command = entry.name if entry is not None else WRITTEN_OUT.get(name)
        if command is None:
            raise LookupError(f"the MCP tool {name} has no CLI command: add its entry to "
                              "COMMANDS in server/cli_commands.py")
        commands[name] = command
    return commands


COMMAND_OF_TOOL = command_of_tool()
"""Every MCP tool's command (a tool without one fails here, as the CLI starts)."""


def add_commands(sub: Any, parents: list[argparse.ArgumentParser], run: Callable[..., int]
                 ) -> None:
    """One subparser per MCP tool not written out in server/cli.py, run by `run`;
    `args.tool_command` is its entry of COMMANDS."""
    for tool in COMMAND_OF_TOOL:
        command = _ENTRY_OF_TOOL.get(tool)
        if command is None:
            continue
        parser = sub.add_parser(command.name, parents=parents,
                                help=f"{command.help} ({command.tool})")
        command.arguments(parser)
        parser.add_argument("--json", action="store_true",
                            help="print the structured result (as the MCP tool returns it)")
        parser.set_defaults(run=run, tool_command=command)
