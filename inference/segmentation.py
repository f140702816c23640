"""pyannote segmentation-3.0 (PyanNet) as our own small torch module, without pyannote.audio.

The model looks at 10 s of 16 kHz audio and says, for each of 589 frames, which of up to three
"local" speakers talk (at most two at once). Labels are local to the chunk: speaker #1 of one
chunk need not be speaker #1 of the next; the diarizer links chunks with voice vectors.

Architecture (as pyannote.audio 3.0 built it for this checkpoint; reproduced layer by layer so
the original state dict loads with strict=True):

    waveform (batch, 1, 160000)
    → InstanceNorm1d(1, affine)
    → SincNet: sinc band-pass filterbank (40 cos + 40 sin filters, 251 taps, stride 10), |·|,
      MaxPool(3), InstanceNorm(affine), LeakyReLU
      → Conv1d(80→60, 5), MaxPool(3), InstanceNorm, LeakyReLU
      → Conv1d(60→60, 5), MaxPool(3), InstanceNorm, LeakyReLU           (batch, 60, 589)
    → LSTM(60, 128, 4 layers, bidirectional)                             (batch, 589, 256)
    → Linear(256→128), LeakyReLU → Linear(128→128), LeakyReLU
    → Linear(128→7), LogSoftmax                                          (batch, 589, 7)

The 7 outputs are "powerset" classes: {}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}.

Frame timing, from the kernel sizes and strides of the conv/pool stack (no padding anywhere):
frame f of a chunk sees samples [270 f, 270 f + 991), i.e. it starts at f × 16.875 ms and lasts
61.9375 ms (pyannote's `receptive_field`: the same SlidingWindow(start=0, step, duration)).

The checkpoint is pyannote's own Lightning file: besides `state_dict` it pickles pyannote
objects (`specifications`), so plain torch.load needs pyannote installed and weights_only=True
refuses it. `_CheckpointUnpickler` turns every pyannote.* global into an inert stub and allows
only the few other globals that tensors need; only `state_dict` is used.
"""

from __future__ import annotations

import importlib
import logging
import math
import pickle
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from inference.device import choose_device, torch_threads
from inference.lazy import Lazy
from inference.types import SAMPLE_RATE
from inference.weights import SEGMENTATION, locate
from memory.errors import ModelUnavailable

log = logging.getLogger(__name__)

MODEL_ID = "pyannote-segmentation-3.0"
CHUNK_SECONDS = 10.0
"""The model was trained on (and always sees) 10 s chunks."""
CHUNK_SAMPLES = int(CHUNK_SECONDS * SAMPLE_RATE)
NUM_SPEAKERS = 3
"""Local speakers per chunk."""
MAX_SPEAKERS_PER_FRAME = 2

POWERSET_CLASSES: tuple[frozenset[int], ...] = tuple(
    frozenset(members)
    for size in range(MAX_SPEAKERS_PER_FRAME + 1)
    for members in combinations(range(NUM_SPEAKERS), size)
)
"""Speaker sets (0-based local speakers) in the classifier's output order:
{}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}."""

POWERSET_MAPPING: npt.NDArray[np.uint8] = np.array(
    [[1 if speaker in members else 0 for speaker in range(NUM_SPEAKERS)]
     for members in POWERSET_CLASSES],
    dtype=np.uint8,
)
"""(7, 3): row k marks the speakers active in powerset class k."""

# (kernel, stride) of every layer that changes the time axis, in order: the sinc filterbank,
# then max-pool, conv, max-pool, conv, max-pool. None of them pads or dilates.
_SINC_STRIDE = 10
_SINC_TAPS = 251
_TIME_LAYERS: tuple[tuple[int, int], ...] = (
    (_SINC_TAPS, _SINC_STRIDE), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3),
)


def num_frames(num_samples: int) -> int:
    """Output frames for an input of `num_samples` (589 for a 10 s chunk)."""
    frames = num_samples
    for kernel, stride in _TIME_LAYERS:
        frames = (frames - kernel) // stride + 1
    return frames


