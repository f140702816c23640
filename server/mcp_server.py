"""The one MCP server definition: the tools of server/mcp_tools.py, the transcript resource,
the naming prompt.

`build_server(app)` is called once per transport (stdio, or the HTTP app); it registers every
tool of `TOOLS` and nothing else (a test holds it to that), with the App the tools reach through
their context.

No `from __future__ import annotations` here: the SDK reads parameter annotations at runtime.
"""

import json
import logging
import warnings
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import (
    ResourceNotFoundError,
    ToolError,
    UnexpectedToolError,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    InputRequiredResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    TextContent,
)
from pydantic import Field, ValidationError

from memory.errors import NotFoundError, SpeakerMemoryError
from memory.types import MAX_ID
from server.client_log import ClientLogLevels, session_of
from server.mcp_tools import CONFORMANCE_TOOLS, SERVER_NAME, TOOLS, Served, run_tool
from tools import completions, queries
from tools.context import App
from tools.errors import explain

log = logging.getLogger(__name__)

# logging/setLevel and log notifications are the handshake-era logging this server implements on
# purpose (clients of 2025 protocol versions use it); the SDK warns on each use because the
# 2026-07-28 protocol replaces it with a per-request opt-in, which the SDK handles by itself.
warnings.filterwarnings("ignore", message="The logging capability is deprecated",
                        category=MCPDeprecationWarning)

TRANSCRIPT_URI = "speaker-memory://conversations/{conversation_id}"

INSTRUCTIONS = """\
speaker-memory remembers who said what across every recording it has processed.

How to use it:
1. process_audio turns a recording into a conversation: a transcript whose segments carry a
   speaker. Voices heard before come back with their name; new voices get a persistent label
   such as "Unknown 3" that stays the same in later recordings.
2. Name voices conversationally. When the user says who someone is ("the second speaker is my
   colleague Sarah"), find a segment of that voice (get_conversation, get_latest_segments) and
   call identify_speaker_in_segment(segment_id, "Sarah"). Every past and future segment of that
   voice becomes Sarah. The result lists other voices that might also be Sarah: ask the user
   before naming them. Never guess a name the user did not give.
3. Answer questions with get_conversation, search_conversations (keyword + meaning, filter by
   speaker) and search_conversations_by_speaker.
4. Corrections: rename_speaker, merge_speakers (two labels are one person),
   mark_segment_misidentified (one segment is someone else), and undo_identity_change reverses
   the last identity change. delete_conversation removes a recording for good (final: no
   undo); ask the user first.
A clean 10-30 s clip of one person can be enrolled up front with enroll_speaker.
When the voice model changed, rebuild_voice_profiles (started by itself at start-up) gives
every speaker a profile of the new model from stored audio.
Speaker arguments accept an id, a name, or an 'Unknown N' label.
"""

class SpeakerMemoryServer(MCPServer):
    """MCPServer, except that a malformed call (an unknown tool, or arguments that do not fit
    the tool's schema) is a JSON-RPC protocol error (-32602), as the MCP specification classes
    it. Failures while a tool runs stay `isError` results the agent reads and acts on.
    It carries the `Served` state its tools work on."""

    def __init__(self, served: Served, **options: Any) -> None:
        super().__init__(SERVER_NAME, **options)
        self.served = served

    @property
    def protocol_server(self) -> Server[Any]:
        """The low-level server MCPServer wraps: it takes the handlers MCPServer has no
        decorator for (logging/setLevel), and is what a session manager serves."""
        return self._lowlevel_server

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return compact(await super().call_tool(name, arguments, context))
        except ToolError as exc:
            if isinstance(exc, UnexpectedToolError):
                raise
            if isinstance(exc.__cause__, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                    for error in exc.__cause__.errors()
                )
                raise MCPError(INVALID_PARAMS, f"invalid arguments for {name}: {problems}") from exc
            known = sorted(tool.name for tool in await self.list_tools())
            if name not in known:
                raise MCPError(
                    INVALID_PARAMS, f"unknown tool {name!r}; the tools are: {', '.join(known)}"
                ) from exc
            raise


def compact(result: CallToolResult | InputRequiredResult) -> CallToolResult | InputRequiredResult:
    """The text copy of a structured result as compact JSON. The SDK indents it, which costs
    an agent about twice the tokens for the same data (the specification asks for the JSON,
    not its layout)."""
    if not isinstance(result, CallToolResult) or result.structured_content is None:
        return result
    text = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return result.model_copy(update={"content": [TextContent(type="text", text=text)]})


