"""From overlapping chunks to regions and turns: changes cut regions, overlap kept, the
exclusive view single."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.reconstruction import (
    ReconstructionConfig,
    reconstruct,
    speaker_regions,
    with_overlap,
)
from inference.types import Turn

STEP = 0.1  # a coarse frame grid keeps the expected times readable


@dataclass(frozen=True)
class ChunkFrames:
    activations: np.ndarray
    chunk_starts: np.ndarray
    frame_step: float
    frame_duration: float


def chunk_frames(per_chunk: list[np.ndarray], starts: list[float]) -> ChunkFrames:
    return ChunkFrames(np.stack(per_chunk).astype(np.float32), np.asarray(starts, np.float64),
                       frame_step=STEP, frame_duration=STEP)


def activity(frames: int, *runs: tuple[int, int, int]) -> np.ndarray:
    """(frames, 3) binary activity; runs are (local speaker, first frame, stop frame)."""
    out = np.zeros((frames, 3), np.float32)
    for speaker, first, stop in runs:
        out[first:stop, speaker] = 1
    return out


def spans(turns: list, label: str) -> list[tuple[float, float]]:
    return [(t.start, t.end) for t in turns if t.label == label]


def test_overlap_gives_two_turns_and_the_exclusive_view_one_speaker() -> None:
    # One 4 s chunk: speaker A 0-2.5 s, B 2-4 s, both talk 2-2.5 s.
    frames = chunk_frames([activity(40, (0, 0, 25), (1, 20, 40))], [0.0])
    result = reconstruct(frames, np.array([[0, 1, -1]]), 2, duration=4.0,
                         config=ReconstructionConfig(min_duration_off=0.0))
    assert spans(result.turns, "0") == [(0.0, 2.5)]
    assert spans(result.turns, "1") == [(2.0, 4.0)]
    owners = [t.label for t in result.exclusive]
    assert owners == ["0", "1"]
    assert result.exclusive[0].end <= result.exclusive[1].start  # no overlap left


def test_chunks_are_stitched_through_their_clusters() -> None:
    # Two chunks overlapping by 2 s; the same voice is local speaker 0 in the first chunk and
    # local speaker 2 in the second: clustering says both are cluster 0.
    first = activity(40, (0, 0, 40))
    second = activity(40, (2, 0, 20), (1, 20, 40))
    frames = chunk_frames([first, second], [0.0, 2.0])
    result = reconstruct(frames, np.array([[0, -1, -1], [-1, 1, 0]]), 2, duration=6.0)
    assert spans(result.turns, "0") == [(0.0, 4.0)]
    assert spans(result.turns, "1") == [(4.0, 6.0)]


def test_unassigned_speakers_are_left_out_and_short_pauses_filled() -> None:
    frames = chunk_frames([activity(40, (0, 0, 10), (0, 12, 30), (2, 30, 40))], [0.0])
    cfg = ReconstructionConfig(min_duration_off=0.5)
    result = reconstruct(frames, np.array([[0, -1, -1]]), 1, duration=4.0, config=cfg)
    assert spans(result.turns, "0") == [(0.0, 3.0)]


def test_a_pause_someone_else_speaks_in_is_not_filled() -> None:
    # A: 0-1 s and 1.3-2 s; B answers in A's pause (1.0-1.3 s).
    frames = chunk_frames([activity(20, (0, 0, 10), (0, 13, 20), (1, 10, 13))], [0.0])
    cfg = ReconstructionConfig(min_duration_off=0.5)
    result = reconstruct(frames, np.array([[0, 1, -1]]), 2, duration=2.0, config=cfg)
    assert spans(result.turns, "0") == [(0.0, 1.0), (1.3, 2.0)]


def test_frames_past_the_end_of_the_audio_are_dropped() -> None:
    frames = chunk_frames([activity(40, (0, 0, 40))], [0.0])
    result = reconstruct(frames, np.array([[0, -1, -1]]), 1, duration=2.5)
    assert spans(result.turns, "0") == [(0.0, 2.5)]


# ----------------------------------------------------------------------------- regions

def regions_of(frames: ChunkFrames, duration: float) -> list[tuple[float, float]]:
    return [(round(r.start, 3), round(r.end, 3)) for r in speaker_regions(frames, duration)]


def test_regions_end_where_one_voice_gives_way_to_another() -> None:
    # A 0-2 s, straight into B 2-3 s; a pause; B again 3.5-4 s.
    frames = chunk_frames([activity(40, (0, 0, 20), (1, 20, 30), (1, 35, 40))], [0.0])
    assert regions_of(frames, 4.0) == [(0.0, 2.0), (2.0, 3.0), (3.5, 4.0)]


def test_an_overlap_ends_its_region_when_the_next_voice_goes_on_alone() -> None:
    frames = chunk_frames([activity(40, (0, 0, 25), (1, 20, 40))], [0.0])
    assert regions_of(frames, 4.0) == [(0.0, 2.5), (2.5, 4.0)]


def test_each_frame_is_read_in_its_most_central_chunk() -> None:
    # The first chunk hears A and B (change at 3.5 s) as one local speaker; the second chunk,
    # centred nearer to 3.5 s, hears the change.
    first = activity(40, (0, 0, 40))
    second = activity(40, (0, 0, 15), (1, 15, 40))
    frames = chunk_frames([first, second], [0.0, 2.0])
    assert regions_of(frames, 6.0) == [(0.0, 3.5), (3.5, 6.0)]


def test_silence_has_no_regions() -> None:
    assert regions_of(chunk_frames([activity(40)], [0.0]), 4.0) == []


# ----------------------------------------------------------------------------- overlap

def test_the_second_voice_of_an_overlap_is_added() -> None:
    # A 0-2.5 s, B 2-4 s: the voice windows gave one speaker at a time, changing at 2.25 s.
    frames = chunk_frames([activity(40, (0, 0, 25), (1, 20, 40))], [0.0])
    alone = [Turn(0.0, 2.25, "A"), Turn(2.25, 4.0, "B")]
    turns = with_overlap(frames, alone, 4.0)
    assert spans(turns, "A") == [(0.0, 2.5)]
    assert spans(turns, "B") == [(2.0, 4.0)]


def test_two_local_speakers_of_one_chunk_are_never_one_speaker() -> None:
    # The windows heard A until 3.5 s (B's first words included); B's local speaker talks
    # alone mostly inside A's labelled time, so on its own it would be taken for A. As the
    # chunk's other local speaker it must be B, and the overlap 2-2.5 s gets both.
    frames = chunk_frames([activity(40, (0, 0, 25), (1, 20, 40))], [0.0])
    alone = [Turn(0.0, 3.5, "A"), Turn(3.5, 4.0, "B")]
    turns = with_overlap(frames, alone, 4.0)
    assert spans(turns, "A") == [(0.0, 3.5)]
    assert spans(turns, "B") == [(2.0, 2.5), (3.5, 4.0)]


def test_no_turns_give_no_overlap() -> None:
    frames = chunk_frames([activity(40, (0, 0, 25), (1, 20, 40))], [0.0])
    assert with_overlap(frames, [], 4.0) == []
