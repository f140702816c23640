#!/usr/bin/env python
"""What limits diarization on a corpus: the segmentation, the overlaps, or the voice model?

    scripts/diarization_bounds.py ../shared/corpus/pyannote-sample
    scripts/diarization_bounds.py ../shared/corpus/dev
    scripts/diarization_bounds.py ../shared/corpus/dev --voice-embedder pyannote  # its weights

Prints, per conversation and overall, the DER (no collar, scored as scripts/evaluate.py does)
of five hypotheses, from the best possible down to the product's:

- exclusive reference: the reference turns with every overlapped stretch given to the speaker
  who was talking first: the best a diarizer that outputs one speaker at a time (the built-in
  one) can score;
- exclusive reference, voice labels: those turns, each given the speaker whose centroid its
  voice vector is nearest to (centroids of each speaker's turns of >= 1.5 s, from the true
  labels): what the voice model allows given perfect turn boundaries;
- transcript turns, true labels: the transcript's word-level turns (<id>.json), joined across
  pauses as the built-in diarizer joins them: perfect segmentation at the word level;
- transcript turns, voice labels: the same turns labelled by the voice model as above: short
  turns ("Hello?") are where a voice model fails first;
- chunk speakers, true labels: the segmentation (segmentation-3.0 over sliding chunks, overlap
  included) with each chunk's local speakers mapped to the true speakers as well as possible,
  then reconstructed from chunk activity: what perfect clustering of one vector per (chunk,
  local speaker), pyannote's design, would score with this segmentation;
- regions, main true speaker: the neural diarizer's regions (the segmentation's speech cut at
  its speaker changes), each given the true speaker it overlaps most, joined across pauses and
  with overlaps added as the diarizer does: how pure the regions are. Not a bound: where a
  region holds two voices, the diarizer's windows can still split it;
- the diarizer (`--diarizer`, default the product's neural one) as the product runs it.

The first figure is the floor without overlap detection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import Conversation, RefTurn, load_corpus, new_accumulators, pct, score_turns

from inference.audio import decode
from inference.diarization import DiarizationConfig, bridge_turns
from inference.neural_diarization import NeuralDiarizationConfig
from inference.protocols import Diarizer, VoiceEmbedder
from inference.reconstruction import (
    ReconstructionConfig,
    reconstruct,
    speaker_regions,
    with_overlap,
)
from inference.types import Audio, Turn

LabelledTurns = list[tuple[float, float, str]]

FRAME = 0.01
CENTROID_MIN_TURN = 1.5
"""Turns at least this long make a speaker's centroid (all its turns when it has none)."""

HYPOTHESES = ("exclusive reference", "exclusive reference, voice labels",
              "transcript turns, true labels", "transcript turns, voice labels",
              "chunk speakers, true labels", "regions, main true speaker", "diarizer")


def exclusive(reference: Sequence[RefTurn]) -> LabelledTurns:
    """The reference with one speaker per instant: who started first keeps an overlap."""
    if not reference:
        return []
    n = int(np.ceil(max(t.end for t in reference) / FRAME))
    owner = np.full(n, -1, dtype=np.int64)
    ordered = sorted(reference, key=lambda t: (t.start, t.end))
    for index, turn in enumerate(ordered):
        span = owner[round(turn.start / FRAME):round(turn.end / FRAME)]
        span[span < 0] = index
    turns: LabelledTurns = []
    start = 0
    for i in range(1, n + 1):
        if i == n or owner[i] != owner[start]:
            if owner[start] >= 0:
                turns.append((start * FRAME, i * FRAME, ordered[owner[start]].speaker))
            start = i
    return turns


def transcript_turns(conversation: Conversation) -> list[Turn]:
    """The transcript's turns (<id>.json beside the RTTM); empty when there is none."""
    path = conversation.audio.with_suffix(".json")
    if not path.is_file():
        return []
    turns = json.loads(path.read_text()).get("turns", [])
    return [Turn(float(t["start"]), float(t["end"]), str(t["speaker"])) for t in turns]


def nearest_centroid_labels(turns: Sequence[Turn], vectors: np.ndarray) -> list[str]:
    """Each turn's label replaced by the speaker whose centroid its vector is nearest to."""
    labels = sorted({t.label for t in turns})
    rows = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centroids = []
    for label in labels:
        own = [i for i, t in enumerate(turns) if t.label == label]
        long = [i for i in own if turns[i].end - turns[i].start >= CENTROID_MIN_TURN]
        centroid = rows[long or own].mean(axis=0)
        centroids.append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
    nearest = (rows @ np.asarray(centroids).T).argmax(axis=1)
    return [labels[int(i)] for i in nearest]


def voice_labelled(audio: Audio, turns: Sequence[Turn], embedder: VoiceEmbedder) -> list[Turn]:
    vectors = np.stack(embedder.embed([audio.slice(t.start, t.end) for t in turns]))
    labels = nearest_centroid_labels(turns, vectors.astype(np.float64))
    return [Turn(t.start, t.end, label) for t, label in zip(turns, labels, strict=True)]


