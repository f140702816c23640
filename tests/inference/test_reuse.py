"""RecordingEmbedder: the diarizer's window vectors, remembered with where they lie."""

from __future__ import annotations

import threading

import numpy as np
from inference_fakes import CountingVoiceEmbedder, tone_audio

from inference.reuse import RecordingEmbedder


def test_views_into_the_recording_are_recorded_with_their_times() -> None:
    audio = tone_audio(10.0)
    recorder = RecordingEmbedder(CountingVoiceEmbedder())
    with recorder.recording(audio) as spans:
        vectors = recorder.embed([audio.slice(1.0, 2.5), audio.slice(4.0, 5.0)])
    assert [(s, e) for s, e, _ in spans] == [(1.0, 2.5), (4.0, 5.0)]
    assert all(np.array_equal(v, w) for (_, _, v), w in zip(spans, vectors, strict=True))
    assert recorder.model_id == "fake-voice" and recorder.dimension == 16


def test_copies_other_recordings_and_calls_outside_a_recording_are_not_recorded() -> None:
    audio, other = tone_audio(10.0), tone_audio(10.0)
    recorder = RecordingEmbedder(CountingVoiceEmbedder())
    recorder.embed([audio.slice(0.0, 1.0)])  # nothing is being recorded
    with recorder.recording(audio) as spans:
        recorder.embed([audio.slice(1.0, 2.0).copy(), other.slice(1.0, 2.0),
                        audio.samples[16_000:48_000:2]])  # a copy, another buffer, a stride
    assert spans == []


def test_each_thread_records_only_its_own_windows() -> None:
    recorder = RecordingEmbedder(CountingVoiceEmbedder())
    audios = [tone_audio(6.0), tone_audio(6.0)]
    results: dict[int, list[tuple[float, float]]] = {}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        with recorder.recording(audios[i]) as spans:
            barrier.wait()
            recorder.embed([audios[i].slice(i, i + 1.5)])
            barrier.wait()
        results[i] = [(s, e) for s, e, _ in spans]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: [(0.0, 1.5)], 1: [(1.0, 2.5)]}
