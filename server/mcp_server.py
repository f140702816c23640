"""The one MCP server definition: every tool, the transcript resource, the naming prompt.

`build_server(app)` is called once per transport (stdio, or the HTTP app); every tool is a thin
async wrapper that runs the tools/ function on a worker thread (the event loop stays free for
other calls) and turns domain errors into `isError` results with an actionable message.

No `from __future__ import annotations` here: the SDK reads parameter annotations at runtime.
"""

import functools
import inspect
import json
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

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
    ToolAnnotations,
)
from pydantic import Field, ValidationError

from memory.api import MAX_PAGE
from memory.errors import NotFoundError, SpeakerMemoryError
from memory.limits import MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH
from memory.speakers import MAX_NAME_LENGTH
from memory.types import MAX_ID
from server.client_log import ClientLogLevels, as_level, session_of
from server.jobs import LogSink, ProgressSink, follow_job, following
from server.threads import tool_threads
from tools import (
    completions,
    deletion,
    exports,
    identity,
    live,
    processing,
    queries,
    rebuild,
)
from tools.context import App
from tools.errors import explain
from tools.inputs import MAX_PATH_LENGTH, audio_argument
from tools.models import (
    ConversationDeletedOut,
    ConversationList,
    ConversationOut,
    EnrollOut,
    ExportFormat,
    ExportOut,
    IdentifyOut,
    IdentityChangeOut,
    LiveStartOut,
    LiveTranscript,
    ProcessAudioResult,
    ProcessingStatus,
    RebuildOut,
    SearchResults,
    SegmentList,
    SpeakerConversations,
    SpeakerList,
    Transcript,
)

log = logging.getLogger(__name__)

# logging/setLevel and log notifications are the handshake-era logging this server implements on
# purpose (clients of 2025 protocol versions use it); the SDK warns on each use because the
# 2026-07-28 protocol replaces it with a per-request opt-in, which the SDK handles by itself.
warnings.filterwarnings("ignore", message="The logging capability is deprecated",
                        category=MCPDeprecationWarning)

P = ParamSpec("P")
R = TypeVar("R")

SERVER_NAME = "speaker-memory"
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

# ---------------------------------------------------------------- parameter types
RowId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
"""A stored row's id: a whole number the store can hold; strict, so true is not id 1."""
ConversationId = Annotated[RowId, Field(description="Conversation id (from list_conversations).")]
SegmentId = Annotated[RowId, Field(description="Segment id (from a transcript or search hit).")]
OnlyConversation = Annotated[RowId | None, Field(description="Only this conversation.")]
Speaker = Annotated[
    RowId | str, Field(description="Speaker id, name (case-insensitive) or 'Unknown N' label.")
]
Limit = Annotated[
    int, Field(strict=True, ge=1, le=MAX_PAGE,
               description="Maximum number of items to return.")
]
Offset = Annotated[int, Field(strict=True, ge=0, le=MAX_ID,
                              description="Items to skip, for paging.")]
Since = Annotated[
    datetime | None, Field(description="Only conversations recorded at or after (ISO 8601).")
]
Until = Annotated[
    datetime | None, Field(description="Only conversations recorded before (ISO 8601).")
]
AudioPath = Annotated[
    str | None,
    Field(max_length=MAX_PATH_LENGTH,
          description="Path of an audio/video file on the server's machine, inside the allowed "
          "folders (the data inbox and the server's start folder). Give this or audio_base64."),
]
AudioBase64 = Annotated[
    str | None,
    Field(description="The file's bytes, base64-encoded (size-capped). Give this or path."),
]
Filename = Annotated[
    str | None, Field(max_length=MAX_PATH_LENGTH,
                      description="Original file name for audio_base64 (e.g. 'standup.m4a').")
]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)


