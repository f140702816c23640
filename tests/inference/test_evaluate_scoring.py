"""scripts/evaluate.py scores both the diarizer's turns and the stored segments."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("pyannote.metrics")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import evaluate


@pytest.mark.filterwarnings("ignore:'uem' was approximated")
def test_stored_segments_are_scored_as_turns_of_their_store_speaker() -> None:
    reference = [evaluate.RefTurn(0.0, 4.0, "ann"), evaluate.RefTurn(4.0, 8.0, "bob")]
    speaker_1, speaker_2 = SimpleNamespace(id=1), SimpleNamespace(id=2)
    stored = [SimpleNamespace(start=0.0, end=3.0, speaker=speaker_1),
              SimpleNamespace(start=4.0, end=7.0, speaker=speaker_2),
              SimpleNamespace(start=7.0, end=8.0, speaker=None)]
    turns = evaluate.stored_turns(stored)
    assert [label for _, _, label in turns] == ["speaker-1", "speaker-2", "unassigned"]
    score = evaluate.score_turns(reference, turns, evaluate.new_accumulators())
    # 1 s of ann missed, 1 s of bob given to "unassigned": 2 s wrong of 8 s.
    assert score.der == pytest.approx(0.25)
    assert (score.n_true, score.n_estimated) == (2, 3)


def test_stored_segments_of_one_speaker_join_across_short_pauses_only() -> None:
    ann = SimpleNamespace(id=1)
    stored = [SimpleNamespace(start=0.0, end=2.0, speaker=ann),
              SimpleNamespace(start=2.5, end=4.0, speaker=ann),  # a pause between sentences
              SimpleNamespace(start=9.0, end=10.0, speaker=ann)]  # a new turn
    assert evaluate.stored_turns(stored, bridge=1.5) == [
        (0.0, 4.0, "speaker-1"), (9.0, 10.0, "speaker-1")]


def test_single_speaker_attribution_leaves_overlapped_speech_out() -> None:
    # ann (enrolled) 0-4 s, zed (one-off) 3-6 s: both talk 3-4 s.
    reference = [evaluate.RefTurn(0.0, 4.0, "ann"), evaluate.RefTurn(3.0, 6.0, "zed")]
    corpus = evaluate.Corpus(root=Path("."), conversations=[], enrollment=[],
                             recurring={"ann"}, one_off={"zed"})
    stored = [(0.0, 4.0, "ann"), (4.0, 6.0, None)]
    everything = evaluate.score_attribution(reference, stored, corpus, {"ann"})
    # ann's words over zed's 3-4 s: ann is talking, so her name is no false accept there...
    assert everything.false_accept == 0.0
    # ...though the stricter count charges it.
    assert everything.false_accept_overlap_charged == pytest.approx(1 / 3)
    alone = evaluate.score_attribution(reference, stored, corpus, {"ann"}, single_speaker=True)
    assert alone.false_accept == 0.0 and alone.accuracy == 1.0
    assert evaluate.overlapped_spans([*reference, evaluate.RefTurn(3.5, 5.0, "bob")]) == [
        (3.0, 5.0)]


def test_a_false_accept_is_an_enrolled_name_on_speech_its_voice_does_not_make() -> None:
    # ann (enrolled) 0-4 s, zed (one-off) 3-6 s; ann's name runs on to 5 s over zed alone.
    reference = [evaluate.RefTurn(0.0, 4.0, "ann"), evaluate.RefTurn(3.0, 6.0, "zed")]
    corpus = evaluate.Corpus(root=Path("."), conversations=[], enrollment=[],
                             recurring={"ann"}, one_off={"zed"})
    stored = [(0.0, 5.0, "ann"), (5.0, 6.0, None)]
    scored = evaluate.score_attribution(reference, stored, corpus, {"ann"})
    assert scored.false_accept == pytest.approx(1 / 3)  # zed's 4-5 s, ann silent
    assert scored.false_accept_overlap_charged == pytest.approx(2 / 3)
    alone = evaluate.score_attribution(reference, stored, corpus, {"ann"}, single_speaker=True)
    assert alone.false_accept == pytest.approx(1 / 2)  # of zed's 2 s alone, 4-5 s
