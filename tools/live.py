"""Live listening, the use cases every transport shares (WebSocket, MCP, CLI):
- start a session, fed by a client's stream or by this machine's microphone;
- read its events since a sequence number (agents poll);
- stop it: the rest is confirmed, then the whole recording is finalised by the offline
  pipeline as a job (memory.live.finalise keeps seen segment ids and manual labels);
- finalise sessions that a process which died left open.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio

from inference.recording import WavRecorder, repair
from inference.streaming import StreamConfig, StreamingTranscription
from memory.errors import ConversationNotFound, NotListening
from memory.limits import MAX_TITLE_LENGTH, bounded
from tools.context import App, Job
from tools.heap import settle
from tools.live_session import LiveEvent, LiveSession
from tools.models import LiveEventOut, LiveStartOut, LiveTranscript, ProcessAudioResult
from tools.pipeline_job import ProcessOptions, run_pipeline_job
from tools.processing import Follow, summarise

log = logging.getLogger(__name__)

MIN_FINALISE_SECONDS = 0.5
"""A session with less audio than this leaves nothing to finalise: it is removed."""


def start_session(app: App, title: str | None, source: str) -> LiveSession:
    """A new live session (its conversation is stored at once). `source` names where the
    audio comes from ('websocket', 'microphone')."""
    settings = app.settings
    title = (title or "").strip() or f"Live {datetime.now(UTC).astimezone():%Y-%m-%d %H:%M}"
    bounded(title, "title", MAX_TITLE_LENGTH)
    hub = app.live
    hub.on_finished = lambda session: _audio_ended(app, session)
    with hub.starting:
        hub.check_room(settings.live_max_sessions)
        pipeline = app.pipeline
        pipeline.warm_up_live()
        settle()  # the live models are loaded now: keep them out of GC passes
        path = settings.live_audio_dir / f"{uuid.uuid4().hex}.wav"
        recorder = WavRecorder(path)
        info = app.memory.start_live(title=title, audio_path=str(path), source_name=source)
        stream = StreamingTranscription(
            pipeline.live_window(),
            StreamConfig(max_latency_seconds=settings.live_max_latency_seconds))
        session = LiveSession(
            info.id, app.memory, pipeline, stream, recorder, speech=pipeline,
            max_seconds=settings.live_max_seconds,
            max_behind_seconds=settings.live_max_behind_seconds,
            match=settings.match_config, wake=hub.scheduler.poke,
        )
        session.emit("started", {
            "conversation_id": info.id, "title": title,
            "limits": {"max_seconds": settings.live_max_seconds,
                       "max_behind_seconds": settings.live_max_behind_seconds},
        })
        hub.add(session)
    log.info("live session %d started (%s)", info.id, source)
    return session


def start_microphone(app: App, device: str | int | None, title: str | None) -> LiveStartOut:
    """Listen to this machine's microphone (the server's, not the agent's)."""
    from inference.microphone import Microphone

    session = start_session(app, title, "microphone")
    try:
        microphone = Microphone(device, session.push)
    except Exception:
        session.stop()  # nothing was heard: the session ends, and leaves nothing stored
        raise
    session.on_close.append(microphone.close)
    return LiveStartOut(
        conversation_id=session.conversation_id, status="live",
        message=f"Listening to the server's microphone as conversation "
                f"{session.conversation_id}. get_live_transcript shows what is said (by "
                "sequence number); stop_listening ends and finalises it.")


def session_of(app: App, conversation_id: int | None) -> LiveSession:
    """The running session with this conversation id, or the only one running."""
    if conversation_id is not None:
        session = app.live.get(conversation_id)
        if session is None:
            raise NotListening(
                f"conversation {conversation_id} is not being listened to"
                + _running_hint(app))
        return session
    active = app.live.active()
    if len(active) == 1:
        return active[0]
    if not active:
        raise NotListening("no live session is running; start_listening starts one")
    raise NotListening("several live sessions are running; give conversation_id"
                       + _running_hint(app))


def _running_hint(app: App) -> str:
    ids = [s.conversation_id for s in app.live.active()]
    return f" (running: conversation {', '.join(map(str, ids))})" if ids else \
        " (no live session is running)"


