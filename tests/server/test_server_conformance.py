"""The official MCP conformance suite (@modelcontextprotocol/conformance, pinned: 0.1.10 is the
last version that runs on Node 20) against a real `speaker-memory serve` on an ephemeral
loopback port: every generic server scenario passes, with no warning.

This version of the suite cannot send headers (`server` takes only --url and --scenario), so
the server runs without a token, on loopback, as the Inspector test over HTTP does. The
server-sse-polling scenario calls the suite's test_reconnection tool, which the server offers
when SPEAKER_MEMORY_CONFORMANCE_TOOLS is set: it closes the call's stream mid-call, and the
result has to come back by Last-Event-ID.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.server.tests_support import REPO, child_env, serve_subprocess

SUITE = "@modelcontextprotocol/conformance@0.1.10"
SCENARIOS = [
    "server-initialize", "ping", "tools-list", "resources-list", "prompts-list",
    "server-sse-multiple-streams", "logging-set-level", "completion-complete",
    "server-sse-polling",
]
SUMMARY = re.compile(r"Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for base, _ in serve_subprocess(tmp_path_factory.mktemp("conformance"), token=None,
                                    SPEAKER_MEMORY_CONFORMANCE_TOOLS="true"):
        yield base


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario_passes_without_warnings(
    server: str, scenario: str, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    npx = shutil.which("npx")
    if npx is None or shutil.which("node") is None:
        pytest.skip("node/npx is not installed: the conformance suite cannot run")
    results = tmp_path_factory.mktemp("results")
    try:
        process = subprocess.run(
            [npx, "-y", SUITE, "server", "--url", f"{server}/mcp", "--scenario", scenario,
             "--output-dir", str(results)],
            capture_output=True, text=True, cwd=REPO, env=child_env(results), timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the conformance suite did not finish (npm registry unreachable?)")
    output = process.stdout + process.stderr
    if process.returncode != 0 and any(marker in output for marker in
                                       ("npm ERR", "npm error", "ENOTFOUND", "EAI_AGAIN")):
        pytest.skip(f"the conformance suite could not be installed: {output[-300:]}")
    summary = SUMMARY.search(output)
    assert summary is not None, output
    passed, total, failed, warnings = (int(n) for n in summary.groups())
    assert (failed, warnings) == (0, 0) and passed == total > 0, output
    assert process.returncode == 0, output
