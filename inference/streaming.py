"""Streaming transcription: audio arrives in chunks, words are confirmed as they settle.

Whisper sees the whole of a growing buffer each time (it needs context to transcribe well) and
its newest words change from one pass to the next. A word is confirmed when two successive
passes agree on it and on every word before it (LocalAgreement-2, the policy of
whisper_streaming, Macháček et al. 2023), but for a single word they differ on with the next
words agreed (see AGREE_AFTER): what is confirmed is never taken back.

The buffer is cut where confirmed speech ends a sentence (or, failing that, at the last
confirmed word) once it grows past `trim_seconds`, so each pass stays short; `max_seconds`
bounds it whatever the speech. Confirmed words are grouped into segments at sentence ends and
at pauses. A segment is sent as a `Final` as soon as its first words are confirmed, and again,
longer, after each pass that confirms more of it, until it closes (`complete`): its words are
final when sent, only the segment grows. (Sent only when closed, a segment's first words waited
for its last: a second and more of latency.) The words not yet confirmed are the `Partial`.

This module knows no transport and no store: a live session (tools/) feeds it audio and turns
its events into stored segments with speakers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inference.types import SAMPLE_RATE, Word, spoken_text

SENTENCE_END = re.compile(r"[.?!…]$")
CLAUSE_END = re.compile(r"[,;:]$")
PROMPT_WORDS = 60
"""Confirmed words kept for the prompt (Whisper takes about 220 tokens of it)."""


class WindowTranscriber(Protocol):
    """Words of a stretch of audio, times relative to its start (a Whisper pass)."""

    def transcribe_window(self, samples: npt.NDArray[np.float32], prompt: str) -> list[Word]: ...


@dataclass(frozen=True)
class Partial:
    """Words heard but not confirmed yet: they may still change."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Final:
    """The confirmed words of one segment so far: they will not change. An open segment
    (`complete` False) is sent again with more words; the last time, it is complete."""

    start: float
    end: float
    text: str
    words: list[Word]
    complete: bool = True
    continues_until: float = 0.0
    """Of an open segment: where the speech heard right after its last word (not confirmed
    yet, with no pause or sentence end in between) ends; the same person is most likely still
    speaking, so audio up to here tells their voice better than the few confirmed words
    alone. Of a complete one: its end."""


StreamEvent = Partial | Final


@dataclass(frozen=True)
class StreamConfig:
    min_step_seconds: float = 1.0
    """New audio needed before another Whisper pass (each pass costs the whole buffer)."""
    trim_seconds: float = 15.0
    """Past this, the buffer is cut at the last confirmed sentence end."""
    max_seconds: float = 30.0
    """Whisper's window: past this, the buffer is cut at the last confirmed word, sentence or
    not."""
    pause_seconds: float = 1.0
    """A silence this long between confirmed words closes a segment even without a full stop."""
    max_segment_seconds: float = 4.0
    """A segment is closed at a clause end (a comma) once it spans half this, and at any word
    once it spans this: its first words are final only when it closes (a talker who never
    pauses would otherwise hold them back for as long as the sentence runs)."""
    max_latency_seconds: float = 4.0
    """A word heard this long ago (by the buffer's end) is confirmed even if the passes
    disagree on it, once two passes in a row confirmed nothing, so a word the model keeps
    changing cannot hold back the rest."""


PUNCTUATION = re.compile(r"[\s.,;:!?…'\"()\[\]{}\-–—]")


def _key(word: str) -> str:
    """Words compare without case or punctuation: passes disagree on those more than on words.
    A symbol that means something ("%", "$", "&") compares as itself; bare punctuation has no
    key (passes drop it: see LocalAgreement.insert)."""
    return re.sub(r"[^\w']", "", word.lower()) or PUNCTUATION.sub("", word)


AGREE_AFTER = 2
"""Two passes that differ on one word but agree on this many words right after it agree
past it, the newer pass's word taken: on a noisy phone line tiny.en changes some word in
almost every pass, and strict agreement on every word before held the rest back until
max_latency_seconds forced them (measured on rdev01: word latency p50 3.9 s, 2.8 s with this;
WER on dev04 the same)."""


