"""Rebuild every speaker's voice profile for the pipeline's voice model from stored audio.

Vectors of different voice models are never compared, so when the voice model changes (GE2E →
CAM++), a store's speakers keep profiles that no new recording can match. This background job
gives each such speaker a profile of the current model, computed again from the audio still on
disk: its kept enrollment clips, and its segments in recordings whose file still exists
(manual assignments and long segments first, a bounded amount per speaker).

- One speaker at a time, each stored in one transaction (memory.add_rebuilt_profile), so the
  store is the job's state: interrupted (the cancel flag is checked between speakers and between
  recordings) and run again, it continues with the speakers left; run twice, it adds nothing.
- It is not an identity change: names, segments and history stay. Undoing an earlier change
  that moved a speaker's audio drops what was rebuilt from it (memory.events).
- It runs in App.jobs' queue as an exclusive job: recordings submitted meanwhile wait for it,
  so that they are matched against the rebuilt profiles.
- Speakers whose audio is gone keep their old profile only; the result lists them, to be
  re-enrolled or named again in a new recording.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from inference.types import EnrollmentVoice
from memory.errors import AudioError, SpeakerMemoryError, SpeakerNotFound
from memory.types import ConversationAudio, RebuiltVoice, SpeakerInfo
from tools.context import App, Job
from tools.models import RebuildOut, RebuildStatus, speaker_ref

log = logging.getLogger(__name__)

REBUILD_JOB = "voice profile rebuild"
"""The job's key in App.jobs (conversation ids are numbers: no clash)."""
MAX_CONVERSATIONS = 5
"""Recordings a speaker's profile is rebuilt from (most manual speech, then most speech)."""
MAX_SECONDS_PER_CONVERSATION = 60.0
"""Speech decoded and embedded per speaker and recording (manual, then longest segments)."""
LISTED_SPEAKERS = 12
"""Speakers named in a message; the result lists them all."""


@dataclass
class RebuildTally:
    """How far a rebuild got; updated after every speaker."""

    model_id: str
    total: int
    """Speakers that needed a profile of the model when the job started."""
    skipped: int = 0
    """Speakers that needed nothing (or changed meanwhile: merged away, deleted, rebuilt)."""
    done: int = 0
    rebuilt: list[SpeakerInfo] = field(default_factory=list)
    without_audio: list[SpeakerInfo] = field(default_factory=list)
    cancelled: bool = False


def rebuild_profiles(
    app: App, *, cancel: threading.Event | None = None,
    on_progress: Callable[[RebuildTally], None] | None = None,
) -> RebuildTally:
    """Rebuild, one speaker after the other, until done or `cancel` is set."""
    stop = cancel or threading.Event()
    report = on_progress or (lambda tally: None)
    pipeline = app.pipeline
    model_id = pipeline.voice_model_id
    needing = app.memory.speakers_needing_profile(model_id)
    tally = RebuildTally(model_id, len(needing),
                         skipped=max(0, len(app.memory.list_speakers()) - len(needing)))
    report(tally)
    for speaker in needing:
        if stop.is_set():
            tally.cancelled = True
            break
        try:
            voices = _voices_of(app, speaker.id, stop)
        except SpeakerNotFound:  # merged away or deleted since the list was made
            voices = []
            tally.skipped += 1
        else:
            if voices is None:
                tally.cancelled = True
                break
            if not voices:
                tally.without_audio.append(speaker)
            elif app.memory.add_rebuilt_profile(speaker.id, model_id, voices):
                tally.rebuilt.append(speaker)
            else:
                tally.skipped += 1
        tally.done += 1
        report(tally)
    return tally


