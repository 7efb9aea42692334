"""Torch datasets over clips: features in, (tensor, label) out, with an on-disk feature cache and augmentation.

Model inputs (what ``ClipDataset[i]`` returns as its first element):

- ``seed_image``: ``(3, 224, 224)`` float32 in 0…1 (the seed's 8-bit image / 255; the model normalises itself).
- ``seed_mfcc``: ``(1, 12, 98)`` float32.
- ``log_mel``: ``(1, n_mels, frames)`` float32; cropped/padded to ``crop_frames`` when that is set.

Image corpora (the seed's JPEGs, ``Corpus.kind == "image"``) have no audio, so their features come from the
picture itself:

- ``seed_image`` = the JPEG as it is (what the seed's ResNet saw).
- ``seed_mfcc`` = the JPEG's first channel sampled back to 12×98 at the centres of the original cells
  (bilinear, no anti-aliasing: ``F.interpolate(mode="bilinear", align_corners=False)``). The seed up-sized the
  12×98 matrix bilinearly (scikit-image, no anti-aliasing when enlarging), so at those centres the picture
  holds the original values exactly, up to JPEG error and 8-bit rounding. An *area* average over each cell
  would mix neighbouring coefficients through the bilinear ramps: on the golden fixture the mean absolute
  difference to ``clip(mfcc, 0, 255)`` is 2.6 with centre sampling and 26.5 with area averaging.
  This is the MFCC *as the images carry it*: clipped to 0…255 (negative coefficients are 0, large ones
  saturate at 255). It is NOT the MFCC that ``features.seed_features`` computes from audio (unclipped), so a
  model trained on it expects clipped inputs: clip audio-derived seed MFCCs to 0…255 before feeding such a
  model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..audio.decode import load_audio
from ..corpora import IMAGE_EXTENSIONS, Clip
from ..errors import VoiceGenderError
from ..progress import progress
from .features import FeatureCache, feature_sample_rate, featurize

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/voicegender/features")
SEED_MFCC_SHAPE = (12, 98)  # rows x frames of the seed MFCC (n_mfcc x 98 frames of ~1 s at 10 ms hop)
_CACHE_VERSION = 3  # bump when the way features are derived here changes (invalidates cache entries)


def is_image(clip: Clip) -> bool:
    """True for the seed's MFCC pictures (JPEG/PNG), which carry features but no audio."""
    return clip.path.suffix.lower() in IMAGE_EXTENSIONS