def live_transcript(app: App, conversation_id: int | None, since: int) -> LiveTranscript:
    session = session_of(app, conversation_id)
    events, first = session.events_since(since)
    missed = since + 1 < first
    next_since = events[-1].seq if events else since
    message = (f"{len(events)} new events. Call again with since={next_since} for more."
               if not session.stopping else
               "The session is stopping; stop_listening returns the finalised conversation.")
    if missed:
        message = (f"Events {since + 1}-{first - 1} are no longer kept; get_conversation("
                   f"{session.conversation_id}) has every confirmed segment. " + message)
    return LiveTranscript(
        conversation_id=session.conversation_id,
        status="stopping" if session.stopping else "live",
        events=[_event_out(e) for e in events],
        next_since=next_since,
        message=message,
    )


def _event_out(event: LiveEvent) -> LiveEventOut:
    data = event.as_json()
    return LiveEventOut.model_validate(data)


async def stop_listening(app: App, conversation_id: int | None,
                         follow: Follow) -> ProcessAudioResult:
    """End a session (a running one, or one a dead process left open), let the transport
    follow its finalisation, and summarise the conversation."""
    try:
        session: LiveSession | None = session_of(app, conversation_id)
    except NotListening:
        if conversation_id is None or not await anyio.to_thread.run_sync(
                _is_open, app, conversation_id):
            raise
        session = None
    if session is not None:
        session.stop()
        await anyio.to_thread.run_sync(session.handed_over.wait)
        cid = session.conversation_id
    else:
        assert conversation_id is not None
        cid = conversation_id
        await anyio.to_thread.run_sync(finalise_recording, app, cid)
    job = app.jobs.get(cid)
    if job is not None:
        await follow(job)
    try:
        return await anyio.to_thread.run_sync(summarise, app, cid)
    except ConversationNotFound:
        return ProcessAudioResult(
            conversation_id=cid, status="failed", duplicate=False, duration=0.0,
            message=f"Live session {cid} received no audio; nothing was kept.")


def _is_open(app: App, conversation_id: int) -> bool:
    return any(s.conversation_id == conversation_id for s in app.memory.live_sessions())


def _audio_ended(app: App, session: LiveSession) -> None:
    """The scheduler's call when a session's audio ended: finalise it as a job."""
    for close in session.on_close:
        try:
            close()
        except Exception:
            log.exception("closing live session %d's source failed", session.conversation_id)
    job = finalise_recording(app, session.conversation_id)
    session.emit("stopped", {"conversation_id": session.conversation_id,
                             "status": "processing" if job is not None else "empty",
                             "skipped_seconds": round(session.skipped_seconds, 1)})


def finalise_recording(app: App, conversation_id: int) -> Job | None:
    """Run a live session's whole recording through the offline pipeline as a job; its
    result replaces the live segments. A session with (almost) no audio is removed."""
    open_session = next((s for s in app.memory.live_sessions()
                         if s.conversation_id == conversation_id), None)
    if open_session is None:
        return app.jobs.get(conversation_id)
    path = Path(open_session.audio_path)
    seconds = repair(path) if path.exists() else 0.0
    if seconds < MIN_FINALISE_SECONDS:
        app.memory.delete_conversation(conversation_id)
        path.unlink(missing_ok=True)
        log.info("live session %d had no audio: removed", conversation_id)
        return None
    return app.jobs.submit(conversation_id, lambda job: run_pipeline_job(
        app, job, path, ProcessOptions(),
        store=lambda result: app.memory.finalise_live(conversation_id, result),
        after_failure=lambda: None))  # the recording stays: finalising can be retried


def finalise_left_open(app: App) -> list[int]:
    """At start-up: sessions a process that died left open are finalised from their
    recordings (what they confirmed stays stored meanwhile)."""
    running = {s.conversation_id for s in app.live.active()}
    started = []
    for left in app.memory.live_sessions():
        if left.conversation_id in running:
            continue
        if finalise_recording(app, left.conversation_id) is not None:
            started.append(left.conversation_id)
    return started

