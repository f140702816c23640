"""Concurrency of the memory layer (issue 2, section 5), black-box through `SpeakerMemory`.

One thread ingests recordings while another identifies and renames (and a third reads):
no deadlock (threads are joined with a timeout), no lost update (every ingested segment is
stored, the last name given wins, every segment of a named voice carries that name), and no
"database is locked" (or any other error) escapes to a caller. The same again with two
`SpeakerMemory` instances on one file, as a server and a CLI would open it, and with two
processes. Each on both backends (on PostgreSQL: two API servers on one database).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from memory import SpeakerMemory
from memory.types import IngestResult
from tests.memory.backends import Backend
from tests.memory.fakes import Voices, make_result

JOIN_TIMEOUT_S = 180
RECORDINGS = 20
MIN_RENAMES = 10
# make_result labels clusters SPEAKER_00, SPEAKER_01... in the order of the voices given.
RECORDING_VOICES = ["ann", "cid", "dee"]
ANN, DEE = "SPEAKER_00", "SPEAKER_02"


class Worker(threading.Thread):
    """A thread that records any exception instead of losing it."""

    def __init__(self, name: str, body: Callable[[], None], start_together: threading.Barrier):
        super().__init__(name=name, daemon=True)
        self.body = body
        self.start_together = start_together
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.start_together.wait(timeout=30)
            self.body()
        except BaseException:
            self.error = traceback.format_exc()


def run_together(*workers: Worker) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT_S)
    stuck = [w.name for w in workers if w.is_alive()]
    assert not stuck, f"deadlock: {stuck} still running after {JOIN_TIMEOUT_S} s"
    errors = {w.name: w.error for w in workers if w.error}
    assert not errors, "errors escaped to callers:\n" + "\n".join(
        f"--- {name}\n{error}" for name, error in errors.items()
    )
    for worker in workers:  # belt and braces: the message callers must never see
        assert "database is locked" not in (worker.error or "")


def scenario(writer: SpeakerMemory, namer: SpeakerMemory, reader: SpeakerMemory) -> None:
    voices = Voices(seed=3)
    first_conv = writer.create_conversation(title="first")
    first = writer.ingest(first_conv.id, make_result(voices, ["ann", "bob"], 8, seed=1))
    ann_id = next(d.speaker.id for d in first.decisions if d.local_label == "SPEAKER_00")

    ingested: list[IngestResult] = []
    names: list[str] = []
    dee_named = threading.Event()
    ops_done: list[int] = []
    renamed_during_ingest: list[int] = []
    ingest_done = threading.Event()
    start = threading.Barrier(3)

    def ingest_recordings() -> None:
        try:
            for i in range(RECORDINGS):
                conv = writer.create_conversation(title=f"recording {i}")
                result = make_result(voices, RECORDING_VOICES, 40, seed=100 + i)
                ingested.append(writer.ingest(conv.id, result))
        finally:
            ingest_done.set()

    def identify_and_rename() -> None:
        namer.identify("Sarah", speaker=ann_id)
        names.append("Sarah")
        ops_done.append(1)
        i = 0
        # keep renaming until the ingest is over, so that the two really overlap
        while i < MIN_RENAMES or not ingest_done.is_set():
            new_name = f"Sarah {i}"
            namer.rename(ann_id, new_name)
            names.append(new_name)
            ops_done.append(1)
            if 0 < len(ingested) < RECORDINGS:
                renamed_during_ingest.append(i)
            i += 1
            time.sleep(0.002)  # a user's pace, not a tight loop: hundreds of renames, not 10k
            if not dee_named.is_set() and ingested:
                dee_segment = next(
                    s for s in namer.get_conversation(ingested[0].conversation_id).segments
                    if s.local_speaker == DEE
                )
                result = namer.identify("Dee", segment_id=dee_segment.id)
                assert result.changed
                ops_done.append(1)
                dee_named.set()

    def read_while_writing() -> None:
        while not ingest_done.is_set():
            reader.search_keyword("budget meeting", limit=5)
            reader.list_speakers()
            reader.list_conversations(limit=5)
            reader.latest_segments(limit=5)

    run_together(
        Worker("ingest", ingest_recordings, start),
        Worker("identify+rename", identify_and_rename, start),
        Worker("reader", read_while_writing, start),
    )

    assert renamed_during_ingest, "the renames never overlapped the ingest; nothing was tested"
    # Every identify/rename made one event, and the last name given is the one kept.
    # (event ids count from 1 and nothing else records events here)
    history = writer.identity_history(limit=1)
    assert history[0].id == len(ops_done)
    assert writer.resolve_speaker(ann_id).name == names[-1]
    if not dee_named.is_set():  # the namer was faster than the first recording: name Dee now
        dee_segment = next(s for s in writer.get_conversation(ingested[0].conversation_id).segments
                           if s.local_speaker == DEE)
        writer.identify("Dee", segment_id=dee_segment.id)

    # Nothing ingested was lost, and every segment sits on an existing speaker.
    assert len(ingested) == RECORDINGS
    speakers = {s.speaker.id: s for s in writer.list_speakers()}
    ann_segments = 0
    for result in [first, *ingested]:
        detail = writer.get_conversation(result.conversation_id)
        assert [s.id for s in detail.segments] == result.segment_ids
        for segment in detail.segments:
            assert segment.speaker is not None, f"segment {segment.id} lost its speaker"
            assert segment.speaker.id in speakers
            if segment.local_speaker == ANN:
                # ann's voice, whether ingested before or after the renames, carries the last name
                assert segment.speaker.id == ann_id and segment.speaker.name == names[-1]
                ann_segments += 1
            if result is not first and segment.local_speaker == DEE:
                assert segment.speaker.name == "Dee", (
                    f"segment {segment.id} of Dee's voice is on {segment.speaker.label}"
                )
    assert speakers[ann_id].segment_count == ann_segments


def test_one_shared_instance_ingest_while_identify_and_rename(
    backend: Backend, tmp_path: Path
) -> None:
    memory = backend.open(tmp_path / "speaker_memory.db")
    try:
        scenario(memory, memory, memory)
    finally:
        memory.close()


def test_two_instances_on_one_file_ingest_while_identify_and_rename(
    backend: Backend, tmp_path: Path
) -> None:
    """A server and a CLI on the same data directory: separate connections, one file (or
    two API servers on one PostgreSQL database)."""
    path = tmp_path / "speaker_memory.db"
    writer = backend.open(path)
    namer = backend.open(path)
    try:
        scenario(writer, namer, namer)
    finally:
        namer.close()
        writer.close()


CHILD_INGEST = """
import json, sys
from pathlib import Path
from memory import SpeakerMemory
from tests.memory.fakes import Voices, make_result
memory = SpeakerMemory(Path(sys.argv[1]), database_url=sys.argv[4] or None)
voices = Voices(seed=3)
ids = []
Path(sys.argv[3]).touch()  # tells the parent that the ingest starts now
for i in range(int(sys.argv[2])):
    conv = memory.create_conversation(title=f"child recording {i}")
    result = make_result(voices, ["ann", "cid"], 40, seed=500 + i)
    ids.append(memory.ingest(conv.id, result).segment_ids)
