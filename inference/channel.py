"""Telephone or wideband: the channel a voice came through, and a telephone copy of a clip.

The same voice scores far lower against its own profile across channels than within one: CAM++
gave a clean enrollment 0.50-0.69 against the same reader on a phone line, where impostors on
wideband audio reach 0.57 (../shared/research/real-voice-identity.md). So a voice heard through
a telephone band is matched only against telephone-band profiles, a separate voice model id
(memory.types.with_channel) with its own thresholds; enrollment stores both profiles, the
telephone one made by passing the clip through a simulated phone line.

A telephone channel is easy to see: it carries almost nothing above 3.4 kHz, where wideband
speech keeps 0.5-20% of its energy (measured on real-dev: <= 0.00002 on its phone calls, >= 0.005
on every wideband voice; 0.0001 on the real call in pyannote-sample).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from inference.types import SAMPLE_RATE

Samples = npt.NDArray[np.float32]

HIGH_BAND_HZ = 3600.0
NARROWBAND_MAX_HIGH_SHARE = 0.002
"""Below this share of energy above HIGH_BAND_HZ, speech came through a telephone band."""
MAX_ANALYSIS_SECONDS = 60.0
"""Enough speech to tell the band; longer clips are measured on their first minute."""


def high_band_share(samples: Samples, sample_rate: int = SAMPLE_RATE) -> float:
    """Share of the clip's energy above HIGH_BAND_HZ (0 for silence)."""
    clip = np.asarray(samples, dtype=np.float64)[: int(MAX_ANALYSIS_SECONDS * sample_rate)]
    if clip.size < 2:
        return 0.0
    power = np.abs(np.fft.rfft(clip)) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return 0.0
    freqs = np.fft.rfftfreq(clip.size, 1.0 / sample_rate)
    return float(power[freqs > HIGH_BAND_HZ].sum() / total)


def is_narrowband(samples: Samples, sample_rate: int = SAMPLE_RATE) -> bool:
    """True when the speech came through a telephone band (or a codec that cuts as much)."""
    return high_band_share(samples, sample_rate) < NARROWBAND_MAX_HIGH_SHARE


def telephone_band(samples: Samples) -> Samples:
    """The clip as a phone line would carry it: 8 kHz, 300-3400 Hz, G.711 mu-law, back to
    16 kHz. Enrollment clips are recorded wideband; this gives their telephone profile."""
    from scipy.signal import butter, resample_poly, sosfilt

    narrow = resample_poly(np.asarray(samples, dtype=np.float64), 1, 2)
    band = butter(4, [300.0, 3400.0], btype="band", fs=SAMPLE_RATE // 2, output="sos")
    narrow = sosfilt(band, narrow)
    peak = float(np.max(np.abs(narrow))) if narrow.size else 0.0
    if peak > 0.0:
        narrow = _mu_law(narrow / peak) * peak
    return np.asarray(resample_poly(narrow, 2, 1), dtype=np.float32)


def _mu_law(x: npt.NDArray[np.float64], mu: float = 255.0) -> npt.NDArray[np.float64]:
    """Compress to 8-bit mu-law codes and expand again (the codec's quantisation)."""
    coded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    coded = np.round(coded * 127.0) / 127.0
    return np.asarray(np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu)
