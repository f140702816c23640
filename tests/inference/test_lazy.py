"""inference.lazy.Lazy: models build once, on first use, even under concurrent first calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.lazy import Lazy


def test_concurrent_first_calls_build_once() -> None:
    builds: list[int] = []
    lock = threading.Lock()

    def build() -> str:
        time.sleep(0.05)  # long enough for every caller to arrive while the first builds
        with lock:
            builds.append(1)
        return "model"

    lazy = Lazy(build)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: lazy.get(), range(8)))
    assert results == ["model"] * 8 and len(builds) == 1


def test_a_failed_build_is_tried_again() -> None:
    attempts: list[int] = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("extra missing")
        return "model"

    lazy = Lazy(build)
    with pytest.raises(RuntimeError):
        lazy.get()
    assert lazy.get() == "model" and len(attempts) == 2


def test_of_is_already_built() -> None:
    assert Lazy.of("stand-in").get() == "stand-in"