def image_feature(path: str | Path, kind: str) -> np.ndarray:
    """Features of one seed MFCC picture: ``seed_image`` (3, 224, 224) float32 0…1 or ``seed_mfcc`` (12, 98)
    float32 0…255 (first channel sampled at the cell centres; see the module docstring)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if kind == "seed_image":
        return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
    if kind == "seed_mfcc":  # sample the cell centres (see the module docstring)
        channel = torch.from_numpy(rgb[..., 0].astype(np.float32))[None, None]
        centres = F.interpolate(channel, size=SEED_MFCC_SHAPE, mode="bilinear", align_corners=False)[0, 0].numpy()
        return np.clip(centres, 0.0, 255.0)  # float rounding can step just outside the image's range
    raise ValueError(f"feature kind {kind!r} cannot be derived from an image ({path}); "
                     "use seed_image or seed_mfcc")


def feature_key(feature_config: dict, source: str) -> str:
    """Cache key of a feature description and its source ("audio" or "image")."""
    text = json.dumps({"v": _CACHE_VERSION, "source": source, **feature_config}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def model_input(feature: np.ndarray, kind: str) -> np.ndarray:
    """A raw feature (as featurize or image_feature return it) in the layout the model takes, float32."""
    if kind == "seed_image":
        if feature.shape[-1] == 3:  # (224, 224, 3) uint8 from featurize
            return np.ascontiguousarray(feature.transpose(2, 0, 1), dtype=np.float32) / 255.0
        return feature.astype(np.float32, copy=False)
    if kind in ("seed_mfcc", "log_mel"):
        return feature.astype(np.float32, copy=False)[None]
    return feature.astype(np.float32, copy=False)


def clip_feature(clip: Clip, feature_config: dict, rng: np.random.Generator | None = None,
                 augment: Augment | None = None) -> np.ndarray:
    """The model input of one clip (see the module docstring), uncached.

    ``rng`` randomises the seed pipeline's padding offset; ``augment`` (with ``rng``) perturbs audio first.
    """
    kind = feature_config["kind"]
    if is_image(clip):
        return model_input(image_feature(clip.path, kind), kind)
    sr = feature_sample_rate(feature_config)
    samples = load_audio(clip.path, sr).samples
    if augment is not None and rng is not None:
        samples = augment.apply(samples, sr, rng)
    return model_input(featurize(samples, sr, feature_config, rng=rng), kind)


# --- augmentation -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Augment:
    """Random perturbations of training audio (each drawn per clip and per epoch).

    The crop/offset itself is random whenever a dataset is in training mode with augmentation on: the seed
    pipeline pads at a random offset, log-mel takes a random ``crop_frames`` window.
    """

    gain_db: float = 6.0  # uniform gain in ±gain_db dB
    noise_p: float = 0.5  # probability of adding white noise ...
    snr_db: tuple[float, float] = (15.0, 40.0)  # ... at a uniform SNR in this range (dB, vs the clip's RMS)
    band_p: float = 0.3  # probability of band-limiting (telephone / cheap microphone) ...
    lowpass_hz: tuple[float, float] = (3_000.0, 7_000.0)  # ... low-pass edge drawn in this range
    highpass_hz: tuple[float, float] = (50.0, 300.0)  # ... and high-pass edge drawn in this range

    def apply(self, samples: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        x = samples.astype(np.float32, copy=True)
        x *= np.float32(10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20))
        if rng.random() < self.band_p:
            spectrum = np.fft.rfft(x)
            freqs = np.fft.rfftfreq(len(x), 1 / sr)
            low = rng.uniform(*self.lowpass_hz)
            high = rng.uniform(*self.highpass_hz)
            spectrum[(freqs > low) | (freqs < high)] = 0  # brick wall: crude but it is what band-limiting does
            x = np.fft.irfft(spectrum, n=len(x)).astype(np.float32)
        if rng.random() < self.noise_p:
            rms = float(np.sqrt(np.mean(x**2))) + 1e-8
            snr = rng.uniform(*self.snr_db)
            x = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(rms / 10 ** (snr / 20))
        return x


@dataclass(frozen=True)
class FeatureAugment:
    """SpecAugment-style perturbations of a model input (C, F, T), cheap enough to apply to cached features.

    The only augmentation possible for the seed's MFCC pictures (they have no audio). A circular time shift
    matches how the seed placed each clip at a random offset in its zero padding (silence at both ends).
    """

    shift: float = 0.15  # random circular time shift of up to ± this fraction of the frames
    time_masks: int = 2  # number of time stripes set to the feature's mean ...
    time_mask: float = 0.08  # ... each up to this fraction of the frames wide
    freq_masks: int = 1  # number of frequency / coefficient stripes set to the mean ...
    freq_mask: float = 0.15  # ... each up to this fraction of the rows high

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float32, copy=True)
        rows, frames = x.shape[-2], x.shape[-1]
        if self.shift > 0:
            limit = int(self.shift * frames)
            x = np.roll(x, int(rng.integers(-limit, limit + 1)), axis=-1)
        fill = float(x.mean())
        for _ in range(self.time_masks):
            width = int(rng.integers(0, int(self.time_mask * frames) + 1))
            start = int(rng.integers(0, frames - width + 1))
            x[..., start:start + width] = fill
        for _ in range(self.freq_masks):
            height = int(rng.integers(0, int(round(self.freq_mask * rows)) + 1))
            start = int(rng.integers(0, rows - height + 1))
            x[..., start:start + height, :] = fill
        return x


# --- precomputation with the cache ------------------------------------------------------------------------
def precompute(clips: list[Clip], feature_config: dict, cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
               desc: str = "features", skip_errors: bool = False
               ) -> list[np.ndarray] | tuple[list[np.ndarray | None], list[str]]:
    """Model inputs of every clip (deterministic: centred padding, no augmentation), in clip order.

    Each is read from the on-disk cache under ``cache_dir`` (None: no cache) or computed once and stored there,
    with a progress bar. Full-resolution seed images from JPEGs are not cached (the JPEG is already the cheapest
    form); call this only for kinds that fit in memory.

    With ``skip_errors`` a clip that cannot be read gets None and a "path: reason" message, and the result is
    ``(features, messages)``; otherwise the error propagates.
    """
    cache = FeatureCache(Path(cache_dir).expanduser()) if cache_dir is not None else None
    keys = {src: feature_key(feature_config, src) for src in ("audio", "image")}
    out: list[np.ndarray | None] = []
    failed: list[str] = []
    for clip in progress(clips, desc=desc, unit="clip"):
        key = keys["image" if is_image(clip) else "audio"]
        try:
            feat = cache.get(clip.path, key) if cache is not None else None
            if feat is None:
                feat = clip_feature(clip, feature_config)
                if cache is not None:
                    _cache_put(cache, clip.path, key, feat)
        except (VoiceGenderError, OSError) as e:
            if not skip_errors:
                raise
            failed.append(str(e) if str(clip.path) in str(e) else f"{clip.path}: {e}")
            feat = None
        out.append(feat)
    return (out, failed) if skip_errors else out


def _cache_put(cache: FeatureCache, path: Path, key: str, feat: np.ndarray) -> None:
    # Processes may fill one cache at once (training ranks, `fit` workers): FeatureCache writes each entry through
    # a private temporary file and a rename, so they never see each other's half-written files. A write can still
    # fail (a full disk, a read-only cache); the entry is only a speed-up, so that is logged and ignored.
    try:
        cache.put(path, key, feat)
    except OSError as e:
        log.debug("feature cache write skipped for %s (%s)", path, e)


def crop_or_pad_frames(x: np.ndarray, frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Cut a ``frames``-wide window from ``x`` (..., T) (random with ``rng``, else centred), or pad a shorter
    ``x`` with its own minimum (silence of a log spectrogram) at a random / centred position."""
    t = x.shape[-1]
    if t == frames:
        return x
    room = abs(t - frames)
    start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
    if t > frames:
        return x[..., start:start + frames]
    out = np.full((*x.shape[:-1], frames), x.min(), dtype=x.dtype)
    out[..., start:start + t] = x
    return out


