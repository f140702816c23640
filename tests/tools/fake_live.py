"""A deterministic live audio world for FakePipeline: every word is a 0.4 s tone of its own
frequency, so a fake Whisper pass can "hear" the words of any stretch of audio, and a fake
voice model can tell whose word it is. Not a mock: the same methods the real pipeline has,
computed from the audio the session really recorded.

A script is a list of (voice, text) turns; the audio is the turns' words one after another,
with 1.2 s of silence between turns (a pause that closes a segment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.types import (
    LocalSpeaker,
    PipelineResult,
    PipelineSegment,
    Turn,
    Vector,
    Word,
)

WORD_SECONDS = 0.4
GAP_SECONDS = 1.2
RATE = 16_000
BLOCK = int(WORD_SECONDS * RATE)
BASE_HZ = 300.0
STEP_HZ = 25.0  # 10 bins of a 0.4 s block apart: the FFT peak is exact

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScriptWord:
    word: str
    voice: str
    turn: int


class LiveScript:
    def __init__(self, turns: Sequence[tuple[str, str]]) -> None:
        self.turns = list(turns)
        self.words: list[ScriptWord] = [ScriptWord(w, voice, i)
                                        for i, (voice, text) in enumerate(turns)
                                        for w in text.split()]

    def audio(self) -> Samples:
        pieces: list[Samples] = []
        k = 0
        t = np.arange(BLOCK) / RATE
        for i, (_, text) in enumerate(self.turns):
            if i:
                pieces.append(np.zeros(int(GAP_SECONDS * RATE), np.float32))
            for _ in text.split():
                pieces.append((0.3 * np.sin(2 * np.pi * (BASE_HZ + STEP_HZ * k) * t))
                              .astype(np.float32))
                k += 1
        pieces.append(np.zeros(int(GAP_SECONDS * RATE), np.float32))
        return np.concatenate(pieces)

    def heard(self, samples: Samples) -> list[tuple[int, ScriptWord]]:
        """(block index, word) of every whole 0.4 s block that holds a word."""
        out = []
        for b in range(len(samples) // BLOCK):
            block = samples[b * BLOCK:(b + 1) * BLOCK]
            if float(np.abs(block).max(initial=0.0)) < 0.05:
                continue
            peak = int(np.argmax(np.abs(np.fft.rfft(block))))
            k = round((peak * RATE / BLOCK - BASE_HZ) / STEP_HZ)
            if 0 <= k < len(self.words):
                out.append((b, self.words[k]))
        return out


class FakeWindow:
    """A Whisper pass over the fake world: the words of the whole blocks, except that a word
    still being spoken at the buffer's end comes out garbled (as Whisper's newest word often
    changes from one pass to the next)."""

    def __init__(self, script: LiveScript) -> None:
        self.script = script
        self.passes = 0
        self.longest = 0.0
        """The longest buffer a pass was given (seconds): trimming keeps it bounded."""

    def transcribe_window(self, samples: Samples, prompt: str) -> list[Word]:
        self.passes += 1
        self.longest = max(self.longest, len(samples) / RATE)
        heard = self.script.heard(samples)
        last_block = len(samples) // BLOCK - 1
        return [Word(" " + (w.word[::-1] + "x" if b == last_block else w.word),
                     b * WORD_SECONDS, (b + 1) * WORD_SECONDS, 0.9) for b, w in heard]


class LiveWorld:
    """The live half of FakePipeline (tests/tools/fake_pipeline.py), given a script."""

    def __init__(self, script: LiveScript,
                 voice_vector: object, text_vector: object, voice_model_id: str) -> None:
        self.script = script
        self.window = FakeWindow(script)
        self._voice_vector = voice_vector
        self._text_vector = text_vector
        self.voice_model_id = voice_model_id

    def voice_of(self, samples: Samples) -> str | None:
        heard = self.script.heard(samples[: len(samples) - len(samples) % BLOCK])
        if not heard:
            heard = self.script.heard(np.resize(samples, BLOCK))
        voices = [w.voice for _, w in heard]
        return max(set(voices), key=voices.count) if voices else None

    def live_voice(self, samples: Samples) -> Vector:
        voice = self.voice_of(samples) or "silence"
        vector: Vector = self._voice_vector(voice, 7)  # type: ignore[operator]
        return vector

    def result(self, samples: Samples) -> PipelineResult:
        """The offline pipeline's answer for a recording of this world: one segment per turn
        heard, its words at their true times."""
        heard = self.script.heard(samples)
        segments: list[PipelineSegment] = []
        labels: dict[str, str] = {}
        by_turn: dict[int, list[tuple[int, ScriptWord]]] = {}
        for b, w in heard:
            by_turn.setdefault(w.turn, []).append((b, w))
        for turn, blocks in sorted(by_turn.items()):
            voice = blocks[0][1].voice
            label = labels.setdefault(voice, f"SPEAKER_{len(labels):02d}")
            words = [Word(w.word, b * WORD_SECONDS, (b + 1) * WORD_SECONDS, 0.95)
                     for b, w in blocks]
            text = " ".join(w.word for w in words) + "."
            segments.append(PipelineSegment(
                start=words[0].start, end=words[-1].end, text=text, words=words,
                local_speaker=label,
                voice_vector=self._voice_vector(voice, turn),  # type: ignore[operator]
                text_vector=self._text_vector(text),  # type: ignore[operator]
            ))
        speakers = [LocalSpeaker(
            label=label,
            vectors=[s.voice_vector for s in segments
                     if s.local_speaker == label and s.voice_vector is not None],
            speech_seconds=sum(s.end - s.start for s in segments if s.local_speaker == label),
            matched_speaker_id=None) for label in labels.values()]
        return PipelineResult(
            segments=segments, local_speakers=speakers, voice_model_id=self.voice_model_id,
            text_model_id="fake-text-1", language="en", duration=len(samples) / RATE,
            asr_model_id="fake-asr-1",
            turns=[Turn(s.start, s.end, s.local_speaker) for s in segments
                   if s.local_speaker is not None])