def _voices_of(app: App, speaker_id: int, stop: threading.Event) -> list[RebuiltVoice] | None:
    """The speaker's voice from its stored audio ([] when none is left; None when stopped)."""
    pipeline = app.pipeline
    audio = app.memory.profile_audio(speaker_id)
    voices: list[RebuiltVoice] = []
    for clip in audio.clips:
        path = Path(clip.path)
        if path.is_file():
            voice = _embed(partial(pipeline.embed_voice, path), f"enrollment clip {path}")
            voices += _rebuilt(voice, f"enrollment:{clip.id}", None)
    used = 0
    for conversation in audio.conversations:
        if used >= MAX_CONVERSATIONS:
            break
        if stop.is_set():
            return None
        path = Path(conversation.audio_path)
        if not path.is_file():
            continue
        voice = _embed(partial(pipeline.embed_voice_segments, path, _spans(conversation)),
                       f"conversation {conversation.conversation_id} ({path})")
        if voice is not None:
            used += 1
            voices += _rebuilt(voice, f"conversation:{conversation.conversation_id}",
                               conversation.conversation_id)
    return voices


def _spans(conversation: ConversationAudio) -> list[tuple[float, float]]:
    """Up to MAX_SECONDS_PER_CONVERSATION of the speaker's segments, best first, in time order."""
    chosen: list[tuple[float, float]] = []
    left = MAX_SECONDS_PER_CONVERSATION
    for span in conversation.spans:
        if left <= 0:
            break
        end = min(span.end, span.start + left)
        chosen.append((span.start, end))
        left -= end - span.start
    return sorted(chosen)


def _embed(embed: Callable[[], EnrollmentVoice], what: str) -> EnrollmentVoice | None:
    try:
        return embed()
    except AudioError as exc:  # unreadable now, or too little speech: other audio may do
        # A warning: audio skipped is a reason a profile may come out thin or not at all.
        log.warning("rebuilding a voice profile: %s skipped: %s", what, exc)
        return None


def _rebuilt(
    voice: EnrollmentVoice | None, source: str, conversation_id: int | None
) -> list[RebuiltVoice]:
    if voice is None:
        return []
    profiles = [(voice.model_id, voice.vectors), *voice.channel_vectors.items()]
    return [RebuiltVoice(model_id, vectors, source, voice.speech_seconds, conversation_id)
            for model_id, vectors in profiles if vectors]


# ---------------------------------------------------------------- the background job


def start_rebuild(app: App) -> Job:
    """Start the rebuild in the job queue (or return the one already running)."""
    return app.jobs.submit(REBUILD_JOB, lambda job: _run(app, job), exclusive=True)


def start_if_needed(app: App) -> Job | None:
    """At start-up: start the rebuild when some speakers lack a profile of the voice model."""
    model_id = app.pipeline.voice_model_id
    needing = app.memory.speakers_needing_profile(model_id)
    if not needing:
        return None
    log.info("%d speakers have no %s voice profile yet: rebuilding them from stored audio in "
             "the background (recordings sent meanwhile wait for it)", len(needing), model_id)
    return start_rebuild(app)


def start_in_background(app: App) -> threading.Thread:
    """start_if_needed on a thread of its own (finding the voice model may load the pipeline's
    code), so that a server starts serving at once."""
    def check() -> None:
        try:
            start_if_needed(app)
        except Exception:
            log.exception("could not check whether voice profiles need a rebuild")

    thread = threading.Thread(target=check, name="sm-rebuild-check", daemon=True)
    thread.start()
    return thread


def cancel_rebuild(app: App) -> RebuildOut:
    """Ask a running rebuild to stop after the speaker in hand."""
    job = app.jobs.get(REBUILD_JOB)
    if job is not None and not job.done:
        job.cancel.set()
    return rebuild_status(app)


