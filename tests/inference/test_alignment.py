"""Word-level alignment of transcript and diarization, with deterministic fakes."""

from __future__ import annotations

import numpy as np
from inference_fakes import CountingVoiceEmbedder, ScriptedDiarizer, segment, tone_audio

from inference.alignment import (
    TurnIndex,
    align,
    attach_voice_vectors,
    extend_to_turns,
    windows_of,
)
from inference.types import (
    Diarization,
    PipelineSegment,
    Transcript,
    TranscriptSegment,
    Turn,
    Word,
)


def transcript(*segments: TranscriptSegment) -> Transcript:
    return Transcript(list(segments), "en", "fake-asr")


def test_each_word_takes_the_turn_it_overlaps_most() -> None:
    index = TurnIndex([Turn(0.0, 2.0, "A"), Turn(2.0, 5.0, "B")])
    assert index.speaker_of(1.5, 2.2, max_snap=1.0) == "A"  # 0.5 s in A, 0.2 s in B
    assert index.speaker_of(1.9, 2.6, max_snap=1.0) == "B"
    assert index.speaker_of(4.0, 4.0, max_snap=1.0) == "B"  # zero-length word inside B


def test_words_in_gaps_snap_to_the_nearest_turn_within_reach() -> None:
    index = TurnIndex([Turn(0.0, 2.0, "A"), Turn(6.0, 8.0, "B")])
    assert index.speaker_of(2.3, 2.6, max_snap=1.0) == "A"
    assert index.speaker_of(5.2, 5.5, max_snap=1.0) == "B"
    assert index.speaker_of(3.5, 4.0, max_snap=1.0) is None  # too far from both
    assert TurnIndex([]).speaker_of(0.0, 1.0, max_snap=1.0) is None


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    # "hello there how are you" at 0.0, 0.5, ... 2.0; B speaks from 1.0.
    seg = segment("hello there how are you", 0.0)
    out = align(transcript(seg), [Turn(0.0, 0.95, "A"), Turn(0.95, 3.0, "B")])
    assert [(s.local_speaker, s.text) for s in out] == [
        ("A", "hello there"), ("B", "how are you")]
    assert out[0].start == 0.0 and out[0].end == seg.words[1].end
    assert out[1].start == seg.words[2].start and out[1].end == seg.end
    assert [w.word for w in out[1].words] == ["how", "are", "you"]  # leading space stripped


def test_a_lone_short_word_inside_one_speakers_sentence_is_not_a_speaker_change() -> None:
    seg = segment("we will ship it friday", 0.0)
    # A tiny B turn under the third word only: a timing error, not a change of speaker.
    turns = [Turn(0.0, 1.0, "A"), Turn(1.0, 1.4, "B"), Turn(1.4, 3.0, "A")]
    out = align(transcript(seg), turns)
    assert [(s.local_speaker, s.text) for s in out] == [("A", "we will ship it friday")]


def test_a_word_at_the_edge_of_a_segment_keeps_its_own_speaker() -> None:
    seg = segment("yes okay", 0.0)
    out = align(transcript(seg), [Turn(0.0, 0.45, "A"), Turn(0.45, 2.0, "B")])
    assert [(s.local_speaker, s.text) for s in out] == [("A", "yes"), ("B", "okay")]


def test_segments_without_words_take_the_turn_they_overlap_most() -> None:
    seg = TranscriptSegment(1.0, 3.0, "mm-hmm", [])
    out = align(transcript(seg), [Turn(0.0, 1.5, "A"), Turn(1.5, 4.0, "B")])
    assert [(s.local_speaker, s.text, s.words) for s in out] == [("B", "mm-hmm", [])]


def test_no_turns_gives_segments_without_speaker() -> None:
    out = align(transcript(segment("nobody here", 0.0)), [])
    assert [(s.local_speaker, s.text) for s in out] == [(None, "nobody here")]


