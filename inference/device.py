"""Where models run: CUDA (float16) when torch sees a GPU, else CPU (int8 for CTranslate2)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    """'cuda' or 'cpu' (torch and CTranslate2 spell them the same)."""
    compute_type: str
    """CTranslate2 compute type: 'float16' on CUDA, 'int8' on CPU unless asked otherwise."""


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when torch sees a GPU (asked once per process: the answer does not change)."""
    try:
        import torch
    except ImportError:  # torch is a dependency, but a broken install should still run on CPU
        return False
    return bool(torch.cuda.is_available())


def choose_device(device: str = "auto", compute_type: str = "auto") -> DeviceChoice:
    """Resolve the settings' 'auto' values to a concrete device and compute type."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    resolved = device
    if device == "auto":
        resolved = "cuda" if cuda_available() else "cpu"
    elif device == "cuda" and not cuda_available():
        log.warning("device 'cuda' was asked for but torch sees no GPU; using the CPU")
        resolved = "cpu"
    if compute_type == "auto":
        compute_type = "float16" if resolved == "cuda" else "int8"
    return DeviceChoice(device=resolved, compute_type=compute_type)


def share_cpu_with_asr(torch_threads: int = 0) -> int:
    """Set torch's intra-op threads for the models that run beside ASR; returns the count.

    ASR (CTranslate2, its own thread pool) and diarization (torch) run at the same time, so
    torch gets half the cores by default (0 = auto) instead of all of them: on 2 cores two
    full pools only take turns and both finish later. Process-wide, like torch's setting.
    """
    import os

    import torch

    count = torch_threads if torch_threads > 0 else max(1, (os.cpu_count() or 2) // 2)
    if torch.get_num_threads() != count:
        log.info("torch uses %d CPU threads (ASR runs beside it)", count)
        torch.set_num_threads(count)
    return count


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with `count` torch threads (None: as they are), restoring the setting after.
    The models beside ASR use one thread on CPU: two OpenMP pools spinning on two cores made
    them several times slower."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's linear algebra (OpenBLAS) on one thread: the clustering's small matrices
    run beside ASR, and a full BLAS pool contending with it for 2 cores turned 0.05 s of
    clustering into 1-1.4 s in 3 of 5 benchmark runs."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
