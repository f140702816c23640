"""Processing audio into a conversation: start a background job, report its progress, and
summarise what was found. The job runs wherever the processing queue runs it (tools.queues:
this process's thread pool, or a worker's); callers decide how long to wait (MCP: until done
or settings.wait_seconds; CLI: until done)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from memory.errors import (
    ConversationNotReady,
    DuplicateAudio,
    InvalidInput,
    InvalidOperation,
)
from memory.limits import MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH, bounded
from memory.speakers import UNKNOWN_LABEL
from memory.types import ConversationInfo, SegmentView
from memory.wording import counted
from tools.context import App
from tools.inputs import AudioFile
from tools.job_queue import JobHandle
from tools.models import (
    EXAMPLE_TEXT_CHARS,
    JobStatus,
    ProcessAudioResult,
    ProcessingStatus,
    SegmentExample,
    SpeakerFound,
    SuggestionOut,
    speaker_ref,
)
from tools.pipeline_job import ProcessOptions as ProcessOptions  # the use case's options
from tools.queues import processing_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    conversation_id: int
    job: JobHandle | None
    """None when the audio was a duplicate and nothing new runs."""


def start_processing(app: App, audio: AudioFile, options: ProcessOptions) -> Started:
    """Create the conversation (status 'queued') and queue its job. A duplicate of stored audio
    is not processed again: the existing conversation id comes back, with job None — unless
    that earlier attempt failed or was interrupted, in which case the same conversation is
    tried again."""
    check_options(options)
    existing = app.memory.find_conversation_by_sha256(audio.sha256)
    if existing is not None and not _needs_a_run(app, existing):
        return Started(existing.id, None)
    audio = processing_queue(app).receive(audio)  # where the job's runner will read it
    if existing is not None:
        app.memory.retry_conversation(existing.id, str(audio.path))
        return Started(existing.id, processing_queue(app).submit(existing.id, audio, options))
    title = (options.title or "").strip() or _title_from(audio.source_name)
    try:
        info = app.memory.create_conversation(
            title=title, source_name=audio.source_name, sha256=audio.sha256,
            recorded_at=options.recorded_at or audio.recorded_at, audio_path=str(audio.path),
        )
    except DuplicateAudio as exc:  # another request stored the same audio meanwhile
        return Started(exc.conversation_id, None)
    return Started(info.id, processing_queue(app).submit(info.id, audio, options))


Follow = Callable[[JobHandle], Awaitable[None]]
"""How a transport waits on a job: relaying its progress the transport's way, up to the
transport's own limit (the job goes on in the background after that)."""


async def process_audio(app: App, audio: AudioFile, options: ProcessOptions,
                        follow: Follow) -> ProcessAudioResult:
    """The use case "process this recording", the same for MCP, REST and the CLI: start the
    job (or find that this audio was processed before), let the transport follow it, then
    summarise. Store calls run on worker threads: the event loop only waits."""
    started = await anyio.to_thread.run_sync(start_processing, app, audio, options)
    if started.job is None:
        return await anyio.to_thread.run_sync(
            lambda: summarise(app, started.conversation_id, duplicate=True))
    await follow(started.job)
    return await anyio.to_thread.run_sync(summarise, app, started.conversation_id)


def _needs_a_run(app: App, existing: ConversationInfo) -> bool:
    """A failed or interrupted earlier attempt is run again on the same conversation."""
    return shown_status(app, existing.id, existing.status) in ("failed", "interrupted")


def shown_status(app: App, conversation_id: int, stored: JobStatus) -> JobStatus:
    """The stored status, except that queued/processing with no unfinished job (of this
    process, or in the shared queue) is 'interrupted' (a stopped server left it so)."""
    if app.live.get(conversation_id) is not None:
        return "live"
    if stored in ("queued", "processing"):
        job = processing_queue(app).get(conversation_id)
        if job is not None and not job.state().done:
            return stored
        if job is not None:
            # It ended after `stored` was read; a job stores its outcome before it ends.
            stored = app.memory.get_conversation_info(conversation_id).status
        if stored in ("queued", "processing"):
            return "interrupted"
    return stored


