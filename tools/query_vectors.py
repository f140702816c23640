"""The vectors of recent search queries. A query's vector (a MiniLM forward pass) is most of what
a search costs, and an agent pages through a search or asks it again; a vector depends only on
the text model and the query, so a remembered one is exact."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from inference.types import Vector

QUERY_VECTORS_KEPT = 256
"""Queries remembered (384 floats each: ~0.4 MB in all); the least recently used go first."""

Embed = Callable[[Sequence[str]], list[Vector]]


class QueryVectors:
    def __init__(self, kept: int = QUERY_VECTORS_KEPT) -> None:
        self._kept = kept
        self._vectors: OrderedDict[tuple[str, str], Vector] = OrderedDict()
        self._lock = threading.Lock()

    def vector(self, text_model_id: str, query: str, embed: Embed) -> Vector:
        """The query's vector under that text model: remembered, or `embed([query])[0]`."""
        key = (text_model_id, query)
        with self._lock:
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return self._vectors[key]
        vector = embed([query])[0]  # outside the lock: other queries need not wait for it
        vector.setflags(write=False)  # shared between calls: nobody may change it
        with self._lock:
            self._vectors[key] = vector
            while len(self._vectors) > self._kept:
                self._vectors.popitem(last=False)
        return vector
