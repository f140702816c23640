"""Telephone-band detection and the telephone copy of a clip, on real recordings."""

from __future__ import annotations

import numpy as np

from inference.audio import decode
from inference.channel import high_band_share, is_narrowband, telephone_band
from tests.testdata import DATA


def test_wideband_readers_and_phone_lines_are_told_apart() -> None:
    clean = decode(DATA / "ls_3080_enroll.wav").samples
    phone_mix = decode(DATA / "rdev01_first30s.wav").samples  # a telephone channel
    real_call = decode(DATA / "sample_call.wav").samples  # a real phone call
    assert not is_narrowband(clean)
    assert is_narrowband(phone_mix) and is_narrowband(real_call)


def test_the_telephone_copy_of_a_clip_is_narrowband_and_keeps_its_length() -> None:
    clean = decode(DATA / "ls_2033_enroll.wav").samples
    copy = telephone_band(clean)
    assert copy.dtype == np.float32 and abs(len(copy) - len(clean)) <= 2
    assert high_band_share(clean) > 0.005 > 0.002 > high_band_share(copy)
    assert np.corrcoef(clean[: len(copy)], copy[: len(clean)])[0, 1] > 0.5  # still the speech


def test_silence_and_empty_clips() -> None:
    assert high_band_share(np.zeros(16_000, np.float32)) == 0.0
    assert high_band_share(np.zeros(0, np.float32)) == 0.0
    assert len(telephone_band(np.zeros(16_000, np.float32))) == 16_000
