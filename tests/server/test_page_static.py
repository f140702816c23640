"""The review page's static files: every one ships in the wheel, and the speaker colours meet
WCAG AA: 4.5:1 for a speaker's name written in its colour on the page's white (and on the
highlighted rows), 3:1 for its bars on the timeline's grey track."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from server.page import WEB

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

WHITE, TRACK = "#ffffff", "#f3f4f6"
HIGHLIGHTS = ("#fff6d6", "#e2edf9")
"""style.css: the row playing now, the row a search hit jumped to."""


def palette() -> list[str]:
    source = (WEB / "colors.js").read_text()
    block = re.search(r"PALETTE = \[(.*?)\]", source, re.S)
    assert block, "colors.js has no PALETTE"
    return re.findall(r'"(#[0-9a-fA-F]{6})"', block.group(1))


def luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert round(contrast("#000000", WHITE), 1) == 21.0
    assert round(contrast("#767676", WHITE), 2) == 4.54  # the lightest AA grey on white


def test_every_speaker_colour_meets_aa_for_text_and_bars() -> None:
    colours = palette()
    assert len(colours) >= 8 and len(set(colours)) == len(colours)
    for colour in colours:
        for background in (WHITE, *HIGHLIGHTS):
            assert contrast(colour, background) >= 4.5, (colour, background)
        assert contrast(colour, TRACK) >= 3.0, colour


def test_every_page_file_is_package_data() -> None:
    """A wheel install serves the same page as the checkout (no file left out)."""
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["server"]
    files = [p.relative_to(WEB.parent).as_posix() for p in WEB.rglob("*") if p.is_file()]
    assert "web/index.html" in files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
