"""The memory layer: the persistent store of speakers, conversations and what was said.

Pure Python (numpy + SQLite); it never imports an ML library."""

from memory.api import SpeakerMemory, SpeakerRef

__all__ = ["SpeakerMemory", "SpeakerRef"]
