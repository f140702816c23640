#!/usr/bin/env python
"""Evaluate the audio pipeline and the speaker memory on a corpus.

    scripts/evaluate.py ../shared/corpus/dev
    scripts/evaluate.py ../shared/corpus/pyannote-sample
    scripts/evaluate.py ../shared/corpus/dev --diarization-only      # fast tuning loop

The corpus layout is the one of ../shared/corpus/<split>/ (see its README): manifest.json,
conversations/<id>.wav|.rttm|.json, enroll/<voice>.wav. Into a fresh temporary store the
script enrolls every enrollment clip under its voice id as the name, then processes every
conversation in manifest order (full pipeline → memory.ingest) and prints a markdown table per
conversation and overall:

- DER with no collar and with a ±0.25 s collar (pyannote.metrics, collar=0.5 total), JER,
  estimated vs true speaker count: of the diarizer's turns;
- stored DER (full runs): the same DER of what the product keeps, the stored segments (start,
  end, speaker) read back from the store, one speaker's segments less than 1.5 s apart joined
  into a turn as in the reference; it also charges ASR's misses and word timings;
- WER (jiwer) on normalised text: lower case, punctuation removed, numbers as words;
- attribution: of the recurring voices' transcribed speech time, the share the store labels
  with the right name; false accept: of the one-off voices' transcribed speech time, the share
  given the name of an enrolled voice that is not talking at that moment (time is the overlap
  of stored segments with reference turns). Where a one-off and an enrolled voice talk at once,
  a segment with the enrolled name is right, not a false accept; the stricter count that
  charges it anyway ("false accept, overlap charged") is printed too;
- fragmentation: speakers in the store after the corpus ÷ true voices.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from inference.audio import decode, wav_bytes
from inference.types import Audio, Diarization

log = logging.getLogger("evaluate")

COLLAR_TOTAL = 0.5
"""pyannote.metrics centres its collar on each boundary: 0.5 total is ±0.25 s."""
STORED_BRIDGE_SECONDS = 1.5
"""Pauses joined into a stored speaker's turn for scoring: the built-in diarizer's bridge_gap."""


# ----------------------------------------------------------------------------- corpus

@dataclass(frozen=True)
class RefTurn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    id: str
    audio: Path
    turns: list[RefTurn]
    text: str
    speakers: list[str]


@dataclass(frozen=True)
class Corpus:
    root: Path
    conversations: list[Conversation]
    enrollment: list[tuple[str, Path]]
    recurring: set[str]
    one_off: set[str]

    @property
    def voices(self) -> set[str]:
        voices = set(self.recurring) | set(self.one_off)
        for conversation in self.conversations:
            voices.update(conversation.speakers)
        return voices


def load_corpus(root: Path) -> Corpus:
    manifest = json.loads((root / "manifest.json").read_text())
    conversations = []
    for entry in manifest["conversations"]:
        turns = read_rttm(root / entry["rttm"])
        text = ""  # no transcript: no WER for this conversation
        if entry.get("json") and (root / entry["json"]).is_file():
            transcript = json.loads((root / entry["json"]).read_text())
            turns_text = sorted(transcript.get("turns", []), key=lambda t: t["start"])
            text = " ".join(t["text"] for t in turns_text)
        conversations.append(Conversation(
            id=entry["id"], audio=root / entry["audio"], turns=turns, text=text,
            speakers=list(entry.get("speakers") or sorted({t.speaker for t in turns})),
        ))
    speakers = manifest.get("speakers", {})
    enrollment = [(e["speaker"], root / e["audio"]) for e in manifest.get("enrollment", [])]
    return Corpus(
        root=root, conversations=conversations, enrollment=enrollment,
        recurring=set(speakers.get("recurring", [])), one_off=set(speakers.get("one_off", [])),
    )


def joined(conversations: list[Conversation], corpus: Corpus, into: Path) -> Corpus:
    """One recording made of the conversations back to back (a long meeting of every voice),
    with the reference turns and text moved along; enrollment and voices are the corpus's."""
    parts = [decode(c.audio) for c in conversations]
    path = into / f"{corpus.root.name}-joined.wav"
    path.write_bytes(wav_bytes(Audio(np.concatenate([p.samples for p in parts]))))
    turns: list[RefTurn] = []
    offset = 0.0
    for conversation, part in zip(conversations, parts, strict=True):
        turns += [RefTurn(t.start + offset, t.end + offset, t.speaker) for t in conversation.turns]
        offset += part.duration
    speakers = sorted({s for c in conversations for s in c.speakers})
    whole = Conversation(id=path.stem, audio=path, turns=turns, speakers=speakers,
                         text=" ".join(c.text for c in conversations if c.text))
    return replace(corpus, conversations=[whole], recurring=corpus.recurring & set(speakers),
                   one_off=corpus.one_off & set(speakers))


