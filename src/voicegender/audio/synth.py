"""Synthetic voice-like audio for tests, demos and benchmarks (no corpus needed).

A glottal pulse train at pitch ``f0`` (with slow vibrato and jitter) shaped by vowel formant resonators and a
syllable envelope. Lower f0 and formants read as "male", higher as "female" — crude, but with a known answer.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

MALE_F0 = 120.0  # Hz, typical adult male pitch
FEMALE_F0 = 220.0  # Hz, typical adult female pitch
# First three formants (Hz) of /a/, /i/, /u/ for an adult male; female formants are ~17 % higher.
VOWELS = ((730.0, 1090.0, 2440.0), (270.0, 2290.0, 3010.0), (300.0, 870.0, 2240.0))


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / sr)
    a = [1.0, -2 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return lfilter([1.0 - r], a, x)


def synth_voice(f0: float, seconds: float = 1.0, sr: int = 16_000, seed: int = 0,
                formant_scale: float | None = None, level: float = 0.3) -> np.ndarray:
    """Voice-like float32 audio: syllables of vowels at pitch ``f0`` Hz, peak ``level``.

    formant_scale : multiply the male formants by this; default 1.0 below 165 Hz, else 1.17.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    scale = formant_scale if formant_scale is not None else (1.0 if f0 < 165 else 1.17)
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t) + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = np.cumsum(pitch / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    source = lfilter([1.0], [1.0, -0.95], pulses) + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    syllable = int(0.25 * sr)
    for start in range(0, n, syllable):
        piece = source[start:start + syllable]
        formants = VOWELS[rng.integers(len(VOWELS))]
        voiced = sum(_resonator(piece, f * scale, 80 + 0.05 * f, sr) for f in formants)
        out[start:start + len(piece)] = voiced * np.hanning(len(piece)) ** 0.5
    out *= level / (np.abs(out).max() + 1e-12)
    return out.astype(np.float32)


def synth_noise(seconds: float = 1.0, sr: int = 16_000, seed: int = 0, level: float = 0.1) -> np.ndarray:
    """White noise, float32."""
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def synth_tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 16_000, level: float = 0.3) -> np.ndarray:
    """A pure sine tone, float32."""
    return (level * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)
