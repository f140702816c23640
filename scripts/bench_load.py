"""Read latency under load: N concurrent MCP clients over Streamable HTTP against a real
`speaker-memory serve`, first with nothing processing, then while a recording is processed.

    .venv/bin/python scripts/bench_load.py [--clients 32] [--seconds 20] [--record FILE]

The server runs on a fresh data folder on an ephemeral loopback port, with the bundled models.
It is seeded with the short recordings of tests/data (processed first, so reads find
conversations, speakers and text to search). Each client then loops over a mixed read load
(list_conversations, get_conversation, search_conversations, list_speakers,
get_latest_segments) for --seconds, once idle and once while --record (default: the seed
recordings joined, repeated to about two minutes) is processed.
Prints per phase and per call p50 / p95 / p99 latency, calls and errors, and the ratio of p99
under processing to p99 idle (targets: no errors; ratio <= 1.5; idle p99 <= 200 ms on a quiet
machine). The clients share the machine with the server: on 2 cores they cost it CPU too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server.tests_support import running_server  # noqa: E402
from tests.testdata import DEV  # noqa: E402

READS = ("list_conversations", "get_conversation", "search_conversations", "list_speakers",
         "get_latest_segments")
QUERIES = ("budget", "what did they decide about the schedule", "thanks", "next week")


def seed_recordings() -> list[Path]:
    return sorted((DEV / "conversations").glob("*.flac"))


def joined_recording(parts: list[Path], into: Path, seconds: float) -> Path:
    """The parts one after another, repeated to about `seconds`, as one 16 kHz WAV."""
    from inference.audio import decode, wav_bytes
    from inference.types import Audio

    clips = [decode(part).samples for part in parts]
    repeats = int(np.ceil(seconds * 16_000 / sum(len(clip) for clip in clips)))
    into.write_bytes(wav_bytes(Audio(np.concatenate(clips * repeats))))
    return into


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content}")
    return result.structured_content


class RawClient:
    """A thin MCP client: one session, JSON-RPC POSTs, the SSE reply read for its result. It
    costs a fraction of the SDK client's CPU, which on one machine competes with the server."""

    PROTOCOL = "2025-11-25"

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.url = f"{base}/mcp"
        self.headers = {"accept": "application/json, text/event-stream",
                        "content-type": "application/json"}
        self.next_id = 1

    async def open(self) -> None:
        opened = await self.post({"method": "initialize", "params": {
            "protocolVersion": self.PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "bench-load", "version": "1"}}})
        self.headers |= {"mcp-session-id": opened.headers["mcp-session-id"],
                         "mcp-protocol-version": self.PROTOCOL}
        await self.http.post(self.url, headers=self.headers,
                             json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def post(self, message: dict[str, Any]) -> httpx.Response:
        self.next_id += 1
        response = await self.http.post(self.url, headers=self.headers,
                                        json={"jsonrpc": "2.0", "id": self.next_id, **message})
        response.raise_for_status()
        return response

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> Any:
        response = await self.post({"method": "tools/call",
                                    "params": {"name": tool, "arguments": arguments}})
        for line in response.text.splitlines():
            if line.startswith("data:") and '"result"' in line:
                result = json.loads(line[5:])["result"]
                return SimpleNamespace(is_error=result.get("isError", False),
                                       content=result.get("content"),
                                       structured_content=result.get("structuredContent"))
        raise RuntimeError(f"{tool}: no result in {response.text[:200]!r}")


async def client_loop(base: str, number: int, seconds: float, conversation_ids: list[int],
                      latencies: dict[str, list[float]], errors: dict[str, int],
                      raw: bool = False) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(timeout=120) as http:
        if raw:
            client: Any = RawClient(http, base)
            await client.open()
            await run_reads(client, number, seconds, conversation_ids, latencies, errors)
        else:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as sdk:
                await run_reads(sdk, number, seconds, conversation_ids, latencies, errors)


async def run_reads(client: Any, number: int, seconds: float, conversation_ids: list[int],
                    latencies: dict[str, list[float]], errors: dict[str, int]) -> None:
    deadline = time.monotonic() + seconds
    step = number
    while time.monotonic() < deadline:
        tool = READS[step % len(READS)]
        arguments: dict[str, Any] = {}
        if tool == "get_conversation":
            arguments = {"conversation_id": conversation_ids[step % len(conversation_ids)],
                         "format": "text"}
        elif tool == "search_conversations":
            arguments = {"query": QUERIES[step % len(QUERIES)], "limit": 10}
        started = time.perf_counter()
        try:
            await call(client, tool, arguments)
            latencies[tool].append(time.perf_counter() - started)
        except Exception as exc:  # counted, not fatal: errors are a result of the bench
            errors[tool] += 1
            print(f"client {number}: {tool} failed: {exc}", file=sys.stderr)
        step += 1


async def phase(base: str, clients: int, seconds: float, conversation_ids: list[int],
                raw: bool = False) -> tuple[dict[str, list[float]], dict[str, int]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    await asyncio.gather(*(client_loop(base, n, seconds, conversation_ids, latencies, errors,
                                       raw) for n in range(clients)))
    return latencies, errors


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(name: str, latencies: dict[str, list[float]], errors: dict[str, int]) -> float:
    everything = [v for values in latencies.values() for v in values]
    print(f"\n### {name}\n")
    print("| call | calls | errors | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool in READS:
        values = latencies.get(tool, [])
        print(f"| {tool} | {len(values)} | {errors.get(tool, 0)} | "
              f"{1000 * percentile(values, 50):.0f} | {1000 * percentile(values, 95):.0f} | "
              f"{1000 * percentile(values, 99):.0f} |")
    p99 = percentile(everything, 99)
    print(f"| **all** | {len(everything)} | {sum(errors.values())} | "
          f"{1000 * percentile(everything, 50):.0f} | {1000 * percentile(everything, 95):.0f} | "
          f"{1000 * p99:.0f} |")
    return p99


def run_tool(base: str, tool: str, **arguments: Any) -> Any:
    async def once() -> Any:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async with (httpx.AsyncClient(timeout=3600) as http,
                    Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client):
            return await call(client, tool, arguments)

    return asyncio.run(once())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--record", type=Path, default=None,
                        help="the recording processed during the second phase")
    parser.add_argument("--sdk-client", action="store_true",
                        help="the MCP SDK's client for the load (default: a thin JSON-RPC one, "
                        "whose own CPU cost is smaller)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        inbox = folder / "data" / "inbox"
        inbox.mkdir(parents=True)
        seeds = [inbox / p.name for p in seed_recordings()]
        for source, target in zip(seed_recordings(), seeds, strict=True):
            target.write_bytes(source.read_bytes())
        record = args.record or joined_recording(seed_recordings(), inbox / "load.wav", 120)
        if args.record:
            record = inbox / args.record.name
            record.write_bytes(args.record.read_bytes())
        with running_server(folder, token=None) as (_, base):
            started = time.perf_counter()
            ids = [run_tool(base, "process_audio", path=str(seed))["conversation_id"]
                   for seed in seeds]
            print(f"# {len(ids)} seed recordings processed in "
                  f"{time.perf_counter() - started:.0f} s; {args.clients} clients, "
                  f"{args.seconds:.0f} s per phase, {os.cpu_count()} cores", flush=True)
            raw = not args.sdk_client
            idle = asyncio.run(phase(base, args.clients, args.seconds, ids, raw))
            job = run_tool(base, "process_audio", path=str(record), wait=False)
            busy = asyncio.run(phase(base, args.clients, args.seconds, ids, raw))
            status = run_tool(base, "get_processing_status",
                              conversation_id=job["conversation_id"])
        idle_p99 = report("idle", *idle)
        busy_p99 = report(f"while processing {record.name} (still {status['status']} "
                          f"at the end)", *busy)
        errors = sum(idle[1].values()) + sum(busy[1].values())
        print(f"\np99 while processing / p99 idle: {busy_p99 / idle_p99:.2f} (target <= 1.5); "
              f"idle p99 {1000 * idle_p99:.0f} ms (target <= 200 on a quiet machine); "
              f"errors {errors} (target 0); load average {os.getloadavg()[0]:.1f}")
        if status["status"] not in ("processing", "queued"):
            print("note: processing ended before the phase did; use a longer --record",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