def read_rttm(path: Path) -> list[RefTurn]:
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append(RefTurn(start, start + duration, parts[7]))
    return sorted(turns, key=lambda t: t.start)


# ----------------------------------------------------------------------------- metrics

def annotation(turns: Sequence[tuple[float, float, str]]) -> Any:
    from pyannote.core import Annotation, Segment

    result = Annotation()
    for i, (start, end, label) in enumerate(turns):
        if end > start:
            result[Segment(start, end), f"t{i}"] = label
    return result


@dataclass
class DiarizationScore:
    der: float
    der_collar: float
    jer: float
    n_true: int
    n_estimated: int


def score_diarization(reference: list[RefTurn], diarization: Diarization,
                      accumulators: dict[str, Any]) -> DiarizationScore:
    return score_turns(reference, [(t.start, t.end, t.label) for t in diarization.turns],
                       accumulators)


def score_turns(reference: list[RefTurn], turns: Sequence[tuple[float, float, str]],
                accumulators: dict[str, Any]) -> DiarizationScore:
    """DER/JER of any (start, end, label) turns; overlapping turns of one label count once."""
    ref = annotation([(t.start, t.end, t.speaker) for t in reference])
    hyp = annotation(turns)
    der = accumulators["der"](ref, hyp)
    der_collar = accumulators["der_collar"](ref, hyp)
    jer = accumulators["jer"](ref, hyp)
    return DiarizationScore(
        der=der, der_collar=der_collar, jer=jer,
        n_true=len({t.speaker for t in reference}),
        n_estimated=len({label for _, _, label in turns}),
    )


def new_accumulators() -> dict[str, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    return {
        "der": DiarizationErrorRate(collar=0.0),
        "der_collar": DiarizationErrorRate(collar=COLLAR_TOTAL),
        "jer": JaccardErrorRate(collar=0.0),  # type: ignore[no-untyped-call]
    }


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """Cardinal number in words: 1300 → 'one thousand three hundred'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)


def year_words(n: int) -> str:
    """Years as spoken: 1930 → 'nineteen thirty', 2005 → 'two thousand five'."""
    high, low = divmod(n, 100)
    if high % 10 == 0 and low < 10:
        return number_words(n)
    return number_words(high) + (" hundred" if low == 0 else
                                 (" oh " + _ONES[low] if low < 10 else " " + number_words(low)))


def ordinal_words(n: int) -> str:
    words = number_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _number_token(match: re.Match[str]) -> str:
    currency, digits, decimals, suffix = match.group(1), match.group(2), match.group(3), \
        (match.group(4) or "").lower()
    clean = digits.replace(",", "")
    value = int(clean)
    if suffix in ("st", "nd", "rd", "th"):
        return f" {ordinal_words(value)} "
    if suffix == "s" and len(clean) == 4:  # the 1930s
        spoken = year_words(value)
        return f" {spoken[:-1] + 'ies' if spoken.endswith('y') else spoken + 's'} "
    if len(clean) == 4 and "," not in digits and 1100 <= value <= 2099 and not currency \
            and not decimals:
        words = year_words(value)
    else:
        words = number_words(value)
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals[1:])
    if suffix == "%":
        words += " percent"
    elif suffix in ("k",):
        words += " thousand"
    if currency:
        words += {"$": " dollars", "£": " pounds", "€": " euros"}[currency]
    return f" {words} "


_NUMBER = re.compile(r"([$£€])?(\d[\d,]*)(\.\d+)?(%|st|nd|rd|th|s|k)?(?![\w])", re.IGNORECASE)


def _clock_time(match: re.Match[str]) -> str:
    """'6:15' is said 'six fifteen', '2:00' 'two'."""
    minutes = match.group(2)
    return f"{match.group(1)} {'' if minutes == '00' else minutes}"


def normalise_text(text: str) -> str:
    """Lower case, numbers as words, punctuation removed, single spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(\d{1,2}):(\d{2})", _clock_time, text)
    text = _NUMBER.sub(_number_token, text)
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())


