"""Helpers shared by the server tests that start real `speaker-memory` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The test's environment without SPEAKER_MEMORY_* settings, offline, data in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKER_MEMORY_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               SPEAKER_MEMORY_DATA_DIR=str(data_dir), SPEAKER_MEMORY_LOG_LEVEL="WARNING",
               PYTHONUNBUFFERED="1")
    env.update(extra)  # the caller's values win (a log level, say)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_subprocess(
    folder: Path, token: str | None, **extra_env: str
) -> Iterator[tuple[str, str | None]]:
    """`speaker-memory serve` on an ephemeral loopback port; yields (base URL, token)."""
    with running_server(folder, token, **extra_env) as (_, base):
        yield base, token


@contextmanager
def running_server(
    folder: Path, token: str | None, **extra_env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`speaker-memory serve` on an ephemeral loopback port, data in folder/data, its output
    appended to folder/server.log; yields (process, base URL) once it answers."""
    port = free_port()
    args = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    if token:
        args += ["--token", token]
    log_path = folder / "server.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(args, cwd=REPO, env=child_env(folder / "data", **extra_env),
                                   stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    pytest.fail(f"server exited: {log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", headers=headers, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {log_path.read_text()}")
                time.sleep(0.2)
            yield process, base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