async def run_tool(app: App, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a tools/ function on a worker thread; domain errors become isError results."""
    return await run_flow(app, anyio.to_thread.run_sync(
        functools.partial(fn, *args, **kwargs), limiter=tool_threads))


async def run_flow(app: App, flow: Awaitable[R]) -> R:
    """Await a use case: a tools/ function on a worker thread (run_tool), or a flow in tools/
    that runs its store calls on worker threads itself; domain errors become isError results
    with the message tools/errors.py gives."""
    try:
        return await flow
    except SpeakerMemoryError as exc:
        message = await anyio.to_thread.run_sync(explain, app, exc)
        raise ToolError(message) from exc


def _progress_to(ctx: Context | None) -> ProgressSink | None:
    """A job's progress as MCP progress notifications (when the client asked for them)."""
    if ctx is None:
        return None
    context = ctx

    async def report(fraction: float, stage: str) -> None:
        await context.report_progress(fraction * 100, 100, stage)

    return report


def _log_to(ctx: Context | None, levels: ClientLogLevels) -> LogSink | None:
    """A job's stages and warnings as MCP log notifications, at the level the session set."""
    if ctx is None:
        return None
    context = ctx
    session = session_of(ctx.headers)

    async def send(level: str, message: str) -> None:
        if levels.allows(session, as_level(level)):
            await context.log(as_level(level), message, logger_name=SERVER_NAME)

    return send


class SpeakerMemoryServer(MCPServer):
    """MCPServer, except that a malformed call (an unknown tool, or arguments that do not fit
    the tool's schema) is a JSON-RPC protocol error (-32602), as the MCP specification classes
    it. Failures while a tool runs stay `isError` results the agent reads and acts on."""

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
    server = SpeakerMemoryServer(
        SERVER_NAME, title="Speaker memory", instructions=INSTRUCTIONS, version="0.1.0",
        log_level=_sdk_log_level(app.settings.log_level),
    )
    levels = ClientLogLevels()

    async def set_log_level(
        ctx: ServerRequestContext[Any], params: SetLevelRequestParams
    ) -> EmptyResult:
        headers = ctx.request.headers if ctx.request is not None else None
        levels.set(session_of(headers), params.level)
        return EmptyResult()

    server.protocol_server.add_request_handler(
        "logging/setLevel", SetLevelRequestParams, set_log_level
    )

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[P, R]], Callable[P, R]]:
        # The docstring is the description an agent reads; cleandoc drops the indentation.
        def register(fn: Callable[P, R]) -> Callable[P, R]:
            description = inspect.cleandoc(fn.__doc__ or "")
            return server.tool(description=description, annotations=annotations)(fn)

        return register

    # ------------------------------------------------------------ processing
    @tool(annotations=CHANGES)
    async def process_audio(
        ctx: Context,
        path: AudioPath = None,
        audio_base64: AudioBase64 = None,
        filename: Filename = None,
        title: Annotated[str | None, Field(max_length=MAX_TITLE_LENGTH,
                                           description="Conversation title; default: the "
                                           "file name.")] = None,
        num_speakers: Annotated[int | None, Field(
            ge=1, le=processing.MAX_SPEAKERS, description="Exact number of speakers, when known."
        )] = None,
        language: Annotated[str | None, Field(max_length=MAX_LANGUAGE_LENGTH,
                                              description="ISO language code; default: "
                                              "detected.")] = None,
        wait: Annotated[bool, Field(description="Wait for the result (progress is reported). "
                                    "false: return at once and poll get_processing_status.")]
        = True,
        recorded_at: Annotated[datetime | None, Field(
            description="When the recording was made (ISO 8601); default: the file's "
                        "modification time.")] = None,
    ) -> ProcessAudioResult:
        """Transcribe a recording and work out who spoke when, recognising voices heard before.

        Returns the conversation id, its status, duration and the speakers found (named ones and
        'Unknown N' ones, with segment counts). Unknown voices are worth naming: ask the user and
        call identify_speaker_in_segment. The same audio sent twice is not processed again (the
        existing conversation id comes back with duplicate=true). Long recordings keep running in
        the background when wait=false or past the server's wait limit."""
        audio = await run_tool(app, audio_argument, app, path, audio_base64, filename)
        options = processing.ProcessOptions(title=title, num_speakers=num_speakers,
                                            language=language, recorded_at=recorded_at)
        follow = following(app.settings.wait_seconds if wait else None, _progress_to(ctx),
                           _log_to(ctx, levels))
        result = await run_flow(app, processing.process_audio(app, audio, options, follow))
        if result.status == "failed":
            # A failed run is a tool failure; the conversation stays (status 'failed') and
            # sending the same audio again retries it.
            raise ToolError(result.message)
        return result

    @tool(annotations=READ_ONLY)
    async def get_processing_status(conversation_id: ConversationId) -> ProcessingStatus:
        """Status of a conversation being processed: queued, processing (with stage and progress
        0..1), done, or failed (with the reason). Poll it after process_audio(wait=false)."""
        return await run_tool(app, processing.processing_status, app, conversation_id)

    @tool(annotations=CHANGES)
    async def reprocess_conversation(conversation_id: ConversationId) -> ProcessAudioResult:
        """Re-match a stored conversation's voices against the current speaker profiles (after
        enrolling or naming people). Manual labels and segment ids are kept; no audio is
        re-transcribed."""
        return await run_tool(app, processing.reprocess, app, conversation_id)

    # ------------------------------------------------------------ reading
    @tool(annotations=READ_ONLY)
    async def list_conversations(
        limit: Limit = 20, offset: Offset = 0,
        speaker: Annotated[RowId | str | None, Field(
            description="Only conversations this speaker (id, name or 'Unknown N') took part "
                        "in.")]
        = None,
        since: Since = None, until: Until = None,
    ) -> ConversationList:
        """Stored conversations, newest first, with their speakers and segment counts."""
        return await run_tool(app, queries.list_conversations, app, limit, offset, speaker,
                              since, until)

    @tool(annotations=READ_ONLY)
    async def get_conversation(
        conversation_id: ConversationId,
        format: Annotated[Literal["json", "text"], Field(
            description="'json': segments with ids, times and speakers; 'text': one "
                        "'[mm:ss] Speaker: text' line per segment (compact; 'Speaker (over "
                        "Other)' while someone else talks too).")] = "json",
    ) -> Transcript:
        """The transcript of one conversation with speaker names ('Unknown N' for voices not
        named yet). Segment ids in it are what identify_speaker_in_segment takes. A segment's
        overlapped_by lists who else talked at the same time."""
        return await run_tool(app, queries.get_conversation, app, conversation_id, format)

    @tool(annotations=READ_ONLY)
    async def get_latest_segments(
        limit: Limit = 20,
        conversation_id: OnlyConversation = None,
    ) -> SegmentList:
        """The most recent transcript segments (newest first), e.g. 'what was just said?'."""
        return await run_tool(app, queries.get_latest_segments, app, limit, conversation_id)

    @tool(annotations=READ_ONLY)
    async def search_conversations(
        query: Annotated[str, Field(min_length=1, max_length=queries.MAX_QUERY_LENGTH,
                                    description="Words or a question to look for.")],
        mode: Annotated[Literal["hybrid", "keyword", "semantic"], Field(
            description="'keyword': exact words; 'semantic': by meaning; 'hybrid': both "
                        "(best default).")] = "hybrid",
        speaker: Annotated[RowId | str | None, Field(
            description="Only what this speaker said (id, name or 'Unknown N').")] = None,
        conversation_id: OnlyConversation = None,
        since: Since = None, until: Until = None, limit: Limit = 20,
    ) -> SearchResults:
        """Find segments by words or meaning across all conversations, optionally only what one
        speaker said. Each hit carries the segment (id, speaker, time) and its conversation."""
        return await run_tool(app, queries.search_conversations, app, query, mode, speaker,
                              conversation_id, since, until, limit)

    @tool(annotations=READ_ONLY)
    async def search_conversations_by_speaker(
        speaker: Speaker, limit: Limit = 20, offset: Offset = 0
    ) -> SpeakerConversations:
        """Every conversation a speaker took part in, newest first."""
        return await run_tool(app, queries.search_conversations_by_speaker, app, speaker,
                              limit, offset)

    @tool(annotations=READ_ONLY)
    async def list_speakers(
        kind: Annotated[Literal["enrolled", "unknown"] | None, Field(
            description="'enrolled': named people; 'unknown': voices not named yet; "
                        "omit for all.")] = None,
    ) -> SpeakerList:
        """Known speakers with how much they were heard (segments, conversations, seconds)."""
        return await run_tool(app, queries.list_speakers, app, kind)

    @tool(annotations=READ_ONLY)
    async def export_conversation(
        conversation_id: ConversationId,
        format: Annotated[ExportFormat, Field(
            description="srt/vtt subtitles, rttm speaker turns (overlapping speech "
                        "included), json with words and turns, or txt.")]
        = "srt",
    ) -> ExportOut:
        """A conversation as a file's content (subtitles, speaker turns, JSON or plain text)."""
        return await run_tool(app, exports.export_conversation, app, conversation_id, format)

    # ------------------------------------------------------------ identity
    @tool(annotations=CHANGES)
    async def identify_speaker_in_segment(
        segment_id: SegmentId,
        speaker_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                           description="The person's name, as the user gave "
                                           "it.")],
    ) -> IdentifyOut:
        """Name the voice of a segment ("that was Sarah"). Every segment of that voice, in every
        conversation, is relabelled; the voice is recognised in future recordings. Returns how
        many segments changed and suggestions (similar voices) to confirm with the user.
        Reversible with undo_identity_change."""
        return await run_tool(app, identity.identify_speaker_in_segment, app, segment_id,
                              speaker_name)

    @tool(annotations=CHANGES)
    async def enroll_speaker(
        name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                   description="The person's name.")],
        path: AudioPath = None, audio_base64: AudioBase64 = None, filename: Filename = None,
    ) -> EnrollOut:
        """Teach a voice up front from a clean 10-30 s clip of one person speaking alone (at
        most 5 min; a clip with a second voice is refused). Adds samples when the name exists
        already."""
        audio = await run_tool(app, audio_argument, app, path, audio_base64, filename)
        return await run_flow(app, identity.enroll_speaker(
            app, name, audio, following(app.settings.wait_seconds)))

    @tool(annotations=CHANGES)
    async def rename_speaker(
        speaker: Speaker,
        new_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                       description="The new name.")],
    ) -> IdentityChangeOut:
        """Give a speaker a (new) name; an 'Unknown N' speaker becomes a named one."""
        return await run_tool(app, identity.rename_speaker, app, speaker, new_name)

    @tool(annotations=CHANGES)
    async def merge_speakers(
        source: Annotated[RowId | str, Field(description="The speaker to fold in (it "
                                             "disappears).")],
        target: Annotated[RowId | str, Field(description="The speaker that remains.")],
    ) -> IdentityChangeOut:
        """Two labels are one person: move every segment and voice sample of source to target."""
        return await run_tool(app, identity.merge_speakers, app, source, target)

    @tool(annotations=CHANGES)
    async def mark_segment_misidentified(
        segment_id: SegmentId,
        correct_speaker: Annotated[RowId | str | None, Field(
            description="Who really spoke (id, name or 'Unknown N'); omit if not known.")]
        = None,
    ) -> IdentityChangeOut:
        """One segment was attributed to the wrong person: reassign it (or leave it unassigned)
        and keep it out of the wrong speaker's voice profile."""
        return await run_tool(app, identity.mark_segment_misidentified, app, segment_id,
                              correct_speaker)

    @tool(annotations=DESTRUCTIVE)
    async def delete_speaker(speaker: Speaker) -> IdentityChangeOut:
        """Forget a speaker's name and voice samples; their segments become unassigned.
        Reversible with undo_identity_change."""
        return await run_tool(app, identity.delete_speaker, app, speaker)

    @tool(annotations=DESTRUCTIVE)
    async def delete_all_unknown_speakers() -> IdentityChangeOut:
        """Forget every voice that was never named ('Unknown N'). Reversible with
        undo_identity_change."""
        return await run_tool(app, identity.delete_all_unknown_speakers, app)

    @tool(annotations=CHANGES)
    async def undo_identity_change(
        event_id: Annotated[RowId | None, Field(
            description="The change to undo (event_id from its result); omit for the last "
                        "one.")] = None,
    ) -> IdentityChangeOut:
        """Reverse an identity change (identify, enroll, rename, merge, misidentify, delete)."""
        return await run_tool(app, identity.undo_identity_change, app, event_id)

    @tool(annotations=CHANGES)
    async def rebuild_voice_profiles(
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait for the result (progress is reported). "
                                    "false: return at once; call again to follow it.")] = True,
        cancel: Annotated[bool, Field(description="true: stop a running rebuild after the "
                                      "speaker in hand (run it again later to continue).")]
        = False,
    ) -> RebuildOut:
        """Give every speaker a voice profile of the current voice model, rebuilt from stored
        audio: their kept enrollment clips and their segments in recordings still on disk.
        Needed after the voice model changed (the server starts it by itself at start-up when
        speakers lack one): until then those speakers are not recognised in new recordings,
        and recordings sent while it runs wait for it. Idempotent and resumable: speakers that
        have a profile are skipped, and calling it during a run reports its progress. Returns
        counts (rebuilt, skipped) and the speakers whose audio is gone, who need to be
        re-enrolled or named again in a new recording; no name or segment changes."""
        if cancel:
            return await run_tool(app, rebuild.cancel_rebuild, app)
        job = await run_tool(app, rebuild.start_rebuild, app)
        if wait:
            await follow_job(job, app.settings.wait_seconds, _progress_to(ctx),
                             _log_to(ctx, levels))
        return await run_tool(app, rebuild.rebuild_status, app)

    @tool(annotations=CHANGES)
    async def update_conversation_title(
        conversation_id: ConversationId,
        title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE_LENGTH,
                                    description="The new title.")],
    ) -> ConversationOut:
        """Give a conversation a new title (e.g. after the user says what the meeting was);
        returns the updated conversation."""
        return await run_tool(app, identity.update_conversation_title, app, conversation_id,
                              title)

    @tool(annotations=DESTRUCTIVE)
    async def delete_conversation(conversation_id: ConversationId) -> ConversationDeletedOut:
        """Delete a conversation for good: its transcript, the voice samples learnt from it,
        the unknown voices heard only there, and the server's copy of uploaded audio (a file
        given by path stays). FINAL: undo_identity_change cannot bring it back, so confirm
        with the user first. Refused while the conversation is still being processed. Use it
        to clear failed conversations too."""
        return await run_tool(app, deletion.delete_conversation, app, conversation_id)

    # ------------------------------------------------------------ live listening
    @tool(annotations=CHANGES)
    async def start_listening(
        device: Annotated[str | None, Field(
            max_length=MAX_PATH_LENGTH,
            description="Input device of the SERVER's machine (name or index, as "
                        "`speaker-memory listen --list-devices` shows); default: its default "
                        "microphone.")] = None,
        title: Annotated[str | None, Field(max_length=MAX_TITLE_LENGTH,
                                           description="Conversation title.")] = None,
    ) -> LiveStartOut:
        """Start listening to the microphone of the machine this server runs on (not the
        user's, if the server is remote). Speech is transcribed and attributed as it is
        said: known voices by name, new ones as 'Unknown N'. Poll get_live_transcript for what
        is said; stop_listening ends it and returns the finalised conversation."""
        index: str | int | None = int(device) if device is not None and device.isdigit() \
            else device
        return await run_tool(app, live.start_microphone, app, index, title)

    @tool(annotations=READ_ONLY)
    async def get_live_transcript(
        conversation_id: OnlyConversation = None,
        since: Annotated[int, Field(strict=True, ge=0, le=MAX_ID, description="Only events "
                                    "after this sequence number (next_since of the last "
                                    "call); 0: from the start.")] = 0,
    ) -> LiveTranscript:
        """What a live session heard since the last call: 'final' events are confirmed
        segments with their speaker and segment id (identify_speaker_in_segment works on them
        at once), 'partial' is text still being heard, 'speaker_update' says earlier segments
        now show another speaker. Give conversation_id when several sessions run."""
        return await run_tool(app, live.live_transcript, app, conversation_id, since)

    @tool(annotations=CHANGES)
    async def stop_listening(
        ctx: Context,
        conversation_id: OnlyConversation = None,
        wait: Annotated[bool, Field(description="Wait until the recording is finalised "
                                    "(progress is reported); false: return at once and poll "
                                    "get_processing_status.")] = True,
    ) -> ProcessAudioResult:
        """Stop a live session and finalise it: the whole recording is transcribed and its
        speakers worked out again, with the offline models; segment ids seen during the
        session and names given meanwhile are kept. Also finalises a session left open by a
        server that stopped (give its conversation_id)."""
        follow = following(app.settings.wait_seconds if wait else None, _progress_to(ctx),
                           _log_to(ctx, levels))
        return await run_flow(app, live.stop_listening(app, conversation_id, follow))

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

    if app.settings.conformance_tools:
        @server.tool(name="test_reconnection", description="Conformance test: closes this "
                     "call's SSE stream, then answers while the client reconnects.")
        async def test_reconnection(ctx: Context) -> str:
            await ctx.close_sse_stream()
            # The answer is sent while the client is away: it arrives only by the replay.
            await anyio.sleep(0.1)
            return "Reconnection test completed successfully"

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
    "process_audio", "get_processing_status", "list_conversations", "get_conversation",
    "get_latest_segments", "search_conversations", "search_conversations_by_speaker",
    "list_speakers", "identify_speaker_in_segment", "enroll_speaker", "rename_speaker",
    "merge_speakers", "mark_segment_misidentified", "delete_speaker",
    "delete_all_unknown_speakers", "undo_identity_change", "update_conversation_title",
    "reprocess_conversation", "export_conversation", "rebuild_voice_profiles",
    "delete_conversation", "start_listening", "get_live_transcript", "stop_listening",
)
"""The issues' tool names, exactly (tests compare them with what the server lists)."""