memory.close()
print(json.dumps(ids))
"""


def test_another_process_ingests_while_this_one_renames(backend: Backend, tmp_path: Path) -> None:
    """Two processes on one data directory (a server and a CLI), or on one PostgreSQL
    database (two API servers): real parallel writers."""
    path = tmp_path / "speaker_memory.db"
    memory = backend.open(path)
    url = "" if backend.postgres is None else backend.postgres.url_for(str(path))
    try:
        voices = Voices(seed=3)
        conv = memory.create_conversation(title="first")
        first = memory.ingest(conv.id, make_result(voices, ["ann", "bob"], 8, seed=1))
        ann_id = first.decisions[0].speaker.id
        root = Path(__file__).resolve().parents[2]
        started = tmp_path / "child-started"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_INGEST, str(path), str(2 * RECORDINGS), str(started),
             url],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        names: list[str] = []
        renames_while_child_ingested = 0
        while child.poll() is None or len(names) < MIN_RENAMES:
            name = f"Sarah {len(names)}"
            memory.rename(ann_id, name)
            names.append(name)
            renames_while_child_ingested += started.exists() and child.poll() is None
            time.sleep(0.002)
        out, err = child.communicate(timeout=JOIN_TIMEOUT_S)
        assert child.returncode == 0, err[-3000:]
        assert "database is locked" not in err
        assert renames_while_child_ingested > 0, "no rename overlapped the other process's ingest"

        ingested = json.loads(out)
        assert len(ingested) == 2 * RECORDINGS
        assert memory.resolve_speaker(ann_id).name == names[-1]
        for segment_ids in ingested:
            for sid in segment_ids:
                segment = memory.get_segment(sid)
                if segment.local_speaker == ANN:
                    assert segment.speaker is not None and segment.speaker.id == ann_id
                    assert segment.speaker.name == names[-1]
    finally:
        memory.close()
