"""Every MCP tool, defined once at module level: `TOOLS` is the list the MCP server registers
(server/mcp_server.py) and the CLI makes its commands from (server/cli_commands.py); REST names
each route after the tool it serves, or says why it has none (server/rest.py). Adding a tool is
adding one `@tool` function here (tests/server/test_server_tool_list.py then asks for its CLI
command and its REST decision).

A tool is a thin async function: it parses nothing itself (the SDK validates the arguments
against the schema its signature gives), runs the tools/ function on a worker thread (the event
loop stays free for other calls) and turns domain errors into `isError` results with an
actionable message. It reaches the App through its `ctx` (the server that runs it carries a
`Served`), so nothing is captured in a closure and `ctx` never appears in the tool's schema.

No `from __future__ import annotations` here: the SDK reads parameter annotations at runtime.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Concatenate, Literal, ParamSpec, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from memory.api import MAX_PAGE
from memory.errors import SpeakerMemoryError
from memory.limits import MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH
from memory.speakers import MAX_NAME_LENGTH
from memory.types import MAX_ID
from server.client_log import ClientLogLevels, as_level, session_of
from server.jobs import LogSink, ProgressSink, follow_job, following
from server.threads import tool_threads
from tools import deletion, exports, identity, live, processing, queries, rebuild
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

P = ParamSpec("P")
R = TypeVar("R")
ToolFunction = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=ToolFunction)

SERVER_NAME = "speaker-memory"


@dataclass(frozen=True)
class Served:
    """What a tool call works on; the server that registers the tools carries it."""

    app: App
    levels: ClientLogLevels
    """The log level each session asked for (logging/setLevel)."""


def served(ctx: Context) -> Served:
    """The App (and log levels) of the server running this call."""
    state = getattr(ctx.mcp_server, "served", None)
    if not isinstance(state, Served):
        raise RuntimeError("speaker-memory tools run on the server build_server makes")
    return state


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: its name (the function's), the function, and its hints to clients. The
    docstring is the description an agent reads."""

    name: str
    fn: ToolFunction
    annotations: ToolAnnotations | None = None

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.fn.__doc__ or "")


TOOLS: list[ToolSpec] = []
"""Every tool, in the order clients list them (filled by @tool below, at import)."""


def tool(annotations: ToolAnnotations) -> Callable[[F], F]:
    """Adds the decorated function to TOOLS, under its own name."""
    def register(fn: F) -> F:
        TOOLS.append(ToolSpec(fn.__name__, fn, annotations))
        return fn

    return register


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


# ---------------------------------------------------------------- running a call
async def call(ctx: Context, fn: Callable[Concatenate[App, P], R], *args: P.args,
               **kwargs: P.kwargs) -> R:
    """`fn(app, *args)`, a tools/ function, run as run_tool runs it."""
    app = served(ctx).app
    return await run_tool(app, fn, app, *args, **kwargs)


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


def _progress_to(ctx: Context) -> ProgressSink:
    """A job's progress as MCP progress notifications (when the client asked for them)."""
    async def report(fraction: float, stage: str) -> None:
        await ctx.report_progress(fraction * 100, 100, stage)

    return report


def _log_to(ctx: Context) -> LogSink:
    """A job's stages and warnings as MCP log notifications, at the level the session set."""
    levels = served(ctx).levels
    session = session_of(ctx.headers)

    async def send(level: str, message: str) -> None:
        if levels.allows(session, as_level(level)):
            await ctx.log(as_level(level), message, logger_name=SERVER_NAME)

    return send


# ---------------------------------------------------------------- processing
@tool(CHANGES)
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
    audio = await call(ctx, audio_argument, path, audio_base64, filename)
    options = processing.ProcessOptions(title=title, num_speakers=num_speakers,
                                        language=language, recorded_at=recorded_at)
    app = served(ctx).app
    follow = following(app.settings.wait_seconds if wait else None, _progress_to(ctx),
                       _log_to(ctx))
    result = await run_flow(app, processing.process_audio(app, audio, options, follow))
    if result.status == "failed":
        # A failed run is a tool failure; the conversation stays (status 'failed') and
        # sending the same audio again retries it.
        raise ToolError(result.message)
    return result


@tool(READ_ONLY)
async def get_processing_status(ctx: Context, conversation_id: ConversationId
                                ) -> ProcessingStatus:
    """Status of a conversation being processed: queued, processing (with stage and progress
    0..1), done, or failed (with the reason). Poll it after process_audio(wait=false)."""
    return await call(ctx, processing.processing_status, conversation_id)


@tool(CHANGES)
async def cancel_processing(ctx: Context, conversation_id: ConversationId) -> ProcessingStatus:
    """Stop a conversation's queued or running processing: a queued job never starts, a
    running one stops before its next stage. It ends 'failed' (cancelled) with nothing
    stored; sending the same audio to process_audio again processes it."""
    return await call(ctx, processing.cancel_processing, conversation_id)


