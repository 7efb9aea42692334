"""Scoring for checkpoints trained with ``voicegender train`` (torch networks over MFCC, log-mel or GE2E inputs).

The contract every caller relies on::

    x = featurize(speech_16k, 16000, loaded.feature_config)       # per clip
    logits = loaded.model(batch of x)                              # (n, 2); class 0 = female
    p_female = softmax(logits / temperature)[:, 0]                 # temperature = calibration_temperature(loaded)

:func:`p_female` does exactly that, batched, for every checkpoint kind (SmallCNN on log-mel or MFCC, the seed's
ResNet on MFCC images, a GE2E head), so ``predict`` and ``segment`` need one call. The shipped model is a
:class:`voicegender.voice.default_model.VoiceModel` instead (numpy head, no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ModelError
from .features import feature_sample_rate, featurize

if TYPE_CHECKING:  # LoadedModel.score calls p_female: the class is only named here
    from .models import LoadedModel

SAMPLE_RATE = 16_000  # Hz: the rate callers hand audio to :func:`p_female` at
LOG_MEL_MIN_FRAMES = 32  # shortest log-mel input (frames) a SmallCNN is fed; shorter clips are tiled
_SEED_MFCC_IMAGE_MAX = 255.0  # seed images are uint8; the ResNet takes them scaled to 0…1


def calibration_temperature(loaded: LoadedModel) -> float:
    """The checkpoint's fitted temperature (``extra["calibration_temperature"]``), or 1.0 when it has none."""
    value = loaded.extra.get("calibration_temperature", 1.0)
    try:
        t = float(value)
    except (TypeError, ValueError):
        return 1.0
    return t if np.isfinite(t) and t > 0 else 1.0


def _tile_frames(x: np.ndarray, frames: int) -> np.ndarray:
    if x.shape[-1] >= frames:
        return x
    return np.tile(x, (1,) * (x.ndim - 1) + (int(np.ceil(frames / x.shape[-1])),))[..., :frames]


def _batches(loaded: LoadedModel, waves16k: list[np.ndarray], batch_size: int) -> list[torch.Tensor]:
    """Model inputs for every clip, grouped into batches the network can take at once."""
    fc = loaded.feature_config
    kind = fc["kind"]
    if kind == "ge2e":
        from ..voice.embeddings import ge2e_embeddings  # batched over all 1.6 s windows of all clips

        return [torch.from_numpy(ge2e_embeddings(waves16k))]
    feats = [featurize(w, SAMPLE_RATE, fc) for w in waves16k]
    if kind == "seed_image":  # (224, 224, 3) uint8 -> (3, 224, 224) float 0…1
        arrays = [np.transpose(f, (2, 0, 1)).astype(np.float32) / _SEED_MFCC_IMAGE_MAX for f in feats]
        return [torch.from_numpy(np.stack(arrays[i:i + batch_size])) for i in range(0, len(arrays), batch_size)]
    # 2-D features (rows, frames) for the SmallCNN: clips differ in length, so each is its own batch
    return [torch.from_numpy(_tile_frames(np.asarray(f, np.float32), LOG_MEL_MIN_FRAMES)[None, None]) for f in feats]


def p_female(loaded: LoadedModel, waves16k: list[np.ndarray], *, batch_size: int = 32,
             temperature: float | None = None) -> np.ndarray:
    """Calibrated probability that each clip's speaker is female, for any voicegender checkpoint.

    Parameters
    ----------
    loaded : LoadedModel
        From :func:`load_default_model` or :func:`voicegender.research.models.load_checkpoint` (GE2E head, SmallCNN on
        log-mel or MFCC, seed ResNet on MFCC images).
    waves16k : list of np.ndarray
        Mono float32 speech at 16 kHz, one array per clip (speech only: run VAD first; >= 0.5 s recommended).
    batch_size : int
        Clips per forward pass for fixed-size inputs.
    temperature : float, optional
        Softmax temperature; default the checkpoint's fitted ``extra["calibration_temperature"]`` (1.0 if absent).

    Returns
    -------
    np.ndarray
        ``(len(waves16k),)`` float64 in [0, 1]: ``softmax(logits / temperature)[:, female]``.
    """
    if not len(waves16k):
        return np.zeros(0)
    if feature_sample_rate(loaded.feature_config) <= 0:
        raise ModelError("checkpoint has an invalid feature sample rate")
    try:
        female = loaded.labels.index("female")
    except ValueError as e:
        raise ModelError(f"checkpoint labels {loaded.labels} have no 'female' class") from e
    t = calibration_temperature(loaded) if temperature is None else float(temperature)
    device = next(loaded.model.parameters()).device
    probs = []
    with torch.no_grad():
        for x in _batches(loaded, [np.asarray(w, np.float32).reshape(-1) for w in waves16k], batch_size):
            logits = loaded.model(x.to(device)).float().cpu()
            probs.append(torch.softmax(logits / t, dim=1)[:, female].numpy().astype(np.float64))
    return np.concatenate(probs)
