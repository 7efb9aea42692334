"""The web app's only contact with the library: load the model, predict, explain, segment.

Kept apart from the HTTP code so that the routes stay about HTTP and every library call the page depends on is
in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LONG_AUDIO_S = 10.0  # files longer than this (seconds) also get a female/male/no_speech timeline


@dataclass(frozen=True)
class ServedModel:
    """A loaded checkpoint and how the page names it."""

    loaded: Any  # models.LoadedModel
    name: str  # shown by /api/health and on the page
    version: str  # the model's own version (``extra["version"]``), else the voicegender version that wrote it


def load(model: Any = None) -> ServedModel:
    """Load the model once: None → the shipped default model, a path → that checkpoint, a LoadedModel → as is."""
    from .. import __version__
    from ..predict import load_model

    loaded = load_model(model)  # the same resolution as `voicegender predict --model`
    fallback = Path(model).stem if isinstance(model, (str, Path)) else loaded.model_config.arch
    name = str(loaded.extra.get("name") or fallback)
    version = loaded.extra.get("version") or loaded.voicegender_version or __version__
    return ServedModel(loaded, name, str(version))


def predict(samples: np.ndarray, sr: int, served: ServedModel, name: str) -> Any:
    """``predict.Prediction`` (label, p_female, duration_s, speech_s, error) for one decoded waveform."""
    from ..predict import predict_waveform

    return predict_waveform(samples, sr, served.loaded, name=name)


def overlay_png(samples: np.ndarray, sr: int, served: ServedModel) -> bytes:
    """PNG of the spectrogram with the class-activation overlay."""
    from ..explain import clip_overlay_png, explain_waveform

    return clip_overlay_png(explain_waveform(samples, sr, served.loaded))


def timeline(samples: np.ndarray, sr: int, served: ServedModel) -> list[dict[str, Any]]:
    """Female/male/no_speech segments of a long waveform: [{"start_s", "end_s", "label"}, ...]."""
    from ..segment import segment_waveform

    return [{"start_s": round(float(s.start_s), 3), "end_s": round(float(s.end_s), 3), "label": s.label}
            for s in segment_waveform(samples, sr, served.loaded)]