def test_segment_vectors_reuse_the_windows_inside_the_segment() -> None:
    turns = [Turn(0.0, 6.0, "A"), Turn(6.0, 12.0, "B")]
    diarizer = ScriptedDiarizer(turns, {"A": "alice", "B": "bob"})
    audio = tone_audio(12.0)
    diarization = diarizer.diarize(audio)
    segments = align(transcript(segment("one two three four five six", 0.5, step=0.9),
                                segment("seven eight nine ten", 6.5, step=1.0),
                                segment("ok", 11.0, step=0.5)),
                     turns)
    embedder = CountingVoiceEmbedder()
    attach_voice_vectors(segments, windows_of(diarization), audio, embedder)
    first, second, short = segments
    assert short.voice_vector is None  # 0.4 s: too little speech for a voice vector
    assert embedder.batches == []  # every long segment reused the diarizer's windows
    alice, bob = diarization.vectors["A"][0], diarization.vectors["B"][0]
    assert first.voice_vector is not None and second.voice_vector is not None
    assert float(first.voice_vector @ alice) > 0.95 and float(first.voice_vector @ bob) < 0.7
    assert float(second.voice_vector @ bob) > 0.95
    assert np.isclose(np.linalg.norm(first.voice_vector), 1.0, atol=1e-5)


def test_segment_vectors_fall_back_to_one_batched_embedding_without_windows() -> None:
    turns = [Turn(0.0, 6.0, "A"), Turn(6.0, 12.0, "B")]
    audio = tone_audio(12.0)
    diarization = ScriptedDiarizer(turns, {"A": "alice", "B": "bob"}, with_spans=False).diarize(
        audio)
    segments = align(transcript(segment("one two three four", 0.5),
                                segment("five six seven eight", 6.5)), turns)
    embedder = CountingVoiceEmbedder()
    assert windows_of(diarization) == []
    attach_voice_vectors(segments, windows_of(diarization), audio, embedder)
    assert embedder.batches == [2]  # one call for every segment that needed a vector
    assert all(s.voice_vector is not None for s in segments)


def test_segments_get_no_vector_without_windows_or_embedder() -> None:
    turns = [Turn(0.0, 6.0, "A")]
    diarization = Diarization(turns, {"A": []}, "fake-voice")
    segments = align(transcript(segment("one two three four", 0.5)), turns)
    attach_voice_vectors(segments, windows_of(diarization), tone_audio(6.0), None)
    assert segments[0].voice_vector is None


def test_text_is_rebuilt_from_whisper_words() -> None:
    ws = [Word(" Don't", 0.0, 0.3, 0.9), Word(" stop.", 0.3, 0.6, 0.9)]
    out = align(transcript(TranscriptSegment(0.0, 0.6, "Don't stop.", ws)),
                [Turn(0.0, 1.0, "A")])
    assert out[0].text == "Don't stop."


def _seg(start: float, end: float, label: str | None) -> PipelineSegment:
    return PipelineSegment(start, end, "text", [Word("text", start, end, 0.9)], label)


def test_segment_edges_move_out_to_their_speakers_turn_when_near() -> None:
    turns = [Turn(1.0, 4.0, "A"), Turn(4.0, 6.0, "B")]
    segments = [_seg(1.3, 3.7, "A"), _seg(4.4, 5.8, "B")]
    extend_to_turns(segments, turns, max_extend=0.5)
    assert [(s.start, s.end) for s in segments] == [(1.0, 4.0), (4.0, 6.0)]
    assert segments[0].words[0].start == 1.3  # words keep Whisper's timings


def test_segment_edges_never_move_far_inwards_or_into_a_neighbour() -> None:
    turns = [Turn(0.0, 10.0, "A")]
    segments = [_seg(2.0, 4.8, "A"), _seg(5.0, 9.2, "A")]
    extend_to_turns(segments, turns, max_extend=1.0)
    # 2.0 s from the turn's start: too far; the gap between the two segments stays.
    assert [(s.start, s.end) for s in segments] == [(2.0, 4.8), (5.0, 10.0)]
    shrinking = [_seg(0.5, 3.0, "A")]
    extend_to_turns(shrinking, [Turn(0.8, 2.8, "A")], max_extend=0.5)
    assert (shrinking[0].start, shrinking[0].end) == (0.5, 3.0)  # words stay inside


def test_segments_only_extend_within_their_own_speakers_turns() -> None:
    turns = [Turn(0.0, 2.0, "B"), Turn(2.0, 5.0, "A")]
    segments = [_seg(2.3, 4.6, "A"), _seg(5.5, 6.0, None)]
    extend_to_turns(segments, turns, max_extend=0.5)
    assert [(s.start, s.end) for s in segments] == [(2.0, 5.0), (5.5, 6.0)]
    extend_to_turns(segments, turns, max_extend=0.0)  # off
    assert [(s.start, s.end) for s in segments] == [(2.0, 5.0), (5.5, 6.0)]
