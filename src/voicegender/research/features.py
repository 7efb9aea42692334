"""Features: the seed project's MFCC pipeline (exact), its 224x224 image form, and a frequency-ordered log-mel.

Arrays in, arrays out: nothing here reads files except the on-disk cache at the bottom.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np

from ..audio.decode import INT16_SCALE, resample
from ..fileio import atomic_write

log = logging.getLogger(__name__)

# --- the seed's MFC pipeline -------------------------------------------------------------------------------
SEED_SAMPLE_RATE = 48_000  # AudioMNIST's recording rate
SEED_CLIP_SAMPLES = 47_998  # every clip is zero-padded to this length (~1 s at 48 kHz)
SEED_IMAGE_SIZE = 224  # the ResNet input edge


@dataclass(frozen=True)
class SeedMfccConfig:
    """The seed's MFCC settings. Time-based, so other rates keep a 25 ms window, a 10 ms hop and ~1 s."""

    sample_rate: int = SEED_SAMPLE_RATE  # Hz the audio is resampled to before the MFCC
    clip_seconds: float = SEED_CLIP_SAMPLES / SEED_SAMPLE_RATE  # pad/crop length: 47,998 samples at 48 kHz
    pre_emphasis: float = 0.97  # y[t] = x[t] - 0.97 x[t-1]
    n_mfcc: int = 12  # cepstral coefficients kept (rows of the matrix)
    n_mels: int = 40  # mel filters before the DCT
    window_seconds: float = 0.025  # n_fft = int(sr * 0.025) = 1200 at 48 kHz
    hop_seconds: float = 0.01  # hop_length = int(sr * 0.01) = 480 at 48 kHz -> 98 frames
    lifter: int = 22  # cepstral liftering
    clip_to_image: bool = False  # clip coefficients to 0..255, as the seed's 8-bit pictures hold them: set for
    # models trained on those pictures (audiomnist_mfc), so new audio reaches them in the same range

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def n_fft(self) -> int:
        return int(self.sample_rate * self.window_seconds)

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate * self.hop_seconds)


