"""Live listening measured: recordings streamed through the WebSocket at real-time pace (a
paced client stands in for a microphone) into a real `speaker-memory serve`.

    .venv/bin/python scripts/bench_live.py ../shared/corpus/dev [--only dev01] [--streams 2]

The server runs on a fresh data folder with the bundled models; the corpus's enrollment clips
are enrolled first (named by voice id, as scripts/evaluate.py does). Each chosen recording is
then streamed in 100 ms frames at real time. Printed per recording and overall:
- latency: from a word's end in the audio to the `final` event that confirms it (p50, p95);
  target on CPU with tiny.en: p50 <= 2.5 s, p95 <= 5 s;
- first partial: from the first reference speech to the first `partial` (target p50 <= 1.5 s);
- WER of the confirmed live text, beside the WER of the same recording once finalised (the
  offline pipeline's transcript): target live <= 1.5x finalised;
- attribution of live segments for enrolled voices (time under the right name; target >= 90%):
  as each segment's `final` named it when sent, and after the session's `speaker_update`
  events (a voice recognised or named later relabels its earlier segments, as an agent reading
  the conversation sees them), beside the same for the finalised conversation;
- with --streams N: N copies streamed at once; the p95 latency says whether this machine
  sustains N real-time streams (target p95 under 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.evaluate import (  # noqa: E402
    Attribution,
    Conversation,
    load_corpus,
    normalise_text,
    score_attribution,
)
from tests.server.tests_support import running_server  # noqa: E402

FRAME_SECONDS = 0.1


@dataclass
class Run:
    conversation: Conversation
    latencies: list[float] = field(default_factory=list)
    first_partial: float | None = None
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)
    """segment id -> its latest final event"""
    timed: dict[int, int] = field(default_factory=dict)
    """segment id -> how many of its words have been timed"""
    speakers: dict[int, dict[str, Any]] = field(default_factory=dict)
    """segment id -> its speaker after the session's events: its latest final's, or a later
    speaker_update's (a voice recognised or named after its first segments were sent)"""
    conversation_id: int | None = None
    updates: int = 0

    @property
    def finals(self) -> list[dict[str, Any]]:
        return list(self.segments.values())


async def stream(url: str, conversation: Conversation) -> Run:
    import websockets

    from inference.audio import decode

    samples = decode(conversation.audio).samples
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    frame = int(16000 * FRAME_SECONDS) * 2
    run = Run(conversation)
    speech_start = min(t.start for t in conversation.turns)
    async with websockets.connect(url, subprotocols=["speaker-memory.v1"],  # type: ignore[list-item]
                                  max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000,
                                  "title": conversation.id}))
        started = json.loads(await ws.recv())
        run.conversation_id = started["conversation_id"]
        t0 = time.monotonic()

        async def receive() -> None:
            async for message in ws:
                event = json.loads(message)
                now = time.monotonic() - t0  # = the audio time the client has sent
                if event["type"] == "partial" and run.first_partial is None:
                    run.first_partial = now - speech_start
                elif event["type"] == "final":
                    # An open segment comes again as it grows: each word is timed at the
                    # first final that holds it; the segment's text is its latest final's.
                    timed = run.timed.get(event["segment_id"], 0)
                    run.latencies += [now - w["end"] for w in event["words"][timed:]]
                    run.timed[event["segment_id"]] = len(event["words"])
                    run.segments[event["segment_id"]] = event
                    run.speakers[event["segment_id"]] = event["speaker"]
                elif event["type"] == "speaker_update":
                    run.updates += 1
                    for segment_id in event["segment_ids"]:
                        run.speakers[segment_id] = event["speaker"]
                elif event["type"] in ("stopped", "error"):
                    return

        receiver = asyncio.create_task(receive())
        for k, i in enumerate(range(0, len(pcm), frame)):
            await ws.send(pcm[i:i + frame])
            await asyncio.sleep(max(0.0, t0 + (k + 1) * FRAME_SECONDS - time.monotonic()))
        await ws.send(json.dumps({"type": "stop"}))
        await receiver
    return run


def wer(reference: str, hypothesis: str) -> float | None:
    import jiwer

    if not reference:
        return None
    return float(jiwer.wer(normalise_text(reference), normalise_text(hypothesis)))


def attribution(run: Run, segments: list[tuple[float, float, str | None]],
                corpus: Any, names: set[str]) -> Attribution:
    return score_attribution(run.conversation.turns, segments, corpus, names)