def _receptive_field(frames: int) -> int:
    """Input samples seen by `frames` consecutive output frames (walking the layers back)."""
    size = frames
    for kernel, stride in reversed(_TIME_LAYERS):
        size = kernel + (size - 1) * stride
    return size


FRAMES_PER_CHUNK = num_frames(CHUNK_SAMPLES)
FRAME_DURATION_SAMPLES = _receptive_field(1)
"""991 samples: what one frame sees."""
FRAME_STEP_SAMPLES = _receptive_field(2) - _receptive_field(1)
"""270 samples: the product of the strides (10 × 3 × 3 × 3)."""
FRAME_STEP = FRAME_STEP_SAMPLES / SAMPLE_RATE
"""0.016875 s between frame starts."""
FRAME_DURATION = FRAME_DURATION_SAMPLES / SAMPLE_RATE
"""0.0619375 s: the span of audio one frame sees. Frame f of a chunk starting at s covers
[s + f·FRAME_STEP, s + f·FRAME_STEP + FRAME_DURATION); no padding, so frame 0 starts at s."""


# ---------------------------------------------------------------------------------- the network
class SincFilterbank(nn.Module):
    """Parametrised band-pass sinc filters (SincNet, as extended by asteroid's ParamSincFB).

    Each of the 40 learnt bands [low, high] gives two 251-tap filters: the classic even (cosine)
    band-pass and an odd (sine) companion, so 80 outputs. Only half of each filter is computed
    from the half time axis `n_` (negative times) and then mirrored. The attribute names
    (`low_hz_`, `band_hz_`, `window_`, `n_`) are the checkpoint's.
    """

    def __init__(self, bands: int = 40, taps: int = _SINC_TAPS,
                 sample_rate: int = SAMPLE_RATE, min_low_hz: float = 50.0,
                 min_band_hz: float = 50.0) -> None:
        super().__init__()
        if taps % 2 == 0:
            raise ValueError("sinc filters need an odd number of taps (a centre tap)")
        self.bands = bands
        self.taps = taps
        self.sample_rate = float(sample_rate)
        self.min_low_hz = min_low_hz
        self.min_band_hz = min_band_hz
        half = taps // 2
        # Placeholders: the checkpoint supplies the trained cut-offs.
        self.low_hz_ = nn.Parameter(torch.zeros(bands, 1))
        self.band_hz_ = nn.Parameter(torch.zeros(bands, 1))
        # First half of a Hamming window of `taps` points, and 2π t / sample_rate for the
        # negative half of the time axis (t = -half .. -1). Buffers, saved in the checkpoint.
        window = 0.54 - 0.46 * torch.cos(2 * math.pi * torch.arange(half) / (taps - 1))
        self.register_buffer("window_", window.float())
        times = 2 * math.pi * torch.arange(-half, 0.0).view(1, -1) / self.sample_rate
        self.register_buffer("n_", times.float())

    def filters(self) -> torch.Tensor:
        """(2 × bands, 1, taps): the cosine filters, then the sine filters."""
        window = self.get_buffer("window_")
        times = self.get_buffer("n_")
        # abs() keeps the learnt values valid whatever their sign; clamp keeps high ≤ Nyquist.
        low = self.min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(low + self.min_band_hz + torch.abs(self.band_hz_),
                           self.min_low_hz, self.sample_rate / 2)
        band = (high - low)[:, 0]
        phase_low = low @ times
        phase_high = high @ times
        # Band-pass = difference of two low-pass sincs, written with sin/cos of the phases
        # (times already carry 2π/sample_rate; dividing by times/2 is the sinc denominator).
        cos_left = (torch.sin(phase_high) - torch.sin(phase_low)) / (times / 2) * window
        cos_centre = 2 * band.view(-1, 1)
        cos_filters = torch.cat([cos_left, cos_centre, torch.flip(cos_left, dims=[1])], dim=1)
        sin_left = (torch.cos(phase_low) - torch.cos(phase_high)) / (times / 2) * window
        sin_centre = torch.zeros_like(cos_centre)
        sin_filters = torch.cat([sin_left, sin_centre, -torch.flip(sin_left, dims=[1])], dim=1)
        # Normalise each filter by twice its bandwidth (unit gain at the centre tap).
        scale = 2 * band[:, None]
        both = torch.cat([cos_filters / scale, sin_filters / scale], dim=0)
        return both.view(2 * self.bands, 1, self.taps)


