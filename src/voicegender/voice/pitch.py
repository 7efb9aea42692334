"""Pitch (F0) of speech in numpy alone: the light install's measure, for evidence shown beside an answer (a
speaker's median pitch in ``voicegender speakers`` / ``audit``). The shipped model does not read it; the recipe's
pitch features are Praat's (:mod:`voicegender.voice.acoustic`, the fit extra).

YIN (de Cheveigné & Kawahara 2002): per 10 ms frame, the cumulative-mean-normalised difference function over lags
of 2-16.7 ms (60-500 Hz), the first dip below :data:`YIN_THRESHOLD` (then its local minimum, refined by a parabola)
is the period. Frames quieter than :data:`QUIET_DB` below the clip's loud frames, or without such a dip, are
unvoiced. All frames at once through FFT cross-correlations.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000  # Hz
F0_MIN = 60.0  # Hz: below the lowest adult male voices (creaky voice excepted); as voice.acoustic.PITCH_FLOOR
F0_MAX = 500.0  # Hz: above raised adult female voices; children reach it
HOP_S = 0.01  # seconds between frames
WINDOW_S = 0.025  # seconds integrated per lag (at least one period of the lowest pitch: 1/60 s = 0.0167 s)
YIN_THRESHOLD = 0.2  # a dip of the normalised difference below this is a period (YIN's paper: 0.1-0.2)
QUIET_DB = 30.0  # frames more than this many dB below the 95th percentile frame energy are not voiced
SILENCE_DBFS = -70.0  # nor frames below this mean-square level (dB re full scale): digital silence has no pitch
MIN_VOICED = 5  # a clip needs this many voiced frames (50 ms) for a median


def frame_f0(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz of each 10 ms frame of ``wave`` (float mono at ``sr``), NaN where a frame is not voiced."""
    x = np.asarray(wave, np.float64)
    x = x - x.mean()  # a constant offset (AudioMNIST-AZ's -0.085) would read as energy
    w = int(WINDOW_S * sr)
    tau_min, tau_max = int(sr / F0_MAX), int(np.ceil(sr / F0_MIN))
    n = w + tau_max + 1  # samples a frame reads
    hop = int(HOP_S * sr)
    if len(x) < n:
        return np.zeros(0)
    starts = np.arange(0, len(x) - n + 1, hop)
    frames = x[starts[:, None] + np.arange(n)]
    # difference function d(tau) = sum_j (x_j - x_{j+tau})^2 over j < w, through the energies and the
    # cross-correlation of the frame's first w samples with the frame
    size = 1 << int(np.ceil(np.log2(n + w)))
    spec = np.fft.rfft(frames, size) * np.conj(np.fft.rfft(frames[:, :w], size))
    cross = np.fft.irfft(spec, size)[:, :tau_max + 1]
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    lags = np.arange(tau_max + 1)
    energy_lag = sq[:, lags + w] - sq[:, lags]  # sum of x_{j+tau}^2 over j < w
    d = np.maximum(sq[:, [w]] + energy_lag - 2 * cross, 0.0)
    cumulative = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * lags[1:] / np.maximum(cumulative, 1e-12)
    level = 10 * np.log10(sq[:, w] / w + 1e-20)  # mean square of each frame's first w samples, dB re full scale
    loud = level >= max(np.percentile(level, 95) - QUIET_DB, SILENCE_DBFS)
    dips = cmnd[:, tau_min:tau_max] < YIN_THRESHOLD
    voiced = loud & dips.any(axis=1)
    rows = np.flatnonzero(voiced)
    t = tau_min + np.argmax(dips[rows], axis=1)  # the first dip of each voiced frame
    r = cmnd[rows]
    falling = np.ones(len(rows), bool)
    while falling.any():  # each down to its dip's minimum
        nxt = np.minimum(t + 1, tau_max - 1)
        falling = (t + 1 < tau_max) & (r[np.arange(len(rows)), nxt] < r[np.arange(len(rows)), t])
        t = np.where(falling, t + 1, t)
    k = np.arange(len(rows))
    a, b, c = r[k, t - 1], r[k, t], r[k, np.minimum(t + 1, tau_max)]
    curve = a - 2 * b + c
    shift = np.where(curve > 0, 0.5 * (a - c) / np.where(curve > 0, curve, 1.0), 0.0)  # the parabola's vertex
    f0 = np.full(len(frames), np.nan)
    f0[rows] = sr / (t + np.clip(shift, -0.5, 0.5))
    return f0


def median_pitch(wave: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Median F0 (Hz) over the voiced frames of a clip; None when fewer than :data:`MIN_VOICED` are voiced."""
    f0 = frame_f0(wave, sr)
    voiced = f0[np.isfinite(f0)]
    return float(np.median(voiced)) if len(voiced) >= MIN_VOICED else None
