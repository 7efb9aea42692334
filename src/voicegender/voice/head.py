"""The shipped model's head: linear layers over the GE2E embedding and voice measures, stored as a plain ``.npz``.

No torch and no pickle: the file holds numpy arrays and one JSON string, loaded with ``allow_pickle=False``, so
using the model needs numpy only (the GE2E encoder and the pitch/formant trackers make its inputs).

- ``gender``: log-odds of *male* (:class:`LinearLayer`); ``p_female = floor + (1 − 2·floor)·sigmoid(-logit / T)``
  with the temperature ``T`` of the clip's speech-duration band (:data:`DURATION_BANDS`) and the confidence floor
  (:class:`Calibration`; files written before 2.3 have none: 0);
- ``child``: log-odds of a child's voice (aged 12 or younger), or absent; over the main layer's inputs, or over
  the encoder's hidden means when ``child_features`` is "hidden" (the shipped model);
- ``short``: log-odds of *male* for clips with less than ``short_max_s`` seconds of speech, over the encoder's
  hidden means (:func:`voicegender.voice.embeddings.ge2e_features`), or absent. It replaces ``gender`` there; the
  temperature applies to whichever layer answered;
- ``speech``: log-odds that a clip is speech at all, over the GE2E embedding, or absent. Speech detection asks it
  about what only its lenient passes found (:func:`voicegender.speech.vad.find_speech`): the onset of hiss, a buzz or a
  chord after silence scores like a single word there. Below ``speech_min_logit``: no speech.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError

FORMAT = "voicegender.voice_head/1"  # written into every file; checked on load
SPEECH_MIN_LOGIT = -1.0  # the speech check's threshold (docs/DEFAULT_MODEL.md, "Speech check"); files store their own
# Speech-duration bands (seconds of detected speech) with their own calibration temperature: short single
# words carry less evidence, so their probabilities are softened more.
DURATION_BANDS = ((0.0, 0.3), (0.3, 0.6), (0.6, 1.0), (1.0, 3.0), (3.0, float("inf")))


def duration_band(seconds: np.ndarray | float) -> np.ndarray:
    """Index into :data:`DURATION_BANDS` of each duration (seconds)."""
    edges = np.array([b[1] for b in DURATION_BANDS[:-1]])
    return np.searchsorted(edges, np.asarray(seconds, np.float64), side="right")


def calibrated(logit_female: np.ndarray, temperature: np.ndarray | float, floor: float = 0.0) -> np.ndarray:
    """``floor + (1 − 2·floor) · sigmoid(logit / temperature)``: the calibration map."""
    return floor + (1.0 - 2.0 * floor) * _sigmoid(np.asarray(logit_female, np.float64) / temperature)


@dataclass(frozen=True)
class Calibration:
    """A head's calibration: ``p_female = floor + (1 − 2·floor) · sigmoid(logit_female / T)``, ``T`` the temperature
    of the speech-duration band of each clip's speech seconds (:func:`voicegender.voice.calibration.fit_calibration`
    fits one)."""

    temperatures: tuple[float, ...] = (1.0,) * len(DURATION_BANDS)
    floor: float = 0.0

    @classmethod
    def one_temperature(cls, temperature: float, floor: float = 0.0) -> Calibration:
        return cls((float(temperature),) * len(DURATION_BANDS), float(floor))

    def p_female(self, logit_female: np.ndarray, speech_s: np.ndarray) -> np.ndarray:
        return calibrated(logit_female, np.asarray(self.temperatures, np.float64)[duration_band(speech_s)],
                          self.floor)


@dataclass
class LinearLayer:
    """``logit = coef · ((x with NaN → impute) − mean) / scale + bias`` over raw features ``x``."""

    impute: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        x = np.where(np.isfinite(x), x, self.impute)
        return ((x - self.mean) / self.scale) @ self.coef + self.bias

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": np.asarray(getattr(self, k), np.float64) for k in ("impute", "mean", "scale",
                                                                                  "coef", "bias")}

    @classmethod
    def from_arrays(cls, data, prefix: str, size: int | None = None) -> LinearLayer:
        """The layer ``prefix`` of a file's arrays; ``size``: the number of inputs it must read."""
        arrays = [np.asarray(data[f"{prefix}.{k}"], np.float64) for k in ("impute", "mean", "scale", "coef")]
        want = len(arrays[3]) if size is None else size
        if any(a.shape != (want,) for a in arrays):
            raise ValueError(f"layer {prefix!r} has arrays of shapes {[a.shape for a in arrays]}, expected ({want},)")
        return cls(*arrays, bias=float(data[f"{prefix}.bias"]))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@dataclass
