"""One live session: audio in, confirmed segments stored with their speakers, events out.

Audio is pushed from any thread (a WebSocket handler, a microphone callback); the work runs
on the shared scheduler's threads (`LiveScheduler`), one step at a time per session, so one
session's Whisper passes never starve another's (and two sessions' passes run side by side,
one per core). A step:
1. compares the labels of the segments already sent with the store's (one read), so a voice
   named or merged meanwhile (by an agent or the page) is sent as `speaker_update` and carried
   by this step's segments;
2. takes the audio that arrived (at most STEP_MAX_SECONDS of it), writes it to the recording,
   and feeds the streaming transcription (a Whisper pass when a second or more is new);
3. gives each confirmed segment a voice: the session's own voices are matched first (a voice
   heard earlier in the session), then the memory's (`recognise_voice`: a known voice appears
   by name); a new voice becomes a persistent "Unknown N";
4. stores the segment as soon as its first words are confirmed (`add_live_segment`) and sends
   a `final` event; while the segment is open, each further step that confirms more of it
   extends the stored segment (`extend_live_segment`) and sends `final` again, same segment
   id, `complete` once it is closed.

The session knows no transport: events go to subscribers (callables) and to a bounded log that
agents poll by sequence number.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from inference.recording import WavRecorder
from inference.streaming import Final, Partial, StreamEvent, StreamingTranscription
from inference.types import SAMPLE_RATE, Vector
from memory.api import SpeakerMemory
from memory.errors import TooManyLiveSessions
from memory.live import LiveSegmentIn
from memory.types import MatchConfig, SpeakerInfo
from tools.models import speaker_ref

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]

STEP_MAX_SECONDS = 5.0
"""Audio one step feeds at most: a session far behind catches up in steps of this size, with
other sessions' steps in between."""
DROP_BEHIND_FACTOR = 6
"""A source that cannot wait (a microphone) drops live transcription of audio once this many
times the allowed backlog is waiting (the recording keeps it; finalisation transcribes it)."""
KEEP_AUDIO_SECONDS = 90.0
"""Recent audio kept in RAM for the voices of confirmed segments."""
MIN_VOICE_SECONDS = 1.0
"""A confirmed segment shorter than this never starts a voice or shapes one's mean: its vector
is too noisy. It joins the session voice it sounds most like (at the model's suggestion
threshold), else the voice that spoke just before."""
SHORT_VOICE_SECONDS = 0.4
"""Below this a segment has no vector at all ("Yes."): it goes to the voice before it."""
VOICE_SECONDS = 4.0
"""Speech from a segment's start on which its voice is judged, when that much was heard
(its first confirmed words, and what follows them without a pause)."""
EVENT_LOG = 2000
"""Events kept for polling agents (get_live_transcript); older ones are in the store."""
FLUSH_SECONDS = 5.0
"""The recording's header and the stored duration are brought up to date this often."""


class LivePipeline(Protocol):
    """What a session needs of the audio pipeline (inference.pipeline.Pipeline)."""

    def live_channel(self, samples: Samples) -> str: ...

    def live_voice(self, samples: Samples) -> Vector: ...

    def embed_text(self, texts: list[str]) -> list[Vector]: ...

    @property
    def text_model_id(self) -> str | None: ...


class SpeechDetector(Protocol):
    def has_speech(self, samples: Samples) -> bool: ...


@dataclass
class _Voice:
    """A voice heard in this session."""

    number: int
    total: Vector
    count: int
    speaker_id: int | None = None
    created: bool = False
    """Its speaker is an unknown this session created (so a later match may still name it)."""
    last_segment: int | None = None

    @property
    def mean(self) -> Vector:
        return np.asarray(self.total / max(1e-9, float(np.linalg.norm(self.total))), np.float32)


@dataclass(frozen=True)
class LiveEvent:
    seq: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, **self.data}


Subscriber = Callable[[LiveEvent], None]

REMATCH_SEGMENTS = 12
"""A voice stored as a new unknown is matched against the memory again on each of its first
segments this many (more speech, a better mean): a known voice whose first words were too
few to recognise is then named, and its earlier segments move to the name."""


