"""Waveform augmentations for robustness to channels a training corpus never had (numpy; scipy and librosa inside
the functions that need them, so that importing this module for :func:`rms` costs neither: predict and segment do).

Every function takes float mono audio and its sample rate and returns float32 audio at the same rate (and the
same length unless it says otherwise); random ones take a ``numpy.random.Generator`` so a seed reproduces them.

- :func:`telephone`: band-limit to 300–3400 Hz, resample through 8 kHz and (optionally) 8-bit µ-law (G.711).
- :func:`mu_law`: µ-law companding and 8-bit quantisation.
- :func:`add_noise`: white, pink or babble-like noise at a chosen SNR (dB).
- :func:`reverberate`: a synthetic room (exponentially decaying noise impulse response, RT60 in seconds).
- :func:`gain`, :func:`speed` (pitch-preserving time stretch), :func:`random_crop`.
- :func:`codec`: a round trip through a lossy codec (MP3, Opus, AAC, AMR-NB, G.723.1; PyAV's FFmpeg encoders).
- :func:`a_law`, :func:`clip_peaks`, :func:`tilt` (spectral tilt: a brighter or duller voice / microphone).
- :func:`random_augment`: a random chain of the above (v1's training copies); :func:`random_channel`: the
  v2 chain over the channels users record through (codecs, telephone, noise, room, clipping, level, tilt).
"""

from __future__ import annotations

import numpy as np

from ..extras import MissingExtraError
from .decode import resample

TELEPHONE_BAND = (300.0, 3400.0)  # Hz, the G.712 telephone channel's pass band
TELEPHONE_RATE = 8_000  # Hz, narrow-band telephony
MU = 255  # µ of G.711 µ-law
A_LAW = 87.6  # A of G.711 A-law (Europe's telephone companding)

# Lossy codecs users' recordings pass through: name -> (FFmpeg encoder, coding rate Hz, bit rates bit/s).
# The low bit rates are deliberate: voice notes, streaming and mobile calls at their worst.
CODECS = {
    "mp3": ("libmp3lame", 16_000, (16_000, 24_000, 32_000)),  # MPEG-2 layer III at 16 kHz
    "opus": ("libopus", 16_000, (6_000, 8_000, 12_000, 16_000)),  # WebRTC / WhatsApp voice notes
    "aac": ("aac", 16_000, (16_000, 24_000, 32_000)),  # phones' M4A recordings
    "amr_nb": ("libopencore_amrnb", 8_000, (4_750, 7_950, 12_200)),  # GSM/UMTS mobile calls (narrow band)
    "g723_1": ("g723_1", 8_000, (6_300,)),  # VoIP telephony
}


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def band_limit(wave: np.ndarray, sr: int, low: float = TELEPHONE_BAND[0], high: float = TELEPHONE_BAND[1],
               order: int = 8) -> np.ndarray:
    """Zero-phase Butterworth band-pass ``low``…``high`` Hz (``order`` per edge, applied forward and back)."""
    from scipy.signal import butter, sosfiltfilt  # the fit extras

    high = min(high, 0.45 * sr)
    sos = butter(order, [low, high], btype="bandpass", fs=sr, output="sos")
    x = np.asarray(wave, np.float64)
    if len(x) <= 3 * (2 * sos.shape[0] + 1):  # too short for filtfilt's padding
        return _f32(x)
    return _f32(sosfiltfilt(sos, x))


