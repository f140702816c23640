"""Identity operations from several processes at once (two API servers on one PostgreSQL
database, or a server and a CLI on one SQLite file): each operation is one transaction, so
whatever order they interleave in, every invariant holds afterwards and undoing every event,
newest first, gives back exactly the store as it was before."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from memory import SpeakerMemory
from tests.memory.backends import Backend
from tests.memory.fakes import Voices, make_result
from tests.memory.test_properties import full_state

PROCESSES = 2
OPERATIONS = 80
JOIN_TIMEOUT_S = 300

CHILD = """
import json, random, sys, time
from pathlib import Path
from memory import SpeakerMemory
from memory.errors import SpeakerMemoryError
memory = SpeakerMemory(Path(sys.argv[1]), database_url=sys.argv[2] or None)
rng = random.Random(int(sys.argv[3]))
names = ["Sarah", "Bob", "Alice", "Dee", "Eve"]
events, refused = [], 0
Path(sys.argv[5] + ".ready").touch()
while not Path(sys.argv[5]).exists():  # both processes start their operations together
    time.sleep(0.01)
speakers = segments = []
for i in range(int(sys.argv[4])):
    if i % 8 == 0:  # choices from a slightly stale view, as a client's would be
        speakers = [s.speaker.id for s in memory.list_speakers()]
        segments = [s.id for s in memory.latest_segments(limit=50)]
    op = rng.choice(["identify", "identify", "rename", "merge", "misidentify", "delete", "undo"])
    try:
        if op == "identify" and speakers:
            done = memory.identify(rng.choice(names), speaker=rng.choice(speakers))
            events.append(done.event_id) if done.changed else None
        elif op == "rename" and speakers:
            events.append(memory.rename(rng.choice(speakers), rng.choice(names) + " 2").event_id)
        elif op == "merge" and len(speakers) > 1:
            a, b = rng.sample(speakers, 2)
            events.append(memory.merge(a, b).event_id)
        elif op == "misidentify" and segments:
            events.append(memory.mark_misidentified(rng.choice(segments)).event_id)
        elif op == "delete" and speakers:
            events.append(memory.delete_speaker(rng.choice(speakers)).event_id)
        elif op == "undo":
            memory.undo()
    except SpeakerMemoryError:
        refused += 1  # the other process changed what this one chose: a clean refusal
memory.close()
print(json.dumps({"events": events, "refused": refused}))
"""


def _fill(memory: SpeakerMemory) -> list[int]:
    voices = Voices(seed=21)
    ids = []
    for i, names in enumerate([["ann", "bob"], ["cid", "ann"], ["dee", "bob", "eve"]]):
        conversation = memory.create_conversation(title=f"recording {i}")
        memory.ingest(conversation.id, make_result(voices, names, 6, seed=i))
        ids.append(conversation.id)
    return ids


def test_identity_operations_from_two_processes_keep_every_invariant(
    backend: Backend, tmp_path: Path
) -> None:
    path = tmp_path / "speaker_memory.db"
    memory = backend.open(path)
    url = "" if backend.postgres is None else backend.postgres.url_for(str(path))
    try:
        conversations = _fill(memory)
        before = full_state(memory, tmp_path, conversations)
        root = Path(__file__).resolve().parents[2]
        go = [tmp_path / f"go-{seed}" for seed in range(PROCESSES)]
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), url, str(seed), str(OPERATIONS),
                 str(go[seed])],
                cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for seed in range(PROCESSES)
        ]
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not all(Path(f"{g}.ready").exists() for g in go) and time.monotonic() < deadline:
            time.sleep(0.01)
        for g in go:
            g.touch()
        reports = []
        for child in children:
            out, err = child.communicate(timeout=JOIN_TIMEOUT_S)
            assert child.returncode == 0, err[-3000:]
            reports.append(json.loads(out))
        made = sorted(e for r in reports for e in r["events"])
        assert len(made) > OPERATIONS // 2, f"too few operations went through: {reports}"

        # Every event either process made is recorded once, under its own id.
        history = memory.identity_history(limit=500)
        assert len(made) == len(set(made))
        assert set(made) <= {e.id for e in history}

        # Every segment is kept, on an existing speaker, and the summaries agree.
        after = full_state(memory, tmp_path, conversations)
        assert [s[:5] for s in after["segments"]] == [s[:5] for s in before["segments"]]
        speakers = {s.speaker.id: s for s in memory.list_speakers()}
        counted: dict[int, int] = {}
        for segment in after["segments"]:
            if segment[5] is not None:
                assert segment[5][0] in speakers, f"segment {segment[0]} on a missing speaker"
                counted[segment[5][0]] = counted.get(segment[5][0], 0) + 1
        assert {k: v.segment_count for k, v in speakers.items() if v.segment_count} == counted
        labels = [s.speaker.label for s in speakers.values()]
        assert len(labels) == len(set(labels)), "two speakers show the same label"

        # Undoing every remaining event, newest first, restores the store exactly.
        for event in memory.identity_history(limit=500):
            if not event.undone:
                memory.undo(event.id)
        restored = full_state(memory, tmp_path, conversations)
        assert restored["segments"] == before["segments"]
        assert restored["speakers"] == before["speakers"]
        assert restored["rows"] == before["rows"]
    finally:
        memory.close()
