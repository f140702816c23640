"""Debian's chromium, headless, through playwright (its own browser download is not used):
what the page tests and scripts/bench_page.py launch."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
"""scripts/setup.sh dev installs it (apt-get) when it is missing."""

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--autoplay-policy=no-user-gesture-required"]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "page-tests"
"""Every page test's last screen (git-ignored): a failed test's screen stays for a person."""


def launch(playwright: Playwright, *extra_args: str) -> Browser:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: run scripts/setup.sh dev (apt-get chromium)"
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=[*ARGS, *extra_args])
