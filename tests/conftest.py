"""Generic test set-up shared by every layer. Layer fixtures live in tests/<layer>/conftest.py."""

from __future__ import annotations

import os

# Nothing may download model weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The tools and server tests share one set of App fixtures (real store, fake pipeline).
pytest_plugins = ["tests.tools.fixtures"]