def _agree_after(previous: Sequence[Word], fresh: Sequence[Word]) -> bool:
    """Whether the next AGREE_AFTER words of two passes are the same words."""
    return len(previous) >= AGREE_AFTER and len(fresh) >= AGREE_AFTER and all(
        _key(a.word) == _key(b.word) for a, b in zip(previous[:AGREE_AFTER],
                                                      fresh[:AGREE_AFTER], strict=False))


@dataclass
class LocalAgreement:
    """Confirms the words on which two successive hypotheses agree (LocalAgreement-2)."""

    confirmed_end: float = 0.0
    """End time of the last confirmed word."""
    _previous: list[Word] = field(default_factory=list)
    _confirmed_tail: list[str] = field(default_factory=list)

    def insert(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Take a pass's words (absolute times); return the words it newly confirms."""
        # A "word" that is only punctuation ("." on silence, "-") carries nothing and could
        # never be agreed on: kept, it held back every word after it until the window was cut.
        fresh = [w for w in hypothesis if w.end > self.confirmed_end + 0.05 and _key(w.word)]
        fresh = self._without_repeated_tail(fresh)
        agreed: list[Word] = []
        previous = self._previous
        for i, new in enumerate(fresh[:len(previous)]):
            if _key(previous[i].word) != _key(new.word) and not _agree_after(
                    previous[i + 1:], fresh[i + 1:]):  # one word changed, the next ones agree
                break
            agreed.append(new)
        self._previous = fresh[len(agreed):]
        self._accept(agreed)
        return agreed

    def force(self, upto: float) -> list[Word]:
        """Confirm the pending words (from the first) that end by `upto`."""
        forced: list[Word] = []
        while self._previous and self._previous[0].end <= upto and _key(self._previous[0].word):
            forced.append(self._previous.pop(0))
        self._accept(forced)
        return forced

    def _accept(self, words: Sequence[Word]) -> None:
        """Bookkeeping of newly confirmed words: where confirmed speech ends, and its last
        words (a later pass may repeat them)."""
        if words:
            self.confirmed_end = words[-1].end
            self._confirmed_tail = (self._confirmed_tail + [_key(w.word) for w in words])[-5:]

    def drop_pending(self) -> None:
        self._previous = []

    @property
    def pending(self) -> list[Word]:
        """The newest pass's words that are not confirmed (what a Partial shows)."""
        return list(self._previous)

    def _without_repeated_tail(self, words: list[Word]) -> list[Word]:
        """A pass over audio that starts before the last confirmed word may repeat the last
        few confirmed words: drop the longest such repeat (up to 5 words) from its start."""
        keys = [_key(w.word) for w in words]
        for n in range(min(5, len(self._confirmed_tail), len(keys)), 0, -1):
            if keys[:n] == self._confirmed_tail[-n:]:
                return words[n:]
        return words


class StreamingTranscription:
    """Audio in (any chunk size, 16 kHz mono float32), StreamEvents out."""

    def __init__(self, transcriber: WindowTranscriber, config: StreamConfig | None = None) -> None:
        self.transcriber = transcriber
        self.config = config or StreamConfig()
        self.agreement = LocalAgreement()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0.0
        """Stream time (seconds) of the buffer's first sample."""
        self._unprocessed = 0
        """Samples received since the last pass."""
        self._open: list[Word] = []
        """Confirmed words of the segment not closed yet."""
        self._confirmed_words: list[Word] = []
        """Confirmed words, the last PROMPT_WORDS of them (what the prompt is made from)."""
        self._stalled = 0
        """Passes in a row that confirmed nothing."""

    @property
    def buffer_seconds(self) -> float:
        return len(self._buffer) / SAMPLE_RATE

    @property
    def time(self) -> float:
        """Stream time (seconds) of the end of the audio received."""
        return self._buffer_start + self.buffer_seconds

    def skip(self, seconds: float) -> list[StreamEvent]:
        """Time passes without transcription (silence, or audio the session could not keep up
        with): what was heard is confirmed as it stands, and the buffer starts afresh."""
        events = self.finish()
        self.agreement.drop_pending()
        self._buffer_start = self.time + seconds
        self._buffer = np.zeros(0, dtype=np.float32)
        self._unprocessed = 0
        self.agreement.confirmed_end = max(self.agreement.confirmed_end, self._buffer_start)
        return events

    def feed(self, samples: npt.NDArray[np.float32]) -> list[StreamEvent]:
        """Add audio; run a pass when enough new audio arrived. Returns the new events."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self._unprocessed += len(samples)
        if self._unprocessed < self.config.min_step_seconds * SAMPLE_RATE:
            return []
        return self._pass()

    def finish(self) -> list[StreamEvent]:
        """The stream ended: a last pass, then everything still heard is confirmed."""
        events = self._pass() if self._unprocessed else []
        events += self._confirm(self.agreement.pending, final=True)
        return events

    # ------------------------------------------------------------------ internals
    def _pass(self) -> list[StreamEvent]:
        self._unprocessed = 0
        # The prompt is the confirmed text *before* the buffer (whisper_streaming does the same):
        # words that are also in the audio would be skipped as already said, and the passes
        # would then disagree on them.
        prompt = spoken_text([w for w in self._confirmed_words
                              if w.end <= self._buffer_start + 0.01])
        words = [Word(w.word, w.start + self._buffer_start, w.end + self._buffer_start,
                      w.probability)
                 for w in self.transcriber.transcribe_window(self._buffer, prompt)]
        confirmed = self.agreement.insert(words)
        self._stalled = 0 if confirmed else self._stalled + 1
        if self._stalled >= 2:
            # Two passes in a row confirmed nothing: the oldest words stop waiting for
            # agreement once they are max_latency old. (Not sooner: a session that fell behind
            # hears a word for the first time when it is already that old.)
            confirmed += self.agreement.force(self.time - self.config.max_latency_seconds)
        events = self._confirm(confirmed, final=False)
        pending = self.agreement.pending
        heard_next = pending[0].start if pending else self.time
        if self._open and heard_next - self._open[-1].end >= self.config.pause_seconds:
            # A pause after the open segment, with nothing heard in it: the segment is over
            # (waiting for the next word would hold it back for as long as the silence lasts).
            events.append(self._close())
        elif self._open and confirmed:
            events.append(self._snapshot(self._open, complete=False))
        if pending:
            events.append(Partial(spoken_text(pending), pending[0].start, pending[-1].end))
        self._trim()
        return events

    def _confirm(self, words: Sequence[Word], final: bool) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for word in words:
            if self._open and word.start - self._open[-1].end >= self.config.pause_seconds:
                events.append(self._close())
            self._open.append(word)
            self._confirmed_words.append(word)
            del self._confirmed_words[:-PROMPT_WORDS]
            text = word.word.strip()
            span = word.end - self._open[0].start
            if SENTENCE_END.search(text) or span >= self.config.max_segment_seconds or (
                    CLAUSE_END.search(text) and span >= self.config.max_segment_seconds / 2):
                events.append(self._close())
        if final and self._open:
            events.append(self._close())
        return events

    def _close(self) -> Final:
        words, self._open = self._open, []
        return self._snapshot(words, complete=True)

    def _snapshot(self, words: list[Word], complete: bool) -> Final:
        return Final(words[0].start, words[-1].end, spoken_text(words),
                     list(words), complete,
                     words[-1].end if complete else self._continuation(words[-1].end))

    def _continuation(self, end: float) -> float:
        """Final.continues_until of the open segment, which ends at `end`."""
        for word in self.agreement.pending:
            if word.start - end >= self.config.pause_seconds:
                break
            end = word.end
            if SENTENCE_END.search(word.word.strip()):
                break
        return end

    def _trim(self) -> None:
        """Cut the buffer at confirmed speech once it is long: at the last closed segment's end
        past `trim_seconds`, at the last confirmed word past `max_seconds`."""
        if self.buffer_seconds <= min(self.config.trim_seconds, self.config.max_seconds):
            return
        closed_end = self.agreement.confirmed_end if not self._open else self._open[0].start
        cut = closed_end
        if self.buffer_seconds > self.config.max_seconds:
            cut = max(cut, self.agreement.confirmed_end)
        drop = round((cut - self._buffer_start) * SAMPLE_RATE)
        if drop <= 0:
            if self.buffer_seconds > self.config.max_seconds:
                # Nothing confirmed in a whole window (noise, or no speech): keep the newest.
                drop = len(self._buffer) - int(self.config.max_seconds * SAMPLE_RATE)
            else:
                return
        drop = min(drop, len(self._buffer))
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop / SAMPLE_RATE