def segmentation_bound(audio: Audio, reference: Sequence[RefTurn], segmenter: Any,
                       config: NeuralDiarizationConfig,
                       reconstruction: ReconstructionConfig) -> LabelledTurns:
    """The segmentation's local speakers mapped chunk by chunk to the true speakers (the
    one-to-one mapping sharing the most active frames), reconstructed from chunk activity."""
    from scipy.optimize import linear_sum_assignment

    frames = segmenter.segment(audio.samples, config.step)
    acts = np.asarray(frames.activations, dtype=np.float64)
    speakers = sorted({t.speaker for t in reference})
    times = (np.asarray(frames.chunk_starts)[:, None] + frames.frame_duration / 2
             + np.arange(acts.shape[1])[None, :] * frames.frame_step)
    truth = np.zeros((*acts.shape[:2], len(speakers)))
    for turn in reference:
        truth[(times >= turn.start) & (times < turn.end), speakers.index(turn.speaker)] = 1.0
    assignment = np.full(acts.shape[::2], -1, dtype=np.int64)
    for c in range(acts.shape[0]):
        rows, cols = linear_sum_assignment(acts[c].T @ truth[c], maximize=True)
        for local, speaker in zip(rows.tolist(), cols.tolist(), strict=True):
            if acts[c, :, local].any():
                assignment[c, local] = speaker
    rebuilt = reconstruct(frames, assignment, len(speakers), audio.duration, reconstruction)
    return [(t.start, t.end, speakers[int(t.label)]) for t in rebuilt.turns]


def regions_bound(audio: Audio, reference: Sequence[RefTurn], segmenter: Any,
                  config: NeuralDiarizationConfig) -> LabelledTurns:
    """The diarizer's regions, each labelled with the true speaker it overlaps most, then
    joined across pauses and given their overlaps as the diarizer does."""
    frames = segmenter.segment(audio.samples, config.step)
    turns = []
    for region in speaker_regions(frames, audio.duration):
        shared: dict[str, float] = {}
        for t in reference:
            common = min(t.end, region.end) - max(t.start, region.start)
            if common > 0:
                shared[t.speaker] = shared.get(t.speaker, 0.0) + common
        if shared:
            turns.append(Turn(region.start, region.end, max(shared, key=shared.__getitem__)))
    joined = bridge_turns(turns, config.windows.bridge_gap)
    return as_tuples(with_overlap(frames, joined, audio.duration))


def as_tuples(turns: Sequence[Turn]) -> LabelledTurns:
    return [(t.start, t.end, t.label) for t in turns]


def conversation_bounds(conversation: Conversation, embedder: VoiceEmbedder,
                        diarizer: Diarizer, segmenter: Any,
                        accumulators: dict[str, dict[str, Any]],
                        bridge: float) -> dict[str, float | None]:
    audio = decode(conversation.audio)
    words = transcript_turns(conversation)
    reference = exclusive(conversation.turns)
    hypotheses: dict[str, LabelledTurns | None] = {
        HYPOTHESES[0]: reference,
        HYPOTHESES[1]: as_tuples(voice_labelled(audio, [Turn(*t) for t in reference], embedder)),
        HYPOTHESES[2]: as_tuples(bridge_turns(words, bridge)) if words else None,
        HYPOTHESES[3]: (as_tuples(bridge_turns(voice_labelled(audio, words, embedder), bridge))
                        if words else None),
        HYPOTHESES[4]: segmentation_bound(audio, conversation.turns, segmenter,
                                          NeuralDiarizationConfig(), ReconstructionConfig()),
        HYPOTHESES[5]: regions_bound(audio, conversation.turns, segmenter,
                                     NeuralDiarizationConfig()),
        HYPOTHESES[6]: as_tuples(diarizer.diarize(audio).turns),
    }
    return {name: (None if turns is None
                   else score_turns(conversation.turns, turns, accumulators[name]).der)
            for name, turns in hypotheses.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a corpus split, e.g. ../shared/corpus/dev")
    parser.add_argument("--voice-embedder", choices=("campplus", "resemblyzer", "pyannote"),
                        default="campplus")
    parser.add_argument("--diarizer", choices=("neural", "builtin"), default="neural")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="'uem' was approximated")
    if not (args.corpus / "manifest.json").is_file():
        parser.error(f"{args.corpus} has no manifest.json (expected a corpus split folder)")

    from inference.config import PipelineConfig
    from inference.factory import build_diarizer, build_voice_embedder
    from inference.segmentation import SegmentationModel
    from inference.vad import SileroVAD

    pipeline_config = PipelineConfig(
        voice_embedder=args.voice_embedder, diarizer=args.diarizer, device=args.device,
        hf_token=os.environ.get("HF_TOKEN"))
    embedder = build_voice_embedder(pipeline_config)
    config = DiarizationConfig()
    diarizer = build_diarizer(pipeline_config, SileroVAD(), embedder)
    segmenter = SegmentationModel(device=args.device)
    accumulators = {name: new_accumulators() for name in HYPOTHESES}
    corpus = load_corpus(args.corpus)
    print(f"\n### {corpus.root.name}: DER (no collar) by hypothesis, "
          f"voice model {embedder.model_id}, diarizer {args.diarizer}\n")
    print("| conversation | " + " | ".join(HYPOTHESES) + " |")
    print("|---|" + "---:|" * len(HYPOTHESES))
    for conversation in corpus.conversations:
        ders = conversation_bounds(conversation, embedder, diarizer, segmenter, accumulators,
                                   config.bridge_gap)
        print(f"| {conversation.id} | " + " | ".join(pct(ders[n]) for n in HYPOTHESES) + " |")
    overall = [pct(abs(accumulators[n]["der"])) if len(accumulators[n]["der"].results_) else "–"
               for n in HYPOTHESES]
    print("| **overall** | " + " | ".join(overall) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
