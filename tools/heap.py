"""Keeping the garbage collector's full passes short in a long-running process.

The libraries and models a server loads (torch, transformers, pyannote, the MCP SDK, pydantic
schemas) are a few million Python objects that live as long as the process. Python's full
collection walks every one of them with all threads stopped: in `scripts/bench_load.py` these
pauses took 140-450 ms, several times a minute while 32 clients were reading, which alone put
the idle p99 over its 200 ms target. `gc.freeze()` moves the objects alive at that moment out
of the collector's sight, so later passes walk only what came after.

Freezing is done at quiet points, after a collection, so no garbage is frozen; an object frozen
while alive is still freed when its last reference goes (reference counting does not need the
collector); only a cycle that dies after it was frozen is never reclaimed. Freezing only when
the unfrozen old generation has grown large (a model loaded, say) keeps that rare and bounded.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

FREEZE_ABOVE = 200_000
"""Objects in the collector's oldest generation, not yet frozen, above which `settle` freezes
them. A full pass over this many takes roughly 10-20 ms; the modules and models of a server
that has processed one recording are ten times more."""

_settling = threading.Lock()


def settle() -> bool:
    """At a quiet point (the server ready, a job ended, the live models loaded): when the old
    generation has grown past FREEZE_ABOVE objects since it was last frozen, collect once and
    freeze what is left. True when it froze."""
    with _settling:
        # Counting builds a list of pointers, a few ms per million objects; a full collection
        # walks each object's references and is what this avoids repeating.
        if len(gc.get_objects(generation=2)) <= FREEZE_ABOVE:
            return False
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        log.debug("froze %d long-lived objects in %.0f ms", gc.get_freeze_count(),
                  1000 * (time.perf_counter() - started))
        return True
