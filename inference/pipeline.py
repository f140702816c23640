"""From audio to a PipelineResult that `memory.ingest` takes as it is.

decode → VAD (once, shared) → transcribe ∥ diarize → memory-informed merge → align → segment
voice vectors (reused windows) → text vectors → optional emotion.

ASR dominates the cost; diarization runs beside it in a second thread, and both read the same
VAD regions. Models load lazily, once per process (see `shared_pipeline`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.alignment import (
    AlignmentConfig,
    Window,
    align,
    attach_voice_vectors,
    extend_to_turns,
    normalise,
    windows_of,
)
from inference.audio import AudioSource, decode
from inference.channel import MAX_ANALYSIS_SECONDS, is_narrowband, telephone_band
from inference.config import PipelineConfig
from inference.enrolled import (
    ClusterMatch,
    cluster_centroids,
    match_clusters,
    merge_matched,
    speech_by_label,
)
from inference.factory import Backends, build_backends
from inference.protocols import ReportingDiarizer, StreamingTranscriber
from inference.transcribe import TranscribeOptions, WhisperTranscriber, WhisperWindow
from inference.types import (
    SAMPLE_RATE,
    Audio,
    Diarization,
    EnrollmentVoice,
    LocalSpeaker,
    PipelineResult,
    PipelineSegment,
    SpeechRegion,
    Transcript,
    TranscriptSegment,
    Vector,
)
from inference.vad import SileroVAD, concatenate_regions, speech_seconds
from memory.errors import AudioTooLong, NoSpeech
from memory.types import TELEPHONE_CHANNEL, EnrolledVoice, MatchConfig, with_channel

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
"""(fraction 0..1 of the run, stage)."""

PREPARE_SHARE = 0.05
"""Decoding and speech detection, before any audio is transcribed."""
FINISH_SHARE = 0.05
"""What follows ASR and diarization: aligning the last segments, emotions."""


ENROLL_WINDOW_SECONDS = 3.0
ENROLL_HOP_SECONDS = 1.5
MIN_ENROLL_SPEECH_SECONDS = 1.0
MAX_ENROLL_SECONDS = 300.0
"""An enrollment clip is one person for 10-30 s: longer ones are refused, and decoding stops
there, so a file claiming hours (silence compresses to almost nothing) costs 5 min of audio."""


class Pipeline:
    """The audio pipeline. Thread-safe: one instance serves every request of a process."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        backends: Backends | None = None,
        alignment: AlignmentConfig | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self._backends = backends
        self._alignment = alignment or AlignmentConfig()
        self._lock = threading.Lock()
        self._live_window: WhisperWindow | None = None

    @property
    def backends(self) -> Backends:
        if self._backends is None:
            with self._lock:
                if self._backends is None:
                    self._backends = build_backends(self.config)
        return self._backends

    @property
    def voice_model_id(self) -> str:
        return self.backends.voice_embedder.model_id

    @property
    def text_model_id(self) -> str | None:
        embedder = self.backends.text_embedder
        return embedder.model_id if embedder is not None else None

    # ------------------------------------------------------------------ processing
    def run(
        self,
        audio_or_path: Audio | AudioSource,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        language: str | None = None,
        enrolled: Sequence[EnrolledVoice] = (),
        progress: Progress | None = None,
    ) -> PipelineResult:
        for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                            ("max_speakers", max_speakers)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        report = _monotonic(progress) if progress else _no_progress
        timings: dict[str, float] = {}
        started = time.perf_counter()
        backends = self.backends

        report(0.0, "decoding")
        with _timed(timings, "decode"):
            audio = self._audio(audio_or_path)

        report(PREPARE_SHARE / 2, "detecting speech")
        with _timed(timings, "vad"):
            regions = backends.vad.speech_regions(audio)

        tracks = _Tracks(report, PREPARE_SHARE, 1.0 - FINISH_SHARE)
        tracks.start()
        # ASR streams its segments into `pending`; once diarization is done, this thread aligns
        # and embeds them while ASR goes on, so little but ASR is left at the end.
        pending: queue.Queue[TranscriptSegment | None] = queue.Queue()
        cancelled = threading.Event()

        def on_segment(segment: TranscriptSegment) -> None:
            if cancelled.is_set():
                raise _Cancelled
            pending.put(segment)

        def transcribe() -> Transcript:
            try:
                transcript = self._transcribe(audio, language or self.config.language,
                                              tracks.transcribed, timings, on_segment)
                tracks.transcribed(1.0)  # a transcriber that does not stream reports only here
                return transcript
            finally:
                pending.put(None)

        segments: list[PipelineSegment] = []
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pipeline") as pool:
            # The helpers run in this thread's context, so what the caller keeps there (the
            # running job, which its warnings are told to) follows the work.
            asr = pool.submit(contextvars.copy_context().run, transcribe)
            if backends.text_embedder is not None:
                # Load the text model while the CPU-heavy stages run (once per process).
                pool.submit(contextvars.copy_context().run, _warm_up_text, backends)
            try:
                diarization = self._diarize(audio, regions, num_speakers, min_speakers,
                                            max_speakers, timings, tracks.diarized)
                with _timed(timings, "match_enrolled"):
                    channels = label_channels(diarization, audio)
                    # Enrolled centroids are comparable only with vectors of the same model,
                    # and only on the channel they were enrolled on (wideband).
                    comparable = (
                        enrolled
                        if diarization.model_id == backends.voice_embedder.model_id
                        else ()
                    )
                    margin = MatchConfig(margin=self.config.match_margin).for_model(
                        diarization.model_id).margin
                    matches = {
                        label: match
                        for label, match in match_clusters(diarization, comparable, margin).items()
                        if channels.get(label) is None
                    }
                    diarization, matches = merge_matched(diarization, matches)
                # Labelled after the merge, so windows follow their cluster into it.
                windows = windows_of(diarization)
                streamed = 0
                while (batch := _drain(pending)) is not None:
                    streamed += len(batch)
                    segments.extend(self._finish(batch, diarization, windows, audio, timings))
            except BaseException:
                cancelled.set()  # stop ASR at its next segment instead of finishing the file
                raise
            transcript = asr.result()
        if streamed != len(transcript.segments):  # a transcriber that does not stream
            segments = self._finish(transcript.segments, diarization, windows, audio, timings)

        report(1.0 - FINISH_SHARE, "finishing")
        extend_to_turns(segments, diarization.exclusive_turns,
                        self._alignment.max_extend_seconds)
        if backends.emotion is not None:
            report(1.0 - FINISH_SHARE / 2, "recognising emotion")
            with _timed(timings, "emotion"):
                self._attach_emotions(segments, audio)

        result = PipelineResult(
            segments=segments,
            local_speakers=_local_speakers(segments, diarization, matches, channels),
            voice_model_id=diarization.model_id,
            text_model_id=self.text_model_id,
            language=transcript.language,
            duration=audio.duration,
            asr_model_id=transcript.model_id,
            timings=timings,
            turns=list(diarization.turns),
        )
        timings["total"] = time.perf_counter() - started
        timings["speech"] = speech_seconds(regions)
        report(1.0, "done")
        log.info("processed %.1f s of audio in %.1f s: %d segments, %d speakers (%s)",
                 audio.duration, timings["total"], len(segments), len(result.local_speakers),
                 ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
        return result

    def _audio(self, source: Audio | AudioSource) -> Audio:
        if not isinstance(source, Audio):
            return decode(source, max_seconds=self.config.max_audio_seconds)
        if source.sample_rate != SAMPLE_RATE:
            raise ValueError(f"audio must be {SAMPLE_RATE} Hz (inference.audio.decode "
                             f"resamples), not {source.sample_rate} Hz")
        if source.samples.dtype != np.float32 or source.samples.ndim != 1:
            return Audio(np.asarray(source.samples, dtype=np.float32).reshape(-1))
        return source

    def _transcribe(
        self, audio: Audio, language: str | None, progress: Callable[[float], None],
        timings: dict[str, float], on_segment: Callable[[TranscriptSegment], None],
    ) -> Transcript:
        """`progress` receives the share of the audio transcribed (streaming transcribers
        report it as they go; the others are done at the end)."""
        transcriber = self.backends.transcriber
        with _timed(timings, "asr"):
            if isinstance(transcriber, StreamingTranscriber):
                return transcriber.transcribe(audio, language, progress=progress,
                                              on_segment=on_segment)
            return transcriber.transcribe(audio, language)

    def _finish(
        self, transcript_segments: Sequence[TranscriptSegment], diarization: Diarization,
        windows: Sequence[Window], audio: Audio, timings: dict[str, float],
    ) -> list[PipelineSegment]:
        """Align a batch of transcript segments and give them voice and text vectors."""
        with _timed(timings, "align"):
            segments = align(
                Transcript(list(transcript_segments), None, ""), diarization.exclusive_turns,
                self._alignment,
            )
        with _timed(timings, "segment_vectors"):
            embedder = self.backends.voice_embedder
            # Vectors of another model than the diarizer's would not compare with its clusters.
            same_model = embedder.model_id == diarization.model_id
            attach_voice_vectors(segments, windows, audio, embedder if same_model else None,
                                 self._alignment)
        with _timed(timings, "text_vectors"):
            self._attach_text_vectors(segments)
        return segments

    def _diarize(
        self, audio: Audio, regions: list[SpeechRegion], num_speakers: int | None,
        min_speakers: int | None, max_speakers: int | None, timings: dict[str, float],
        progress: Callable[[float], None],
    ) -> Diarization:
        """`progress` receives the share of the audio diarized (as the diarizer goes when it
        reports it, else at the end)."""
        model_id = self.backends.voice_embedder.model_id
        diarizer = self.backends.diarizer
        if not regions:  # silence: nothing to diarize (and no model to wake up)
            progress(1.0)
            return Diarization(turns=[], vectors={}, model_id=model_id)
        with _timed(timings, "diarize"):
            if isinstance(diarizer, ReportingDiarizer):
                diarization = diarizer.diarize(audio, num_speakers, min_speakers, max_speakers,
                                               progress=progress)
            else:
                diarization = diarizer.diarize(audio, num_speakers=num_speakers,
                                               min_speakers=min_speakers,
                                               max_speakers=max_speakers)
        progress(1.0)
        timings.update({f"diarize.{step}": s for step, s in diarization.timings.items()})
        return diarization

    def _attach_text_vectors(self, segments: list[PipelineSegment]) -> None:
        embedder = self.backends.text_embedder
        if embedder is None or not segments:
            return
        vectors = embedder.embed([s.text for s in segments])
        for segment, vector in zip(segments, vectors, strict=True):
            segment.text_vector = vector

    def _attach_emotions(self, segments: list[PipelineSegment], audio: Audio) -> None:
        recognizer = self.backends.emotion
        if recognizer is None or not segments:
            return
        results = recognizer.recognize([audio.slice(s.start, s.end) for s in segments])
        for segment, emotion in zip(segments, results, strict=True):
            segment.emotion = emotion.label
            segment.emotion_confidence = emotion.confidence

    # ------------------------------------------------------------------ enrollment and search
    def embed_voice(self, audio_or_path: Audio | AudioSource) -> EnrollmentVoice:
        """Voice vectors of a single-speaker clip for enrollment.

        Only VAD speech counts; it is cut into 3 s windows (1.5 s hop) embedded in one batch.
        A wideband clip also gives its telephone-band profile (the same speech through a
        simulated phone line), so the voice is known on calls too; a clip that came through a
        phone line is itself the telephone profile. Raises NoSpeech when the clip holds less
        than a second of speech.
        """
        if isinstance(audio_or_path, Audio):
            audio = self._audio(audio_or_path)
        else:
            try:
                audio = decode(audio_or_path, max_seconds=MAX_ENROLL_SECONDS)
            except AudioTooLong as exc:
                raise AudioTooLong(
                    f"the enrollment clip lasts more than {MAX_ENROLL_SECONDS:.0f} s; send "
                    "10-30 s of the person speaking alone (process_audio takes whole "
                    "recordings)") from exc
        return self._voice_of(audio, count_voices=True)

    def _voice_of(self, audio: Audio, count_voices: bool) -> EnrollmentVoice:
        regions = self.backends.vad.speech_regions(audio)
        speech = concatenate_regions(audio, regions)
        seconds = len(speech) / audio.sample_rate
        if seconds < MIN_ENROLL_SPEECH_SECONDS:
            raise NoSpeech(
                f"the clip holds {seconds:.1f} s of speech; enrolling a voice needs at least "
                f"{MIN_ENROLL_SPEECH_SECONDS:.0f} s (10-30 s of one person speaking is best)"
            )
        embedder = self.backends.voice_embedder
        telephone = with_channel(embedder.model_id, TELEPHONE_CHANNEL)

        def vectors_of(clip: npt.NDArray[np.float32]) -> list[Vector]:
            return [normalise(v) for v in embedder.embed(_windows(clip, audio.sample_rate))]

        narrowband = is_narrowband(speech, audio.sample_rate)
        voices = self._voice_seconds(audio, telephone if narrowband else embedder.model_id) \
            if count_voices else []
        if narrowband:
            return EnrollmentVoice(vectors_of(speech), telephone, seconds, voice_seconds=voices)
        return EnrollmentVoice(vectors_of(speech), embedder.model_id, seconds,
                               {telephone: vectors_of(telephone_band(speech))}, voices)

    def _voice_seconds(self, audio: Audio, model_id: str) -> list[float]:
        """Seconds each voice talks alone in the clip, most first. On a short clip of one
        person the diarizer's clustering often splits the voice in two (4 of 11 enrollment
        clips of the dev corpora; their parts score 0.74-0.86 against each other, two people
        0.41-0.64): a cluster that matches the main one as a stored speaker would (the voice
        model's match threshold for this channel) counts as the same voice."""
        diarization = self.backends.diarizer.diarize(audio)
        seconds: dict[str, float] = {}
        for turn in diarization.exclusive_turns:
            seconds[turn.label] = seconds.get(turn.label, 0.0) + turn.end - turn.start
        if not seconds:
            return []
        main, *others = sorted(seconds, key=lambda label: -seconds[label])
        threshold = MatchConfig().for_model(model_id).threshold
        centroids = cluster_centroids(diarization)
        centre = centroids.get(main)
        voices = [seconds[main]]
        for label in others:
            other = centroids.get(label)
            same = centre is not None and other is not None and float(centre @ other) >= threshold
            if same:
                voices[0] += seconds[label]
            else:
                voices.append(seconds[label])
        return [voices[0], *sorted(voices[1:], reverse=True)]

    # ------------------------------------------------------------------ live sessions
    def live_window(self) -> WhisperWindow:
        """The Whisper pass of live sessions (its own model, loaded once per process)."""
        with self._lock:
            if self._live_window is None:
                config = self.config
                def live_whisper(threads: int, workers: int) -> WhisperTranscriber:
                    return WhisperTranscriber(
                        config.live_whisper_model, cache_dir=config.models_dir,
                        device=config.device, compute_type=config.compute_type,
                        cpu_threads=threads, num_workers=workers,
                        options=TranscribeOptions(beam_size=config.live_beam_size))

                workers = config.live_parallel_passes
                self._live_window = WhisperWindow(
                    live_whisper(config.cpu_threads, 1),
                    together=live_whisper(max(1, (os.cpu_count() or 1) // workers), workers)
                    if workers > 1 else None,
                    language=config.language)
            return self._live_window

    def warm_up_live(self) -> None:
        """Load what a live session uses (its Whisper, the voice and text models, the VAD)
        before its first words, not while they wait: ~10 s on a CPU, once per process."""
        silence = np.zeros(SAMPLE_RATE, np.float32)
        self.live_window().load()
        self.live_window().transcribe_window(silence, "")
        self.live_voice(silence)
        self.embed_text(["warm up"])
        self.has_speech(silence)

    def live_channel(self, samples: npt.NDArray[np.float32]) -> str:
        """The voice model id a live session's speech is matched under: the telephone-band
        variant when the stream sounds like a phone line (judged on its first seconds, once:
        one stream is one channel)."""
        model_id = self.backends.voice_embedder.model_id
        if samples.size and is_narrowband(samples, SAMPLE_RATE):
            return with_channel(model_id, TELEPHONE_CHANNEL)
        return model_id

    def has_speech(self, samples: npt.NDArray[np.float32]) -> bool:
        """Whether live audio holds speech (silero at the live threshold); silence is not
        worth a Whisper pass, and Whisper invents words in it."""
        vad = self.backends.vad
        if isinstance(vad, SileroVAD):
            vad = vad.with_threshold(self.config.live_vad_threshold)
        return bool(vad.speech_regions(Audio(np.asarray(samples, np.float32))))

    def live_voice(self, samples: npt.NDArray[np.float32]) -> Vector:
        """One unit voice vector of a short stretch of one voice (a confirmed live segment):
        the mean direction of its 3 s windows, as enrollment embeds a clip."""
        vectors = self.backends.voice_embedder.embed(_windows(samples, SAMPLE_RATE))
        mean = np.mean([normalise(v) for v in vectors], axis=0)
        return normalise(np.asarray(mean, dtype=np.float32))

    def embed_text(self, texts: Sequence[str]) -> list[Vector]:
        embedder = self.backends.text_embedder
        if embedder is None:
            return []
        return embedder.embed(texts)

    def embed_voice_segments(
        self, path: str | Path, spans: Sequence[tuple[float, float]]
    ) -> EnrollmentVoice:
        """One voice's vectors from (start, end) seconds of a stored recording (a speaker's
        segments), for rebuilding its profile with this voice model (tools.rebuild). Only
        those spans are decoded; their speech is joined and embedded as embed_voice embeds a
        clip, so speech that came through a phone line is labelled with the telephone channel.
        Raises NoSpeech when the spans hold less than a second of speech."""
        from inference.audio import decode_span

        pieces = [decode_span(path, start, end).samples for start, end in spans if end > start]
        joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        # The spans are one stored speaker's own segments: no need to count voices.
        return self._voice_of(Audio(np.asarray(joined, dtype=np.float32)), count_voices=False)


_shared_lock = threading.Lock()


def shared_pipeline(config: PipelineConfig) -> Pipeline:
    """One Pipeline (hence one set of loaded models) per configuration per process."""
    with _shared_lock:
        return _shared_pipeline(config)


@functools.lru_cache(maxsize=2)
def _shared_pipeline(config: PipelineConfig) -> Pipeline:
    return Pipeline(config)


# ---------------------------------------------------------------------- helpers


def label_channels(diarization: Diarization, audio: Audio) -> dict[str, str]:
    """The labels whose speech came through a telephone band (label → channel); the others
    are wideband. Measured on each label's own speech, so one remote caller on a phone line
    among people in the room is told apart."""
    speech: dict[str, list[npt.NDArray[np.float32]]] = {}
    seconds: dict[str, float] = {}
    for turn in diarization.exclusive_turns:
        if seconds.get(turn.label, 0.0) < MAX_ANALYSIS_SECONDS:  # enough to tell the band
            speech.setdefault(turn.label, []).append(audio.slice(turn.start, turn.end))
            seconds[turn.label] = seconds.get(turn.label, 0.0) + turn.end - turn.start
    channels: dict[str, str] = {}
    for label, clips in speech.items():
        clip = np.concatenate(clips)
        if clip.size and is_narrowband(clip, audio.sample_rate):
            channels[label] = TELEPHONE_CHANNEL
    return channels


def _local_speakers(
    segments: Sequence[PipelineSegment], diarization: Diarization,
    matches: dict[str, ClusterMatch], channels: dict[str, str],
) -> list[LocalSpeaker]:
    """One LocalSpeaker per label that has at least one segment (a cluster without words would
    only create an empty 'Unknown' speaker)."""
    speech = speech_by_label(diarization.turns)
    labels: list[str] = []
    for segment in segments:
        if segment.local_speaker is not None and segment.local_speaker not in labels:
            labels.append(segment.local_speaker)
    speakers: list[LocalSpeaker] = []
    for label in labels:
        vectors = list(diarization.vectors.get(label, []))
        if not vectors:  # a backend without window vectors: use the segments' own
            vectors = [s.voice_vector for s in segments
                       if s.local_speaker == label and s.voice_vector is not None]
        match = matches.get(label)
        speakers.append(LocalSpeaker(
            label=label,
            vectors=vectors,
            speech_seconds=round(speech.get(label, 0.0), 3),
            matched_speaker_id=match.speaker_id if match else None,
            voice_model_id=(with_channel(diarization.model_id, channels[label])
                            if label in channels else None),
        ))
    return speakers


def _windows(speech: np.ndarray, rate: int) -> list[np.ndarray]:
    size, hop = int(ENROLL_WINDOW_SECONDS * rate), int(ENROLL_HOP_SECONDS * rate)
    if len(speech) <= size:
        return [speech]
    starts = list(range(0, len(speech) - size + 1, hop))
    if len(speech) - (starts[-1] + size) > hop // 2:
        starts.append(len(speech) - size)
    return [speech[s : s + size] for s in starts]


class _Cancelled(Exception):
    """Raised inside the ASR thread to stop it when the rest of the run already failed."""


def _drain(pending: queue.Queue[TranscriptSegment | None]) -> list[TranscriptSegment] | None:
    """Wait for the next streamed segments and take every one already there; None at the end.

    The end marker is the last item ever put, so a batch that reaches it is complete.
    """
    first = pending.get()
    if first is None:
        return None
    batch = [first]
    while True:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            return batch
        if item is None:
            pending.put(None)  # seen again by the next call, which ends the loop
            return batch
        batch.append(item)


def _warm_up_text(backends: Backends) -> None:
    embedder = backends.text_embedder
    load = getattr(embedder, "load", None)
    if callable(load):
        try:
            load()
        except Exception:  # the real error surfaces when the embedder is used
            log.debug("text embedder warm-up failed", exc_info=True)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _no_progress(fraction: float, stage: str) -> None:
    return None


class _Tracks:
    """ASR and diarization run side by side over the same audio: the run's fraction between
    `low` and `high` is the share of the audio both have got through (each counts half), and
    the stage names what is still running."""

    def __init__(self, report: Progress, low: float, high: float) -> None:
        self._report = report
        self._low, self._high = low, high
        self._done = {"transcribing": 0.0, "diarizing": 0.0}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._update("transcribing", 0.0)

    def transcribed(self, share: float) -> None:
        self._update("transcribing", share)

    def diarized(self, share: float) -> None:
        self._update("diarizing", share)

    def _update(self, track: str, share: float) -> None:
        with self._lock:
            self._done[track] = max(self._done[track], min(1.0, share))
            running = [name for name, done in self._done.items() if done < 1.0]
            fraction = self._low + (self._high - self._low) * sum(self._done.values()) / 2
            stage = " and ".join(running) or "finishing"
            # Reported under the lock: two tracks' reports cannot overtake each other.
            self._report(fraction, stage)


def _monotonic(progress: Progress) -> Progress:
    """Reports from two threads, never going backwards, and never raising into the work."""
    lock = threading.Lock()
    highest = [-1.0]

    def report(fraction: float, stage: str) -> None:
        with lock:
            if fraction < highest[0]:
                return
            highest[0] = fraction
        try:
            progress(fraction, stage)
        except Exception:  # a broken progress bar must not fail the recording
            log.debug("progress callback failed", exc_info=True)

    return report
