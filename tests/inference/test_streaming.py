"""The streaming core with a scripted transcriber: confirmation by agreement, segments, buffer
trimming. The audio carries its own clock (each sample's value is its time / 1000), so the
fake knows which stretch of the script a pass covers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import numpy.typing as npt
import pytest

from inference.streaming import (
    Final,
    LocalAgreement,
    Partial,
    StreamConfig,
    StreamingTranscription,
)
from inference.types import SAMPLE_RATE, Word

TEXT = ("Good morning everyone. Let us review the budget for the launch. The marketing "
        "budget is fine, we spent less than planned. What about the hiring plan? We will "
        "open two positions in March. Thanks, that is all for today.")
SCRIPT = TEXT.split(" ")


def scripted_words(gap_every: int = 0) -> list[Word]:
    """The script at 0.4 s a word, a 1.5 s pause after every `gap_every`-th word."""
    words, t = [], 0.5
    for i, text in enumerate(SCRIPT):
        words.append(Word(" " + text, t, t + 0.3, 0.9))  # Whisper's leading space
        t += 0.4
        if gap_every and (i + 1) % gap_every == 0:
            t += 1.5
    return words


def clock_audio(seconds: float) -> npt.NDArray[np.float32]:
    return (np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE / 1000
            ).astype(np.float32)


class ScriptedWindow:
    """Whisper on a window: the script's words that end inside it; the word still being
    spoken at the window's end comes out garbled, differently on every pass."""

    def __init__(self, words: list[Word]) -> None:
        self.words = words
        self.passes: list[tuple[float, float]] = []

    def transcribe_window(self, samples: npt.NDArray[np.float32], prompt: str) -> list[Word]:
        start = float(samples[0]) * 1000 if len(samples) else 0.0
        end = start + len(samples) / SAMPLE_RATE
        self.passes.append((start, end))
        heard = []
        for w in self.words:
            if w.start >= start - 1e-3 and w.end <= end:
                last = end - w.end < 0.15
                text = f" {w.word.strip()[:2]}~{len(self.passes)}" if last else w.word
                heard.append(Word(text, w.start - start, w.end - start, w.probability))
        return heard


def stream(words: list[Word], config: StreamConfig | None = None,
           chunk: float = 0.25) -> tuple[list[Final | Partial], StreamingTranscription]:
    duration = words[-1].end + 1.0
    audio = clock_audio(duration)
    core = StreamingTranscription(ScriptedWindow(words), config)
    events: list[Final | Partial] = []
    step = int(chunk * SAMPLE_RATE)
    for i in range(0, len(audio), step):
        events += core.feed(audio[i:i + step])
        assert core.buffer_seconds <= core.config.max_seconds + 1.5
    events += core.finish()
    return events, core


def complete(events: list[Final | Partial]) -> list[Final]:
    return [e for e in events if isinstance(e, Final) and e.complete]


def test_confirmed_words_are_the_script_in_order_each_once() -> None:
    events, _ = stream(scripted_words())
    finals = complete(events)
    assert " ".join(f.text for f in finals).split() == SCRIPT
    assert not any("~" in f.text for f in finals)  # a garbled guess is never confirmed
    starts = [w.start for f in finals for w in f.words]
    assert starts == sorted(starts)


def test_segments_close_at_sentence_ends_and_pauses() -> None:
    events, _ = stream(scripted_words())
    finals = [e.text for e in complete(events)]
    assert finals[:3] == ["Good morning everyone.", "Let us review the budget for the launch.",
                          "The marketing budget is fine, we spent less than planned."]
    paused, _ = stream(scripted_words(gap_every=4), StreamConfig(pause_seconds=1.0))
    texts = [e.text for e in complete(paused)]
    # A pause follows every 4th word ("Let", "budget"): it closes the segment there.
    assert texts[:3] == ["Good morning everyone.", "Let", "us review the budget"]