@dataclass
class Attribution:
    recurring_total: float = 0.0
    recurring_correct: float = 0.0
    one_off_total: float = 0.0
    one_off_named: float = 0.0
    """One-off speech given the name of an enrolled voice that is not talking then."""
    one_off_named_any: float = 0.0
    """One-off speech given any enrolled name, the named voice talking over it included."""

    def add(self, other: Attribution) -> None:
        self.recurring_total += other.recurring_total
        self.recurring_correct += other.recurring_correct
        self.one_off_total += other.one_off_total
        self.one_off_named += other.one_off_named
        self.one_off_named_any += other.one_off_named_any

    @property
    def accuracy(self) -> float | None:
        return self.recurring_correct / self.recurring_total if self.recurring_total else None

    @property
    def false_accept(self) -> float | None:
        return self.one_off_named / self.one_off_total if self.one_off_total else None

    @property
    def false_accept_overlap_charged(self) -> float | None:
        return self.one_off_named_any / self.one_off_total if self.one_off_total else None


def score_attribution(reference: list[RefTurn], segments: Sequence[tuple[float, float, str | None]],
                      corpus: Corpus, enrolled_names: set[str],
                      single_speaker: bool = False) -> Attribution:
    """Overlap of stored segments (start, end, speaker name) with reference turns, by voice.
    A one-off voice's time under an enrolled name is a false accept unless that named voice
    talks at the same moment (`one_off_named_any` counts it either way).
    `single_speaker`: only where one reference voice talks; in overlapped speech a segment of
    either voice is right for one of them and counts against the other."""
    result = Attribution()
    both = overlapped_spans(reference) if single_speaker else []
    talking: dict[str, list[tuple[float, float]]] = {}
    for turn in reference:
        talking.setdefault(turn.speaker, []).append((turn.start, turn.end))
    for start, end, name in segments:
        for turn in reference:
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap <= 0:
                continue
            a, b = max(start, turn.start), min(end, turn.end)
            overlap -= covered(a, b, both)
            if overlap <= 1e-9:
                continue
            if turn.speaker in corpus.recurring:
                result.recurring_total += overlap
                if name == turn.speaker:
                    result.recurring_correct += overlap
            else:
                result.one_off_total += overlap
                if name is not None and name in enrolled_names:
                    result.one_off_named_any += overlap
                    # Where the named voice talks too, the name is right (single-speaker
                    # scoring has already left that time out).
                    named_talks = 0.0 if single_speaker else covered(a, b, talking.get(name, []))
                    result.one_off_named += max(0.0, overlap - named_talks)
    return result


def covered(start: float, end: float, spans: Sequence[tuple[float, float]]) -> float:
    """Seconds of [start, end] inside the (disjoint) spans."""
    return sum(max(0.0, min(end, y) - max(start, x)) for x, y in spans)


def overlapped_spans(reference: Sequence[RefTurn]) -> list[tuple[float, float]]:
    """Where two or more reference voices talk at once (disjoint, sorted)."""
    edges = sorted([(t.start, 1) for t in reference] + [(t.end, -1) for t in reference])
    spans: list[tuple[float, float]] = []
    talking, opened = 0, 0.0
    for time_, step in edges:
        if talking >= 2 and time_ > opened:
            if spans and spans[-1][1] >= opened:
                spans[-1] = (spans[-1][0], time_)
            else:
                spans.append((opened, time_))
        talking += step
        opened = time_
    return spans


# ----------------------------------------------------------------------------- running

@dataclass
class Row:
    id: str
    duration: float
    diarization: DiarizationScore
    wer: float | None = None
    attribution: Attribution | None = None
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    stored: DiarizationScore | None = None
    """DER of the stored segments (full runs)."""
    single_speaker: Attribution | None = None
    """Attribution where one reference voice talks at a time (full runs)."""


