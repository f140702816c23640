"""How `speaker-memory listen` prints a live session: confirmed lines with names; on a
terminal, the words still being heard on a line of their own that the next event replaces."""

from __future__ import annotations

import threading
from typing import TextIO

from tools.live_session import LiveEvent


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


class LivePrinter:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._partial = False
        self._lock = threading.Lock()  # events come from the session's thread

    def __call__(self, event: LiveEvent) -> None:
        with self._lock:
            self._print(event)

    def _print(self, event: LiveEvent) -> None:
        data = event.data
        if event.type == "partial" or (event.type == "final" and not data["complete"]):
            # Words still being heard, or a segment still growing: one line that the next
            # event replaces (printed for good once the segment is complete).
            if self.tty:
                said = (f"{data['speaker']['label']}: {data['text']}" if event.type == "final"
                        else f"… {data['text']}")
                self.out.write(f"\r\033[K\033[2m{said}\033[0m")
                self._partial = True
                self.out.flush()
            return
        if self._partial:
            self.out.write("\r\033[K")
            self._partial = False
        if event.type == "final":
            self.out.write(f"[{clock(data['start'])}] {data['speaker']['label']}: "
                           f"{data['text']}\n")
        elif event.type == "speaker_update":
            ids = ", ".join(str(i) for i in data["segment_ids"])
            self.out.write(f"(segments {ids} are now {data['speaker']['label']})\n")
        elif event.type in ("error", "slow_down"):
            self.out.write(f"({event.type}: {data.get('message', '')})\n")
        self.out.flush()
