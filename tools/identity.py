"""Tools that change who is who: name a voice, enroll, rename, merge, correct, delete, undo."""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

import anyio

from memory.errors import InvalidInput, StillRunning
from memory.speakers import clean_name
from memory.wording import counted, segments_in_conversations
from tools.context import App, Job
from tools.inputs import AudioFile, SpeakerArg, speaker_arg
from tools.models import (
    ConversationOut,
    EnrollOut,
    IdentifyOut,
    IdentityChangeOut,
    SuggestionOut,
    change_out,
    conversation_out,
    speaker_ref,
)
from tools.processing import Follow

log = logging.getLogger(__name__)


def identify_speaker_in_segment(app: App, segment_id: int, speaker_name: str) -> IdentifyOut:
    result = app.memory.identify(speaker_name.strip(), segment_id=segment_id)
    merged = ", ".join(s.label for s in result.speakers_merged)
    if not result.changed:
        message = f"Segment {segment_id} was already {result.speaker.label}; nothing changed."
    else:
        counts = segments_in_conversations(result.segments_relabelled,
                                           result.conversations_relabelled)
        message = (
            f"Segment {segment_id}'s voice is now {result.speaker.label}: {counts} relabelled"
            + (f" (merged {merged})" if merged else "")
            + "".join(f"; {label} had nothing left and was removed"
                      for label in result.speakers_removed)
            + f". undo_identity_change(event_id={result.event_id}) reverses this."
        )
    if result.suggestions:
        message += " Possibly the same person too: " + ", ".join(
            f"{s.speaker.label} ({s.score:.2f})" for s in result.suggestions
        ) + "; confirm with the user before naming them."
    return IdentifyOut(
        event_id=result.event_id if result.changed else None, speaker=speaker_ref(result.speaker),
        segments_relabelled=result.segments_relabelled,
        conversations_relabelled=result.conversations_relabelled,
        speakers_merged=[speaker_ref(s) for s in result.speakers_merged],
        suggestions=[
            SuggestionOut(speaker=speaker_ref(s.speaker), score=round(s.score, 4))
            for s in result.suggestions
        ],
        changed=result.changed, message=message,
    )


SECOND_VOICE_SHARE = 0.2
"""An enrollment clip in which a second voice talks alone for this share of the diarized
speech (and at least MIN_SECOND_VOICE_SECONDS) is refused: its profile would learn two people."""
MIN_SECOND_VOICE_SECONDS = 2.0


async def enroll_speaker(app: App, name: str, audio: AudioFile, follow: Follow) -> EnrollOut:
    """The use case "enroll this clip", the same for MCP, REST and the CLI: queue it, let the
    transport follow the job, then its result (StillRunning when it outlasted the wait)."""
    job = await anyio.to_thread.run_sync(start_enrollment, app, name, audio)
    await follow(job)
    return enrollment_result(job)


def start_enrollment(app: App, name: str, audio: AudioFile) -> Job:
    """Queue the enrollment on the processing job queue: embedding a clip is model work, and
    like a recording it waits its turn instead of competing for the CPU with every other call."""
    if not name.strip():
        raise InvalidInput("the speaker's name is empty; give the person's name.")
    # The store's own rules (length above all), before the job is queued under that name.
    name = clean_name(name)
    key = f"enrollment of {name!r} from {audio.sha256[:12]}"

    def work(job: Job) -> None:
        job.report(0.0, "learning the voice")
        job.outcome = _enroll(app, name, audio)
        job.report(1.0, "done")

    return app.jobs.submit(key, work)


def enrollment_result(job: Job) -> EnrollOut:
    """The finished enrollment's result; its domain error when it failed."""
    if job.future is None or not job.future.done():
        raise StillRunning(
            "the enrollment is queued behind other processing and finishes in the background; "
            "list_speakers shows the speaker once it is done.")
    job.future.result()  # re-raises the enrollment's error
    assert isinstance(job.outcome, EnrollOut)
    return job.outcome