def _run(app: App, job: Job) -> None:
    def progress(tally: RebuildTally) -> None:
        job.outcome = tally
        job.report(tally.done / tally.total if tally.total else 1.0,
                   f"rebuilding voice profiles ({tally.done}/{tally.total} speakers)")

    try:
        tally = rebuild_profiles(app, cancel=job.cancel, on_progress=progress)
    except Exception as exc:
        if isinstance(exc, SpeakerMemoryError):
            job.error = str(exc)
            log.info("the voice profile rebuild failed: %s", exc)
        else:
            job.error = f"internal error ({type(exc).__name__}: {exc}); see the server log"
            log.exception("the voice profile rebuild crashed")
        job.report(job.fraction, "failed")
        return
    job.report(job.fraction if tally.cancelled else 1.0,
               "cancelled" if tally.cancelled else "done")
    log.info("%s", _message("cancelled" if tally.cancelled else "done", tally, None))


def rebuild_status(app: App) -> RebuildOut:
    """Where the rebuild stands (or, before any ran, how many speakers need one)."""
    job = app.jobs.get(REBUILD_JOB)
    tally = job.outcome if job is not None and isinstance(job.outcome, RebuildTally) else None
    status: RebuildStatus
    if job is None:
        status = "idle"
    elif job.error is not None:
        status = "failed"
    elif not job.done:
        status = "running" if tally is not None else "queued"
    else:
        status = "cancelled" if tally is not None and tally.cancelled else "done"
    if tally is None:
        model_id = app.pipeline.voice_model_id
        needing = len(app.memory.speakers_needing_profile(model_id))
        tally = RebuildTally(model_id, needing)
    return RebuildOut(
        status=status, model_id=tally.model_id, speakers_total=tally.total,
        speakers_done=tally.done,
        progress=round(tally.done / tally.total, 3) if tally.total else 1.0,
        rebuilt=len(tally.rebuilt), skipped=tally.skipped,
        without_audio=[speaker_ref(s) for s in tally.without_audio],
        error=None if job is None else job.error,
        message=_message(status, tally, None if job is None else job.error),
    )


def _message(status: RebuildStatus, tally: RebuildTally, error: str | None) -> str:
    model = tally.model_id
    rebuilt = len(tally.rebuilt)
    if status == "idle":
        if not tally.total:
            return f"Every speaker has a {model} voice profile; nothing to rebuild."
        return (f"{tally.total} speakers have no {model} voice profile yet; call "
                "rebuild_voice_profiles to rebuild them from their stored audio.")
    if status == "queued":
        text = (f"The voice profile rebuild for {model} is queued behind running jobs. "
                "Recordings sent meanwhile wait for it; call rebuild_voice_profiles again to "
                "follow it.")
    elif status == "running":
        text = (f"Rebuilding voice profiles for {model}: {tally.done} of {tally.total} speakers "
                f"done ({rebuilt} rebuilt). Recordings sent meanwhile wait for it; call "
                "rebuild_voice_profiles again to follow it.")
    elif status == "failed":
        text = (f"The voice profile rebuild for {model} failed: {error}. Profiles rebuilt "
                "before that are kept; run it again to continue.")
    elif status == "cancelled":
        text = (f"Stopped after {tally.done} of {tally.total} speakers ({rebuilt} rebuilt); "
                "run rebuild_voice_profiles again to continue with the rest.")
    elif not tally.total:
        text = f"Every speaker already had a {model} voice profile; nothing to rebuild."
    elif not rebuilt:
        text = f"None of the {tally.total} speakers without a {model} profile could be rebuilt."
    else:
        text = (f"Rebuilt the voice profiles of {rebuilt} of {tally.total} speakers for {model} "
                "from their enrollment clips and recordings; new recordings can recognise them.")
    gone = tally.without_audio
    if gone:
        labels = ", ".join(s.label for s in gone[:LISTED_SPEAKERS])
        more = f" and {len(gone) - LISTED_SPEAKERS} more" if len(gone) > LISTED_SPEAKERS else ""
        text += (
            f" {len(gone)} speakers have no stored audio left ({labels}{more}): they keep their "
            f"old voice profile, which {model} recordings cannot match, so they will be heard as "
            "new unknown voices. Re-enroll them (enroll_speaker with a new clip) or name them "
            "again in a new recording (identify_speaker_in_segment); their segments, names and "
            "history stay."
        )
    return text
