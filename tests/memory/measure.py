"""Peak Python allocation of one call: what the memory-bound tests (a backup, a store copy)
compare between a small store and a larger one."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def peak_allocation(call: Callable[[], object]) -> int:
    """Bytes allocated at the peak while `call` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
