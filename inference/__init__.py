"""The audio layer: decode, VAD, transcribe, diarize, embed, align.

May import memory.types and memory.errors (pure data, no store); never the store itself.
"""
