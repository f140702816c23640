#!/usr/bin/env python
"""First paint of the review page's conversation view, measured in headless Chromium.

    .venv/bin/python scripts/bench_page.py [--minutes 60] [--runs 5]

A fresh store is seeded through memory's own API (`SpeakerMemory.ingest`, as the pipeline
stores a recording) with one conversation of --minutes of 4 s segments (60 min: 900 segments,
6 voices, the synthetic texts of scripts/bench_memory.py) and, as the baseline, one of 1 minute.
`speaker-memory serve` then runs on it (ephemeral loopback port) and Chromium opens each
conversation's page --runs times, alternating, each time in a fresh tab.

"First paint" is when Chromium paints the transcript's first segment: the Element Timing API's
renderTime of the element the page marks `elementtiming="first-segment"`, in milliseconds from
the start of the navigation; it includes loading the page's modules, its API calls (the
transcript's JSON among them) and building the timeline and transcript. Prints the median of
each conversation, the ratio long/baseline, and how many segments were drawn (target: first
paint under 1 s for an hour).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import SEGMENT_SECONDS, Spec, Synth
from playwright.sync_api import Browser, sync_playwright

from memory.api import SpeakerMemory
from tests.server.browser import launch
from tests.server.tests_support import running_server
from tools.settings import Settings

VOICES = 6

FIRST_SEGMENT_PAINT = """() => new Promise((resolve) => {
    new PerformanceObserver((list, observer) => {
        const entry = list.getEntries().find((e) => e.identifier === "first-segment");
        if (entry) { observer.disconnect(); resolve(entry.renderTime || entry.loadTime); }
    }).observe({ type: "element", buffered: true });
})"""


def seed(folder: Path, minutes: float) -> dict[str, int]:
    """The store under folder/data: the long conversation and the 1-minute baseline."""
    settings = Settings(data_dir=folder / "data")
    segments = round(minutes * 60 / SEGMENT_SECONDS)
    synth = Synth(Spec(speakers=VOICES, segments=segments, conv_segments=segments))
    memory = SpeakerMemory(settings.db_path)
    ids: dict[str, int] = {}
    try:
        for name, count, salt in (("long", segments, 0), ("baseline", 15, 1)):
            result, _ = synth.conversation(0, n_segments=count, voices=list(range(VOICES)),
                                           salt=salt)
            conversation = memory.create_conversation(title=f"bench page {name}",
                                                      source_name=f"{name}.wav")
            memory.ingest(conversation.id, result)
            memory.set_conversation_status(conversation.id, "done")
            ids[name] = conversation.id
    finally:
        memory.close()
    return ids


def first_paint(browser: Browser, base: str, conversation_id: int) -> tuple[float, int]:
    """(ms from navigation start to the first segment's paint, segments drawn)."""
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"/#/conversation/{conversation_id}")
        painted = float(page.evaluate(FIRST_SEGMENT_PAINT))
        return painted, page.locator(".transcript .segment").count()
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        folder = Path(tmp)
        ids = seed(folder, args.minutes)
        times: dict[str, list[float]] = {name: [] for name in ids}
        drawn: dict[str, int] = {}
        with running_server(folder, None) as (_, base), sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                first_paint(browser, base, ids["baseline"])  # warm-up: caches, first import
                for _ in range(args.runs):
                    for name, cid in ids.items():
                        ms, drawn[name] = first_paint(browser, base, cid)
                        times[name].append(ms)
            finally:
                browser.close()
    long_ms = statistics.median(times["long"])
    base_ms = statistics.median(times["baseline"])
    print(f"first paint, median of {args.runs} (ms from navigation start):")
    print(f"  {args.minutes:g} min conversation ({drawn['long']} segments): {long_ms:.0f} ms "
          f"(runs: {', '.join(f'{t:.0f}' for t in times['long'])})")
    print(f"  1 min baseline ({drawn['baseline']} segments): {base_ms:.0f} ms "
          f"(runs: {', '.join(f'{t:.0f}' for t in times['baseline'])})")
    print(f"  ratio long/baseline: {long_ms / base_ms:.2f}; target: under 1000 ms for 60 min")


if __name__ == "__main__":
    main()