def build_server(app: App) -> SpeakerMemoryServer:
    levels = ClientLogLevels()
    server = SpeakerMemoryServer(
        Served(app, levels), title="Speaker memory", instructions=INSTRUCTIONS,
        version="0.1.0", log_level=_sdk_log_level(app.settings.log_level),
    )

    async def set_log_level(
        ctx: ServerRequestContext[Any], params: SetLevelRequestParams
    ) -> EmptyResult:
        headers = ctx.request.headers if ctx.request is not None else None
        levels.set(session_of(headers), params.level)
        return EmptyResult()

    server.protocol_server.add_request_handler(
        "logging/setLevel", SetLevelRequestParams, set_log_level
    )

    for spec in TOOLS:
        server.add_tool(spec.fn, name=spec.name, description=spec.description,
                        annotations=spec.annotations)
    if app.settings.conformance_tools:
        for spec in CONFORMANCE_TOOLS:
            server.add_tool(spec.fn, name=spec.name, description=spec.description)

    # ------------------------------------------------------------ resource & prompt
    @server.resource(TRANSCRIPT_URI, name="conversation-transcript", mime_type="text/plain",
                     description="A conversation's transcript, one '[mm:ss] Speaker: text' line "
                                 "per segment.")
    async def conversation_transcript(conversation_id: str) -> str:
        digits = conversation_id.isascii() and conversation_id.isdigit()
        if not digits or len(conversation_id) > 19 or not 1 <= int(conversation_id) <= MAX_ID:
            raise ResourceNotFoundError(
                f"no conversation {conversation_id[:40]!r}: ids are whole numbers from 1 to "
                f"{MAX_ID}; speaker-memory://conversations lists them.")
        try:
            result = await run_tool(app, queries.get_conversation, app, int(conversation_id),
                                    "text")
        except ToolError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                raise ResourceNotFoundError(str(exc)) from exc
            raise
        info = result.conversation
        return f"# {info.title} (conversation {info.id})\n\n{result.text or ''}\n"

    @server.resource("speaker-memory://conversations", name="conversations",
                     mime_type="text/plain",
                     description="Index of the latest 100 conversations with their transcript "
                                 "URIs.")
    async def conversation_index() -> str:
        page = await run_tool(app, queries.list_conversations, app, 100, 0)
        lines = [
            f"speaker-memory://conversations/{c.id}\t{c.title}\t{c.status}\t"
            + ", ".join(s.label for s in c.speakers)
            for c in page.conversations
        ]
        return "\n".join(lines) + "\n" if lines else "No conversations yet.\n"

    @server.prompt(name="name_unknown_speakers",
                   description="Walk through naming the unknown voices of a conversation "
                               "with the user.")
    async def name_unknown_speakers(
        conversation_id: Annotated[str, Field(description="Conversation id; default: the latest "
                                              "segments of every conversation.")] = "",
        speaker: Annotated[str, Field(description="Only this voice ('Unknown N' label); "
                                      "default: every unknown voice.")] = "",
    ) -> str:
        return await anyio.to_thread.run_sync(_naming_prompt, app, conversation_id, speaker)

    # ------------------------------------------------------------ completions
    # Which values each completable argument takes, by prompt or resource template.
    completable = {
        ("ref/resource", TRANSCRIPT_URI, "conversation_id"): completions.conversation_ids,
        ("ref/prompt", "name_unknown_speakers", "conversation_id"): completions.conversation_ids,
        ("ref/prompt", "name_unknown_speakers", "speaker"): completions.speakers,
    }

    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        name = ref.uri if isinstance(ref, ResourceTemplateReference) else ref.name
        values = completable.get((ref.type, name, argument.name))
        if values is None:  # an argument without values to offer: an empty completion
            return Completion(values=[], total=0, has_more=False)
        found = await run_tool(app, values, app, argument.value)
        return Completion(values=found.values, total=found.total, has_more=found.has_more)

    # Registered by a call, not as a decorator: the SDK's completion() has no annotations.
    server.completion()(complete)  # type: ignore[no-untyped-call]

    return server


def _naming_prompt(app: App, conversation_id: str, speaker: str = "") -> str:
    steps = (
        "Help the user name the unknown voices.\n"
        "For each 'Unknown N' speaker below: quote one or two of their lines and ask the user who "
        "said them. Only when the user answers with a name, call "
        "identify_speaker_in_segment(segment_id, name) with one of that speaker's segment ids, "
        "then tell the user how many segments were relabelled. If the result lists suggestions, "
        "ask whether those voices are the same person before naming them. If the user does not "
        "know someone, skip them; never invent a name. If a name was wrong, "
        "undo_identity_change reverses it.\n"
    )
    try:
        if conversation_id.strip().isdigit():
            detail = app.memory.get_conversation(int(conversation_id))
            segments = detail.segments
            scope = f"conversation {detail.conversation.id} ('{detail.conversation.title}')"
        else:
            segments = app.memory.latest_segments(limit=200)
            scope = "the latest segments"
    except SpeakerMemoryError as exc:
        return steps + f"\n(Could not load {conversation_id!r}: {explain(app, exc)})"
    examples: dict[int, list[str]] = {}
    labels: dict[int, str] = {}
    wanted = speaker.strip().casefold()
    for segment in segments:
        if segment.speaker is None or segment.speaker.kind != "unknown":
            continue
        if wanted and segment.speaker.label.casefold() != wanted:
            continue
        labels[segment.speaker.id] = segment.speaker.label
        lines = examples.setdefault(segment.speaker.id, [])
        if len(lines) < 2 and len(segment.text.split()) >= 3:
            lines.append(f'  - segment {segment.id} at {segment.start:.0f}s: "{segment.text}"')
    if not labels and wanted:
        return steps + f"\n{speaker.strip()!r} is not an unknown speaker in {scope}: nothing " \
            "to name."
    if not labels:
        return steps + f"\nThere are no unknown speakers in {scope}: nothing to name."
    listing = "\n".join(
        f"{labels[sid]}:\n" + "\n".join(examples[sid] or ["  - (only short segments)"])
        for sid in labels
    )
    return steps + f"\nUnknown speakers in {scope}:\n{listing}\n"


def _sdk_log_level(level: str) -> Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]:
    upper = level.upper()
    if upper in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        return upper  # type: ignore[return-value]
    return "INFO"


TOOL_NAMES = (
    "process_audio", "get_processing_status", "cancel_processing", "list_conversations",
    "get_conversation", "get_latest_segments", "search_conversations",
    "search_conversations_by_speaker", "list_speakers", "identify_speaker_in_segment",
    "enroll_speaker", "rename_speaker",
    "merge_speakers", "mark_segment_misidentified", "delete_speaker",
    "delete_all_unknown_speakers", "undo_identity_change", "update_conversation_title",
    "reprocess_conversation", "export_conversation", "rebuild_voice_profiles",
    "delete_conversation", "start_listening", "get_live_transcript", "stop_listening",
)
"""The issues' tool names, exactly (tests compare them with what the server lists)."""
