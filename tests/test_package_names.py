"""Our four top-level packages install under generic names (memory, tools, server, inference).
No other distribution installed beside them may ship a module of the same name, or one of the
two would shadow the other: checked over every distribution in this environment (the project's
dependencies with their dev and test tools, ~125 distributions)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path, PurePosixPath

OURS = {"memory", "tools", "server", "inference"}


def _top_level_names(dist: importlib.metadata.Distribution) -> set[str]:
    names: set[str] = set()
    for file in dist.files or []:
        parts = PurePosixPath(str(file)).parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or \
                parts[0] in ("..", "__pycache__"):
            continue
        names.add(parts[0].removesuffix(".py") if len(parts) == 1 else parts[0])
    top_level = dist.read_text("top_level.txt")
    if top_level:
        names.update(line.strip() for line in top_level.splitlines() if line.strip())
    return names


def test_no_installed_distribution_ships_our_package_names() -> None:
    clashes = sorted(
        f"{dist.metadata['Name']} ships {name}"
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] != "speaker-memory"
        for name in _top_level_names(dist) & OURS
    )
    assert clashes == []


def test_our_names_resolve_to_this_project() -> None:
    import importlib

    repo = Path(__file__).resolve().parents[1]
    for name in sorted(OURS):
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert Path(module.__file__).resolve() == repo / name / "__init__.py", name
