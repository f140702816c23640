"""A deterministic stand-in for inference.pipeline.Pipeline, for fast tests of tools and server.

Not a mock: a real implementation of the same methods. Each test recording is a tiny WAV file
(a tone, so every file has its own content) plus a script of turns (voice id, text, and who
talks over the end of it). Voice
vectors are derived from the voice id plus a little noise, so the same voice matches across
recordings and different voices do not; text vectors are hashed bags of words.
"""

from __future__ import annotations

import hashlib
import threading
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.types import (
    Audio,
    EnrollmentVoice,
    LocalSpeaker,
    PipelineResult,
    PipelineSegment,
    Vector,
    Word,
)
from inference.types import Turn as DiarizedTurn
from memory.types import TELEPHONE_CHANNEL, EnrolledVoice, with_channel
from tests.tools.fake_live import FakeWindow, LiveScript, LiveWorld

VOICE_DIM = 64
TEXT_DIM = 128
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Turn:
    voice: str
    text: str
    seconds: float = 3.0
    interrupted_by: str | None = None
    """A voice that talks over the last second of this turn (overlapping speech)."""


def voice_vector(voice: str, noise_seed: int = 0, noise: float = 0.05) -> Vector:
    base = np.random.default_rng(_seed(voice)).standard_normal(VOICE_DIM)
    base /= np.linalg.norm(base)
    jitter = np.random.default_rng(_seed(f"{voice}/{noise_seed}")).standard_normal(VOICE_DIM)
    vector = base + noise * jitter / np.linalg.norm(jitter)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def text_vector(text: str) -> Vector:
    vector = np.zeros(TEXT_DIM, dtype=np.float32)
    for word in text.lower().split():
        token = "".join(ch for ch in word if ch.isalnum())
        if token:
            vector[_seed(token) % TEXT_DIM] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def write_tone(path: Path, seconds: float, frequency: float) -> Path:
    """A real (tiny) WAV file whose content differs with `frequency`."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.2 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


class FakePipeline:
    voice_model_id = "fake-voice-1"
    text_model_id = "fake-text-1"

    def __init__(self) -> None:
        self._scripts: dict[str, list[Turn]] = {}
        self._clip_voices: dict[str, str] = {}
        self.gate: threading.Event | None = None
        """When set to an Event, run() waits for it (to observe a job in progress)."""
        self.at_gate = threading.Event()
        """Set when run() has started (and waits at the gate, if there is one)."""
        self.embed_gate: threading.Event | None = None
        """When set to an Event, embed_voice_segments() waits for it (a rebuild in progress)."""
        self.runs = 0
        self._span_voices: dict[str, list[tuple[float, float, str]]] = {}
        self._clip_voice_seconds: dict[str, list[float]] = {}
        self.embedded_spans: list[tuple[Path, list[tuple[float, float]]]] = []
        """Every embed_voice_segments call: (recording, spans)."""
        self.live: LiveWorld | None = None
        """The world live sessions hear (tests/tools/fake_live.py), once `live_script` set it."""

    def live_script(self, turns: Sequence[tuple[str, str]]) -> LiveScript:
        """Live sessions hear this script (voice, text) turns; returns it (its audio())."""
        script = LiveScript(turns)
        self.live = LiveWorld(script, voice_vector, text_vector, self.voice_model_id)
        return script

    # ------------------------------------------------------------ scripting
    def recording(self, path: Path, turns: Sequence[Turn], frequency: float = 220.0) -> Path:
        """Write a WAV for `turns` and remember its script (looked up by file content, so a
        copy or an upload of the same bytes plays the same script)."""
        total = sum(turn.seconds for turn in turns)
        write_tone(path, min(total, 2.0), frequency)
        self._scripts[_file_key(path)] = list(turns)
        return path

    def script(self, path: Path, turns: Sequence[Turn]) -> None:
        """Script an existing file (e.g. one that failed before)."""
        self._scripts[_file_key(path)] = list(turns)

    def voices_at(self, path: Path, spans: Sequence[tuple[float, float, str]]) -> None:
        """Say who talks when in an existing recording (start, end, voice), for
        embed_voice_segments. Recordings made by run() know it from their script."""
        self._span_voices[_file_key(path)] = list(spans)

    def known_clip(self, path: Path, voice: str) -> Path:
        """An existing audio file (e.g. a real clip in tests/data) as a clip of `voice`."""
        from inference.audio import decode

        self._clip_voices[_audio_key(decode(path))] = voice
        return path

    def clip(self, path: Path, voice: str, frequency: float = 330.0,
             voice_seconds: Sequence[float] = (12.0,)) -> Path:
        """An enrolment clip of `voice`; `voice_seconds`: what the diarizer hears in it (more
        than one entry: other people talk too)."""
        write_tone(path, 1.0, frequency)
        from inference.audio import decode

        key = _audio_key(decode(path))
        self._clip_voices[key] = voice
        self._clip_voice_seconds[key] = list(voice_seconds)
        return path

    # ------------------------------------------------------------ PipelineLike
    def run(
        self,
        audio_or_path: Path | Audio,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        language: str | None = None,
        enrolled: Sequence[EnrolledVoice] = (),
        progress: Callable[[float, str], None] | None = None,
    ) -> PipelineResult:
        self.runs += 1
        if progress is not None:
            progress(0.3, "transcribing")
        self.at_gate.set()
        if self.gate is not None and not self.gate.wait(timeout=60):
            raise TimeoutError("the test never released the fake pipeline")
        key = _file_key(audio_or_path) if isinstance(audio_or_path, Path) else None
        if key not in self._scripts and self.live is not None:
            from inference.audio import decode

            audio = audio_or_path if isinstance(audio_or_path, Audio) else decode(audio_or_path)
            return self.live.result(audio.samples)  # a live session's recording
        if key not in self._scripts:
            from memory.errors import NotAudio

            raise NotAudio(f"{audio_or_path} is not a scripted test recording")
        turns = self._scripts[key]
        labels: dict[str, str] = {}
        segments: list[PipelineSegment] = []
        diarized: list[DiarizedTurn] = []
        clock = 0.0
        for index, turn in enumerate(turns):
            label = labels.setdefault(turn.voice, f"SPEAKER_{len(labels):02d}")
            diarized.append(DiarizedTurn(clock, clock + turn.seconds, label))
            words = turn.text.split()
            step = turn.seconds / max(1, len(words))
            segments.append(PipelineSegment(
                start=clock, end=clock + turn.seconds, text=turn.text,
                words=[Word(w, clock + i * step, clock + (i + 1) * step, 0.9)
                       for i, w in enumerate(words)],
                local_speaker=label,
                voice_vector=voice_vector(turn.voice, index),
                text_vector=text_vector(turn.text),
            ))
            clock += turn.seconds
        self._span_voices[str(key)] = [(s.start, s.end, t.voice)
                                       for t, s in zip(turns, segments, strict=True)]
        for turn, segment in zip(turns, segments, strict=True):
            if turn.interrupted_by is not None:
                label = labels.setdefault(turn.interrupted_by, f"SPEAKER_{len(labels):02d}")
                diarized.append(DiarizedTurn(segment.end - 1.0, segment.end, label))
        speakers = []
        for voice, label in labels.items():
            vectors = [s.voice_vector for s in segments
                       if s.local_speaker == label and s.voice_vector is not None]
            speakers.append(LocalSpeaker(
                label=label, vectors=vectors,
                speech_seconds=sum(t.seconds for t in turns if t.voice == voice),
                matched_speaker_id=_match(vectors, enrolled),
            ))
        if progress is not None:
            progress(1.0, "done")
        return PipelineResult(
            segments=segments, local_speakers=speakers, voice_model_id=self.voice_model_id,
            text_model_id=self.text_model_id, language=language or "en", duration=clock,
            asr_model_id="fake-asr-1",
            turns=sorted(diarized, key=lambda t: t.start),
        )

    def embed_voice(self, audio_or_path: Path | Audio) -> EnrollmentVoice:
        from inference.audio import decode

        audio = audio_or_path if isinstance(audio_or_path, Audio) else decode(audio_or_path)
        key = _audio_key(audio)
        voice = self._clip_voices.get(key)
        if voice is None:
            return EnrollmentVoice([], self.voice_model_id, 0.0)
        return EnrollmentVoice([voice_vector(voice, 1000 + i) for i in range(3)],
                               self.voice_model_id, 12.0,
                               voice_seconds=self._clip_voice_seconds.get(key, [12.0]))

    def embed_text(self, texts: Sequence[str]) -> list[Vector]:
        return [text_vector(t) for t in texts]

    # ------------------------------------------------------------ live (fake_live.py)
    def _world(self) -> LiveWorld:
        if self.live is None:
            raise RuntimeError("call live_script() before a live session")
        return self.live

    def live_window(self) -> FakeWindow:
        return self._world().window

    def warm_up_live(self) -> None:
        self._world()

    def live_channel(self, samples: npt.NDArray[np.float32]) -> str:
        return self.voice_model_id

    def live_voice(self, samples: npt.NDArray[np.float32]) -> Vector:
        return self._world().live_voice(samples)

    def has_speech(self, samples: npt.NDArray[np.float32]) -> bool:
        return bool(samples.size) and float(np.abs(samples).max()) > 0.05

    def embed_voice_segments(
        self, path: Path, spans: Sequence[tuple[float, float]]
    ) -> EnrollmentVoice:
        """As the real one: decodes the spans (so a missing or broken file fails as it would)
        and tells the channel from their audio; the vectors are those of the voice scripted
        for most of the spans, with a telephone-band profile beside a wideband one."""
        from inference.audio import decode_span
        from inference.channel import is_narrowband
        from memory.errors import NoSpeech

        self.embedded_spans.append((Path(path), list(spans)))
        if self.embed_gate is not None and not self.embed_gate.wait(timeout=60):
            raise TimeoutError("the test never released the fake pipeline")
        decoded = [decode_span(path, start, end).samples for start, end in spans]
        samples = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
        seconds = float(sum(end - start for start, end in spans))
        if seconds < 1.0:
            raise NoSpeech(f"{path} holds {seconds:.1f} s of speech in those spans")
        heard: dict[str, float] = {}
        for start, end, voice in self._span_voices.get(_file_key(Path(path)), []):
            overlap = sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)
            heard[voice] = heard.get(voice, 0.0) + overlap
        voice = max(heard, key=lambda v: heard[v]) if heard else f"unscripted {path}"
        telephone = with_channel(self.voice_model_id, TELEPHONE_CHANNEL)
        vectors = [voice_vector(voice, 2000 + i) for i in range(3)]
        if samples.size and is_narrowband(samples):
            return EnrollmentVoice(vectors, telephone, seconds)
        return EnrollmentVoice(vectors, self.voice_model_id, seconds,
                               {telephone: [voice_vector(f"{voice} by phone", 2000)]})


def _match(vectors: list[Vector], enrolled: Sequence[EnrolledVoice]) -> int | None:
    if not vectors or not enrolled:
        return None
    centroid = np.mean(np.stack(vectors), axis=0)
    centroid /= np.linalg.norm(centroid)
    scored = [(float(centroid @ v.centroid), v) for v in enrolled
              if v.centroid.shape == centroid.shape]
    if not scored:
        return None
    score, best = max(scored, key=lambda pair: pair[0])
    return best.speaker.id if score >= best.threshold else None


def _file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _audio_key(audio: Audio) -> str:
    return hashlib.sha256(audio.samples.tobytes()).hexdigest()


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