def require_transcript(app: App, conversation_id: int) -> None:
    """Raise ConversationNotReady, saying what to do, unless the conversation is processed."""
    info = app.memory.get_conversation_info(conversation_id)
    status = shown_status(app, info.id, info.status)
    if status in ("done", "live"):  # a live one: what was confirmed so far
        return
    what = {
        "interrupted": "its processing was interrupted (the server stopped); send the same "
                       "audio again with process_audio to finish it",
        "failed": f"its processing failed ({(info.error or 'unknown reason').rstrip('.')}); "
                  f"{retry_hint(app, info.id)}",
    }.get(status, "it is still being processed; call get_processing_status until it is done")
    raise ConversationNotReady(f"conversation {conversation_id} has no transcript yet: {what}")


def retry_hint(app: App, conversation_id: int) -> str:
    """How to run a failed conversation again: a live recording whose finalising failed is
    kept with its session, and stop_listening finalises it again; other audio is sent again."""
    if any(s.conversation_id == conversation_id for s in app.memory.live_sessions()):
        return (f"call stop_listening with conversation_id {conversation_id} to finalise its "
                "kept recording again")
    return "send the same audio again with process_audio to retry"


MAX_SPEAKERS = 20


def check_options(options: ProcessOptions) -> None:
    """Refuse options that cannot be used (InvalidInput), before anything is stored; an edge
    that saves uploaded bytes calls it first, so that a refusal leaves no copy behind."""
    _check_speaker_counts(options)
    if options.title is not None:
        bounded(options.title.strip(), "title", MAX_TITLE_LENGTH)
    if options.language is not None:
        bounded(options.language, "language code", MAX_LANGUAGE_LENGTH)


def _check_speaker_counts(options: ProcessOptions) -> None:
    """Checked here, before anything is stored, for every edge (MCP, REST, CLI)."""
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        value = getattr(options, name)
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            raise InvalidInput(f"{name} must be between 1 and {MAX_SPEAKERS}, got {value}.")
    low, high = options.min_speakers, options.max_speakers
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"min_speakers ({low}) is more than max_speakers ({high}).")


def cancel_processing(app: App, conversation_id: int) -> ProcessingStatus:
    """Ask the conversation's queued or running job to stop: a queued one never starts, a
    running one stops before its next stage; either ends 'failed' (cancelled), and sending
    the same audio again processes it."""
    info = app.memory.get_conversation_info(conversation_id)
    if not processing_queue(app).cancel(conversation_id):
        raise InvalidOperation(
            f"conversation {conversation_id} has no queued or running job to cancel (it is "
            f"{shown_status(app, info.id, info.status)}).")
    return processing_status(app, conversation_id)


def processing_status(app: App, conversation_id: int) -> ProcessingStatus:
    return _status_of(app, app.memory.get_conversation_info(conversation_id))


def _status_of(app: App, info: ConversationInfo) -> ProcessingStatus:
    """Status, stage and message from one reading of the conversation (the job moves on
    meanwhile; the answer must not mix two moments)."""
    job = processing_queue(app).get(info.id)
    state = job.state() if job is not None else None
    status = shown_status(app, info.id, info.status)
    if status not in (info.status, "live", "interrupted"):
        # The job ended after `info` was read (shown_status read its outcome): the error
        # and message are the outcome's.
        info = app.memory.get_conversation_info(info.id)
    stage = state.stage if state and status in ("queued", "processing") else None
    if stage is not None and info.status == "queued":
        stage = "queued"  # the job may have begun since the status was read: say what was read
    progress = round(state.fraction, 3) if stage is not None and state is not None else None
    return ProcessingStatus(
        conversation_id=info.id, status=status, stage=stage, progress=progress,
        error=info.error,
        message=_status_message(info, status, stage, progress,
                                retry_hint(app, info.id) if status == "failed" else ""),
    )