def mu_law(wave: np.ndarray, mu: int = MU, bits: int = 8) -> np.ndarray:
    """µ-law compand, quantise to ``bits`` bits and expand back (the G.711 round trip). Clips to [-1, 1]."""
    x = np.clip(np.asarray(wave, np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    levels = 2 ** (bits - 1)
    y = np.round(y * levels) / levels
    return _f32(np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu)


def telephone(wave: np.ndarray, sr: int, codec: bool = True, law: str = "mu") -> np.ndarray:
    """Narrow-band telephone channel: band-pass 300–3400 Hz, down to 8 kHz, G.711 companding (if ``codec``:
    ``law`` "mu" for µ-law, America and Japan, or "a" for A-law, elsewhere), back to ``sr``.

    The level is raised to a -20 dBFS RMS before the codec, as a phone's automatic gain would, so quiet clips are
    not lost to 8-bit quantisation, and restored afterwards.
    """
    if law not in ("mu", "a"):
        raise ValueError(f"unknown companding law {law!r}; 'mu' or 'a'")
    x = band_limit(wave, sr)
    x = resample(x, sr, TELEPHONE_RATE)
    if codec:
        level = rms(x)
        scale = 10 ** (-20 / 20) / level if level > 1e-8 else 1.0
        x = (mu_law(x * scale) if law == "mu" else a_law(x * scale)) / scale
    x = resample(x, TELEPHONE_RATE, sr)
    n = len(wave)
    return _f32(np.pad(x, (0, max(0, n - len(x))))[:n])


def a_law(wave: np.ndarray, a: float = A_LAW, bits: int = 8) -> np.ndarray:
    """A-law compand, quantise to ``bits`` bits and expand back (G.711 A-law round trip). Clips to [-1, 1]."""
    x = np.clip(np.asarray(wave, np.float64), -1.0, 1.0)
    ax = np.abs(x)
    norm = 1 + np.log(a)
    y = np.where(ax < 1 / a, a * ax / norm, (1 + np.log(np.maximum(a * ax, 1e-12))) / norm)
    levels = 2 ** (bits - 1)
    y = (np.minimum(np.floor(y * levels), levels - 1) + 0.5) / levels  # mid-rise: 2 x 128 codes, as G.711
    out = np.where(y < 1 / norm, y * norm / a, np.exp(y * norm - 1) / a)
    return _f32(np.where(x < 0, -out, out))


def codec(wave: np.ndarray, sr: int, name: str, bit_rate: int | None = None) -> np.ndarray:
    """Encode with a lossy codec (:data:`CODECS`) and decode back: float32 at ``sr``, the input's length.

    The audio is resampled to the codec's rate (8 kHz for AMR-NB and G.723.1), encoded frame by frame with PyAV's
    FFmpeg encoders, decoded, and resampled back; the codec's start-up delay is kept (as in a real file), the
    length is cut or zero-padded to the input's. ``bit_rate`` defaults to the lowest of the codec's rates.
    """
    import av

    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; one of {', '.join(CODECS)}")
    encoder_name, rate, rates = CODECS[name]
    try:
        enc = av.CodecContext.create(encoder_name, "w")
    except av.codec.codec.UnknownCodecError:
        # the fit extras pin a PyAV whose wheels carry every encoder of CODECS (pyproject.toml)
        raise MissingExtraError(f"the {name} channel (FFmpeg's {encoder_name} encoder, not in PyAV {av.__version__})",
                                "fit") from None
    x = np.clip(resample(_f32(wave), sr, rate), -1.0, 1.0).astype(np.float32)
    enc.sample_rate = rate
    enc.layout = "mono"
    enc.format = enc.codec.audio_formats[0].name if enc.codec.audio_formats else "s16"
    enc.bit_rate = int(bit_rate or rates[0])
    enc.open()
    dec = av.CodecContext.create(encoder_name if name != "mp3" else "mp3", "r")
    dec.sample_rate, dec.layout = rate, "mono"
    if enc.extradata:
        dec.extradata = enc.extradata
    frame = enc.frame_size or 1024
    pcm = np.pad(x, (0, -len(x) % frame))
    to_encoder = av.AudioResampler(format=enc.format.name, layout="mono", rate=rate)
    decoded, out_rate = [], rate

    def drain(packets) -> None:
        nonlocal out_rate
        for packet in packets:
            for f in dec.decode(packet):
                out_rate = f.sample_rate
                a = f.to_ndarray().astype(np.float32)
                if f.format.name.startswith("s16"):
                    a /= 32768.0
                elif f.format.name.startswith("s32"):
                    a /= 2.0**31
                decoded.append(a.reshape(-1) if a.shape[0] == 1 else a.mean(axis=0))

    for start in range(0, len(pcm), frame):
        f = av.AudioFrame.from_ndarray(pcm[None, start:start + frame], format="flt", layout="mono")
        f.sample_rate, f.pts = rate, start
        for g in to_encoder.resample(f):
            drain(enc.encode(g))
    drain(enc.encode(None))
    drain([None])
    y = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    y = resample(y, out_rate, sr)
    n = len(wave)
    return _f32(np.pad(y, (0, max(0, n - len(y))))[:n])


def clip_peaks(wave: np.ndarray, headroom_db: float) -> np.ndarray:
    """Hard clipping of an overdriven input: the peak is raised ``headroom_db`` dB above full scale, clipped to
    [-1, 1] and the level restored (so only the distortion changes)."""
    x = np.asarray(wave, np.float64)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 1e-8:
        return _f32(x)
    g = 10 ** (headroom_db / 20) / peak
    return _f32(np.clip(x * g, -1.0, 1.0) / g)


def tilt(wave: np.ndarray, sr: int, db_per_octave: float, pivot_hz: float = 1000.0) -> np.ndarray:
    """Change the spectral slope by ``db_per_octave`` around ``pivot_hz`` (positive: brighter, as a raised voice or
    a close cheap microphone; negative: duller, as a distant or muffled one). RMS level kept."""
    x = np.asarray(wave, np.float64)
    if x.size < 2:
        return _f32(x)
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    octaves = np.log2(np.maximum(f, 50.0) / pivot_hz)
    y = np.fft.irfft(spectrum * 10 ** (db_per_octave * octaves / 20), len(x))
    return _f32(y * (rms(x) / max(rms(y), 1e-12)))


def rms(wave: np.ndarray) -> float:
    """Root-mean-square level."""
    x = np.asarray(wave, np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum (shaped in the frequency domain), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    return x / max(rms(x), 1e-12)


def babble_noise(n: int, others: list[np.ndarray], rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """Babble: the sum of ``talkers`` random excerpts of other clips (each looped to ``n`` and normalised), unit
    RMS. Falls back to pink noise when no other clips are given."""
    usable = [o for o in others if len(o) > 0 and rms(o) > 1e-8]
    if not usable:
        return pink_noise(n, rng)
    out = np.zeros(n)
    for _ in range(talkers):
        o = np.asarray(usable[int(rng.integers(len(usable)))], np.float64)
        o = np.tile(o, int(np.ceil(n / len(o))) + 1)
        start = int(rng.integers(0, len(o) - n + 1))
        piece = o[start:start + n]
        out += piece / max(rms(piece), 1e-12)
    return out / max(rms(out), 1e-12)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white",
              others: list[np.ndarray] | None = None) -> np.ndarray:
    """Add ``kind`` noise ("white", "pink" or "babble" made from ``others``) so the SNR is ``snr_db`` dB exactly
    (signal power over noise power, measured over the whole clip)."""
    x = np.asarray(wave, np.float64)
    n = len(x)
    if kind == "white":
        noise = rng.standard_normal(n)
    elif kind == "pink":
        noise = pink_noise(n, rng)
    elif kind == "babble":
        noise = babble_noise(n, others or [], rng)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; one of white, pink, babble")
    signal_rms = rms(x)
    if signal_rms < 1e-10:
        return _f32(x)
    noise = noise * (signal_rms / max(rms(noise), 1e-12)) * 10 ** (-snr_db / 20)
    return _f32(x + noise)


def room_impulse_response(sr: int, rt60: float, rng: np.random.Generator, direct_ratio: float = 0.5) -> np.ndarray:
    """A synthetic room impulse response: a direct-path spike plus noise decaying by 60 dB in ``rt60`` seconds.

    direct_ratio : share of the response's energy in the direct path (0…1); lower is a more distant microphone.
    """
    n = max(2, int(rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at t = rt60
    tail[0] = 0.0
    tail *= np.sqrt((1 - direct_ratio) / max(np.sum(tail**2), 1e-12))
    tail[0] = np.sqrt(direct_ratio)
    return tail


def reverberate(wave: np.ndarray, sr: int, rng: np.random.Generator, rt60: float = 0.4,
                direct_ratio: float = 0.5) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`; same length as the input, RMS level kept."""
    from scipy.signal import fftconvolve  # the fit extras

    x = np.asarray(wave, np.float64)
    if not len(x):
        return _f32(x)
    y = fftconvolve(x, room_impulse_response(sr, rt60, rng, direct_ratio))[: len(x)]
    return _f32(y * (rms(x) / max(rms(y), 1e-12)))


def gain(wave: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels (no clipping)."""
    return _f32(np.asarray(wave, np.float64) * 10 ** (db / 20))


def speed(wave: np.ndarray, rate: float) -> np.ndarray:
    """Pitch-preserving tempo change (phase vocoder, librosa.effects.time_stretch): ``rate`` > 1 is faster and
    shorter; the output has ``round(len / rate)`` samples."""
    import librosa

    x = np.asarray(wave, np.float32)
    if len(x) < 2048:  # too short for the STFT to mean anything
        return x.copy()
    return _f32(librosa.effects.time_stretch(x, rate=rate))


def random_crop(wave: np.ndarray, sr: int, rng: np.random.Generator, min_s: float = 0.5,
                max_s: float = 4.0) -> np.ndarray:
    """A random window of ``min_s``…``max_s`` seconds (the whole clip if shorter)."""
    n = len(wave)
    length = int(rng.uniform(min_s, max_s) * sr)
    if length >= n:
        return _f32(wave).copy()
    start = int(rng.integers(0, n - length + 1))
    return _f32(wave[start:start + length]).copy()


def random_augment(wave: np.ndarray, sr: int, rng: np.random.Generator, others: list[np.ndarray] | None = None,
                   p_telephone: float = 0.3, p_noise: float = 0.4, p_reverb: float = 0.3,
                   p_speed: float = 0.2, crop: bool = False) -> np.ndarray:
    """A random chain: crop (if ``crop``) → speed → reverb → noise (5–25 dB SNR) → telephone → gain (±10 dB)."""
    x = _f32(wave)
    if crop:
        x = random_crop(x, sr, rng)
    if rng.random() < p_speed:
        x = speed(x, float(rng.uniform(0.85, 1.15)))
    if rng.random() < p_reverb:
        x = reverberate(x, sr, rng, rt60=float(rng.uniform(0.2, 0.9)), direct_ratio=float(rng.uniform(0.2, 0.8)))
    if rng.random() < p_noise:
        kind = str(rng.choice(["white", "pink", "babble"] if others else ["white", "pink"]))
        x = add_noise(x, float(rng.uniform(5, 25)), rng, kind, others)
    if rng.random() < p_telephone:
        x = telephone(x, sr, codec=bool(rng.random() < 0.7))
    return gain(x, float(rng.uniform(-10, 10)))


def random_channel(wave: np.ndarray, sr: int, rng: np.random.Generator, others: list[np.ndarray] | None = None
                   ) -> np.ndarray:
    """One random recording channel, for training copies (v2 recipe): room → noise → tilt → clipping → channel
    (a codec, the telephone with µ-law or A-law, or none) → level. Each stage is drawn independently, so copies
    span clean studio audio to a noisy, reverberant mobile call."""
    x = _f32(wave)
    if rng.random() < 0.3:
        x = reverberate(x, sr, rng, rt60=float(rng.uniform(0.2, 0.9)), direct_ratio=float(rng.uniform(0.2, 0.8)))
    if rng.random() < 0.4:
        kind = str(rng.choice(["white", "pink", "babble"] if others else ["white", "pink"]))
        x = add_noise(x, float(rng.uniform(5, 25)), rng, kind, others)
    if rng.random() < 0.3:
        x = tilt(x, sr, float(rng.uniform(-4, 4)))
    if rng.random() < 0.15:
        x = clip_peaks(x, float(rng.uniform(3, 15)))
    channel = rng.random()
    if channel < 0.45:
        name = str(rng.choice(list(CODECS)))
        x = codec(x, sr, name, int(rng.choice(CODECS[name][2])))
    elif channel < 0.7:
        x = telephone(x, sr, codec=True, law="mu" if rng.random() < 0.5 else "a")
    return gain(x, float(rng.uniform(-10, 10)))

