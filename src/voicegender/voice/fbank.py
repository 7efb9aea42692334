"""The ECAPA speaker encoder's front end in numpy: speechbrain's ``Fbank(n_mels=80)`` and sentence mean normalisation.

What speechbrain's ``EncoderClassifier.encode_batch`` does to a waveform before the network of
``speechbrain/spkrec-ecapa-voxceleb`` (its hyperparams.yaml sets ``n_mels=80`` and ``InputNormalization(
norm_type="sentence", std_norm=False)``; everything else is speechbrain 1.0.3's default):

* input: mono float waveform at 16 kHz, any scale (speechbrain neither rescales nor removes DC);
* STFT: 400-sample (25 ms) **periodic** Hamming window, hop 160 samples (10 ms), ``center=True`` with **zero**
  padding of 200 samples at each end, so ``frames = 1 + n // 160``; one-sided, 201 bins; power = re² + im²;
* 80 triangular filters from 0 to 8000 Hz on the HTK mel scale (2595 log10(1 + f/700)); filter i is centred on
  point i+1 of 82 points equally spaced in mel and is *symmetric in Hz* with half-width ``hz[i+1] - hz[i]``
  (speechbrain's own shape, not HTK's, whose triangles reach the neighbouring points); peak 1, no area
  normalisation. 29 of the 80 filters (all below ~1.1 kHz) cover only 1-2 FFT bins;
* 10 log10(max(E, 1e-10)), floored at the clip's maximum (over all frames and bands) minus 80 dB — per clip, so a
  window's features depend on its own loudest frame;
* each band's mean over the clip's frames subtracted (no variance scaling).

Against speechbrain's torch code the features differ by at most 1.3e-3 dB (mean 1.5e-5 dB), all of it float32 FFT
rounding in bands ~70 dB below a frame's peak (torch's own result is 1.3e-3 dB from a float64 reference, this one
1.8e-4 dB); the embeddings agree to 1 - cos < 2e-11. The front end costs about 0.0002 CPU-s per second of audio.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SAMPLE_RATE = 16_000  # Hz
N_FFT = 400  # samples: 25 ms at 16 kHz (the window is as long as the FFT)
HOP = 160  # samples: 10 ms at 16 kHz
N_MELS = 80  # mel bands the network reads
F_MAX = SAMPLE_RATE / 2  # Hz, top of the filterbank (f_min is 0)
AMIN = 1e-10  # power floor before the log
TOP_DB = 80.0  # dB below the clip's loudest band that the features are floored at


def n_frames(n_samples: int) -> int:
    """Feature frames of a clip of ``n_samples``: centred frames every 10 ms, ``1 + n // 160``."""
    return 1 + n_samples // HOP


def _torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """float32 ``torch.linspace``: the first half counts up from ``start``, the second half down from ``end`` (exact
    to the last bit, which the filter edges of the low bands are sensitive to)."""
    f32 = np.float32
    step = f32((end - start) / (steps - 1))
    i = np.arange(steps)
    up = f32(start) + step * i.astype(f32)
    down = f32(end) - step * (steps - 1 - i).astype(f32)
    return np.where(i < steps // 2, up, down).astype(f32)


@functools.cache
def _filterbank() -> np.ndarray:
    """(201, 80) float32 filter matrix, built in float32 the way speechbrain builds it (made once per process)."""
    f32 = np.float32
    mel = _torch_linspace_f32(0.0, 2595.0 * math.log10(1.0 + F_MAX / 700.0), N_MELS + 2)
    hz = (f32(700.0) * (f32(10.0) ** (mel / f32(2595.0)) - f32(1.0))).astype(f32)
    half_width = (hz[1:] - hz[:-1])[:-1]
    centre = hz[1:-1]
    freqs = _torch_linspace_f32(0.0, float(SAMPLE_RATE // 2), N_FFT // 2 + 1)
    slope = (freqs[None, :] - centre[:, None]) / half_width[:, None]  # (80, 201)
    bank = np.ascontiguousarray(np.maximum(f32(0.0), np.minimum(slope + f32(1.0), f32(1.0) - slope)).T)
    bank.setflags(write=False)  # shared by every call
    return bank


@functools.cache
def _window() -> np.ndarray:
    """Periodic Hamming window (``torch.hamming_window(400)``), float32."""
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.54 - 0.46 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def log_mel(waves: np.ndarray) -> np.ndarray:
    """speechbrain's ``Fbank(n_mels=80)``: log-mel energies in dB, floored 80 dB below each clip's maximum.

    ``waves``: (n,) or (batch, n) float waveforms at 16 kHz (a batch of equal-length clips, each floored on its own).
    Returns float32 (frames, 80) or (batch, frames, 80), ``frames = 1 + n // 160``.
    """
    waves = np.asarray(waves, dtype=np.float32)
    if waves.shape[-1] < 1:
        raise ValueError("empty waveform")
    pad = [(0, 0)] * (waves.ndim - 1) + [(N_FFT // 2, N_FFT // 2)]
    padded = np.pad(waves, pad, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[..., ::HOP, :] * _window()
    spectrum = np.fft.rfft(frames, n=N_FFT, axis=-1)  # complex64 in numpy >= 2, as torch's float32 FFT
    power = (spectrum.real * spectrum.real + spectrum.imag * spectrum.imag).astype(np.float32)
    db = np.float32(10.0) * np.log10(np.maximum(power @ _filterbank(), np.float32(AMIN)))
    floor = db.max(axis=(-2, -1), keepdims=True) - np.float32(TOP_DB)
    return np.maximum(db, floor).astype(np.float32)


def features(waves: np.ndarray) -> np.ndarray:
    """The network's input: :func:`log_mel` minus each band's mean over the clip's frames.

    ``waves``: (n,) or (batch, n) float waveforms at 16 kHz. Returns float32 (batch, frames, 80); a 1-D input is a
    batch of one.
    """
    waves = np.asarray(waves, dtype=np.float32)
    mel = log_mel(waves[None] if waves.ndim == 1 else waves)
    return (mel - mel.mean(axis=-2, keepdims=True)).astype(np.float32)