class SincConv(nn.Module):
    """Convolution with the sinc filterbank (the checkpoint nests it as `filterbank`)."""

    def __init__(self, stride: int = _SINC_STRIDE) -> None:
        super().__init__()
        self.filterbank = SincFilterbank()
        self.stride = stride

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return F.conv1d(waveforms, self.filterbank.filters(), stride=self.stride)


class SincNet(nn.Module):
    """Learnt front end: waveform (batch, 1, samples) → features (batch, 60, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList([SincConv(), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(channels, affine=True)
                                     for channels in (80, 60, 60)])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        outputs: torch.Tensor = self.wav_norm1d(waveforms)
        for index, (conv, pool, norm) in enumerate(
            zip(self.conv1d, self.pool1d, self.norm1d, strict=True)
        ):
            outputs = conv(outputs)
            if index == 0:
                # The sinc filters' outputs oscillate around zero: their magnitude is what
                # max-pooling should keep (pyannote does this; see SincNet issue #4).
                outputs = torch.abs(outputs)
            outputs = F.leaky_relu(norm(pool(outputs)))
        return outputs


class PyanNet(nn.Module):
    """segmentation-3.0: waveform (batch, 1, 160000) → log-probabilities (batch, 589, 7)
    over the powerset classes POWERSET_CLASSES."""

    def __init__(self) -> None:
        super().__init__()
        self.sincnet = SincNet()
        # Dropout only acts in training; kept so the module matches the trained one.
        self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, dropout=0.5,
                            batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
        self.classifier = nn.Linear(128, len(POWERSET_CLASSES))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        features = self.sincnet(waveforms).transpose(1, 2)  # (batch, frames, 60)
        outputs, _ = self.lstm(features)
        for layer in self.linear:
            outputs = F.leaky_relu(layer(outputs))
        scores: torch.Tensor = self.classifier(outputs)
        return F.log_softmax(scores, dim=-1)


# ----------------------------------------------------------------------- loading the checkpoint
class _PyannoteStub:
    """Stands in for any pickled pyannote object (Specifications, Problem, ...): accepts
    whatever it is rebuilt with and does nothing. Nothing of it is ever used."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.state = state


# Globals a state dict's pickle legitimately names (besides storages, which torch resolves
# itself before asking us). Anything else is refused, so a tampered file cannot run code.
_ALLOWED_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch.torch_version", "TorchVersion"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
})


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "pyannote" or module.startswith("pyannote."):
            return _PyannoteStub
        if (module, name) in _ALLOWED_GLOBALS:
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(
            f"the segmentation checkpoint refers to {module}.{name}, which a weights file "
            "has no business loading"
        )


def _checkpoint_load(file: IO[bytes], **kwargs: Any) -> Any:
    return _CheckpointUnpickler(file, **kwargs).load()