def summarise(app: App, conversation_id: int, *, duplicate: bool = False) -> ProcessAudioResult:
    """What a finished (or still running) conversation holds: speakers with segment counts."""
    info = app.memory.get_conversation_info(conversation_id)
    if info.status != "done":
        status = _status_of(app, info)
        prefix = (
            f"This audio was already processed as conversation {info.id}. "
            if duplicate else ""
        )
        return ProcessAudioResult(
            conversation_id=info.id, status=status.status, duplicate=duplicate,
            duration=info.duration, message=prefix + status.message,
        )
    tallies = app.memory.speaker_tallies(conversation_id)
    job = processing_queue(app).get(conversation_id)
    # A duplicate found nothing new, whatever the run that stored it once created.
    decisions = job.ingest.decisions if job and job.ingest and not duplicate else []
    created = {d.speaker.id for d in decisions if d.created}
    maybe = {d.speaker.id: SuggestionOut(speaker=speaker_ref(d.suggestion.speaker),
                                         score=round(d.suggestion.score, 4))
             for d in decisions if d.suggestion is not None}
    found = [
        SpeakerFound(speaker=speaker_ref(t.speaker), segment_count=t.segment_count,
                     example=_example(t.example), new=t.speaker.id in created,
                     maybe=maybe.get(t.speaker.id))
        for t in tallies
    ]
    named = [f for f in found if f.speaker.kind == "enrolled"]
    # Listed by number, so the message reads in the order the labels were given.
    unknown = sorted((f for f in found if f.speaker.kind == "unknown"), key=_unknown_number)
    if duplicate:
        lead = f"This audio was already processed as conversation {info.id} ('{info.title}'). "
    else:
        lead = f"Processed conversation {info.id} ('{info.title}', {_duration(info.duration)}). "
    parts = []
    if named:
        parts.append("recognised " + ", ".join(f.speaker.label for f in named))
    if unknown:
        parts.append(
            f"{counted(len(unknown), 'unknown voice')} ("
            + ", ".join(f.speaker.label + (f" e.g. segment {f.example.segment_id}"
                                           if f.example else "")
                        + (f", maybe {f.maybe.speaker.label}" if f.maybe else "")
                        for f in unknown)
            + "); ask the user who they are and call identify_speaker_in_segment"
        )
    if not found:
        parts.append("no speech was found")
    return ProcessAudioResult(
        conversation_id=info.id, status=info.status, duplicate=duplicate,
        duration=info.duration, speakers=found, named_speakers=len(named),
        unknown_speakers=len(unknown), message=lead + "; ".join(parts) + ".",
    )


def _unknown_number(found: SpeakerFound) -> int:
    """N of an 'Unknown N' label: 'Unknown 2' sorts before 'Unknown 10'."""
    label = UNKNOWN_LABEL.match(found.speaker.label)
    return int(label.group(1)) if label else 0


def _example(segment: SegmentView) -> SegmentExample:
    text = segment.text.strip()
    if len(text) > EXAMPLE_TEXT_CHARS:
        text = text[: EXAMPLE_TEXT_CHARS - 1].rstrip() + "…"
    return SegmentExample(segment_id=segment.id, start=round(segment.start, 2),
                          end=round(segment.end, 2), text=text)


def reprocess(app: App, conversation_id: int) -> ProcessAudioResult:
    """Re-match a stored conversation's voices against the current profiles."""
    require_transcript(app, conversation_id)
    app.memory.reprocess(conversation_id)
    result = summarise(app, conversation_id)
    return result.model_copy(update={
        "message": "Re-matched with the current voice profiles; manual labels kept. "
        + result.message
    })


def _status_message(info: ConversationInfo, status: JobStatus, stage: str | None,
                    progress: float | None, retry: str) -> str:
    if status == "done":
        return f"Conversation {info.id} is processed; get_conversation returns the transcript."
    if status == "failed":
        return (
            f"Processing conversation {info.id} failed: "
            f"{(info.error or 'unknown reason').rstrip('.')}; {retry}."
        )
    if status == "interrupted":
        return (
            f"Processing conversation {info.id} was interrupted (the server stopped before it "
            "finished); send the same audio again with process_audio to finish it."
        )
    if status == "live":
        return (f"Conversation {info.id} is being listened to: get_live_transcript shows what "
                "is said as it is confirmed; stop_listening ends and finalises it.")
    if status == "queued":
        return (f"Conversation {info.id} is queued behind other work. "
                "Call get_processing_status again in a little while.")
    done = f" ({progress:.0%})" if progress is not None else ""
    return (
        f"Conversation {info.id} is {status}: {stage}{done}. "
        "Call get_processing_status again in a little while."
    )


def _title_from(source_name: str) -> str:
    stem = source_name.rsplit(".", 1)[0] if "." in source_name else source_name
    return stem.replace("_", " ").strip() or "Untitled conversation"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown length"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d} min"