@tool(CHANGES)
async def reprocess_conversation(ctx: Context, conversation_id: ConversationId
                                 ) -> ProcessAudioResult:
    """Re-match a stored conversation's voices against the current speaker profiles (after
    enrolling or naming people). Manual labels and segment ids are kept; no audio is
    re-transcribed."""
    return await call(ctx, processing.reprocess, conversation_id)


# ---------------------------------------------------------------- reading
@tool(READ_ONLY)
async def list_conversations(
    ctx: Context,
    limit: Limit = 20, offset: Offset = 0,
    speaker: Annotated[RowId | str | None, Field(
        description="Only conversations this speaker (id, name or 'Unknown N') took part "
                    "in.")]
    = None,
    since: Since = None, until: Until = None,
) -> ConversationList:
    """Stored conversations, newest first, with their speakers and segment counts."""
    return await call(ctx, queries.list_conversations, limit, offset, speaker, since, until)


@tool(READ_ONLY)
async def get_conversation(
    ctx: Context,
    conversation_id: ConversationId,
    format: Annotated[Literal["json", "text"], Field(
        description="'json': segments with ids, times and speakers; 'text': one "
                    "'[mm:ss] Speaker: text' line per segment (compact; 'Speaker (over "
                    "Other)' while someone else talks too).")] = "json",
) -> Transcript:
    """The transcript of one conversation with speaker names ('Unknown N' for voices not
    named yet). Segment ids in it are what identify_speaker_in_segment takes. A segment's
    overlapped_by lists who else talked at the same time."""
    return await call(ctx, queries.get_conversation, conversation_id, format)


@tool(READ_ONLY)
async def get_latest_segments(
    ctx: Context,
    limit: Limit = 20,
    conversation_id: OnlyConversation = None,
) -> SegmentList:
    """The most recent transcript segments (newest first), e.g. 'what was just said?'."""
    return await call(ctx, queries.get_latest_segments, limit, conversation_id)


@tool(READ_ONLY)
async def search_conversations(
    ctx: Context,
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
    return await call(ctx, queries.search_conversations, query, mode, speaker,
                      conversation_id, since, until, limit)


@tool(READ_ONLY)
async def search_conversations_by_speaker(
    ctx: Context,
    speaker: Speaker, limit: Limit = 20, offset: Offset = 0
) -> SpeakerConversations:
    """Every conversation a speaker took part in, newest first."""
    return await call(ctx, queries.search_conversations_by_speaker, speaker, limit, offset)


@tool(READ_ONLY)
async def list_speakers(
    ctx: Context,
    kind: Annotated[Literal["enrolled", "unknown"] | None, Field(
        description="'enrolled': named people; 'unknown': voices not named yet; "
                    "omit for all.")] = None,
) -> SpeakerList:
    """Known speakers with how much they were heard (segments, conversations, seconds)."""
    return await call(ctx, queries.list_speakers, kind)


@tool(READ_ONLY)
async def export_conversation(
    ctx: Context,
    conversation_id: ConversationId,
    format: Annotated[ExportFormat, Field(
        description="srt/vtt subtitles, rttm speaker turns (overlapping speech "
                    "included), json with words and turns, or txt.")]
    = "srt",
) -> ExportOut:
    """A conversation as a file's content (subtitles, speaker turns, JSON or plain text)."""
    return await call(ctx, exports.export_conversation, conversation_id, format)


# ---------------------------------------------------------------- identity
@tool(CHANGES)
async def identify_speaker_in_segment(
    ctx: Context,
    segment_id: SegmentId,
    speaker_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                       description="The person's name, as the user gave "
                                       "it.")],
) -> IdentifyOut:
    """Name the voice of a segment ("that was Sarah"). Every segment of that voice, in every
    conversation, is relabelled; the voice is recognised in future recordings. Returns how
    many segments changed and suggestions (similar voices) to confirm with the user.
    Reversible with undo_identity_change."""
    return await call(ctx, identity.identify_speaker_in_segment, segment_id, speaker_name)


@tool(CHANGES)
async def enroll_speaker(
    ctx: Context,
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                               description="The person's name.")],
    path: AudioPath = None, audio_base64: AudioBase64 = None, filename: Filename = None,
) -> EnrollOut:
    """Teach a voice up front from a clean 10-30 s clip of one person speaking alone (at
    most 5 min; a clip with a second voice is refused). Adds samples when the name exists
    already."""
    audio = await call(ctx, audio_argument, path, audio_base64, filename)
    app = served(ctx).app
    return await run_flow(app, identity.enroll_speaker(
        app, name, audio, following(app.settings.wait_seconds)))


@tool(CHANGES)
async def rename_speaker(
    ctx: Context,
    speaker: Speaker,
    new_name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                   description="The new name.")],
) -> IdentityChangeOut:
    """Give a speaker a (new) name; an 'Unknown N' speaker becomes a named one."""
    return await call(ctx, identity.rename_speaker, speaker, new_name)


