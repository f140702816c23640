"""The RAM mirror of voice centroids is updated in place after each write (rows overwritten,
appended, or left as holes and compacted); it must always equal a fresh load of the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory.voiceprints import CentroidCache, _ModelCentroids
from tests.memory.backends import Backend, open_memory
from tests.memory.fakes import VOICE_MODEL, Voices, make_result


def test_in_place_rows_follow_upserts_and_removals() -> None:
    rng = np.random.default_rng(5)
    mirror = _ModelCentroids(dim=8)
    expected: dict[int, tuple[list[float], bool]] = {}
    for _ in range(3000):
        speaker_id = int(rng.integers(1, 400))
        if rng.random() < 0.3:
            mirror.remove(speaker_id)
            expected.pop(speaker_id, None)
        else:
            vector = rng.standard_normal((1, 8)).astype(np.float32)
            unknown = bool(rng.random() < 0.5)
            mirror.upsert(np.array([speaker_id]), vector, np.array([unknown]))
            expected[speaker_id] = (vector[0].tolist(), unknown)
    rows = np.flatnonzero(mirror.valid[: mirror.size])
    assert mirror.count == len(expected) == rows.size
    assert mirror.holes == mirror.size - rows.size
    held = {
        int(mirror.ids[r]): (mirror.matrix[r].tolist(), bool(mirror.unknown[r])) for r in rows
    }
    assert held == expected
    assert {i: int(mirror.ids[r]) for i, r in mirror.row_of.items()} == {i: i for i in expected}
    assert not mirror.matrix[: mirror.size][~mirror.valid[: mirror.size]].any()


def test_compaction_keeps_the_remaining_rows() -> None:
    mirror = _ModelCentroids(dim=2)
    ids = np.arange(1, 301)
    vectors = np.column_stack([ids, -ids]).astype(np.float32)
    mirror.upsert(ids, vectors, ids % 2 == 0)
    for speaker_id in range(1, 251):
        mirror.remove(speaker_id)
    assert mirror.holes < 65  # compacted on the way
    live = {int(mirror.ids[r]): mirror.matrix[r].tolist()
            for r in np.flatnonzero(mirror.valid[: mirror.size])}
    assert live == {i: [float(i), float(-i)] for i in range(251, 301)}


def test_mirror_equals_a_fresh_load_after_identity_changes(
    backend: Backend, tmp_path: Path
) -> None:
    voices = Voices(seed=11)
    names = [f"v{i}" for i in range(12)]
    with open_memory(tmp_path / "store.db") as memory:
        for day in range(6):
            present = [names[(day * 3 + k) % len(names)] for k in range(4)]
            conversation = memory.create_conversation(title=f"day {day}")
            memory.ingest(conversation.id, make_result(voices, present, 8, seed=day))
        memory.rename("Unknown 1", "Ann")  # kind changes, centroid does not
        memory.merge("Unknown 2", "Unknown 3")  # a row removed, another changed
        memory.delete_speaker("Unknown 4")  # a hole
        memory.enroll("Zed", voices.clips("zed", 3), VOICE_MODEL, "test")  # appended
        memory.undo()  # Zed goes again
        queries = [voices.clip(name) for name in [*names, "zed"]]
        speakers = len(memory.list_speakers())
        with memory._db.write_lock, memory._db.read() as tx:
            live = memory._centroids
            live.check(tx)
            for query in queries:
                for only_unknown in (None, True, False):
                    fresh = CentroidCache().nearest(
                        tx, VOICE_MODEL, query, 50, only_unknown=only_unknown
                    )
                    mirrored = live.nearest(tx, VOICE_MODEL, query, 50, only_unknown=only_unknown)
                    assert [s for s, _ in mirrored] == [s for s, _ in fresh]
                    assert [v for _, v in mirrored] == pytest.approx([v for _, v in fresh])
                    if only_unknown is None:
                        assert len(mirrored) == speakers