class RecordingDiarizer:
    """Wraps the pipeline's diarizer to keep its last output for scoring."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: Diarization | None = None

    def diarize(self, audio: Audio, num_speakers: int | None = None,
                min_speakers: int | None = None, max_speakers: int | None = None) -> Diarization:
        self.last = self.inner.diarize(audio, num_speakers=num_speakers,
                                       min_speakers=min_speakers, max_speakers=max_speakers)
        return self.last


def pipeline_config(args: argparse.Namespace, models_dir: Path) -> Any:
    from inference.config import PipelineConfig

    return PipelineConfig(whisper_model=args.whisper_model, device=args.device,
                          models_dir=args.models_dir or models_dir, diarizer=args.diarizer,
                          voice_embedder=args.voice_embedder)


def run_diarization_only(corpus: Corpus, args: argparse.Namespace) -> list[Row]:
    from inference.factory import build_diarizer, build_voice_embedder
    from inference.vad import SileroVAD

    config = pipeline_config(args, Path(tempfile.mkdtemp(prefix="speaker-memory-eval-")))
    diarizer = build_diarizer(config, SileroVAD(), build_voice_embedder(config))
    accumulators = new_accumulators()
    rows = []
    for conversation in selected(corpus, args):
        audio = decode(conversation.audio)
        started = time.perf_counter()
        diarization = diarizer.diarize(audio)
        seconds = time.perf_counter() - started
        score = score_diarization(conversation.turns, diarization, accumulators)
        rows.append(Row(conversation.id, audio.duration, score, seconds=seconds))
        log.info("%s: DER %.1f%% in %.1f s", conversation.id, 100 * score.der, seconds)
    print_tables(rows, accumulators, corpus, None, full=False)
    return rows


def run_full(corpus: Corpus, args: argparse.Namespace) -> list[Row]:
    import jiwer

    from inference.audio import sha256
    from inference.factory import build_backends
    from inference.pipeline import Pipeline
    from memory.api import SpeakerMemory
    from memory.types import MatchConfig

    workdir = Path(tempfile.mkdtemp(prefix="speaker-memory-eval-"))
    config = pipeline_config(args, workdir / "models")
    backends = build_backends(config)
    recorder = RecordingDiarizer(backends.diarizer)
    backends.diarizer = recorder
    pipeline = Pipeline(config, backends=backends)
    match = MatchConfig(threshold=args.match_threshold, margin=args.match_margin)
    if args.match_margin is not None:
        config = replace(config, match_margin=args.match_margin)
        pipeline = Pipeline(config, backends=backends)
    memory = SpeakerMemory(workdir / "eval.db", match=match)
    log.info("fresh store in %s", workdir)
    try:
        for voice, path in corpus.enrollment:
            learnt = pipeline.embed_voice(path)
            memory.enroll(voice, learnt.vectors, learnt.model_id, source=str(path),
                          speech_seconds=learnt.speech_seconds,
                          channel_vectors=learnt.channel_vectors)
        enrolled_names = {voice for voice, _ in corpus.enrollment}

        accumulators = new_accumulators()
        stored_accumulators = new_accumulators()
        rows: list[Row] = []
        ids: dict[str, int] = {}
        hypotheses: dict[str, str] = {}
        decisions: list[DecisionRow] = []
        for conversation in selected(corpus, args):
            started = time.perf_counter()
            info = memory.create_conversation(title=conversation.id,
                                              source_name=conversation.audio.name,
                                              sha256=sha256(conversation.audio))
            result = pipeline.run(conversation.audio,
                                  enrolled=memory.enrolled_voices(pipeline.voice_model_id))
            ingested = memory.ingest(info.id, result)
            for decision in ingested.decisions:
                decisions.append(DecisionRow(
                    conversation.id, decision.local_label,
                    true_voice(conversation.turns, result, decision.local_label),
                    decision.speaker.name or decision.speaker.label, decision.score,
                    decision.created))
            seconds = time.perf_counter() - started
            assert recorder.last is not None
            score = score_diarization(conversation.turns, recorder.last, accumulators)
            hypotheses[conversation.id] = " ".join(s.text for s in result.segments)
            ids[conversation.id] = info.id
            rows.append(Row(conversation.id, result.duration, score, seconds=seconds))
            log.info("%s: DER %.1f%% in %.1f s", conversation.id, 100 * score.der, seconds)

        # Attribution is read back from the store after the whole corpus, as a user sees it.
        for row in rows:
            conversation = next(c for c in corpus.conversations if c.id == row.id)
            detail = memory.get_conversation(ids[row.id])
            stored = [(s.start, s.end, s.speaker.name if s.speaker else None)
                      for s in detail.segments]
            row.attribution = score_attribution(conversation.turns, stored, corpus, enrolled_names)
            row.single_speaker = score_attribution(conversation.turns, stored, corpus,
                                                   enrolled_names, single_speaker=True)
            row.stored = score_turns(conversation.turns, stored_turns(detail.segments),
                                     stored_accumulators)
            reference = normalise_text(conversation.text)
            hypothesis = normalise_text(hypotheses[row.id])
            row.wer = jiwer.wer(reference, hypothesis) if reference else None
            row.extra["ref_words"] = len(reference.split())
        speakers_created = len(memory.list_speakers())
        print_tables(rows, accumulators, corpus, speakers_created, full=True,
                     stored_accumulators=stored_accumulators)
        print_decisions(decisions, corpus, match.for_model(pipeline.voice_model_id))
        return rows
    finally:
        memory.close()


def stored_turns(segments: Sequence[Any],
                 bridge: float = STORED_BRIDGE_SECONDS) -> list[tuple[float, float, str]]:
    """Stored segments as turns labelled by their store speaker (unassigned ones together).

    Reference turns (RTTM) include their speaker's pauses between sentences, and so do the
    diarizer's turns; consecutive segments of one speaker less than `bridge` apart are joined
    the same way, so a pause between two sentences is not counted as missed speech.
    """
    turns: list[tuple[float, float, str]] = []
    for segment in sorted(segments, key=lambda s: s.start):
        label = f"speaker-{segment.speaker.id}" if segment.speaker else "unassigned"
        if turns and turns[-1][2] == label and segment.start - turns[-1][1] <= bridge:
            turns[-1] = (turns[-1][0], max(turns[-1][1], segment.end), label)
        else:
            turns.append((segment.start, segment.end, label))
    return turns


@dataclass(frozen=True)
class DecisionRow:
    conversation: str
    label: str
    voice: str | None
    """The reference voice speaking most of this cluster's segments."""
    speaker: str
    score: float | None
    created: bool