def pad_or_crop(wave: np.ndarray, length: int, offset: int | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Place ``wave`` in a zero array of ``length`` samples (or cut a ``length`` window out of it).

    offset : where the clip starts in the padded array (padding) or where the window starts in the clip
        (cropping). None: random if ``rng`` is given (training), else centred (inference).
    """
    n = len(wave)
    room = abs(length - n)
    if offset is None:
        offset = int(rng.integers(0, room + 1)) if rng is not None else room // 2
    if not 0 <= offset <= room:
        raise ValueError(f"offset {offset} outside 0..{room}")
    if n >= length:
        return wave[offset:offset + length].copy()
    out = np.zeros(length, dtype=wave.dtype)
    out[offset:offset + n] = wave
    return out


def pre_emphasis(wave: np.ndarray, coefficient: float = 0.97) -> np.ndarray:
    """y[0] = x[0]; y[t] = x[t] - coefficient * x[t-1]."""
    return np.append(wave[:1], wave[1:] - coefficient * wave[:-1])


def seed_mfcc(wave_int16_scale: np.ndarray, cfg: SeedMfccConfig = SeedMfccConfig()) -> np.ndarray:
    """The seed's MFCC of one clip already at ``cfg.sample_rate`` and already padded: (12, 98) float64.

    The input must be in int16 sample units (float audio in [-1, 1] times 32768), as the seed read its WAVs.
    """
    y = pre_emphasis(np.asarray(wave_int16_scale, dtype=np.float64), cfg.pre_emphasis)
    return librosa.feature.mfcc(
        y=y, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho", lifter=cfg.lifter,
        n_fft=cfg.n_fft, hop_length=cfg.hop_length, power=2, center=False, window="hann", n_mels=cfg.n_mels,
    )


def seed_features(samples: np.ndarray, sample_rate: int, cfg: SeedMfccConfig = SeedMfccConfig(),
                  offset: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Float audio in [-1, 1] at any rate -> the seed's (12, 98) MFCC, the way training and deployment must agree.

    Resamples to ``cfg.sample_rate``, scales to int16 units, pads (or crops) to ~1 s at ``offset`` (random with
    ``rng``, centred otherwise), then :func:`seed_mfcc`. The seed's own deployment skipped the padding and the
    scaling; doing both here removes that train/deploy mismatch.
    """
    wave = resample(np.asarray(samples, dtype=np.float32), sample_rate, cfg.sample_rate)
    wave = pad_or_crop(wave.astype(np.float64) * INT16_SCALE, cfg.clip_samples, offset, rng)
    mfcc = seed_mfcc(wave, cfg)
    return np.clip(mfcc, 0, 255) if cfg.clip_to_image else mfcc


def seed_mfcc_image(mfcc: np.ndarray, size: int = SEED_IMAGE_SIZE) -> np.ndarray:
    """The seed's image form of an MFCC matrix: uint8 (size, size, 3).

    Stacked x3 on a last axis, bilinearly resized with scikit-image (values kept, not rescaled), clipped to
    0..255 (negative coefficients black, large ones white) and rounded, as scipy's toimage(cmin=0, cmax=255) did.
    """
    from skimage.transform import resize  # imported lazily: scikit-image is slow to import

    stacked = np.stack([mfcc] * 3, axis=-1)
    resized = resize(stacked, (size, size, 3))
    return (np.clip(resized, 0, 255) + 0.5).astype(np.uint8)


# --- frequency-ordered log-mel for the native models ------------------------------------------------------
@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel spectrogram settings (frequency-ordered rows, so maps over them read in Hz)."""

    sample_rate: int = 16_000  # Hz; audio is resampled to this first
    n_mels: int = 64  # mel bands (rows)
    window_seconds: float = 0.025  # 400 samples at 16 kHz
    hop_seconds: float = 0.01  # 160 samples at 16 kHz -> 100 frames per second
    n_fft: int = 512  # FFT size (window zero-padded to it)
    fmin: float = 50.0  # Hz, lowest mel edge
    fmax: float = 8_000.0  # Hz, highest mel edge (Nyquist at 16 kHz)
    floor: float = 1e-6  # added before the log so silence stays finite

    @property
    def win_length(self) -> int:
        return int(self.sample_rate * self.window_seconds)

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate * self.hop_seconds)

    def band_centres_hz(self) -> np.ndarray:
        """Centre frequency in Hz of each mel row (for axis labels)."""
        return librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=self.fmax)[1:-1]


def log_mel(wave: np.ndarray, cfg: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Natural-log mel power spectrogram of float audio at ``cfg.sample_rate``: float32 (n_mels, frames)."""
    mel = librosa.feature.melspectrogram(
        y=np.asarray(wave, dtype=np.float32), sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, window="hann", center=True, power=2.0, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax,
    )
    return np.log(mel + cfg.floor).astype(np.float32)


# --- one entry point for every model input ------------------------------------------------------------------
FEATURE_KINDS = ("seed_mfcc", "seed_image", "log_mel", "ge2e")
# seed_mfcc: (12, 98) float MFCC; seed_image: (224, 224, 3) uint8, the seed's ResNet input;
# log_mel: (n_mels, frames) float32; ge2e: (256,) speaker embedding from resemblyzer's encoder (embeddings.py).


def feature_config_dict(kind: str, cfg: object | None = None) -> dict:
    """The JSON-able description of a model's input stored in checkpoints: {"kind": ..., **config fields}."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; one of {FEATURE_KINDS}")
    return {"kind": kind, **(asdict(cfg) if cfg is not None else {})}


def _config_of(feature_config: dict) -> object:
    fields = {k: v for k, v in feature_config.items() if k != "kind"}
    kind = feature_config["kind"]
    if kind in ("seed_mfcc", "seed_image"):
        return SeedMfccConfig(**fields)
    if kind == "log_mel":
        return LogMelConfig(**fields)
    raise ValueError(f"no array config for feature kind {kind!r}")


def feature_sample_rate(feature_config: dict) -> int:
    """The sample rate (Hz) audio should have before :func:`featurize`."""
    if feature_config["kind"] == "ge2e":
        return 16_000
    return _config_of(feature_config).sample_rate


def featurize(samples: np.ndarray, sample_rate: int, feature_config: dict,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """Turn float mono audio into the input a checkpoint's model expects (see FEATURE_KINDS).

    ``rng`` randomises the seed pipeline's padding offset (training); None centres it (inference).
    """
    kind = feature_config["kind"]
    if kind == "ge2e":
        from ..voice.embeddings import ge2e_embedding  # torch + resemblyzer: imported only when needed

        return ge2e_embedding(resample(np.asarray(samples, np.float32), sample_rate, 16_000))
    cfg = _config_of(feature_config)
    if kind == "log_mel":
        return log_mel(resample(np.asarray(samples, np.float32), sample_rate, cfg.sample_rate), cfg)
    mfcc = seed_features(samples, sample_rate, cfg, rng=rng)
    return seed_mfcc_image(mfcc) if kind == "seed_image" else mfcc


# --- on-disk cache -------------------------------------------------------------------------------------------
def config_key(cfg: object) -> str:
    """A short stable hash of a feature config dataclass (its class name and every field)."""
    text = json.dumps({"type": type(cfg).__name__, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class FeatureCache:
    """Arrays cached under ``root``, keyed by a feature-config hash and the file's path, size and mtime.

    A second pass over a corpus reads .npy files instead of decoding and transforming audio again. A changed
    file (size or mtime) or changed parameters give a new key, so stale features are never returned.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _entry(self, path: Path, key: str) -> Path:
        stat = path.stat()
        ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = hashlib.sha1(ident.encode()).hexdigest()
        return self.root / key / digest[:2] / f"{digest}.npy"

    def get(self, path: str | Path, key: str) -> np.ndarray | None:
        entry = self._entry(Path(path), key)
        if entry.exists():
            try:
                return np.load(entry)
            except (OSError, ValueError):  # a half-written entry from an interrupted run: recompute
                log.debug("ignoring unreadable cache entry %s", entry)
        return None

    def put(self, path: str | Path, key: str, array: np.ndarray) -> None:
        atomic_write(self._entry(Path(path), key), lambda f: np.save(f, array))  # processes may share a cache
