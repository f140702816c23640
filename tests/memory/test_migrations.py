from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlean

from inference.types import Turn
from memory import SpeakerMemory
from memory.errors import StoreError
from memory.migrations import latest_version
from memory.types import GE2E_MODEL_ID
from tests.memory.backends import sqlite_only
from tests.memory.fakes import Voices, make_result


def as_version(path: Path, version: int, *undo: str) -> None:
    """Turn a current store back into schema `version`: run the statements that undo the
    later migrations and forget those migrations, as an older release left the file."""
    conn = sqlean.connect(str(path))
    for statement in undo:
        conn.execute(statement)
    conn.execute("DELETE FROM schema_version WHERE version > ?", (version,))
    conn.commit()
    conn.close()


def test_migrates_from_empty_and_reopens(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "nested" / "dir" / "db.sqlite"
    store = SpeakerMemory(path)
    conversation = store.create_conversation(title="x")
    store.ingest(conversation.id, make_result(voices, ["ann"], 3))
    store.close()
    conn = sqlean.connect(str(path))
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, latest_version() + 1))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"speaker", "segment", "segment_fts", "segment_text_bits_384"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    reopened = SpeakerMemory(path)
    try:
        assert len(reopened.get_conversation(conversation.id).segments) == 3
        assert reopened.list_speakers()[0].speaker.label == "Unknown 1"
    finally:
        reopened.close()


@sqlite_only
def test_connection_settings(store: SpeakerMemory) -> None:
    with store._db.read() as tx:  # the settings every pooled connection gets
        assert tx.scalar("PRAGMA foreign_keys") == 1
        assert tx.scalar("PRAGMA busy_timeout") >= 5000
        assert tx.scalar("SELECT vec_version()").startswith("v")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    SpeakerMemory(path).close()
    conn = sqlean.connect(str(path))
    conn.execute("INSERT INTO schema_version VALUES (999, 'future', 'now')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 999, newer than this program's"):
        SpeakerMemory(path)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SpeakerMemory(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_import_memory_loads_no_ml_library() -> None:
    code = (
        "import sys, memory\n"
        "heavy = [m for m in ('torch', 'faster_whisper', 'sentence_transformers', 'resemblyzer',"
        " 'transformers', 'ctranslate2', 'onnxruntime', 'inference') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_older_store_is_migrated_forward(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "db.sqlite"
    store = SpeakerMemory(path)
    conversation = store.create_conversation(title="old")
    store.ingest(conversation.id, make_result(voices, ["ann"], 2))
    store.close()
    # Make it a version-1 store again, as an older release left it.
    as_version(path, 1, "DROP TABLE live_session", "DROP TABLE enrollment_clip",
               "DROP TABLE diarization_turn", "DROP INDEX segment_excluded")
    reopened = SpeakerMemory(path)
    try:
        assert len(reopened.get_conversation(conversation.id).segments) == 2
    finally:
        reopened.close()
    conn = sqlean.connect(str(path))
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"segment_excluded", "diarization_turn_conversation",
            "enrollment_clip_speaker"} <= indexes
    assert "live_session" in tables
    assert versions == list(range(1, latest_version() + 1))


def test_a_store_from_before_turns_gains_them(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "db.sqlite"
    store = SpeakerMemory(path)
    old = store.create_conversation(title="old")
    store.ingest(old.id, make_result(voices, ["ann", "bob"], 4))
    store.close()
    # A version-2 store, as the release before overlapping speech left it.
    as_version(path, 2, "DROP TABLE live_session", "DROP TABLE enrollment_clip",
               "DROP TABLE diarization_turn")
    reopened = SpeakerMemory(path)
    try:
        detail = reopened.get_conversation(old.id)
        assert detail.turns == [] and all(s.overlapped_by == [] for s in detail.segments)
        new = reopened.create_conversation(title="new")
        result = make_result(voices, ["ann", "bob"], 4, seed=1)
        result.turns.append(Turn(1.0, 2.0, "SPEAKER_01"))  # bob over the end of segment 0
        reopened.ingest(new.id, result)
        segments = reopened.get_conversation(new.id).segments
        assert [s.label for s in segments[0].overlapped_by] == ["Unknown 2"]
        assert len(reopened.get_conversation(new.id).turns) == 5
    finally:
        reopened.close()


def test_a_store_from_before_enrollment_clips_gains_them(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "db.sqlite"
    store = SpeakerMemory(path)
    store.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 12.0)
    conversation = store.create_conversation(title="old", audio_path=str(tmp_path / "old.wav"))
    store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 4,
                                              voice_model_id=GE2E_MODEL_ID))
    store.identify("Bob", speaker="Unknown 1")
    store.close()
    # A version-3 store, as the release before enrollment clips were kept left it.
    as_version(path, 3, "DROP TABLE live_session", "DROP TABLE enrollment_clip")
    reopened = SpeakerMemory(path)
    try:
        ann = reopened.resolve_speaker("Ann")
        audio = reopened.profile_audio(ann.id)
        assert audio.clips == []  # enrolled before clips were kept
        assert [c.conversation_id for c in audio.conversations] == [conversation.id]
        # Events recorded before version 4 still undo; new enrollments keep their clip.
        assert "Bob" in reopened.undo().message
        assert [s.speaker.label for s in reopened.list_speakers(kind="unknown")] == ["Unknown 1"]
        enrolled = reopened.enroll("Cy", voices.clips("cy", 2), GE2E_MODEL_ID, "cy.wav",
                                   10.0, clip_path=str(tmp_path / "cy.wav"), clip_sha256="ab")
        clips = reopened.profile_audio(enrolled.speaker.id).clips
        assert [(c.path, c.sha256, c.speech_seconds) for c in clips] == [
            (str(tmp_path / "cy.wav"), "ab", 10.0)]
    finally:
        reopened.close()
    conn = sqlean.connect(str(path))
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    conn.close()
    assert versions == list(range(1, latest_version() + 1))


def test_a_failing_migration_leaves_no_trace(tmp_path: Path) -> None:
    from memory import migrations

    path = tmp_path / "db.sqlite"
    SpeakerMemory(path).close()

    def broken(tx: object) -> None:
        from memory.db import Tx

        assert isinstance(tx, Tx)
        tx.run("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    migrations.MIGRATIONS.append(migrations.Migration(999, "broken", broken))
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            SpeakerMemory(path)
    finally:
        migrations.MIGRATIONS.pop()
    conn = sqlean.connect(str(path))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    conn.close()
    assert "half_done" not in tables and 999 not in versions
