"""The worker threads that tool calls run on, shared by MCP and REST.

Tools are Python-heavy (SQLite rows, pydantic, a text model's forward pass of thousands of small
ops), so on two cores more than a few at once only take turns holding the interpreter lock,
and each turn can last the interpreter's switch interval. Measured with 32 clients reading at
once (scripts/bench_load.py): with anyio's default 40 threads a search's query vector waited in
that convoy, p50 1.7 s, while the encode itself takes 13-22 ms alone. Calls beyond the limit
wait on the event loop, which costs nothing.
"""

from __future__ import annotations

import anyio

TOOL_THREADS = 4
"""Tool calls running at once; the rest wait their turn."""

tool_threads = anyio.CapacityLimiter(TOOL_THREADS)
