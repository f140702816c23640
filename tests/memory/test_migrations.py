from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlean
from sqlalchemy import text

from inference.types import Turn
from memory import SpeakerMemory
from memory.errors import StoreError
from memory.migrations import latest_version
from memory.types import GE2E_MODEL_ID
from tests.memory import backends
from tests.memory.backends import Backend, sqlite_only
from tests.memory.fakes import TEXT_MODEL, Voices, make_result, text_vector
from tests.memory.state import query

UNDO = {
    # The statements that take a store of version N back to N - 1.
    8: ("DROP INDEX voiceprint_segment",),
    7: ("DROP TABLE job_progress",),
    6: ("DROP TABLE IF EXISTS segment_text_pending_384",),
    5: ("DROP TABLE live_session",),
    4: ("DROP TABLE enrollment_clip",),
    3: ("DROP TABLE diarization_turn",),
    2: ("DROP INDEX segment_excluded",),
}


def execute(path: Path, *statements: str) -> None:
    """Run statements on the store opened at `path`, whichever backend holds it."""
    postgres = backends.postgres_for(path)
    if postgres is None:
        conn = sqlean.connect(str(path))
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return
    with postgres.connect() as pg:
        pg.execute(f"SET search_path = {postgres.schema_for(str(path))}, public")
        for statement in statements:
            pg.execute(statement)


def as_version(path: Path, version: int, *, legacy: bool = True) -> None:
    """Turn a current store back into schema `version`, as an older release left it: undo
    the later revisions, and record the version in the old runner's `schema_version` table
    (`legacy`, the releases before Alembic) or as Alembic's revision."""
    undo = [s for v in range(latest_version(), version, -1) for s in UNDO[v]]
    if legacy:
        record = [
            "DROP TABLE alembic_version",
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)",
            *(f"INSERT INTO schema_version VALUES ({v}, 'v{v}', 'then')"
              for v in range(1, version + 1)),
        ]
    else:
        record = [f"UPDATE alembic_version SET version_num = '{version:04d}'"]
    execute(path, *undo, *record)


def revision(path: Path) -> list[str]:
    return [str(r[0]) for r in query(path, "SELECT version_num FROM alembic_version")]


def test_migrates_from_empty_and_reopens(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "nested" / "dir" / "db.sqlite"
    store = SpeakerMemory(path)
    conversation = store.create_conversation(title="x")
    store.ingest(conversation.id, make_result(voices, ["ann"], 3))
    store.close()
    assert revision(path) == [f"{latest_version():04d}"]
    conn = sqlean.connect(str(path))
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
        assert tx.value(text("PRAGMA foreign_keys")) == 1
        assert tx.value(text("PRAGMA busy_timeout")) >= 5000
        assert tx.value(text("SELECT vec_version()")).startswith("v")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    SpeakerMemory(path).close()
    execute(path, "UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(StoreError, match="schema version 999, newer than this program's"):
        SpeakerMemory(path)
    as_version(path, latest_version())  # a release before Alembic, newer still
    execute(path, "INSERT INTO schema_version VALUES (999, 'future', 'now')")
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


@pytest.mark.parametrize("legacy", [True, False], ids=["old-runner", "alembic"])
@pytest.mark.parametrize("version", range(1, latest_version()))
def test_a_store_of_every_older_version_is_upgraded(
    backend: Backend, tmp_path: Path, voices: Voices, version: int, legacy: bool
) -> None:
    """Each earlier schema version, recorded by the runner before Alembic or by Alembic,
    on both backends: opening the store upgrades it to the head, with every row kept."""
    path = tmp_path / "db.sqlite"
    store = backend.open(path)
    conversation = store.create_conversation(title="old")
    store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 3))
    store.identify("Ann", speaker="Unknown 1")
    store.close()
    as_version(path, version, legacy=legacy)
    if not legacy:
        assert revision(path) == [f"{version:04d}"]
    reopened = backend.open(path)
    try:
        assert reopened._schema_version == latest_version()
        segments = reopened.get_conversation(conversation.id).segments
        assert [s.speaker.label if s.speaker else None for s in segments] == [
            "Ann", "Unknown 2", "Ann"]
        later = reopened.create_conversation(title="new")
        reopened.ingest(later.id, make_result(voices, ["ann"], 2, seed=4))
        assert reopened.undo().message.startswith("Undid")
        probe = text_vector(reopened.get_segment(4).text)
        assert reopened.search_semantic(probe, TEXT_MODEL, limit=1)[0].segment.id == 4
    finally:
        reopened.close()
    assert revision(path) == [f"{latest_version():04d}"]
    tables = {str(r[0]) for r in query(path, TABLES[backends.current.name])}
    assert {"live_session", "enrollment_clip", "diarization_turn"} <= tables
    assert "schema_version" not in tables
    indexes = {str(r[0]) for r in query(path, INDEXES[backends.current.name])}
    assert {"segment_excluded", "diarization_turn_conversation", "voiceprint_segment"} <= indexes


TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}
INDEXES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
}


def test_a_store_from_before_turns_gains_them(tmp_path: Path, voices: Voices) -> None:
    path = tmp_path / "db.sqlite"
    store = SpeakerMemory(path)
    old = store.create_conversation(title="old")
    store.ingest(old.id, make_result(voices, ["ann", "bob"], 4))
    store.close()
    # A version-2 store, as the release before overlapping speech left it.
    as_version(path, 2)
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
    as_version(path, 3)
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
    assert revision(path) == [f"{latest_version():04d}"]


def test_a_failing_migration_leaves_no_trace(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from memory import migrations

    path = tmp_path / "db.sqlite"
    SpeakerMemory(path).close()
    # The history plus one revision that fails half-way.
    scripts = tmp_path / "schema"
    shutil.copytree(migrations.SCRIPT_DIRECTORY, scripts,
                    ignore=shutil.ignore_patterns("__pycache__"))
    head = f"{latest_version():04d}"
    (scripts / "versions" / "r9999_broken.py").write_text(
        "from memory.migrations import current_tx\n"
        f"revision = '9999'\ndown_revision = '{head}'\n"
        "def upgrade() -> None:\n"
        "    current_tx().script('CREATE TABLE half_done (x)')\n"
        "    raise RuntimeError('disk on fire')\n"
    )
    monkeypatch.setattr(migrations, "SCRIPT_DIRECTORY", scripts)
    with pytest.raises(RuntimeError, match="disk on fire"):
        SpeakerMemory(path)
    tables = {str(r[0]) for r in query(path, TABLES["sqlite"])}
    assert "half_done" not in tables and revision(path) == [head]
