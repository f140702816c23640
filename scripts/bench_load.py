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

The clients are closed-loop with no think time: each sends its next call the moment the last
one is answered, so the server is always saturated and latency is queueing: by Little's law the
mean latency is clients / throughput, whatever the server does per call. The script measures the
CPU time a call costs the server and the load generator, and prints the throughput the cores
allow and the mean latency that follows, beside what was measured.

The search queries are four phrases, repeated: the server remembers recent query vectors
(tools/query_vectors.py), so after the first of each, a search costs no MiniLM pass.
--fresh-queries makes every search query new (a number appended), so every search computes
its vector, as distinct queries from many agents would.
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
from dataclasses import dataclass
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
        # One JSON body (a read-only tool, server/resumable.py) or an SSE stream.
        if response.headers.get("content-type", "").startswith("application/json"):
            messages = [response.text]
        else:
            messages = [line[5:] for line in response.text.splitlines()
                        if line.startswith("data:")]
        for message in messages:
            if '"result"' in message:
                result = json.loads(message)["result"]
                return SimpleNamespace(is_error=result.get("isError", False),
                                       content=result.get("content"),
                                       structured_content=result.get("structuredContent"))
        raise RuntimeError(f"{tool}: no result in {response.text[:200]!r}")


@dataclass
class Load:
    """What the clients send."""

    conversation_ids: list[int]
    raw: bool = True
    fresh_queries: bool = False


@dataclass
class Phase:
    latencies: dict[str, list[float]]
    errors: dict[str, int]
    seconds: float
    server_cpu: float
    """CPU seconds the server process used during the phase."""
    client_cpu: float
    """CPU seconds this process (the clients) used during the phase."""

    @property
    def calls(self) -> int:
        return sum(len(values) for values in self.latencies.values())


async def client_loop(base: str, number: int, seconds: float, load: Load,
                      latencies: dict[str, list[float]], errors: dict[str, int]) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(timeout=120) as http:
        if load.raw:
            client: Any = RawClient(http, base)
            await client.open()
            await run_reads(client, number, seconds, load, latencies, errors)
        else:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as sdk:
                await run_reads(sdk, number, seconds, load, latencies, errors)


async def run_reads(client: Any, number: int, seconds: float, load: Load,
                    latencies: dict[str, list[float]], errors: dict[str, int]) -> None:
    deadline = time.monotonic() + seconds
    step = number
    while time.monotonic() < deadline:
        tool = READS[step % len(READS)]
        arguments: dict[str, Any] = {}
        if tool == "get_conversation":
            ids = load.conversation_ids
            arguments = {"conversation_id": ids[step % len(ids)], "format": "text"}
        elif tool == "search_conversations":
            query = QUERIES[step % len(QUERIES)]
            if load.fresh_queries:
                query = f"{query} {number} {step}"
            arguments = {"query": query, "limit": 10}
        started = time.perf_counter()
        try:
            await call(client, tool, arguments)
            latencies[tool].append(time.perf_counter() - started)
        except Exception as exc:  # counted, not fatal: errors are a result of the bench
            errors[tool] += 1
            print(f"client {number}: {tool} failed: {exc}", file=sys.stderr)
        step += 1


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(base: str, server_pid: int, clients: int, seconds: float, load: Load) -> Phase:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)

    async def run() -> None:
        await asyncio.gather(*(client_loop(base, n, seconds, load, latencies, errors)
                               for n in range(clients)))

    server_cpu, client_cpu = process_cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    asyncio.run(run())
    return Phase(latencies, errors, time.perf_counter() - started,
                 process_cpu_seconds(server_pid) - server_cpu,
                 time.process_time() - client_cpu)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(name: str, result: Phase, clients: int) -> float:
    latencies, errors = result.latencies, result.errors
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
    explain_latency(result, clients, float(np.mean(everything)) if everything else float("nan"))
    return p99


def explain_latency(result: Phase, clients: int, mean: float) -> None:
    """The queueing arithmetic: what the cores allow, and the latency that follows."""
    calls = max(result.calls, 1)
    server_ms = 1000 * result.server_cpu / calls
    client_ms = 1000 * result.client_cpu / calls
    cores = os.cpu_count() or 1
    ceiling = cores / ((server_ms + client_ms) / 1000)
    throughput = result.calls / result.seconds
    print(f"\n{throughput:.0f} calls/s. CPU per call: server {server_ms:.1f} ms (all its "
          f"work, processing included), load generator {client_ms:.1f} ms; {cores} cores "
          f"allow at most {ceiling:.0f} calls/s even with nothing else running.")
    print(f"Little's law, {clients} clients with no think time: mean latency = {clients} / "
          f"{throughput:.0f} calls/s = {1000 * clients / throughput:.0f} ms (measured mean "
          f"{1000 * mean:.0f} ms); at the ceiling it would be >= "
          f"{1000 * clients / ceiling:.0f} ms. A p99 of 200 ms needs a mean below 200 ms, so "
          f"at least {clients / 0.2:.0f} calls/s.")


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
    parser.add_argument("--fresh-queries", action="store_true",
                        help="a new search query every call (no query-vector cache hits)")
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
        with running_server(folder, token=None) as (server, base):
            started = time.perf_counter()
            ids = [run_tool(base, "process_audio", path=str(seed))["conversation_id"]
                   for seed in seeds]
            queries = ("fresh every call" if args.fresh_queries
                       else f"{len(QUERIES)} phrases repeated (query vectors cached)")
            print(f"# {len(ids)} seed recordings processed in "
                  f"{time.perf_counter() - started:.0f} s; {args.clients} clients, "
                  f"{args.seconds:.0f} s per phase, {os.cpu_count()} cores; search queries: "
                  f"{queries}; load average {os.getloadavg()[0]:.1f}", flush=True)
            load = Load(ids, raw=not args.sdk_client, fresh_queries=args.fresh_queries)
            idle = phase(base, server.pid, args.clients, args.seconds, load)
            job = run_tool(base, "process_audio", path=str(record), wait=False)
            busy = phase(base, server.pid, args.clients, args.seconds, load)
            status = run_tool(base, "get_processing_status",
                              conversation_id=job["conversation_id"])
        idle_p99 = report("idle", idle, args.clients)
        busy_p99 = report(f"while processing {record.name} (still {status['status']} "
                          f"at the end)", busy, args.clients)
        errors = sum(idle.errors.values()) + sum(busy.errors.values())
        print(f"\np99 while processing / p99 idle: {busy_p99 / idle_p99:.2f} (target <= 1.5); "
              f"idle p99 {1000 * idle_p99:.0f} ms (target <= 200 on a quiet machine); "
              f"errors {errors} (target 0); load average {os.getloadavg()[0]:.1f}")
        if status["status"] not in ("processing", "queued"):
            print("note: processing ended before the phase did; use a longer --record",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
