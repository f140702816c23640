from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.types import Turn
from memory import SpeakerMemory
from memory.backup import BOOKKEEPING_KEYS, TABLES
from memory.errors import BackupError, ImportNotEmpty
from memory.migrations import latest_version
from tests.memory.backends import open_memory
from tests.memory.fakes import TEXT_MODEL, VOICE_MODEL, Voices, make_result, text_vector
from tests.memory.measure import peak_allocation
from tests.memory.state import centroids, rows


def fill(store: SpeakerMemory, voices: Voices) -> None:
    store.enroll("Bob", voices.clips("bob", 3), VOICE_MODEL, "bob.wav", 12.5,
                 clip_path="/data/audio/enroll/bob.wav", clip_sha256="b" * 64)
    for seed, names in enumerate([["ann", "bob"], ["carl", "ann"]]):
        conversation = store.create_conversation(title=f"c{seed}", sha256=f"sha{seed}")
        result = make_result(voices, names, 5, seed=seed)
        result.turns.append(Turn(1.0, 2.5, "SPEAKER_01"))  # overlapping speech
        store.ingest(conversation.id, result)
    store.identify("Ann", speaker="Unknown 1")
    store.merge("Unknown 2", "Bob")
    store.undo()
    store.mark_misidentified(2)
    store.create_conversation(title="queued one")


def test_round_trip_reproduces_every_row(store: SpeakerMemory, voices: Voices,
                                         tmp_path: Path) -> None:
    fill(store, voices)
    backup = tmp_path / "backup.json"
    store.export_json(backup)
    copy = open_memory(tmp_path / "copy" / "db.sqlite")
    try:
        copy.import_json(backup)
        for table in TABLES:
            if table == "meta":
                continue
            ours = [r for r in rows(store.db_path, table)
                    if table != "sqlite_sequence" or r[0] in TABLES]
            theirs = [r for r in rows(copy.db_path, table)
                      if table != "sqlite_sequence" or r[0] in TABLES]
            assert sorted(theirs) == sorted(ours), table
        original_meta = [r for r in rows(store.db_path, "meta") if r[0] not in BOOKKEEPING_KEYS]
        copied_meta = [r for r in rows(copy.db_path, "meta") if r[0] not in BOOKKEEPING_KEYS]
        assert copied_meta == original_meta
        assert len(rows(copy.db_path, "diarization_turn")) == 2 * (5 + 1)
        assert [c.path for c in copy.profile_audio("Bob").clips] == ["/data/audio/enroll/bob.wav"]
        # Derived data is rebuilt: centroids, full text, semantic vectors all work.
        assert centroids(copy.db_path).keys() == centroids(store.db_path).keys()
        assert copy.list_speakers() == store.list_speakers()
        assert copy.identity_history() == store.identity_history()
        for conversation_id in (1, 2):
            detail = copy.get_conversation(conversation_id)
            assert detail == store.get_conversation(conversation_id)
            assert detail.segments[0].overlapped_by and len(detail.turns) == 6
        word = store.get_segment(1).text.split()[0]
        assert [h.segment for h in copy.search_keyword(word)] == [
            h.segment for h in store.search_keyword(word)]
        query = text_vector(store.get_segment(3).text)
        assert [h.segment.id for h in copy.search_semantic(query, TEXT_MODEL)] == [
            h.segment.id for h in store.search_semantic(query, TEXT_MODEL)]
        # Exporting the copy gives the same document.
        second = tmp_path / "second.json"
        copy.export_json(second)
        assert json.loads(second.read_text()) == json.loads(backup.read_text())
        # The copy keeps working: a known voice is recognised, ids continue.
        conversation = copy.create_conversation(title="after restore")
        result = copy.ingest(conversation.id, make_result(voices, ["ann"], 2, seed=9))
        assert result.decisions[0].speaker.name == "Ann"
        assert result.segment_ids[0] == 11
    finally:
        copy.close()


def test_import_refuses_a_non_empty_store(store: SpeakerMemory, voices: Voices,
                                          tmp_path: Path) -> None:
    fill(store, voices)
    backup = tmp_path / "b.json"
    store.export_json(backup)
    before = rows(store.db_path, "segment")
    with pytest.raises(ImportNotEmpty, match="already holds data"):
        store.import_json(backup)
    assert rows(store.db_path, "segment") == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a readable JSON backup"),
        ('{"format": "other"}', "is not a speaker-memory backup"),
        ('{"format": "speaker-memory-backup", "schema_version": 999, "tables": {}}',
         "has schema version 999"),
        (json.dumps({"format": "speaker-memory-backup", "schema_version": latest_version(),
                     "tables": {}}), "lacks some of the tables"),
    ],
)
def test_bad_backup_files(store: SpeakerMemory, tmp_path: Path, content: str,
                          message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BackupError, match=message):
        store.import_json(path)
    with pytest.raises(BackupError, match="no backup file"):
        store.import_json(tmp_path / "missing.json")
    assert store.list_speakers() == []


def test_an_open_store_sees_what_it_imported(store: SpeakerMemory, voices: Voices,
                                              tmp_path: Path) -> None:
    # Caches filled before the import (speaker list, voice centroids) must not outlive it.
    fill(store, voices)
    backup = tmp_path / "backup.json"
    store.export_json(backup)
    copy = open_memory(tmp_path / "copy" / "db.sqlite")
    try:
        assert copy.list_speakers() == []
        assert copy.match_voice(voices.clips("bob", 2), VOICE_MODEL) == []
        copy.import_json(backup)
        assert [s.speaker.label for s in copy.list_speakers()] == [
            s.speaker.label for s in store.list_speakers()
        ]
        assert copy.match_voice(voices.clips("bob", 2), VOICE_MODEL)[0].speaker.name == "Bob"
    finally:
        copy.close()


def test_export_holds_a_batch_of_rows_not_the_store(store: SpeakerMemory, voices: Voices,
                                                    tmp_path: Path) -> None:
    # Building the whole document first took 4.6x the store's size in RAM (3.9 GB for 848 MB):
    # now the peak stays that of a batch of rows, whatever the store's size.
    def grow(conversations: range) -> None:
        for seed in conversations:
            conversation = store.create_conversation(title=f"long {seed}", sha256=f"long{seed}")
            store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 400, seed=seed))

    def export(name: str) -> tuple[int, int]:
        backup = tmp_path / name
        peak = peak_allocation(lambda: store.export_json(backup))
        assert json.loads(backup.read_text())["tables"]["segment"]["rows"]  # one document
        return backup.stat().st_size, peak

    grow(range(2))
    small, small_peak = export("small.json")
    grow(range(2, 8))
    large, large_peak = export("large.json")
    assert large > 3.5 * small
    assert large_peak < 1.3 * small_peak, (small_peak, large_peak)
