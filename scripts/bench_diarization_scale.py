#!/usr/bin/env python
"""Time and peak memory of the default diarizer on long recordings (10 min, 1 h, 4 h).

    .venv/bin/python scripts/bench_diarization_scale.py [--minutes 10 60 240] [--corpus DIR]

Each length is a recording made of the corpus's conversations back to back (repeated as often
as needed), diarized in a fresh process so that its peak memory (max RSS) is its own. Prints,
per length: seconds per diarizer step, each step's time per audio hour relative to the shortest
recording (1.00 = linear growth), peak memory less the audio itself, and the clustering's share
of the whole pipeline's time, where the pipeline's time is the diarizer's plus ASR's, ASR being
measured on the shortest recording in the same run and scaled linearly (faster-whisper
transcribes 30 s windows one after another, so its time is linear in the audio).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"
STEPS = (
    "segmentation", "embedding", "clustering", "fine_embedding", "labelling", "overlap",
)


def long_audio(corpus: Path, seconds: float) -> object:
    """The corpus's conversations back to back, repeated up to `seconds`."""
    import numpy as np

    from inference.audio import decode
    from inference.types import Audio

    parts = [decode(p).samples for p in sorted((corpus / "conversations").glob("*.wav"))]
    wanted = int(seconds * 16_000)
    pieces, total = [], 0
    while total < wanted:
        for part in parts:
            pieces.append(part[: wanted - total])
            total += len(pieces[-1])
            if total >= wanted:
                break
    return Audio(np.concatenate(pieces))


def measure_one(corpus: Path, seconds: float, asr: bool) -> dict[str, float]:
    from inference.campplus import CamppEmbedder
    from inference.neural_diarization import NeuralDiarizer
    from inference.segmentation import SegmentationModel

    audio = long_audio(corpus, seconds)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    diarizer = NeuralDiarizer(SegmentationModel(device="cpu"), CamppEmbedder(device="cpu"))
    started = time.perf_counter()
    result = diarizer.diarize(audio)  # type: ignore[arg-type]
    out: dict[str, float] = {f"step.{k}": v for k, v in result.timings.items()}
    out["diarize"] = time.perf_counter() - started
    out["speakers"] = float(len(result.vectors))
    out["peak_mb_over_audio"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    if asr:
        from inference.transcribe import WhisperTranscriber
        from inference.vad import SileroVAD

        transcriber = WhisperTranscriber("tiny.en", cache_dir=Path("/tmp/speaker-memory-bench"),
                                         vad=SileroVAD())
        started = time.perf_counter()
        transcriber.transcribe(audio)  # type: ignore[arg-type]
        out["asr"] = time.perf_counter() - started
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 240])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--asr", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.corpus, args.one, args.asr)))
        return 0
    rows = []
    for i, minutes in enumerate(sorted(args.minutes)):
        command = [sys.executable, __file__, "--corpus", str(args.corpus),
                   "--one", str(minutes * 60)] + (["--asr"] if i == 0 else [])
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append((minutes, json.loads(done.stdout.strip().splitlines()[-1])))
        print(f"# {minutes:g} min done: {rows[-1][1]}", file=sys.stderr, flush=True)
    first_minutes, first = rows[0]
    asr_per_minute = first["asr"] / first_minutes
    print("| audio | " + " | ".join(f"{s} s" for s in STEPS)
          + " | diarizer s | per hour vs shortest | peak MB (less audio) | speakers "
          "| clustering share of pipeline |")
    print("|---|" + "---:|" * (len(STEPS) + 5))
    for minutes, row in rows:
        growth = (row["diarize"] / minutes) / (first["diarize"] / first_minutes)
        pipeline = row["diarize"] + asr_per_minute * minutes
        share = row.get("step.clustering", 0.0) / pipeline
        print(f"| {minutes:g} min | " + " | ".join(f"{row.get('step.' + s, 0.0):.1f}"
                                                   for s in STEPS)
              + f" | {row['diarize']:.1f} | {growth:.2f} | {row['peak_mb_over_audio']:.0f} "
              f"| {row['speakers']:.0f} | {100 * share:.2f}% |")
    print(f"\nASR (tiny.en) on the {first_minutes:g} min recording: {first['asr']:.1f} s "
          f"({first_minutes * 60 / first['asr']:.1f} audio s per s), scaled linearly.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