class VoiceHead:
    """Gender (and child-voice) head over ``features`` ("ge2e", "voice" or "ge2e+voice")."""

    features: str
    feature_names: list[str]
    gender: LinearLayer
    child: LinearLayer | None = None
    temperatures: list[float] = field(default_factory=lambda: [1.0] * len(DURATION_BANDS))
    metadata: dict = field(default_factory=dict)  # name, version, recipe, training corpora, metrics, command
    short: LinearLayer | None = None  # the gender layer for short speech, over hidden means
    short_max_s: float = 0.0  # speech shorter than this (seconds) is answered by ``short``
    speech: LinearLayer | None = None  # the speech check over the GE2E embedding (log-odds of speech)
    speech_min_logit: float = SPEECH_MIN_LOGIT  # the speech check's log-odds below this: not speech
    child_features: str = ""  # what ``child`` reads: "hidden" (hidden means) or "" (the main layer's inputs)
    confidence_floor: float = 0.0  # no answer is surer than 1 - confidence_floor

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_floor < 0.5:
            raise ModelError(f"confidence floor {self.confidence_floor}: must be in [0, 0.5)")
        if self.child_features not in ("", "hidden"):
            raise ModelError(f"child layer over {self.child_features!r}: it reads the main layer's inputs or "
                             "'hidden'")

    @property
    def uses_ge2e(self) -> bool:
        return any(n.startswith("ge2e_") for n in self.feature_names)

    @property
    def voice_columns(self) -> list[int]:
        """Columns of :data:`voicegender.voice.acoustic.FEATURE_NAMES` the head reads (empty: none)."""
        from .acoustic import FEATURE_NAMES

        names = [n for n in self.feature_names if not n.startswith(("ge2e_", "hidden_"))]
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if unknown:
            raise ModelError(f"head reads unknown features: {', '.join(unknown[:3])}")
        return [FEATURE_NAMES.index(n) for n in names]

    @property
    def uses_voice(self) -> bool:
        return bool(self.voice_columns)

    @property
    def reads_hidden(self) -> bool:
        """Whether the main layer reads the encoder's hidden means (``fit --features hidden``)."""
        return any(n.startswith("hidden_") for n in self.feature_names)

    def inputs(self, ge2e: np.ndarray | None, voice: np.ndarray | None,
               hidden: np.ndarray | None = None) -> np.ndarray:
        """Head inputs from GE2E embeddings (n, 256), all voice measures (n, N_FEATURES) and hidden means (n, 256),
        as the main layer reads them (in that order)."""
        parts = []
        if self.uses_ge2e:
            parts.append(np.asarray(ge2e, np.float64))
        if self.reads_hidden:
            if hidden is None:
                raise ModelError("head reads the encoder's hidden means; none were given")
            parts.append(np.asarray(hidden, np.float64))
        if self.uses_voice:
            from .acoustic import N_FEATURES

            voice = np.asarray(voice, np.float64)
            if voice.ndim != 2 or voice.shape[1] != N_FEATURES:
                raise ModelError(f"head expects {N_FEATURES} voice measures per clip, got shape {voice.shape}")
            parts.append(voice[:, self.voice_columns])
        if not parts:
            raise ModelError("head reads no features")
        x = np.concatenate(parts, axis=1)
        if x.shape[1] != len(self.feature_names):
            raise ModelError(f"head expects {len(self.feature_names)} features, got {x.shape[1]}")
        return x

    @property
    def uses_hidden(self) -> bool:
        """Whether the head's short-speech layer answers short speech from the encoder's hidden means."""
        return self.short is not None and self.short_max_s > 0

    @property
    def child_reads_hidden(self) -> bool:
        return self.child is not None and self.child_features == "hidden"

    @property
    def needs_hidden(self) -> bool:
        """Whether any layer reads the encoder's hidden means (they come from the same encoder run)."""
        return self.uses_hidden or self.reads_hidden or self.child_reads_hidden

    def female_logit(self, x: np.ndarray, speech_s: np.ndarray | None = None,
                     hidden: np.ndarray | None = None) -> np.ndarray:
        """Uncalibrated log-odds of *female* for raw feature rows ``x``; rows with less than :attr:`short_max_s`
        seconds of speech (``speech_s``) are answered from their ``hidden`` means when the head has that layer."""
        z = -self.gender.logit(x)
        if self.uses_hidden and hidden is not None and speech_s is not None:
            hidden = np.asarray(hidden, np.float64)
            if hidden.ndim != 2 or hidden.shape[1] != len(self.short.coef):
                raise ModelError(f"head expects {len(self.short.coef)} hidden means per clip, got {hidden.shape}")
            short = np.asarray(speech_s, np.float64) < self.short_max_s
            if short.any():
                z = np.where(short, -self.short.logit(hidden), z)
        return z

    def p_female(self, x: np.ndarray, speech_s: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability of a female voice (:attr:`calibration`)."""
        return self.calibration.p_female(self.female_logit(x, speech_s, hidden), speech_s)

    @property
    def calibration(self) -> Calibration:
        """The file's band temperatures and confidence floor."""
        return Calibration(tuple(map(float, self.temperatures)), float(self.confidence_floor))

    def is_speech(self, ge2e: np.ndarray) -> np.ndarray | None:
        """Whether each clip (GE2E embeddings (n, 256)) is speech by the speech check; None without one."""
        if self.speech is None:
            return None
        ge2e = np.asarray(ge2e, np.float64)
        if ge2e.ndim != 2 or ge2e.shape[1] != len(self.speech.coef):
            raise ModelError(f"the speech check expects {len(self.speech.coef)} embedding values per clip, "
                             f"got shape {ge2e.shape}")
        return self.speech.logit(ge2e) >= self.speech_min_logit

    def p_child(self, x: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray | None:
        """Probability of a child's voice from the main layer's inputs ``x`` or, for a child layer over hidden
        means, from ``hidden`` (n, 256); None without a child layer."""
        if self.child is None:
            return None
        if not self.child_reads_hidden:
            return _sigmoid(self.child.logit(x))
        if hidden is None:
            raise ModelError("the child layer reads the encoder's hidden means; none were given")
        hidden = np.asarray(hidden, np.float64)
        if hidden.ndim != 2 or hidden.shape[1] != len(self.child.coef):
            raise ModelError(f"the child layer expects {len(self.child.coef)} hidden means per clip, "
                             f"got shape {hidden.shape}")
        return _sigmoid(self.child.logit(hidden))

    # --- file ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from ..fileio import atomic_write

        meta = {"format": FORMAT, "features": self.features, "feature_names": self.feature_names,
                "temperatures": list(map(float, self.temperatures)),
                "confidence_floor": float(self.confidence_floor),
                "duration_bands": [[lo, None if hi == float("inf") else hi] for lo, hi in DURATION_BANDS],
                "has_child": self.child is not None, "has_short": self.short is not None,
                "short_max_s": float(self.short_max_s), "has_speech": self.speech is not None,
                "speech_min_logit": float(self.speech_min_logit), "child_features": self.child_features,
                "metadata": self.metadata}
        arrays = {"meta": np.array(json.dumps(meta)), **self.gender.arrays("gender")}
        if self.child is not None:
            arrays.update(self.child.arrays("child"))
        if self.short is not None:
            arrays.update(self.short.arrays("short"))
        if self.speech is not None:
            arrays.update(self.speech.arrays("speech"))
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> VoiceHead:
        path = Path(path)
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise ModelError(f"{path}: not a voicegender voice head (format {meta.get('format')!r})")
                n_inputs = len(meta["feature_names"])
                gender = LinearLayer.from_arrays(data, "gender", n_inputs)
                child_features = str(meta.get("child_features", ""))
                child_inputs = None if child_features == "hidden" else n_inputs
                child = LinearLayer.from_arrays(data, "child", child_inputs) if meta.get("has_child") else None
                short = LinearLayer.from_arrays(data, "short") if meta.get("has_short") else None
                speech = LinearLayer.from_arrays(data, "speech") if meta.get("has_speech") else None
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            why = "not an .npz of arrays" if "pickle" in str(e) else f"{type(e).__name__}: {e}"
            raise ModelError(f"{path}: not a readable voice head ({why})") from e
        return cls(meta["features"], list(meta["feature_names"]), gender, child, list(meta["temperatures"]),
                   meta.get("metadata", {}), short, float(meta.get("short_max_s", 0.0)), speech,
                   float(meta.get("speech_min_logit", SPEECH_MIN_LOGIT)), child_features,
                   float(meta.get("confidence_floor", 0.0)))
