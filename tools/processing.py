"""Processing audio into a conversation: start a background job, report its progress, and
summarise what was found. The job runs on App.jobs' worker thread; callers decide how long to
wait (MCP: until done or settings.wait_seconds; CLI: until done)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio

from inference.types import PipelineResult
from memory.errors import (
    ConversationNotReady,
    DuplicateAudio,
    InvalidInput,
    SpeakerMemoryError,
)
from memory.limits import MAX_LANGUAGE_LENGTH, MAX_TITLE_LENGTH, bounded
from memory.speakers import UNKNOWN_LABEL
from memory.types import ConversationInfo, IngestResult, SegmentView
from memory.wording import counted
from tools.context import App, Job
from tools.inputs import AudioFile, discard_stored_copy
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessOptions:
    title: str | None = None
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    language: str | None = None
    recorded_at: datetime | None = None
    """Overrides the file's own time (modification time) when given."""


@dataclass(frozen=True)
class Started:
    conversation_id: int
    job: Job | None
    """None when the audio was a duplicate and nothing new runs."""


def start_processing(app: App, audio: AudioFile, options: ProcessOptions) -> Started:
    """Create the conversation (status 'queued') and queue its job. A duplicate of stored audio
    is not processed again: the existing conversation id comes back, with job None — unless
    that earlier attempt failed or was interrupted, in which case the same conversation is
    tried again."""
    check_options(options)
    existing = app.memory.find_conversation_by_sha256(audio.sha256)
    if existing is not None and _needs_a_run(app, existing):
        app.memory.retry_conversation(existing.id, str(audio.path))
        job = app.jobs.submit(existing.id, lambda job: _run_job(app, job, audio, options))
        return Started(existing.id, job)
    if existing is not None:
        return Started(existing.id, None)
    title = (options.title or "").strip() or _title_from(audio.source_name)
    try:
        info = app.memory.create_conversation(
            title=title, source_name=audio.source_name, sha256=audio.sha256,
            recorded_at=options.recorded_at or audio.recorded_at, audio_path=str(audio.path),
        )
    except DuplicateAudio as exc:  # another request stored the same audio meanwhile
        return Started(exc.conversation_id, None)
    job = app.jobs.submit(info.id, lambda job: _run_job(app, job, audio, options))
    return Started(info.id, job)


Follow = Callable[[Job], Awaitable[None]]
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
    """The stored status, except that queued/processing with no job of this process running
    it is 'interrupted' (a stopped server left it so)."""
    if app.live.get(conversation_id) is not None:
        return "live"
    if stored in ("queued", "processing") and app.jobs.get(conversation_id) is None:
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
                  "send the same audio again with process_audio to retry",
    }.get(status, "it is still being processed; call get_processing_status until it is done")
    raise ConversationNotReady(f"conversation {conversation_id} has no transcript yet: {what}")


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


def _run_job(app: App, job: Job, audio: AudioFile, options: ProcessOptions) -> None:
    def discard_audio() -> None:
        # A failed upload's bytes would otherwise stay for good (hundreds of MB each); sending
        # the same audio again brings them back for the retry. (A retry whose upload lands in
        # the instant between the failure and this deletion fails again, and says so.)
        if not app.settings.keep_failed_audio and discard_stored_copy(app, audio.path):
            log.info("deleted the stored audio of failed conversation %d", job.key)

    run_pipeline_job(app, job, audio.path, options,
                     store=lambda result: app.memory.ingest(int(job.key), result),
                     after_failure=discard_audio)


def run_pipeline_job(
    app: App, job: Job, path: Path, options: ProcessOptions, *,
    store: Callable[[PipelineResult], IngestResult], after_failure: Callable[[], None],
) -> None:
    """A conversation's job: the pipeline over its recording, then `store` its result (a new
    recording's ingest, or a live session's finalisation). A failure is recorded on the
    conversation (status 'failed' with the reason), then `after_failure` runs."""
    conversation_id = int(job.key)
    memory = app.memory
    try:
        memory.set_conversation_status(conversation_id, "processing")
        job.report(0.0, "loading models")
        pipeline = app.pipeline
        enrolled = memory.enrolled_voices(pipeline.voice_model_id)
        result = pipeline.run(
            path,
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
            language=options.language,  # None: the pipeline uses settings.language
            enrolled=enrolled,
            progress=lambda fraction, stage: _pipeline_progress(job, fraction, stage),
        )
        job.report(PIPELINE_SHARE, "storing")
        job.ingest = store(result)
        job.report(1.0, "done")
    except Exception as exc:
        if isinstance(exc, SpeakerMemoryError):
            reason = str(exc)
            log.info("processing conversation %d failed: %s", conversation_id, reason)
        else:
            reason = f"internal error ({type(exc).__name__}: {exc}); see the server log"
            log.exception("processing conversation %d crashed", conversation_id)
        job.report(job.fraction, "failed")
        try:
            memory.set_conversation_status(conversation_id, "failed", error=reason)
        except Exception:
            log.exception("could not mark conversation %d failed", conversation_id)
        after_failure()


PIPELINE_SHARE = 0.95
"""The pipeline's part of a processing job; storing its result is the rest."""


def _pipeline_progress(job: Job, fraction: float, stage: str) -> None:
    # The pipeline's own end is not the job's ('storing' follows): the job says 'done' once.
    if fraction < 1.0:
        job.report(PIPELINE_SHARE * fraction, stage)


def processing_status(app: App, conversation_id: int) -> ProcessingStatus:
    return _status_of(app, app.memory.get_conversation_info(conversation_id))


def _status_of(app: App, info: ConversationInfo) -> ProcessingStatus:
    """Status, stage and message from one reading of the conversation (the job moves on
    meanwhile; the answer must not mix two moments)."""
    job = app.jobs.get(info.id)
    status = shown_status(app, info.id, info.status)
    stage = job.stage if job and status in ("queued", "processing") else None
    if stage is not None and info.status == "queued":
        stage = "queued"  # the job may have begun since the status was read: say what was read
    progress = round(job.fraction, 3) if stage is not None and job is not None else None
    return ProcessingStatus(
        conversation_id=info.id, status=status, stage=stage, progress=progress,
        error=info.error, message=_status_message(info, status, stage, progress),
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
    job = app.jobs.get(conversation_id)
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
                    progress: float | None) -> str:
    if status == "done":
        return f"Conversation {info.id} is processed; get_conversation returns the transcript."
    if status == "failed":
        return (
            f"Processing conversation {info.id} failed: "
            f"{(info.error or 'unknown reason').rstrip('.')}. "
            "Sending the same audio again retries it."
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

