"""`scripts/bench_memory.py --quick` runs end to end and prints all five figures.

No timing threshold here (never in tests): the figures are checked for presence and sanity only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_memory.py"

OPERATIONS = [
    "match one cluster",
    "keyword search (",
    "semantic search (",
    "identify new name",
    "identify existing name",
    "ingest one hour",
]


def _table_rows(stdout: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if not line.startswith("| ") or line.startswith("| operation"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_quick_benchmark_prints_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "3", "--workdir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = _table_rows(proc.stdout)
    for op in OPERATIONS:
        matching = [cells for name, cells in rows.items() if name.startswith(op)]
        assert matching, f"no row for {op!r} in:\n{proc.stdout}"
        cells = matching[0]
        median_ms = float(cells[2])
        assert median_ms > 0, cells
        assert re.fullmatch(r"[0-9.]+|-", cells[3]), cells  # baseline column
    # the synthetic store was built once and cached for --reuse
    assert list(tmp_path.glob("*.json")), "build metadata not cached"
    identify = next(c for n, c in rows.items() if n.startswith("identify new name"))
    assert "relabelled 0 " not in identify[-1], identify


def test_quick_benchmark_reuses_the_cached_store(tmp_path: Path) -> None:
    """A second run with --reuse measures again without rebuilding (same pristine file)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--repeats", "1", "--workdir", str(tmp_path)]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
    assert first.returncode == 0, first.stderr[-4000:]
    pristine = [p for p in tmp_path.glob("*.sqlite") if not p.name.endswith(".run.sqlite")]
    assert len(pristine) == 1
    mtime = pristine[0].stat().st_mtime_ns
    second = subprocess.run([*cmd, "--reuse"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "reusing" in second.stderr
    assert pristine[0].stat().st_mtime_ns == mtime
    assert len(_table_rows(second.stdout)) >= len(OPERATIONS)