def _enroll(app: App, name: str, audio: AudioFile) -> EnrollOut:
    """Embed a clean clip of one person's voice and store it under `name`. A copy of the clip
    is kept under DATA_DIR/audio/enroll, so that the profile can be rebuilt when the voice
    model changes (tools.rebuild)."""
    voice = app.pipeline.embed_voice(audio.path)
    speech_seconds = voice.speech_seconds
    if not voice.vectors:
        raise InvalidInput(
            f"{audio.source_name} holds too little speech to learn a voice from "
            f"({speech_seconds:.1f} s); send 10-30 s of the person speaking alone."
        )
    _check_one_voice(audio.source_name, voice.voice_seconds)
    kept, created = _keep_clip(app, audio)
    try:
        result = app.memory.enroll(
            name.strip(), voice.vectors, voice.model_id, source=audio.source_name,
            speech_seconds=speech_seconds, channel_vectors=voice.channel_vectors,
            clip_path=None if kept is None else str(kept), clip_sha256=audio.sha256,
        )
    except BaseException:
        if created and kept is not None:  # no row refers to a copy made for this call
            kept.unlink(missing_ok=True)
        raise
    verb = "Enrolled new speaker" if result.created else "Added voice samples to"
    return EnrollOut(
        event_id=result.event_id, speaker=speaker_ref(result.speaker), created=result.created,
        voiceprints_added=result.voiceprints_added, speech_seconds=round(speech_seconds, 2),
        message=f"{verb} {result.speaker.label} from {audio.source_name} "
        f"({speech_seconds:.1f} s of speech); future recordings will recognise this voice.",
    )


def _check_one_voice(source_name: str, voice_seconds: list[float]) -> None:
    if len(voice_seconds) < 2:
        return
    second, total = voice_seconds[1], sum(voice_seconds)
    if second >= MIN_SECOND_VOICE_SECONDS and second >= SECOND_VOICE_SHARE * total:
        heard = ", ".join(f"{s:.0f} s" for s in voice_seconds)
        raise InvalidInput(
            f"{source_name} holds {counted(len(voice_seconds), 'voice')} ({heard} of speech "
            "each), not one person alone; enrolling it would teach the profile several people. "
            "Send 10-30 s of only that person, or process_audio the recording and name the "
            "voice with identify_speaker_in_segment."
        )


MAX_KEPT_CLIP_BYTES = 64 * 1024 * 1024
"""Enrollment clips are kept up to this size (30 s of speech is ~1 MB even as WAV). A larger
file still enrolls; it is just not copied, and a future voice model rebuilds that profile from
the speaker's recordings only."""
ENROLL_FOLDER = "enroll"
"""Under DATA_DIR/audio: the kept enrollment clips, named by content hash."""


def _keep_clip(app: App, audio: AudioFile) -> tuple[Path | None, bool]:
    """(where the clip is kept, whether this call copied it there); None when too large."""
    size = audio.path.stat().st_size
    if size > MAX_KEPT_CLIP_BYTES:
        log.warning("not keeping enrollment clip %s (%d bytes, over %d)", audio.source_name,
                    size, MAX_KEPT_CLIP_BYTES)
        return None, False
    folder = app.settings.audio_dir / ENROLL_FOLDER
    target = folder / f"{audio.sha256[:16]}{Path(audio.source_name).suffix.lower()[:10]}"
    if target.exists():
        return target.resolve(), False
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{target.name}.{secrets.token_hex(4)}.part"
    try:
        shutil.copyfile(audio.path, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.resolve(), True


def rename_speaker(app: App, speaker: SpeakerArg, new_name: str) -> IdentityChangeOut:
    return change_out(app.memory.rename(speaker_arg(speaker), new_name.strip()))


def merge_speakers(app: App, source: SpeakerArg, target: SpeakerArg) -> IdentityChangeOut:
    return change_out(app.memory.merge(speaker_arg(source), speaker_arg(target)))


def mark_segment_misidentified(
    app: App, segment_id: int, correct_speaker: SpeakerArg | None = None
) -> IdentityChangeOut:
    correct = speaker_arg(correct_speaker) if correct_speaker is not None else None
    return change_out(app.memory.mark_misidentified(segment_id, correct))


def delete_speaker(app: App, speaker: SpeakerArg) -> IdentityChangeOut:
    return change_out(app.memory.delete_speaker(speaker_arg(speaker)))


def delete_all_unknown_speakers(app: App) -> IdentityChangeOut:
    return change_out(app.memory.delete_unknown_speakers())


def undo_identity_change(app: App, event_id: int | None = None) -> IdentityChangeOut:
    return change_out(app.memory.undo(event_id))


def update_conversation_title(app: App, conversation_id: int, title: str) -> ConversationOut:
    if not title.strip():
        raise InvalidInput("title is empty; give the conversation a short descriptive title.")
    return conversation_out(app.memory.update_conversation_title(conversation_id, title.strip()))