class LiveSession:
    def __init__(
        self,
        conversation_id: int,
        memory: SpeakerMemory,
        pipeline: LivePipeline,
        stream: StreamingTranscription,
        recorder: WavRecorder,
        *,
        speech: SpeechDetector | None = None,
        max_seconds: float,
        max_behind_seconds: float,
        match: MatchConfig | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.conversation_id = conversation_id
        self.memory = memory
        self.pipeline = pipeline
        self.stream = stream
        self.recorder = recorder
        self.speech = speech
        self.max_seconds = max_seconds
        self.max_behind_seconds = max_behind_seconds
        self.match = match or MatchConfig()
        self._wake = wake
        """Called when there is work (the scheduler's poke)."""
        self._lock = threading.Condition()
        self._pending: list[tuple[Samples, bool]] = []
        """Audio not processed yet, oldest first, each with whether to transcribe it."""
        self._pending_samples = 0
        self._stopping = False
        self.finished = threading.Event()
        self._seq = 0
        self._log: deque[LiveEvent] = deque(maxlen=EVENT_LOG)
        self._subscribers: list[Subscriber] = []
        self._recent = np.zeros(0, np.float32)
        self._recent_start = 0.0
        self._model_id: str | None = None
        self._voices: list[_Voice] = []
        self._shown: dict[int, tuple[int, str]] = {}
        self._open: tuple[int, _Voice] | None = None
        """The stored segment still growing (its id and voice), if any."""
        self._flushed_at = 0.0
        self.skipped_seconds = 0.0
        self.error: str | None = None
        self.on_close: list[Callable[[], None]] = []
        """Run once the audio ended (a microphone is closed)."""
        self.handed_over = threading.Event()
        """Set once the ended session was handed to finalisation (its job is submitted)."""

    # ------------------------------------------------------------ intake (any thread)
    @property
    def behind_seconds(self) -> float:
        return self._pending_samples / SAMPLE_RATE

    @property
    def received_seconds(self) -> float:
        return self.recorder.seconds + self.behind_seconds

    @property
    def stopping(self) -> bool:
        return self._stopping

    def push(self, samples: Samples) -> bool:
        """Queue audio; False once the session reached its maximum length (the audio past it
        is not kept) or is stopping."""
        with self._lock:
            if self._stopping:
                return False
            room = int((self.max_seconds - self.received_seconds) * SAMPLE_RATE)
            if room <= 0:
                return False
            samples = np.asarray(samples, np.float32).reshape(-1)[:room]
            self._pending.append((samples, True))
            self._pending_samples += len(samples)
            if self.behind_seconds > DROP_BEHIND_FACTOR * self.max_behind_seconds:
                self._drop_backlog()
            self._lock.notify_all()
        self._wake()
        return room > len(samples)

    def wait_until_caught_up(self, timeout: float) -> bool:
        """Block while the backlog is over the allowed one (a client that can wait)."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self.behind_seconds <= self.max_behind_seconds / 2 or self._stopping,
                timeout)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._wake()

    def subscribe(self, subscriber: Subscriber) -> list[LiveEvent]:
        """Add a subscriber; returns the events sent before it (each event reaches it once:
        in this list or through the call)."""
        with self._lock:
            self._subscribers.append(subscriber)
            return list(self._log)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def events_since(self, seq: int) -> tuple[list[LiveEvent], int]:
        """Events after `seq`, and the first seq still kept (older ones were dropped)."""
        with self._lock:
            events = [e for e in self._log if e.seq > seq]
            first = self._log[0].seq if self._log else self._seq + 1
            return events, first

    # ------------------------------------------------------------ work (scheduler thread)
    @property
    def has_work(self) -> bool:
        """As much new audio as the stream's next pass waits for (its min_step_seconds: a
        pass re-reads the whole buffer, so not per 100 ms), or the end."""
        with self._lock:
            return self._pending_samples >= self.stream.config.min_step_seconds * SAMPLE_RATE or (
                self._stopping and not self.finished.is_set())

    def step(self) -> None:
        """Process what arrived (see the module's docstring). On a scheduler thread."""
        with self._lock:
            chunk, transcribe = self._take(int(STEP_MAX_SECONDS * SAMPLE_RATE))
            ending = self._stopping and self._pending_samples == 0
        if chunk.size or ending:
            self._sync_labels()
        if chunk.size:
            self.recorder.append(chunk)
            self._remember(chunk)
            silent = self.speech is not None and not self.stream.agreement.pending \
                and self.stream.buffer_seconds == 0 and not self.speech.has_speech(chunk)
            if not transcribe or silent:  # no pass: silence, or audio the session dropped
                if not transcribe:
                    self.skipped_seconds += len(chunk) / SAMPLE_RATE
                events = self.stream.skip(len(chunk) / SAMPLE_RATE)
            else:
                events = self.stream.feed(chunk)
            self._handle(events)
        if self.recorder.seconds - self._flushed_at >= FLUSH_SECONDS or ending:
            self.recorder.flush()
            self.memory.record_live_seconds(self.conversation_id, self.recorder.seconds)
            self._flushed_at = self.recorder.seconds
        if ending:
            self._handle(self.stream.finish())
            self.recorder.close()  # the flush above already recorded its length
            self.finished.set()

    def fail(self, message: str) -> None:
        self.error = message
        self.emit("error", {"message": message})
        with self._lock:
            self._stopping = True
        self.recorder.close()
        self.finished.set()

    def emit(self, kind: str, data: dict[str, Any]) -> LiveEvent:
        with self._lock:
            self._seq += 1
            event = LiveEvent(self._seq, kind, data)
            self._log.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # a transport that went away must not stop the session
                log.exception("a live-session subscriber failed")
        return event

    # ------------------------------------------------------------ internals
    def _take(self, limit: int) -> tuple[Samples, bool]:
        """Called with the lock held: up to `limit` samples of one kind (to transcribe or
        not) from the front of the queue."""
        taken: list[Samples] = []
        count = 0
        kind = self._pending[0][1] if self._pending else True
        while self._pending and count < limit and self._pending[0][1] == kind:
            head = self._pending[0][0]
            if count + len(head) <= limit:
                taken.append(self._pending.pop(0)[0])
                count += len(head)
            else:
                cut = limit - count
                taken.append(head[:cut])
                self._pending[0] = (head[cut:], kind)
                count = limit
        self._pending_samples -= count
        if taken:
            self._lock.notify_all()
        return (np.concatenate(taken) if taken else np.zeros(0, np.float32)), kind

    def _drop_backlog(self) -> None:
        """Called with the lock held: the newest allowed backlog stays to transcribe; the rest
        is only recorded (finalisation transcribes it)."""
        keep = int(self.max_behind_seconds * SAMPLE_RATE)
        backlog = np.concatenate([samples for samples, _ in self._pending])
        self._pending = [(backlog[:-keep], False), (backlog[-keep:], True)]

    def _remember(self, chunk: Samples) -> None:
        self._recent = np.concatenate([self._recent, chunk])
        extra = len(self._recent) - int(KEEP_AUDIO_SECONDS * SAMPLE_RATE)
        if extra > 0:
            self._recent = self._recent[extra:]
            self._recent_start += extra / SAMPLE_RATE

    def _clip(self, start: float, end: float) -> Samples:
        a = max(0, int((start - self._recent_start) * SAMPLE_RATE))
        b = max(a, int((end - self._recent_start) * SAMPLE_RATE))
        return self._recent[a:b]

    def _handle(self, events: list[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, Partial):
                self.emit("partial", {"text": event.text, "start": round(event.start, 2),
                                      "end": round(event.end, 2)})
            elif isinstance(event, Final) and event.text.strip():
                self._store(event)

    def _store(self, final: Final) -> None:
        """Store a segment's first confirmed words with a voice, or its further words."""
        if self._open is not None:
            self._extend(final, *self._open)
            return
        # The voice is judged once, on the first words and the speech heard right after them
        # (most likely the same person going on): a segment keeps one voice as it grows.
        judged_end = max(final.end, min(final.continues_until, final.start + VOICE_SECONDS))
        clip = self._clip(final.start, judged_end)
        if self._model_id is None and self.recorder.seconds >= 3.0:
            self._model_id = self.pipeline.live_channel(self._recent)
        model_id = self._model_id or self.pipeline.live_channel(self._recent)
        vector = self.pipeline.live_voice(clip) \
            if len(clip) >= SHORT_VOICE_SECONDS * SAMPLE_RATE else None
        short = len(clip) < MIN_VOICE_SECONDS * SAMPLE_RATE
        voice = self._voice_for(vector, model_id, short)
        if vector is not None and not short and (voice.speaker_id is None or voice.created) \
                and voice.count <= REMATCH_SEGMENTS:
            self._recognise(voice, model_id)
        segment_id, speaker = self.memory.add_live_segment(self.conversation_id, LiveSegmentIn(
            start=final.start, end=final.end, text=final.text, words=final.words,
            voice=voice.number, speaker_id=voice.speaker_id, voice_vector=vector,
            **self._text_vector(final),
        ))
        if voice.speaker_id != speaker.id:
            voice.speaker_id, voice.created = speaker.id, True
        voice.last_segment = segment_id
        if not final.complete:
            self._open = (segment_id, voice)
        self._send_final(segment_id, final, speaker)

    def _extend(self, final: Final, segment_id: int, voice: _Voice) -> None:
        if final.complete:
            self._open = None
        speaker = self.memory.extend_live_segment(self.conversation_id, segment_id, LiveSegmentIn(
            start=final.start, end=final.end, text=final.text, words=final.words,
            voice=voice.number, speaker_id=voice.speaker_id, **self._text_vector(final),
        ))
        if speaker is not None:
            self._send_final(segment_id, final, speaker)

    def _text_vector(self, final: Final) -> dict[str, Any]:
        """The text vector of a complete segment (an open one is searched by its words until
        then)."""
        if not final.complete or not self.pipeline.text_model_id:
            return {}
        return {"text_vector": self.pipeline.embed_text([final.text])[0],
                "text_model_id": self.pipeline.text_model_id}

    def _send_final(self, segment_id: int, final: Final, speaker: SpeakerInfo) -> None:
        self._shown[segment_id] = (speaker.id, speaker.label)
        self.emit("final", {
            "segment_id": segment_id, "start": round(final.start, 2),
            "end": round(final.end, 2), "text": final.text, "complete": final.complete,
            "words": [{"word": w.word.strip(), "start": round(w.start, 2),
                       "end": round(w.end, 2), "probability": round(w.probability, 3)}
                      for w in final.words],
            "speaker": _speaker_json(speaker),
        })

    def _voice_for(self, vector: Vector | None, model_id: str, short: bool) -> _Voice:
        thresholds = self.match.for_model(model_id)
        scored = [(float(v.mean @ vector), v) for v in self._voices
                  if v.count] if vector is not None else []
        best = max(scored, key=lambda pair: pair[0], default=None)
        if vector is None or short:
            if best is not None and best[0] >= thresholds.suggest_threshold:
                return best[1]
            # Too short to tell: the voice that spoke last, or a first voice.
            latest = max(self._voices, key=lambda v: v.last_segment or 0, default=None)
            if latest is not None:
                return latest
            voice = _Voice(len(self._voices) + 1, np.zeros(0, np.float32), 0)
            self._voices.append(voice)
            return voice
        assert vector is not None
        if best is not None and best[0] >= thresholds.threshold:
            voice = best[1]
            voice.total = voice.total + vector
            voice.count += 1
            return voice
        empty = next((v for v in self._voices if not v.count), None)
        if empty is not None:  # the first voice began with a short segment
            empty.total, empty.count = vector.copy(), 1
            return empty
        voice = _Voice(len(self._voices) + 1, vector.copy(), 1)
        self._voices.append(voice)
        return voice

    def _recognise(self, voice: _Voice, model_id: str) -> None:
        found = self.memory.recognise_voice([voice.mean], model_id)
        if found is None or found.speaker.id == voice.speaker_id:
            return
        if voice.speaker_id is not None:
            self.memory.move_live_voice(self.conversation_id, voice.number, found.speaker.id)
        voice.speaker_id, voice.created = found.speaker.id, False

    def _sync_labels(self) -> None:
        """Once a step, before its segments: one read of the store's labels. Segments already
        sent whose label changed since (a person named, merged or corrected a voice) are sent
        as `speaker_update`, and each voice takes the speaker its latest segment has now, so
        this step's segments carry it."""
        if not self._shown:
            return
        now = self.memory.segment_speakers(self.conversation_id)
        for voice in self._voices:
            current = now.get(voice.last_segment) if voice.last_segment is not None else None
            if current is not None and current.id != voice.speaker_id:
                voice.speaker_id = current.id
                voice.created = current.kind == "unknown" and voice.created
        changed: dict[int, tuple[SpeakerInfo, list[int]]] = {}
        for segment_id, (speaker_id, label) in self._shown.items():
            current = now.get(segment_id)
            if current is not None and (current.id, current.label) != (speaker_id, label):
                changed.setdefault(current.id, (current, []))[1].append(segment_id)
        for speaker, segment_ids in changed.values():
            for segment_id in segment_ids:
                self._shown[segment_id] = (speaker.id, speaker.label)
            self.emit("speaker_update", {"speaker": _speaker_json(speaker),
                                         "segment_ids": sorted(segment_ids)})


def _speaker_json(speaker: SpeakerInfo) -> dict[str, Any]:
    return speaker_ref(speaker).model_dump()


class LiveScheduler:
    """A few threads (`workers`) that run the sessions' steps: sessions share the live Whisper
    model, whose workers pass that many buffers at once, and one session's backlog cannot
    starve the others. A session is stepped by one thread at a time; a free thread takes the
    first ready session in turn order (round robin)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._sessions: list[LiveSession] = []
        """In turn order: a session taken goes to the back."""
        self._stepping: set[int] = set()
        """conversation ids of the sessions a thread is stepping now"""
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.on_finished: Callable[[LiveSession], None] | None = None

    def add(self, session: LiveSession) -> None:
        with self._wake:
            self._sessions.append(session)
            if not self._threads:
                self._threads = [threading.Thread(target=self._run, name=f"sm-live-{n}",
                                                  daemon=True) for n in range(self.workers)]
                for thread in self._threads:
                    thread.start()
            self._wake.notify_all()

    def poke(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def _next(self) -> LiveSession | None:
        """Called with the lock held: the ready session no thread is stepping that waited
        longest, or None."""
        session = next((s for s in self._sessions
                        if s.conversation_id not in self._stepping and s.has_work), None)
        if session is not None:
            self._sessions.remove(session)
            self._sessions.append(session)
            self._stepping.add(session.conversation_id)
        return session

    def _run(self) -> None:
        while True:
            with self._wake:
                session = self._next()
                while session is None and not self._closed:
                    self._wake.wait(timeout=1.0)
                    session = self._next()
                if session is None:
                    return
            try:
                self._step(session)
            finally:
                with self._wake:
                    self._stepping.discard(session.conversation_id)
                    self._wake.notify_all()

    def _step(self, session: LiveSession) -> None:
        try:
            session.step()
        except Exception as exc:
            log.exception("live session %d failed", session.conversation_id)
            session.fail(f"the live session stopped on an internal error "
                         f"({type(exc).__name__}: {exc}); what was confirmed is stored")
        if not session.finished.is_set():
            return
        with self._wake:
            if session in self._sessions:
                self._sessions.remove(session)
        if self.on_finished is not None:
            try:
                self.on_finished(session)
            except Exception:
                log.exception("finalising live session %d could not start; "
                              "stop_listening(conversation_id) retries it",
                              session.conversation_id)


class LiveHub:
    """The live sessions of this process: at most `max_sessions` at once, all stepped by one
    scheduler (`workers` of them at a time). `on_finished` (set by tools.live) finalises a
    session whose audio ended."""

    def __init__(self, workers: int = 1) -> None:
        self.scheduler = LiveScheduler(workers)
        self._sessions: dict[int, LiveSession] = {}
        self._lock = threading.Lock()
        self.starting = threading.Lock()
        """Held from check_room to add, so two sessions starting at once count right."""
        self.scheduler.on_finished = self._finished
        self.on_finished: Callable[[LiveSession], None] | None = None

    def check_room(self, max_sessions: int) -> None:
        """Raise TooManyLiveSessions when no other session may start."""
        with self._lock:
            if len(self._sessions) >= max_sessions:
                raise TooManyLiveSessions(
                    f"{len(self._sessions)} live sessions are running, the most this server "
                    f"takes (SPEAKER_MEMORY_LIVE_MAX_SESSIONS={max_sessions}); stop one "
                    f"(conversation {', '.join(str(k) for k in sorted(self._sessions))}) or try "
                    "again later")

    def add(self, session: LiveSession) -> None:
        with self._lock:
            self._sessions[session.conversation_id] = session
        self.scheduler.add(session)

    def get(self, conversation_id: int) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(conversation_id)

    def active(self) -> list[LiveSession]:
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: s.conversation_id)

    def close(self) -> None:
        for session in self.active():
            session.stop()
        for session in self.active():
            session.handed_over.wait(timeout=60)  # its finalisation job is submitted
        self.scheduler.close()

    def _finished(self, session: LiveSession) -> None:
        with self._lock:
            self._sessions.pop(session.conversation_id, None)
        try:
            if self.on_finished is not None:
                self.on_finished(session)
        finally:
            session.handed_over.set()
