"""Voice vectors from resemblyzer's GE2E encoder (256-d), the offline default VoiceEmbedder.

resemblyzer's own `preprocess_wav` trims silences with webrtcvad; we skip it because our
clips are already cut to speech by the VAD and the diarizer's windows must keep their timing.
We keep its volume normalisation (quiet clips are raised to -30 dBFS, as in training) and its
mel front end, and run the LSTM ourselves so that many clips go through in one batch.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.device import choose_device, torch_threads
from inference.lazy import Lazy
from inference.types import SAMPLE_RATE, Vector

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# resemblyzer imports webrtcvad, whose first line imports pkg_resources: setuptools then warns
# on every run that pkg_resources is deprecated, which is webrtcvad's business, not the user's.
# Only that warning, raised from that module, is dropped.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning,
                        module="webrtcvad")

MODEL_ID = "resemblyzer-ge2e-0.1.4"
DIMENSION = 256
FRAME_SECONDS = 0.01
"""One mel frame per 10 ms (resemblyzer's hop)."""
PARTIAL_FRAMES = 160
"""The encoder was trained on 1.6 s partial utterances."""
MIN_CLIP_SECONDS = 0.2
"""Shorter clips are zero-padded to this: the mel front end needs a few frames."""


class ResemblyzerEmbedder:
    """VoiceEmbedder over resemblyzer's pretrained GE2E LSTM.

    Loads lazily (first `embed`), once, thread-safely. Each clip becomes one vector: clips up
    to 2.4 s go through the LSTM whole; longer ones are cut into 1.6 s partials (the model's
    training length, 1.3 per second as resemblyzer does) whose vectors are averaged.
    """

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, device: str = "auto", batch_size: int = 64,
                 cpu_threads: int | None = 1) -> None:
        """`cpu_threads`: torch threads for the forward passes on CPU (None = torch's default).
        One by default: the embedder runs beside CTranslate2's ASR, and two OpenMP pools
        spinning on two cores made diarizing dev01 take 13-22 s instead of 1.7 s."""
        self._device_setting = device
        self._batch_size = batch_size
        self._cpu_threads = cpu_threads
        self._model: Lazy[Any] = Lazy(self._load)
        # One forward pass at a time: the LSTM is not re-entrant-friendly on CPU threads, and
        # two concurrent passes only fight over the same cores.
        self._run_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def _load(self) -> Any:
        from resemblyzer import VoiceEncoder

        device = choose_device(self._device_setting).device
        log.info("loading resemblyzer voice encoder on %s", device)
        model = VoiceEncoder(device=device, verbose=False)
        model.eval()
        return model

    def _threads(self, device: torch.device) -> AbstractContextManager[None]:
        return torch_threads(self._cpu_threads if device.type == "cpu" else None)

    # ------------------------------------------------------------------ embedding
    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        """One L2-normalised 256-d vector per 16 kHz mono clip."""
        if not clips:
            return []
        model = self._model.get()
        # Each clip → one or more mel sequences; remember which clip each belongs to.
        sequences: list[npt.NDArray[np.float32]] = []
        owners: list[int] = []
        for index, clip in enumerate(clips):
            for mel in _mel_sequences(clip):
                sequences.append(mel)
                owners.append(index)
        outputs = self._forward(model, sequences)
        sums = np.zeros((len(clips), DIMENSION), dtype=np.float64)
        for owner, vector in zip(owners, outputs, strict=True):
            sums[owner] += vector
        return [_l2_normalise(row) for row in sums]

    def _forward(
        self, model: Any, sequences: list[npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]:
        """Run the LSTM on equal-length groups of mel sequences, in batches."""
        import torch

        by_length: dict[int, list[int]] = defaultdict(list)
        for i, mel in enumerate(sequences):
            by_length[mel.shape[0]].append(i)
        results: list[npt.NDArray[np.float32] | None] = [None] * len(sequences)
        device = torch.device(model.device)  # resemblyzer keeps the device it was given
        with self._run_lock, torch.inference_mode(), self._threads(device):
            for indices in by_length.values():
                for start in range(0, len(indices), self._batch_size):
                    chunk = indices[start : start + self._batch_size]
                    batch = torch.from_numpy(np.stack([sequences[i] for i in chunk]))
                    vectors = np.nan_to_num(model(batch.to(device)).cpu().numpy())
                    for i, vector in zip(chunk, vectors, strict=True):
                        results[i] = vector.astype(np.float32)
        return [r for r in results if r is not None]




def _mel_sequences(clip: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """The mel sequences the encoder sees for one clip (whole, or 1.6 s partials)."""
    from resemblyzer import audio as ra

    wav = np.asarray(clip, dtype=np.float32).reshape(-1)
    min_samples = int(MIN_CLIP_SECONDS * SAMPLE_RATE)
    if len(wav) < min_samples:
        wav = np.pad(wav, (0, min_samples - len(wav)))
    if np.any(wav):
        wav = ra.normalize_volume(wav, ra.audio_norm_target_dBFS, increase_only=True)
    mel = ra.wav_to_mel_spectrogram(wav.astype(np.float32))
    if mel.shape[0] <= int(PARTIAL_FRAMES * 1.5):
        return [mel]
    step = round(1 / 1.3 / FRAME_SECONDS)  # resemblyzer's default rate of partials
    starts = list(range(0, mel.shape[0] - PARTIAL_FRAMES + 1, step))
    if mel.shape[0] - (starts[-1] + PARTIAL_FRAMES) > PARTIAL_FRAMES // 4:
        starts.append(mel.shape[0] - PARTIAL_FRAMES)
    return [mel[s : s + PARTIAL_FRAMES] for s in starts]


def _l2_normalise(vector: npt.NDArray[np.floating[Any]]) -> Vector:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        return np.zeros(DIMENSION, dtype=np.float32)
    return (vector / norm).astype(np.float32)