def test_words_are_confirmed_only_once_a_later_pass_agrees() -> None:
    words = scripted_words()
    core = StreamingTranscription(ScriptedWindow(words))
    audio = clock_audio(words[-1].end + 1.0)
    confirmed_at: dict[float, float] = {}
    for i in range(0, len(audio), SAMPLE_RATE // 4):
        now = (i + SAMPLE_RATE // 4) / SAMPLE_RATE
        for event in core.feed(audio[i:i + SAMPLE_RATE // 4]):
            if isinstance(event, Final):
                for w in event.words:
                    confirmed_at[w.start] = now
    assert confirmed_at
    # At least two passes (1 s apart) have heard a word before it is confirmed.
    assert all(now - start >= 1.0 for start, now in confirmed_at.items())


def test_an_open_segment_is_sent_as_it_grows_with_the_same_first_words() -> None:
    words = scripted_words()
    core = StreamingTranscription(ScriptedWindow(words))
    audio = clock_audio(words[-1].end + 1.0)
    sent: list[tuple[float, Final]] = []
    for i in range(0, len(audio), SAMPLE_RATE // 4):
        now = (i + SAMPLE_RATE // 4) / SAMPLE_RATE
        sent += [(now, e) for e in core.feed(audio[i:i + SAMPLE_RATE // 4])
                 if isinstance(e, Final)]
    # "Let us review the budget for the launch." spans 3 s: its first words go out before
    # its last are spoken, and each later event holds the earlier one's words, then more.
    growing = [(now, e) for now, e in sent if e.start == words[3].start]
    assert [e.complete for _, e in growing] == [False] * (len(growing) - 1) + [True]
    assert len(growing) >= 3
    for (_, before), (_, after) in itertools.pairwise(growing):
        assert after.words[:len(before.words)] == before.words
        assert len(after.words) > len(before.words)
    first_sent, first = growing[0]
    assert first_sent < growing[-1][1].end  # sent while the segment was still being spoken
    # While open, the speech heard right after the confirmed words counts as its speaker's.
    assert first.continues_until > first.end


def test_partials_show_what_is_not_confirmed_yet() -> None:
    events, _ = stream(scripted_words())
    partials = [e for e in events if isinstance(e, Partial)]
    assert partials and all(p.text for p in partials)
    assert any("~" in p.text for p in partials)  # the word being spoken shows up at once


def test_the_buffer_is_cut_at_confirmed_sentences() -> None:
    config = StreamConfig(trim_seconds=6.0, max_seconds=12.0)
    events, core = stream(scripted_words(), config)
    assert " ".join(e.text for e in complete(events)).split() == SCRIPT
    window = core.transcriber
    assert isinstance(window, ScriptedWindow)
    assert max(end - start for start, end in window.passes) <= config.max_seconds + 1.5
    assert window.passes[-1][0] > 10.0  # the buffer moved on with the speech


def test_the_buffer_stays_bounded_without_any_confirmed_speech() -> None:
    silence = StreamingTranscription(ScriptedWindow([]), StreamConfig(max_seconds=5.0))
    audio = clock_audio(20.0)
    for i in range(0, len(audio), SAMPLE_RATE // 2):
        assert silence.feed(audio[i:i + SAMPLE_RATE // 2]) == []
        # At most the window, plus the audio that arrives before the next pass.
        assert silence.buffer_seconds <= 5.0 + silence.config.min_step_seconds


def test_local_agreement_drops_a_repeat_of_the_confirmed_tail() -> None:
    agreement = LocalAgreement()
    one = [Word("we", 0.0, 0.2, 1), Word("will", 0.3, 0.5, 1), Word("open", 0.6, 0.8, 1)]
    assert agreement.insert(one) == []
    assert [w.word for w in agreement.insert(one)] == ["we", "will", "open"]
    # A pass over audio cut just before "open" hears it again, with a shifted time.
    again = [Word("open", 0.75, 0.85, 1), Word("two", 0.9, 1.1, 1)]
    assert agreement.insert(again) == []
    assert [w.word for w in agreement.pending] == ["two"]


def test_passes_that_differ_on_one_word_agree_past_it_when_the_next_words_agree() -> None:
    def said(*words: str) -> list[Word]:
        return [Word(w, i * 0.4, i * 0.4 + 0.3, 1) for i, w in enumerate(words)]

    agreement = LocalAgreement()
    assert agreement.insert(said("the", "van", "costs", "more", "now")) == []
    # "van"/"fan": one word changed, the next AGREE_AFTER (2) agree: the newer word is taken.
    assert [w.word for w in agreement.insert(said("the", "fan", "costs", "more", "today"))] == \
        ["the", "fan", "costs", "more"]
    # One word changed with only one agreed word after it: no agreement past it.
    strict = LocalAgreement()
    assert strict.insert(said("we", "said", "so")) == []
    assert [w.word for w in strict.insert(said("we", "sat", "so", "far"))] == ["we"]
    # Two changed words in a row: no agreement past them.
    two = LocalAgreement()
    assert two.insert(said("a", "b", "c", "d", "e")) == []
    assert [w.word for w in two.insert(said("a", "x", "y", "d", "e"))] == ["a"]


def test_a_word_that_is_only_a_symbol_is_agreed_on_like_any_other() -> None:
    # Whisper wrote "6 %" as two words; "%" has no letters. It must not hold back the words
    # after it (it did: nothing was confirmed until the 30 s window was cut).
    agreement = LocalAgreement()
    said = [Word("about", 0.0, 0.2, 1), Word("6", 0.3, 0.5, 1), Word("%", 0.5, 0.7, 1),
            Word("over", 0.8, 1.0, 1), Word("budget.", 1.1, 1.4, 1)]
    assert agreement.insert(said[:4]) == []
    assert [w.word for w in agreement.insert(said)] == ["about", "6", "%", "over"]
    assert [w.word for w in agreement.insert(said)] == ["budget."]
    # Bare punctuation (Whisper's "." on silence, a "-") is no word: dropped, never confirmed,
    # and the words after it are agreed on as usual.
    noise = [Word(".", 1.5, 1.6, 1), Word("Next", 1.7, 1.9, 1), Word("-", 2.0, 2.1, 1),
             Word("item.", 2.2, 2.5, 1)]
    assert agreement.insert(noise[:2]) == []
    assert [w.word for w in agreement.insert(noise)] == ["Next"]
    assert [w.word for w in agreement.insert(noise)] == ["item."]


@pytest.mark.models
def test_real_whisper_confirms_a_clip_streamed_in_small_chunks(tiny_transcriber) -> None:  # type: ignore[no-untyped-def]
    import jiwer

    from inference.audio import decode
    from inference.transcribe import WhisperWindow
    from tests.testdata import dev_conversation

    audio = decode(dev_conversation("dev01-start"))
    reference = " ".join(t["text"] for t in json.loads(
        dev_conversation("dev01-start", ".json").read_text())["turns"])
    core = StreamingTranscription(WhisperWindow(tiny_transcriber, "en"))
    events: list[Final | Partial] = []
    step = SAMPLE_RATE // 2
    for i in range(0, len(audio.samples), step):
        events += core.feed(audio.samples[i:i + step])
    events += core.finish()
    finals = complete(events)
    live = " ".join(f.text for f in finals)
    normalise = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                               jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    assert jiwer.wer(normalise(reference), normalise(live)) < 0.15
    ends = [f.end for f in finals]
    assert ends == sorted(ends) and ends[-1] <= audio.duration + 0.5


@pytest.mark.models
def test_a_live_pass_on_noise_is_bounded_by_its_window(tiny_transcriber) -> None:  # type: ignore[no-untyped-def]
    # 8 s of a noisy phone call on which tiny.en, unbounded, repeats a phrase for 220 words
    # (and the pass takes seconds): a live pass writes at most what its length allows.
    from inference.audio import decode
    from inference.transcribe import LIVE_TOKENS_PER_SECOND, LIVE_TOKENS_SLACK, WhisperWindow
    from tests.testdata import DATA

    samples = decode(DATA / "rdev01_first30s.wav").samples[10 * SAMPLE_RATE:18 * SAMPLE_RATE]
    words = WhisperWindow(tiny_transcriber, "en").transcribe_window(samples, "")
    assert 0 < len(words) <= LIVE_TOKENS_PER_SECOND * 8 + LIVE_TOKENS_SLACK


@pytest.mark.models
def test_live_passes_side_by_side_run_on_the_shared_model(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A pass alone takes all the threads (`alone`); a pass that starts while another runs, and
    # the passes for CROWDED_SECONDS after, take a worker of `together`. Same words either way.
    import threading
    import time

    from inference import transcribe
    from inference.audio import decode
    from inference.transcribe import WhisperTranscriber, WhisperWindow
    from tests.testdata import dev_conversation

    class Counted(WhisperTranscriber):
        """The real transcriber, counting the passes that took its model."""

        passes = 0

        def load(self):  # type: ignore[no-untyped-def]
            self.passes += 1
            return super().load()

    monkeypatch.setattr(transcribe, "CROWDED_SECONDS", 0.3)
    alone = Counted("tiny.en", device="cpu", compute_type="int8")
    together = Counted("tiny.en", device="cpu", compute_type="int8", cpu_threads=1,
                       num_workers=2)
    window = WhisperWindow(alone, "en", together=together)
    window.load()
    alone.passes = together.passes = 0
    clip = decode(dev_conversation("dev01-start")).samples[:8 * SAMPLE_RATE]

    def said(words: list[Word]) -> list[str]:
        return [w.word.strip() for w in words]

    solo = said(window.transcribe_window(clip, ""))
    assert solo and (alone.passes, together.passes) == (1, 0)
    results: dict[str, list[str]] = {}

    def run(name: str) -> None:
        results[name] = said(window.transcribe_window(clip, ""))

    first = threading.Thread(target=run, args=("first",))
    first.start()
    while not window._running and first.is_alive():
        time.sleep(0.001)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    first.join()
    second.join()
    assert (alone.passes, together.passes) == (2, 1)  # the second pass met the first
    assert results == {"first": solo, "second": solo}
    time.sleep(0.4)  # quiet for longer than CROWDED_SECONDS: alone again
    window.transcribe_window(clip, "")
    assert (alone.passes, together.passes) == (3, 1)


def test_a_piece_whisper_gives_without_a_space_joins_the_word_before() -> None:
    from inference.types import spoken_text

    words = [Word(text, i * 0.3, i * 0.3 + 0.2, 0.9) for i, text in enumerate(
        [" about", " 6", "%", " over", " budget,", " about", " 40", ",000", " over."])]
    assert spoken_text(words) == "about 6% over budget, about 40,000 over."
    assert spoken_text([]) == ""