class ClipDataset(Dataset):
    """Clips → ``(features float32 tensor, label int)``; label 0 = female, 1 = male.

    Parameters
    ----------
    clips : the clips (audio files or the seed's MFCC pictures; both may be mixed).
    feature_config : ``features.feature_config_dict(...)`` of the model's input.
    train : training mode: random crops (log-mel) and, with ``augment``, random padding offsets (seed MFCC) and
        audio perturbations. Evaluation mode is deterministic.
    augment : an :class:`Augment` (audio clips only; needs decoding every item, so nothing is cached) or None.
    crop_frames : fixed width of log-mel inputs (needed for batching in training); None keeps whole clips.
    cache_dir : feature cache folder (None: no disk cache). Features of non-augmented items are computed once
        (:func:`precompute`) and kept in memory, except full-size seed images of JPEGs, which are decoded per item.
    seed : base of the per-item random generators (item i of epoch e uses ``(seed, epoch, i)``).
    features : precomputed model inputs of ``clips`` (skips :func:`precompute`).
    feature_augment : a :class:`FeatureAugment` applied to every training item (after any audio augmentation),
        so cached features and the seed's pictures can be augmented too.
    """

    def __init__(self, clips: list[Clip], feature_config: dict, train: bool = False, augment: Augment | None = None,
                 crop_frames: int | None = None, cache_dir: str | Path | None = DEFAULT_CACHE_DIR, seed: int = 0,
                 desc: str = "features", features: list[np.ndarray] | None = None,
                 feature_augment: FeatureAugment | None = None):
        self.clips = list(clips)
        self.feature_config = dict(feature_config)
        self.kind = feature_config["kind"]
        self.train = train
        self.augment = augment if train else None
        self.feature_augment = feature_augment if train else None
        self.crop_frames = crop_frames
        self.seed = seed
        self.epoch = 0
        self.labels = np.array([c.label for c in self.clips], dtype=np.int64)
        if features is not None:
            assert len(features) == len(self.clips)
            self._features: list[np.ndarray] | None = list(features)
        elif not self.precomputes(self.clips, self.kind, self.augment):
            self._features = None
        else:
            self._features = precompute(self.clips, feature_config, cache_dir, desc=desc)

    @staticmethod
    def precomputes(clips: list[Clip], kind: str, augment: Augment | None) -> bool:
        """Whether a dataset of ``clips`` computes (and caches) every feature up front rather than per item:
        not for full-size images of JPEGs (decoded per item) nor for augmented audio (new every epoch)."""
        if kind == "seed_image" and all(is_image(c) for c in clips):
            return False
        return augment is None or all(is_image(c) for c in clips)

    def subset(self, indices: list[int] | np.ndarray) -> ClipDataset:
        """The items ``indices`` as a dataset of their own, with the same settings and the features already
        computed (nothing is recomputed). In training mode its random draws follow the new item numbers."""
        out = copy.copy(self)
        out.clips = [self.clips[i] for i in indices]
        out.labels = self.labels[np.asarray(indices, dtype=np.int64)]
        out._features = None if self._features is None else [self._features[i] for i in indices]
        return out

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of training items (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def _rng(self, index: int) -> np.random.Generator | None:
        return np.random.default_rng((self.seed, self.epoch, index)) if self.train else None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clip = self.clips[index]
        rng = self._rng(index)
        if self._features is not None:
            x = self._features[index]
        elif self.augment is not None and not is_image(clip):
            x = clip_feature(clip, self.feature_config, rng=rng, augment=self.augment)
        else:
            x = clip_feature(clip, self.feature_config)
        if self.crop_frames is not None and self.kind == "log_mel":
            x = crop_or_pad_frames(x, self.crop_frames, rng)
        if self.feature_augment is not None and rng is not None and x.ndim == 3:
            x = self.feature_augment.apply(x, rng)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.labels[index])


def pad_collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack items, padding variable-width (last axis) features to the widest with each item's minimum."""
    xs, ys = zip(*batch, strict=True)
    width = max(x.shape[-1] for x in xs)
    if any(x.shape[-1] != width for x in xs):
        xs = [F.pad(x, (0, width - x.shape[-1]), value=float(x.min())) for x in xs]
    return torch.stack(list(xs)), torch.tensor(ys, dtype=torch.long)
