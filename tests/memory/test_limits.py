"""Free text the store keeps is bounded where it enters: a 50 MB title once made every
list_conversations answer 105 MB."""

from __future__ import annotations

import pytest

from memory import SpeakerMemory
from memory.errors import InvalidInput, SpeakerNotFound
from memory.limits import (
    MAX_ERROR_LENGTH,
    MAX_LANGUAGE_LENGTH,
    MAX_SOURCE_NAME_LENGTH,
    MAX_TITLE_LENGTH,
)
from memory.speakers import MAX_NAME_LENGTH
from tests.memory.fakes import Voices, make_result


def test_titles_are_bounded_when_stored_and_changed(store: SpeakerMemory) -> None:
    longest = "t" * MAX_TITLE_LENGTH
    conversation = store.create_conversation(title=longest)
    assert conversation.title == longest
    with pytest.raises(InvalidInput, match=f"title is {MAX_TITLE_LENGTH + 1:,} characters long; "
                                           f"at most {MAX_TITLE_LENGTH} are allowed"):
        store.create_conversation(title="t" * (MAX_TITLE_LENGTH + 1))
    with pytest.raises(InvalidInput, match="Give a shorter title"):
        store.update_conversation_title(conversation.id, "x" * 50_000_000)
    assert store.get_conversation_info(conversation.id).title == longest
    assert store.list_conversations().total == 1


def test_file_names_and_language_codes_are_bounded(store: SpeakerMemory, voices: Voices) -> None:
    with pytest.raises(InvalidInput, match="file name is"):
        store.create_conversation(title="a", source_name="n" * (MAX_SOURCE_NAME_LENGTH + 1))
    conversation = store.create_conversation(title="a", source_name="n" * MAX_SOURCE_NAME_LENGTH)
    result = make_result(voices, ["ann"], 2)
    result.language = "x" * (MAX_LANGUAGE_LENGTH + 1)
    with pytest.raises(InvalidInput, match="language code is"):
        store.ingest(conversation.id, result)
    assert store.get_conversation(conversation.id).segments == []


def test_a_long_failure_reason_is_cut(store: SpeakerMemory) -> None:
    conversation = store.create_conversation(title="a")
    failed = store.set_conversation_status(conversation.id, "failed", error="e" * 10**6)
    assert failed.error is not None and len(failed.error) == MAX_ERROR_LENGTH
    assert failed.error.endswith("…")


def test_a_name_longer_than_any_name_is_not_echoed(store: SpeakerMemory) -> None:
    with pytest.raises(SpeakerNotFound) as caught:
        store.resolve_speaker("n" * 1_000_000)
    message = str(caught.value)
    assert len(message) < 200
    assert f"names have at most {MAX_NAME_LENGTH}" in message
