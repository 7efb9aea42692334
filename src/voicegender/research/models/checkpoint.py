"""Checkpoints: :func:`save_checkpoint` and :func:`load_checkpoint`, the only places trained weights are written
and read (``torch.load(..., weights_only=True)``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voicegender import __version__
from voicegender.errors import ModelError
from voicegender.fileio import atomic_write
from voicegender.voice.model import Scores
from voicegender.voice.model_files import check_checkpoint_file

from .config import ModelConfig, build_model

log = logging.getLogger(__name__)

_CKPT_KEYS = ("model_state", "model_config", "feature_config", "labels", "extra", "voicegender_version")


@dataclass
class LoadedModel:
    """A network restored from a checkpoint, with everything needed to feed it: a
    :class:`voicegender.voice.model.Model` (``score`` runs :func:`voicegender.research.scoring.p_female`)."""

    model: nn.Module  # in eval mode, on the requested device
    model_config: ModelConfig  # how to rebuild the network
    feature_config: dict[str, Any]  # how its input features were made (owned by voicegender.research.features)
    labels: list[str]  # class names in logit order, e.g. ["female", "male"]
    extra: dict[str, Any] = field(default_factory=dict)  # training metadata (metrics, split, seed, …)
    voicegender_version: str = ""  # package version that wrote the file
    path: Path | None = None  # the file it was loaded from

    # --- the Model interface ------------------------------------------------------------------------------------
    speech_check = None  # a checkpoint has no speech check
    scores_clips_apart = False  # features may be batched across clips: one call per batch

    @property
    def name(self) -> str:
        return str(self.extra.get("name") or (self.path.stem if self.path else "checkpoint"))

    @property
    def version(self) -> str:
        return str(self.extra.get("version") or self.voicegender_version)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.extra

    def score(self, waves16k: Sequence[np.ndarray]) -> Scores:
        from ..scoring import p_female

        return Scores(p_female(self, list(waves16k)))


def _check_jsonable(name: str, obj: Any) -> None:
    try:
        json.dumps(obj)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint {name} must be JSON-serialisable (plain dict/list/str/number): {e}") from e


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_config: ModelConfig,
    feature_config: dict[str, Any],
    labels: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``).

    The file is ``torch.save`` of a dict with ``model_state`` (tensors on CPU), ``model_config``
    (``asdict``), ``feature_config``, ``labels``, ``extra`` and ``voicegender_version``: everything but the
    tensors is JSON-able, so :func:`load_checkpoint` can use ``weights_only=True``.

    Parameters
    ----------
    path : path-like
        Destination (parent folders are created).
    model : nn.Module
        The trained network.
    model_config : ModelConfig
        The config it was built from.
    feature_config : dict
        JSON-able description of its input features.
    labels : sequence of str
        Class names in logit order.
    extra : dict, optional
        JSON-able metadata (metrics, split, seed, …).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path).expanduser()
    labels = [str(lab) for lab in labels]
    if len(labels) != model_config.n_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model_config.n_classes} outputs")
    extra = dict(extra or {})
    _check_jsonable("feature_config", feature_config)
    _check_jsonable("extra", extra)
    payload = {
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_config": asdict(model_config),
        "feature_config": dict(feature_config),
        "labels": labels,
        "extra": extra,
        "voicegender_version": __version__,
    }
    atomic_write(path, lambda f: torch.save(payload, f))
    log.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: runs no code from it).

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    device : str or torch.device, optional
        Where to put the model (default CPU).

    Returns
    -------
    LoadedModel
        The network in eval mode and its metadata.

    Raises
    ------
    ModelError
        The file is missing, unreadable, not a voicegender checkpoint, or its weights do not fit its config.
    """
    path = check_checkpoint_file(path)
    device = torch.device(device) if device is not None else torch.device("cpu")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch's message for a non-checkpoint runs to many lines of weights_only advice
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        why = "" if not first or "weights_only" in first else f": {first[:120]}"
        raise ModelError(f"{path}: not a voicegender checkpoint (torch cannot read it, {type(e).__name__}{why})") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _CKPT_KEYS[:4]):
        have = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"{path}: not a voicegender checkpoint (needs keys {', '.join(_CKPT_KEYS[:4])}; has {have})")
    try:
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        model = build_model(cfg)
        model.load_state_dict(ckpt["model_state"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise ModelError(f"{path}: weights do not match the stored model config ({e})") from e
    model.to(device).eval()
    labels = [str(lab) for lab in ckpt["labels"]]
    return LoadedModel(
        model=model,
        model_config=cfg,
        feature_config=dict(ckpt["feature_config"]),
        labels=labels,
        extra=dict(ckpt.get("extra") or {}),
        voicegender_version=str(ckpt.get("voicegender_version", "")),
        path=path,
    )
