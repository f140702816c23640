"""Live audio in (PCM16 at any rate, WebM/Opus as MediaRecorder sends it) and the growing
recording of a session, on a real corpus excerpt."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from inference.audio import decode
from inference.live_audio import Pcm16Decoder, WebmOpusDecoder, decoder_for
from inference.recording import WavRecorder, repair
from memory.errors import CorruptAudio, InvalidInput
from tests.testdata import dev_conversation


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode(dev_conversation("dev01-start")).samples[: 16000 * 4]


def webm_opus(samples: np.ndarray) -> bytes:
    """What a browser's MediaRecorder sends: Opus in a WebM container (48 kHz)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for part in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(part):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def test_pcm16_split_anywhere_gives_the_same_samples(speech: np.ndarray) -> None:
    pcm = (speech * 32767).astype("<i2").tobytes()
    decoder = Pcm16Decoder(16000)
    pieces = [decoder.feed(pcm[i:i + 999]) for i in range(0, len(pcm), 999)]  # odd sizes
    joined = np.concatenate(pieces)
    assert len(joined) == len(speech)
    assert np.abs(joined - speech).max() < 1e-3


def test_pcm16_at_8_khz_is_resampled_to_16_khz(speech: np.ndarray) -> None:
    eight = (speech[::2] * 32767).astype("<i2").tobytes()
    out = Pcm16Decoder(8000).feed(eight)
    assert len(out) == len(speech)
    assert float(np.corrcoef(out[:16000], speech[:16000])[0, 1]) > 0.8
    with pytest.raises(InvalidInput, match="between 8000 and 48000"):
        Pcm16Decoder(44)
    with pytest.raises(InvalidInput, match="pcm16"):
        decoder_for("mp3", 16000)


def test_webm_opus_chunks_decode_as_they_arrive(speech: np.ndarray) -> None:
    data = webm_opus(speech)
    decoder = WebmOpusDecoder()
    pieces = [decoder.feed(data[i:i + 1000]) for i in range(0, len(data), 1000)]
    pieces.append(decoder.finish())
    out = np.concatenate(pieces)
    assert abs(len(out) - len(speech)) < 16000 * 0.05
    # Opus is lossy and delays the signal a little: compare loudness envelopes.
    def envelope(x: np.ndarray) -> np.ndarray:
        return np.array([np.abs(x[i:i + 1600]).mean() for i in range(0, 16000 * 3, 1600)])
    assert float(np.corrcoef(envelope(out), envelope(speech))[0, 1]) > 0.9


def test_a_broken_webm_stream_is_a_clear_error() -> None:
    decoder = WebmOpusDecoder()
    decoder.feed(b"this is not a webm stream at all" * 100)
    with pytest.raises(CorruptAudio, match="MediaRecorder"):
        decoder.finish()


def test_the_recording_is_a_valid_wav_at_every_flush_and_repairable(
    tmp_path: Path, speech: np.ndarray
) -> None:
    path = tmp_path / "live.wav"
    recorder = WavRecorder(path)
    recorder.append(speech[:16000])
    recorder.flush()
    assert decode(path).duration == pytest.approx(1.0, abs=0.01)
    recorder.append(speech[16000:32000])  # written, not flushed: the process "dies" here
    recorder._file.flush()
    assert repair(path) == pytest.approx(2.0, abs=0.01)
    assert decode(path).duration == pytest.approx(2.0, abs=0.01)
    with pytest.raises(FileExistsError):
        WavRecorder(path)  # never overwrites a recording
