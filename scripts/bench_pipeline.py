"""Speed of the full pipeline against bare faster-whisper on the same audio.

    .venv/bin/python scripts/bench_pipeline.py FILE [--runs 5] [--model tiny.en]

(a) bare faster-whisper: WhisperModel.transcribe(FILE) with the pipeline's own ASR settings
    (same model object, beam size, word timestamps, faster-whisper's VAD filter);
(a') for reference, the pipeline's ASR step alone (decode, the shared VAD, WhisperTranscriber:
    silence is cut a little tighter than faster-whisper's default VAD filter does);
(b) the full pipeline: decode, VAD, ASR ∥ diarization, voice and text vectors, alignment, and
    ingest into a temporary SpeakerMemory store.
Runs alternate (a, b, a, b...) after one warm-up of each, so both see the same machine state.
Prints the median ratio b/a (target <= 1.3) and audio-seconds per wall-second of each.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.audio import decode, sha256
from inference.config import PipelineConfig
from inference.pipeline import Pipeline
from inference.transcribe import WhisperTranscriber

log = logging.getLogger("bench")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare_whisper(transcriber: WhisperTranscriber, path: Path) -> int:
    """faster-whisper alone, as a user would call it; returns the number of words."""
    model = transcriber.load()
    options = transcriber.options
    segments, _info = model.transcribe(
        str(path),
        beam_size=options.beam_size,
        word_timestamps=True,
        vad_filter=True,
        condition_on_previous_text=options.condition_on_previous_text,
    )
    return sum(len(s.words or []) for s in segments)


def open_store(folder: Path) -> Any:
    """A temporary SpeakerMemory, or None (with a warning) while memory/ is not usable."""
    try:
        from memory.api import SpeakerMemory

        return SpeakerMemory(folder / "bench.db")
    except Exception as exc:  # the bench still measures the pipeline without its ingest
        log.warning("memory store unavailable (%s): measuring (b) without ingest", exc)
        return None


def full_pipeline(pipeline: Pipeline, path: Path, store: Any, run: int) -> dict[str, float]:
    """The whole product path: returns the stage timings (and the segment count)."""
    digest = sha256(path)
    result = pipeline.run(path)
    timings = dict(result.timings)
    timings["segments"] = len(result.segments)
    if store is not None:
        start = time.perf_counter()
        conversation = store.create_conversation(
            title=f"bench {run}", source_name=path.name, sha256=f"{digest}-{run}")
        store.ingest(conversation.id, result)
        timings["ingest"] = time.perf_counter() - start
    return timings


def pipeline_asr(transcriber: WhisperTranscriber, path: Path) -> int:
    """The pipeline's ASR step alone: decode, the shared VAD, WhisperTranscriber."""
    return sum(len(s.words) for s in transcriber.transcribe(decode(path)).segments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="tiny.en", help="Whisper model (as settings)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "speaker-memory-models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    duration = decode(args.file).duration
    pipeline = Pipeline(PipelineConfig(whisper_model=args.model, models_dir=args.models_dir))
    transcriber = pipeline.backends.transcriber
    assert isinstance(transcriber, WhisperTranscriber)
    wall: dict[str, list[float]] = {"a": [], "asr": [], "b": []}
    cpu: dict[str, list[float]] = {"a": [], "asr": [], "b": []}

    def measure(key: str, work: Any) -> Any:
        start, used = time.perf_counter(), cpu_seconds()
        out = work()
        wall[key].append(time.perf_counter() - start)
        cpu[key].append(cpu_seconds() - used)
        return out

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder))
        print(f"# {args.file.name}: {duration:.1f} s, Whisper {args.model}, "
              f"{args.runs} alternating runs (after one warm-up each)", flush=True)
        bare_whisper(transcriber, args.file)  # warm-up: model loads, caches fill
        full_pipeline(pipeline, args.file, store, run=0)
        for run in range(1, args.runs + 1):
            words = measure("a", lambda: bare_whisper(transcriber, args.file))
            measure("asr", lambda: pipeline_asr(transcriber, args.file))
            timings = measure("b", lambda r=run: full_pipeline(pipeline, args.file, store, r))
            stages = ", ".join(f"{k} {v:.2f}" for k, v in timings.items()
                               if k not in ("segments", "speech"))
            print(f"run {run}: (a) {wall['a'][-1]:.2f} s, {words} words; "
                  f"(a') {wall['asr'][-1]:.2f} s; "
                  f"(b) {wall['b'][-1]:.2f} s, {timings['segments']:.0f} segments; "
                  f"b/a {wall['b'][-1] / wall['a'][-1]:.3f}  [{stages}]", flush=True)
        if store is not None:
            store.close()

    def ratio(over: str) -> float:
        return statistics.median(b / a for a, b in zip(wall[over], wall["b"], strict=True))

    median = {key: statistics.median(values) for key, values in wall.items()}
    ingest = " + ingest" if store is not None else ""
    print()
    print("| | median wall s | audio s per wall s | median CPU s |")
    print("|---|---|---|---|")
    for key, label in (("a", "(a) bare faster-whisper (its own VAD filter)"),
                       ("asr", "(a') the pipeline's ASR step alone (shared VAD)"),
                       ("b", f"(b) full pipeline{ingest}")):
        print(f"| {label} | {median[key]:.2f} | {duration / median[key]:.1f} | "
              f"{statistics.median(cpu[key]):.2f} |")
    print(f"\nmedian ratio b/a: {ratio('a'):.3f} (target <= 1.3); "
          f"b/a': {ratio('asr'):.3f}")
    # CPU seconds (all threads) say how much work each does, whatever else runs on the machine.
    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