def true_voice(reference: list[RefTurn], result: Any, label: str) -> str | None:
    time_of: dict[str, float] = {}
    for segment in result.segments:
        if segment.local_speaker != label:
            continue
        for turn in reference:
            overlap = min(segment.end, turn.end) - max(segment.start, turn.start)
            if overlap > 0:
                time_of[turn.speaker] = time_of.get(turn.speaker, 0.0) + overlap
    return max(time_of, key=lambda v: time_of[v]) if time_of else None


def print_decisions(decisions: list[DecisionRow], corpus: Corpus, match: Any) -> None:
    """Each cluster's matching decision: the evidence behind attribution and false accepts."""
    print(f"\n### {corpus.root.name}: speaker decisions (threshold {match.threshold:.2f}, "
          f"margin {match.margin:.2f})\n")
    print("| conversation | cluster | true voice | stored as | score | outcome |")
    print("|---|---|---|---|---:|---|")
    for d in decisions:
        enrolled = d.voice in corpus.recurring
        if d.created:
            outcome = "missed" if enrolled else "new unknown (right)"
        elif d.speaker == d.voice:
            outcome = "right"
        else:
            outcome = "WRONG" if d.speaker in corpus.recurring else "joined an unknown"
        score = "–" if d.score is None else f"{d.score:.3f}"
        print(f"| {d.conversation} | {d.label} | {d.voice} | {d.speaker} | {score} | {outcome} |")