@tool(CHANGES)
async def merge_speakers(
    ctx: Context,
    source: Annotated[RowId | str, Field(description="The speaker to fold in (it "
                                         "disappears).")],
    target: Annotated[RowId | str, Field(description="The speaker that remains.")],
) -> IdentityChangeOut:
    """Two labels are one person: move every segment and voice sample of source to target."""
    return await call(ctx, identity.merge_speakers, source, target)


@tool(CHANGES)
async def mark_segment_misidentified(
    ctx: Context,
    segment_id: SegmentId,
    correct_speaker: Annotated[RowId | str | None, Field(
        description="Who really spoke (id, name or 'Unknown N'); omit if not known.")]
    = None,
) -> IdentityChangeOut:
    """One segment was attributed to the wrong person: reassign it (or leave it unassigned)
    and keep it out of the wrong speaker's voice profile."""
    return await call(ctx, identity.mark_segment_misidentified, segment_id, correct_speaker)


@tool(DESTRUCTIVE)
async def delete_speaker(ctx: Context, speaker: Speaker) -> IdentityChangeOut:
    """Forget a speaker's name and voice samples; their segments become unassigned.
    Reversible with undo_identity_change."""
    return await call(ctx, identity.delete_speaker, speaker)


@tool(DESTRUCTIVE)
async def delete_all_unknown_speakers(ctx: Context) -> IdentityChangeOut:
    """Forget every voice that was never named ('Unknown N'). Reversible with
    undo_identity_change."""
    return await call(ctx, identity.delete_all_unknown_speakers)


@tool(CHANGES)
async def undo_identity_change(
    ctx: Context,
    event_id: Annotated[RowId | None, Field(
        description="The change to undo (event_id from its result); omit for the last "
                    "one.")] = None,
) -> IdentityChangeOut:
    """Reverse an identity change (identify, enroll, rename, merge, misidentify, delete)."""
    return await call(ctx, identity.undo_identity_change, event_id)


@tool(CHANGES)
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
        return await call(ctx, rebuild.cancel_rebuild)
    job = await call(ctx, rebuild.start_rebuild)
    if wait:
        await follow_job(job, served(ctx).app.settings.wait_seconds, _progress_to(ctx),
                         _log_to(ctx))
    return await call(ctx, rebuild.rebuild_status)


@tool(CHANGES)
async def update_conversation_title(
    ctx: Context,
    conversation_id: ConversationId,
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE_LENGTH,
                                description="The new title.")],
) -> ConversationOut:
    """Give a conversation a new title (e.g. after the user says what the meeting was);
    returns the updated conversation."""
    return await call(ctx, identity.update_conversation_title, conversation_id, title)


@tool(DESTRUCTIVE)
async def delete_conversation(ctx: Context, conversation_id: ConversationId
                              ) -> ConversationDeletedOut:
    """Delete a conversation for good: its transcript, the voice samples learnt from it,
    the unknown voices heard only there, and the server's copy of uploaded audio (a file
    given by path stays). FINAL: undo_identity_change cannot bring it back, so confirm
    with the user first. Refused while the conversation is still being processed. Use it
    to clear failed conversations too."""
    return await call(ctx, deletion.delete_conversation, conversation_id)


# ---------------------------------------------------------------- live listening
@tool(CHANGES)
async def start_listening(
    ctx: Context,
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
    return await call(ctx, live.start_microphone, index, title)


@tool(READ_ONLY)
async def get_live_transcript(
    ctx: Context,
    conversation_id: OnlyConversation = None,
    since: Annotated[int, Field(strict=True, ge=0, le=MAX_ID, description="Only events "
                                "after this sequence number (next_since of the last "
                                "call); 0: from the start.")] = 0,
) -> LiveTranscript:
    """What a live session heard since the last call: 'final' events are confirmed
    segments with their speaker and segment id (identify_speaker_in_segment works on them
    at once); a segment still open comes again, same id, as it grows ('complete' once
    closed). 'partial' is text still being heard, 'speaker_update' says earlier segments
    now show another speaker. Give conversation_id when several sessions run."""
    return await call(ctx, live.live_transcript, conversation_id, since)


@tool(CHANGES)
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
    app = served(ctx).app
    follow = following(app.settings.wait_seconds if wait else None, _progress_to(ctx),
                       _log_to(ctx))
    return await run_flow(app, live.stop_listening(app, conversation_id, follow))



PLAIN_TOOLS = frozenset(
    spec.name for spec in TOOLS if spec.annotations and spec.annotations.read_only_hint)
"""Tools that send nothing while they run (no progress, no log): the read-only ones. Over HTTP
a call of one that asks for no progress is answered with one JSON body (server/resumable.py)."""


# ---------------------------------------------------------------- for conformance tests only
async def test_reconnection(ctx: Context) -> str:
    """Conformance test: closes this call's SSE stream, then answers while the client reconnects."""
    await ctx.close_sse_stream()
    # The answer is sent while the client is away: it arrives only by the replay.
    await anyio.sleep(0.1)
    return "Reconnection test completed successfully"


CONFORMANCE_TOOLS = [ToolSpec("test_reconnection", test_reconnection)]
"""Registered only with the conformance_tools setting (the official suite calls them)."""
