"""A value built on first use, once per owner, thread-safely: how every model here loads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """Calls `build` on the first `get()`; concurrent first callers wait for that one build.
    A build that raises leaves nothing behind, so the next call tries again (an extra installed
    or a token set meanwhile)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, value: T) -> Lazy[T]:
        """Already built (tests hand a backend a stand-in for the real model this way)."""
        lazy = cls(lambda: value)
        lazy._value = value
        return lazy

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value