def selected(corpus: Corpus, args: argparse.Namespace) -> list[Conversation]:
    if not args.only:
        return corpus.conversations
    wanted = set(args.only.split(","))
    return [c for c in corpus.conversations if c.id in wanted]


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def print_tables(rows: list[Row], accumulators: dict[str, Any], corpus: Corpus,
                 speakers_created: int | None, full: bool,
                 stored_accumulators: dict[str, Any] | None = None) -> None:
    header = "| conversation | dur (s) | DER | DER ±0.25 s | JER | speakers est/true |"
    line = "|---|---:|---:|---:|---:|---:|"
    if full:
        header += " stored DER | WER | attribution | false accept |"
        line += "---:|---:|---:|---:|"
    header += " time (s) |"
    line += "---:|"
    print(f"\n### {corpus.root.name}: per conversation\n")
    print(header)
    print(line)
    for row in rows:
        d = row.diarization
        cells = [row.id, f"{row.duration:.1f}", pct(d.der), pct(d.der_collar), pct(d.jer),
                 f"{d.n_estimated}/{d.n_true}"]
        if full and row.attribution is not None:
            cells += [pct(row.stored.der if row.stored else None), pct(row.wer),
                      pct(row.attribution.accuracy), pct(row.attribution.false_accept)]
        cells.append(f"{row.seconds:.1f}")
        print("| " + " | ".join(cells) + " |")

    total, single = Attribution(), Attribution()
    for row in rows:
        if row.attribution is not None:
            total.add(row.attribution)
        if row.single_speaker is not None:
            single.add(row.single_speaker)
    words = sum(row.extra.get("ref_words", 0) for row in rows)
    wer = (sum((row.wer or 0.0) * row.extra.get("ref_words", 0) for row in rows) / words
           if words else None)
    count_ok = sum(1 for row in rows if row.diarization.n_estimated == row.diarization.n_true)
    print(f"\n### {corpus.root.name}: overall\n")
    print("| metric | value |")
    print("|---|---:|")
    print(f"| conversations | {len(rows)} ({sum(r.duration for r in rows):.0f} s of audio) |")
    print(f"| DER (no collar) | {pct(abs(accumulators['der']))} |")
    print(f"| DER (±0.25 s collar) | {pct(abs(accumulators['der_collar']))} |")
    print(f"| JER | {pct(abs(accumulators['jer']))} |")
    print(f"| speaker count right | {count_ok}/{len(rows)} |")
    if stored_accumulators is not None:
        print(f"| stored DER (no collar) | {pct(abs(stored_accumulators['der']))} |")
        print(f"| stored DER (±0.25 s collar) | {pct(abs(stored_accumulators['der_collar']))} |")
    if full:
        print(f"| WER | {pct(wer)} |")
        print(f"| attribution accuracy | {pct(total.accuracy)} |")
        print(f"| false accept | {pct(total.false_accept)} |")
        print(f"| false accept, overlap charged | {pct(total.false_accept_overlap_charged)} |")
        print(f"| attribution, single-speaker speech | {pct(single.accuracy)} |")
        print(f"| false accept, single-speaker speech | {pct(single.false_accept)} |")
        if speakers_created is not None and corpus.voices:
            print(f"| fragmentation | {speakers_created / len(corpus.voices):.2f} "
                  f"({speakers_created} speakers / {len(corpus.voices)} voices) |")
    print(f"| processing time | {sum(r.seconds for r in rows):.1f} s |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a corpus split, e.g. ../shared/corpus/dev")
    parser.add_argument("--diarization-only", action="store_true",
                        help="score the diarizer alone (DER/JER/count), no ASR or store")
    parser.add_argument("--whisper-model", default="tiny.en")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="writable model cache (default: a temp folder)")
    parser.add_argument("--match-threshold", type=float, default=None,
                        help="override the voice model's match threshold (memory.types)")
    parser.add_argument("--match-margin", type=float, default=None,
                        help="override the voice model's match margin (memory.types)")
    parser.add_argument("--only", default="", help="comma-separated conversation ids")
    parser.add_argument("--joined", action="store_true",
                        help="join the split's conversations into one recording and score that")
    parser.add_argument("--diarizer", default="neural", choices=("neural", "builtin", "pyannote"))
    parser.add_argument("--voice-embedder", default="campplus",
                        choices=("campplus", "resemblyzer", "pyannote"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    # pyannote.metrics warns on every file that the scored extent is the union of both
    # annotations, which is exactly what we want here.
    warnings.filterwarnings("ignore", message="'uem' was approximated")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if not (args.corpus / "manifest.json").is_file():
        parser.error(f"{args.corpus} has no manifest.json (expected a corpus split folder)")
    corpus = load_corpus(args.corpus)
    if args.joined:
        corpus = joined(selected(corpus, args), corpus,
                        Path(tempfile.mkdtemp(prefix="speaker-memory-joined-")))
        args.only = ""
    if args.diarization_only:
        run_diarization_only(corpus, args)
    else:
        run_full(corpus, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