# torch.load takes a "pickle module": anything with an Unpickler class and a load function.
_CHECKPOINT_PICKLE = types.ModuleType("speaker_memory_checkpoint_pickle")
_CHECKPOINT_PICKLE.Unpickler = _CheckpointUnpickler  # type: ignore[attr-defined]
_CHECKPOINT_PICKLE.load = _checkpoint_load  # type: ignore[attr-defined]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of pyannote's segmentation checkpoint, without pyannote installed."""
    try:
        checkpoint = torch.load(path, map_location="cpu", pickle_module=_CHECKPOINT_PICKLE,
                                weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ModelUnavailable(f"cannot read the segmentation model {path}: {error}") from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ModelUnavailable(f"{path} is not a pyannote checkpoint (no state_dict)")
    return dict(state)


def load_pyannet(path: Path) -> PyanNet:
    """PyanNet with the checkpoint's weights (every key must match), in eval mode."""
    model = PyanNet()
    model.load_state_dict(load_state_dict(path), strict=True)
    return model.eval()


# ------------------------------------------------------------------------------ powerset decoding
def powerset_to_multilabel(log_probabilities: npt.NDArray[np.floating[Any]],
                           soft: bool = False) -> npt.NDArray[Any]:
    """(..., 7) powerset log-probabilities → (..., 3) speaker activities.

    Hard (default, pyannote's `soft=False`): the most likely speaker set wins, uint8 0/1.
    Soft: each speaker's probability, the sum over the sets that contain it (float32).
    """
    if soft:
        probabilities = np.exp(log_probabilities.astype(np.float32))
        speakers: npt.NDArray[np.float32] = probabilities @ POWERSET_MAPPING.astype(np.float32)
        return speakers
    decided: npt.NDArray[np.uint8] = POWERSET_MAPPING[np.argmax(log_probabilities, axis=-1)]
    return decided


# ---------------------------------------------------------------------------- sliding inference
@dataclass(frozen=True)
class Segmentation:
    """Local speaker activity of every 10 s chunk of a recording.

    `activations[c, f, k]` is 1 when local speaker k talks in frame f of chunk c. uint8 rather
    than float32: the values are 0/1 and 4 h at a 1 s step is 14,400 × 589 × 3 = 25M of them
    (25 MB as uint8, 100 MB as float32); cast where arithmetic needs floats.
    Chunks start every `step` seconds; the last one may run past the end of the audio (it was
    zero-padded), so frames after `duration` are padding.
    """

    activations: npt.NDArray[np.uint8]
    """(num_chunks, FRAMES_PER_CHUNK, NUM_SPEAKERS), 0/1."""
    chunk_starts: npt.NDArray[np.float64]
    """(num_chunks,) seconds."""
    chunk_duration: float
    frame_step: float
    frame_duration: float
    duration: float
    """Seconds of audio segmented (frames past it are padding)."""

    @property
    def num_chunks(self) -> int:
        return int(self.activations.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.activations.shape[1])

    def frame_offsets(self) -> npt.NDArray[np.float64]:
        """(num_frames,) start of each frame relative to its chunk's start, in seconds."""
        return np.arange(self.num_frames, dtype=np.float64) * self.frame_step

    def frame_start(self, chunk: int, frame: int) -> float:
        """Start of `frame` of `chunk` in the recording, in seconds."""
        return float(self.chunk_starts[chunk]) + frame * self.frame_step


def chunk_starts(num_samples: int, step_samples: int) -> list[int]:
    """First sample of each chunk, as pyannote slides: every `step_samples` while a whole chunk
    fits, plus one zero-padded chunk for any remainder (or for audio shorter than a chunk).
    No chunk for no audio."""
    if num_samples <= 0:
        return []
    whole = (num_samples - CHUNK_SAMPLES) // step_samples + 1 if num_samples >= CHUNK_SAMPLES else 0
    remainder = num_samples < CHUNK_SAMPLES or (num_samples - CHUNK_SAMPLES) % step_samples > 0
    return [index * step_samples for index in range(whole + int(remainder))]


def _batch(samples: npt.NDArray[np.float32], starts: Sequence[int]) -> npt.NDArray[np.float32]:
    """(len(starts), CHUNK_SAMPLES) chunk waveforms, zero-padded past the end: one batch at a
    time, so a 4 h recording never has all its overlapping chunks in memory."""
    batch = np.zeros((len(starts), CHUNK_SAMPLES), dtype=np.float32)
    for row, start in enumerate(starts):
        piece = samples[start : start + CHUNK_SAMPLES]
        batch[row, : len(piece)] = piece
    return batch


class SegmentationModel:
    """segmentation-3.0 over a whole recording, in sliding 10 s chunks.

    Loads lazily (first call), once, thread-safely; the weights come from `weights_dir`
    (default: inference.weights.default_dir()) and a missing or damaged file raises
    ModelUnavailable naming the set-up command.
    """

    model_id = MODEL_ID

    def __init__(self, weights_dir: Path | None = None, device: str = "auto",
                 cpu_threads: int | None = 1, batch_size: int = 32) -> None:
        """`cpu_threads`: torch threads for the forward passes on CPU (None = torch's default);
        one by default because segmentation runs beside the ASR's own thread pool."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._weights_dir = weights_dir
        self._device_setting = device
        self._cpu_threads = cpu_threads
        self._batch_size = batch_size
        self._model: Lazy[PyanNet] = Lazy(self._load)
        # One forward pass at a time: concurrent passes only fight over the same cores.
        self._run_lock = threading.Lock()

    def _load(self) -> PyanNet:
        path = locate(SEGMENTATION, self._weights_dir)
        device = torch.device(choose_device(self._device_setting).device)
        log.info("loading %s on %s", MODEL_ID, device)
        return load_pyannet(path).to(device)

    def _threads(self, device: torch.device) -> AbstractContextManager[None]:
        return torch_threads(self._cpu_threads if device.type == "cpu" else None)

    def load(self) -> None:
        """Load now rather than on first use (raises ModelUnavailable)."""
        self._model.get()

    def log_probabilities(self, chunks: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, CHUNK_SAMPLES) waveforms → (n, FRAMES_PER_CHUNK, 7) powerset log-probabilities."""
        waveforms = np.asarray(chunks, dtype=np.float32).reshape(-1, CHUNK_SAMPLES)
        result = np.zeros((len(waveforms), FRAMES_PER_CHUNK, len(POWERSET_CLASSES)), np.float32)
        for first in range(0, len(waveforms), self._batch_size):
            batch = waveforms[first : first + self._batch_size]
            with self._running() as (model, device):
                scores = model(torch.from_numpy(np.ascontiguousarray(batch)).to(device)[:, None])
                result[first : first + len(batch)] = scores.float().cpu().numpy()
        return result

    def _activations(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """(n, CHUNK_SAMPLES) → (n, FRAMES_PER_CHUNK, NUM_SPEAKERS) hard 0/1 activities."""
        with self._running() as (model, device):
            scores = model(torch.from_numpy(batch).to(device)[:, None])
            # The hard decision stays on the device: only class indices come back.
            best = torch.argmax(scores, dim=-1).cpu().numpy()
        activations: npt.NDArray[np.uint8] = POWERSET_MAPPING[best]
        return activations

    @contextmanager
    def _running(self) -> Iterator[tuple[PyanNet, torch.device]]:
        """The loaded model and its device, with the run lock held, gradients off and the
        CPU thread count applied."""
        model = self._model.get()
        device = next(model.parameters()).device
        with self._run_lock, torch.inference_mode(), self._threads(device):
            yield model, device

    def segment(self, samples: npt.NDArray[np.float32], step: float) -> Segmentation:
        """Slide 10 s chunks over 16 kHz mono `samples` every `step` seconds (0 < step ≤ 10)
        and decide every frame's local speakers (argmax over the powerset classes)."""
        if not 0 < step <= CHUNK_SECONDS:
            raise ValueError(f"step must be in (0, {CHUNK_SECONDS}] seconds, not {step}")
        step_samples = round(step * SAMPLE_RATE)
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)
        starts = chunk_starts(len(audio), step_samples)
        activations = np.zeros((len(starts), FRAMES_PER_CHUNK, NUM_SPEAKERS), dtype=np.uint8)
        for first in range(0, len(starts), self._batch_size):
            batch_starts = starts[first : first + self._batch_size]
            activations[first : first + len(batch_starts)] = self._activations(
                _batch(audio, batch_starts)
            )
        return Segmentation(
            activations=activations,
            chunk_starts=np.asarray(starts, dtype=np.float64) / SAMPLE_RATE,
            chunk_duration=CHUNK_SECONDS,
            frame_step=FRAME_STEP,
            frame_duration=FRAME_DURATION,
            duration=len(audio) / SAMPLE_RATE,
        )
