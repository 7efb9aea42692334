"""Pitch and vocal-tract measures: known inputs -> known outputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from voicegender.audio.synth import synth_noise, synth_voice
from voicegender.voice.acoustic import (
    FEATURE_NAMES,
    N_FEATURES,
    formant_spacing,
    lpc_formants,
    vocal_tract_length_cm,
    voice_features,
)

SR = 16_000


def tube_formants(length_cm: float) -> list[float]:
    """Resonances below 5.4 kHz of a uniform tube closed at one end: F_i = (2i - 1) c / (4 L)."""
    return [f for f in ((2 * i - 1) * 35_000 / (4 * length_cm) for i in range(1, 8)) if f < 5_400]


def vowel(f0: float, length_cm: float, seconds: float = 0.6, bandwidth: float = 80.0) -> np.ndarray:
    """A steady vowel (source-filter synthesis): an impulse train at f0 with a -6 dB/octave source slope through
    one unit-gain resonator per tube formant, plus a little noise."""
    n = int(seconds * SR)
    x = np.zeros(n)
    x[:: int(SR / f0)] = 1.0
    x = lfilter([1.0], [1.0, -0.95], x)
    for f in tube_formants(length_cm):
        r = np.exp(-np.pi * bandwidth / SR)
        c = -2 * r * np.cos(2 * np.pi * f / SR)
        x = lfilter([1 + c + r * r], [1.0, c, r * r], x)
    x += 0.001 * np.random.default_rng(0).standard_normal(n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def idx(name: str) -> int:
    return FEATURE_NAMES.index(name)


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_pitch_of_a_synthetic_voice(f0):
    f = voice_features(synth_voice(f0, 1.0, SR, seed=1))
    assert f.shape == (N_FEATURES,) and f.dtype == np.float32
    assert f[idx("f0_median_st")] == pytest.approx(12 * np.log2(f0 / 100), abs=0.7)  # vibrato ±3 %
    assert f[idx("f0_p10_st")] < f[idx("f0_median_st")] < f[idx("f0_p90_st")]
    assert f[idx("voiced_share")] > 0.6


@pytest.mark.parametrize("f0", [120.0, 210.0])
def test_formants_of_a_uniform_tube(f0):
    # a 17.5 cm tube closed at one end: F_i = (2i - 1) * 35000 / (4 * 17.5) = 500, 1500, 2500, 3500 Hz
    wave = vowel(f0, 17.5)
    tracks = lpc_formants(wave, np.linspace(0.1, 0.5, 9))
    med = np.nanmedian(tracks, axis=0)
    assert med == pytest.approx([500, 1500, 2500, 3500], rel=0.05)
    spacing = np.nanmedian(formant_spacing(tracks))
    assert spacing == pytest.approx(1000, rel=0.05)
    assert vocal_tract_length_cm(spacing) == pytest.approx(17.5, rel=0.05)
    f = voice_features(wave)
    assert np.exp(f[idx("formant_spacing_log_hz")]) == pytest.approx(1000, rel=0.06)


def test_lpc_formants_agree_with_praat():
    import parselmouth

    wave = vowel(150.0, 15.5)
    times = np.linspace(0.1, 0.5, 9)
    burg = parselmouth.Sound(wave.astype(np.float64), SR).to_formant_burg(max_number_of_formants=5,
                                                                          maximum_formant=5500)
    praat = [np.median([burg.get_value_at_time(i, t) for t in times]) for i in (1, 2, 3, 4)]
    assert np.nanmedian(lpc_formants(wave, times), axis=0) == pytest.approx(praat, rel=0.02)


def test_a_shorter_tract_has_higher_formants():
    male = voice_features(vowel(120.0, 17.5))
    female = voice_features(vowel(120.0, 14.8))  # same pitch
    assert female[idx("formant_spacing_log_hz")] - male[idx("formant_spacing_log_hz")] == pytest.approx(
        np.log(1.18), abs=0.04)
    assert female[idx("f0_median_st")] == pytest.approx(male[idx("f0_median_st")], abs=0.3)


def test_formant_spacing_uses_the_formants_present():
    f = np.array([[500, 1500, 2500, np.nan], [500, np.nan, np.nan, np.nan]])
    out = formant_spacing(f)
    assert out[0] == pytest.approx(1000)
    assert np.isnan(out[1])  # one formant does not give a spacing


def test_silence_noise_and_empty_give_missing_values():
    silent = voice_features(np.zeros(SR, np.float32))
    assert silent[idx("voiced_share")] == 0 and np.isnan(silent[idx("f0_median_st")])
    assert np.isnan(voice_features(np.zeros(0, np.float32))).all()
    noise = voice_features(synth_noise(1.0, SR, seed=3))
    assert noise[idx("voiced_share")] < 0.2


def test_short_clips_are_measured():
    f = voice_features(synth_voice(200.0, 0.08, SR, seed=2))  # shorter than three periods at the pitch floor
    assert np.isfinite(f[idx("f0_median_st")])