def wait_done(base: str, conversation_id: int) -> dict[str, Any]:
    for _ in range(3000):
        status = httpx.get(f"{base}/api/v1/conversations/{conversation_id}/status").json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    return dict(httpx.get(f"{base}/api/v1/conversations/{conversation_id}", timeout=60).json())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--only", help="comma-separated conversation ids")
    parser.add_argument("--streams", type=int, default=1,
                        help="copies of each recording streamed at once (capacity)")
    parser.add_argument("--dump", type=Path,
                        help="write each recording's live and finalised segments here (JSON)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    corpus = load_corpus(args.corpus)
    chosen = [c for c in corpus.conversations
              if not args.only or c.id in args.only.split(",")]
    names = {name for name, _ in corpus.enrollment}
    totals: dict[str, list[float]] = {"latency": [], "first": []}
    live_att, updated_att, final_att = Attribution(), Attribution(), Attribution()
    with tempfile.TemporaryDirectory() as folder_name, \
            running_server(Path(folder_name), token=None,
                           SPEAKER_MEMORY_LIVE_MAX_SESSIONS=str(max(4, args.streams))) \
            as (_, base):
        for name, clip in corpus.enrollment:
            with clip.open("rb") as handle:
                httpx.post(f"{base}/api/v1/speakers", data={"name": name},
                           files={"file": (clip.name, handle)}, timeout=600).raise_for_status()
        url = base.replace("http://", "ws://") + "/api/v1/live"
        print(f"# {len(corpus.enrollment)} voices enrolled; {len(chosen)} recordings x "
              f"{args.streams} stream(s) at real time; {os.cpu_count()} cores", flush=True)
        print("| recording | latency p50 / p95 (s) | first partial (s) | WER live / final "
              "| attribution live as sent / after updates / final |")
        print("|---|---|---|---|---|")
        for conversation in chosen:
            runs = asyncio.run(_all(url, conversation, args.streams))
            for run in runs:
                totals["latency"] += run.latencies
                if run.first_partial is not None:
                    totals["first"].append(run.first_partial)
            run = runs[0]
            assert run.conversation_id is not None
            stored = wait_done(base, run.conversation_id)
            live_text = " ".join(e["text"] for e in run.finals)
            final_text = " ".join(s["text"] for s in stored["segments"])
            live_segments = [(e["start"], e["end"], e["speaker"]["name"]) for e in run.finals]
            updated_segments = [(e["start"], e["end"], run.speakers[e["segment_id"]]["name"])
                                for e in run.finals]
            final_segments = [(s["start"], s["end"], s["speaker"]["name"] if s.get("speaker")
                               else None) for s in stored["segments"]]
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                (args.dump / f"{conversation.id}.json").write_text(json.dumps({
                    "live": run.finals, "finalised": stored["segments"],
                    "reference": [vars(t) for t in conversation.turns]}, indent=1))
            a = attribution(run, live_segments, corpus, names)
            u = attribution(run, updated_segments, corpus, names)
            b = attribution(run, final_segments, corpus, names)
            live_att.add(a)
            updated_att.add(u)
            final_att.add(b)
            lat = [x for r in runs for x in r.latencies]
            firsts = [r.first_partial for r in runs if r.first_partial is not None]
            w_live, w_final = wer(conversation.text, live_text), wer(conversation.text,
                                                                      final_text)
            print(f"| {conversation.id} | {pct(lat, 50):.2f} / {pct(lat, 95):.2f} "
                  f"| {pct(firsts, 50):.2f} | {_p(w_live)} / {_p(w_final)} "
                  f"| {_p(a.accuracy)} / {_p(u.accuracy)} / {_p(b.accuracy)} |", flush=True)
    print(f"\nall: latency p50 {pct(totals['latency'], 50):.2f} s, p95 "
          f"{pct(totals['latency'], 95):.2f} s (targets 2.5 / 5); first partial p50 "
          f"{pct(totals['first'], 50):.2f} s (target 1.5); attribution live "
          f"{_p(live_att.accuracy)} as sent (target 90%), {_p(updated_att.accuracy)} after the "
          f"session's speaker_updates, finalised {_p(final_att.accuracy)}; "
          f"{args.streams} concurrent stream(s); load average {os.getloadavg()[0]:.1f}")
    return 0


async def _all(url: str, conversation: Conversation, streams: int) -> list[Run]:
    return list(await asyncio.gather(*(stream(url, conversation) for _ in range(streams))))


def _p(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    raise SystemExit(main())
