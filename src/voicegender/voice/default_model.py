"""The model that ships inside the package: a GE2E voice head (``assets/default_model.npz``).

``load_default_model()`` returns a :class:`VoiceModel`: resemblyzer's GE2E speaker encoder (weights in the
resemblyzer wheel) feeding a :class:`~voicegender.voice.head.VoiceHead` (numpy arrays + JSON, no pickle),
rebuilt with ``voicegender fit`` (see assets/MODEL_CARD.md and docs/DEFAULT_MODEL.md). ``score(waves16k)`` gives the
calibrated probability of a female voice (temperature per speech-duration band) and of a child's voice.
Checkpoints trained with ``voicegender train`` are scored by :mod:`voicegender.research.scoring` instead.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .head import VoiceHead

DEFAULT_MODEL_NAME = "ge2e-head-v2"  # the shipped model's name (in the model card and its metadata)
DEFAULT_MODEL_VERSION = "2.2.0"  # bumped whenever the shipped weights change
DEFAULT_MODEL_FILE = "default_model.npz"  # inside voicegender/assets/
SAMPLE_RATE = 16_000  # Hz: the rate speech is handed to :meth:`VoiceModel.score` at
# p_child at or above this: the voice may be a child's, whose gender the model cannot tell (children are at chance).
# Speaker 5-fold on clips with known ages: 77 % of children's clips reach it, 6 % of adults' (0.5: 92 % / 16 %);
# on corpora the head never saw, 13 % of adult women's clips (worst corpus 37 %) and 1-2 % of men's (fit's report).
CHILD_FLAG = 0.8


def default_model_path() -> Path:
    """The shipped model's path on disk (inside the installed package)."""
    path = Path(str(importlib.resources.files("voicegender") / "assets" / DEFAULT_MODEL_FILE))
    if not path.is_file():
        raise ModelError(f"{path}: the shipped default model is missing from the installed package; "
                         "reinstall voicegender or pass --model PATH")
    return path


@dataclass
class Scores:
    """What a model says about speech clips."""

    p_female: np.ndarray  # calibrated probability of a female voice, per clip
    p_child: np.ndarray | None = None  # probability of a child's voice (aged 12 or younger); None: not estimated


class VoiceModel:
    """A :class:`~voicegender.voice.head.VoiceHead` with the feature extractors that feed it (the shipped kind).

    ``score(waves16k)`` embeds each speech clip with the GE2E encoder, measures pitch and formants
    (:mod:`voicegender.voice.acoustic`) when the head uses them, and applies the head with the temperature of each
    clip's speech-duration band. Calling the model returns ``p_female`` only (the scorer-callable contract of
    :func:`voicegender.listen.predict.score_speech`).
    """

    def __init__(self, head: VoiceHead, path: Path | None = None) -> None:
        self.head, self.path = head, path
        self.extra = dict(head.metadata)  # name, version, recipe, metrics (as LoadedModel.extra)
        self.voicegender_version = str(head.metadata.get("voicegender_version", ""))
        self.labels = ["female", "male"]

    @property
    def name(self) -> str:
        return str(self.extra.get("name") or (self.path.stem if self.path else "voice-head"))

    def features(self, waves16k: list[np.ndarray]) -> np.ndarray:
        """Raw head inputs (n, d) of speech clips at 16 kHz."""
        return self._inputs(waves16k)[0]

    def _inputs(self, waves16k: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(head inputs, hidden means or None) from one run of the encoder."""
        ge2e = voice = hidden = None
        if self.head.uses_ge2e or self.head.needs_hidden:
            from .embeddings import ge2e_features

            ge2e, hidden = ge2e_features(waves16k)
        if self.head.uses_voice:
            from .acoustic import voice_features

            voice = np.stack([voice_features(w) for w in waves16k])
        return self.head.inputs(ge2e, voice, hidden), hidden

    def score(self, waves16k: list[np.ndarray]) -> Scores:
        waves = [np.asarray(w, np.float32).reshape(-1) for w in waves16k]
        if not waves:
            return Scores(np.zeros(0), None if self.head.child is None else np.zeros(0))
        x, hidden = self._inputs(waves)
        seconds = np.array([len(w) / SAMPLE_RATE for w in waves])
        return Scores(self.head.p_female(x, seconds, hidden), self.head.p_child(x, hidden))

    def __call__(self, waves16k: list[np.ndarray]) -> np.ndarray:
        return self.score(waves16k).p_female

    @property
    def has_speech_check(self) -> bool:
        return self.head.speech is not None

    def is_speech(self, wave16k: np.ndarray) -> bool:
        """The head's speech check on one clip of detected speech (True when the head has none)."""
        if self.head.speech is None:
            return True
        from .embeddings import ge2e_embeddings

        return bool(self.head.is_speech(ge2e_embeddings([np.asarray(wave16k, np.float32).reshape(-1)]))[0])

    def as_checkpoint(self):
        """The gender head as a torch :class:`~voicegender.research.models.LoadedModel` over the GE2E embedding (what
        ``explain`` differentiates through); only for heads that read the embedding alone. It is the main layer:
        speech shorter than ``head.short_max_s`` is answered by the short-speech layer, which maps do not explain
        (the web page says so)."""
        import torch

        from ..research.models import LoadedModel, ModelConfig, build_model

        if self.head.features != "ge2e":
            raise ModelError(f"{self.name}: maps need a head over the GE2E embedding alone "
                             f"(this one reads {self.head.features})")
        layer = self.head.gender
        cfg = ModelConfig(arch="ge2e_head", in_rows=len(layer.coef), hidden=2, dropout=0.0)
        model = build_model(cfg).eval()
        with torch.no_grad():  # BatchNorm = the standardiser; relu(z) - relu(-z) = z, the log-odds of "male"
            bn = model.input_norm
            bn.running_mean.copy_(torch.tensor(layer.mean, dtype=torch.float32))
            bn.running_var.copy_(torch.tensor(layer.scale**2, dtype=torch.float32) - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.zero_()
            coef = torch.tensor(layer.coef, dtype=torch.float32)
            model.body[0].weight.copy_(torch.stack([coef, -coef]))
            model.body[0].bias.copy_(torch.tensor([layer.bias, -layer.bias], dtype=torch.float32))
            model.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0]]))
            model.head.bias.zero_()
        return LoadedModel(model=model, model_config=cfg, feature_config={"kind": "ge2e"},
                           labels=list(self.labels), extra=dict(self.extra),
                           voicegender_version=self.voicegender_version)


def load_voice_model(path: str | Path) -> VoiceModel:
    """A voice head file (``.npz`` written by ``voicegender fit``) as a :class:`VoiceModel`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return VoiceModel(VoiceHead.load(path), path)


_default: VoiceModel | None = None


def load_default_model() -> VoiceModel:
    """The shipped default model (loaded once per process); ``.extra`` holds its name, version, training corpora,
    recipe, calibration and held-out metrics (see assets/MODEL_CARD.md)."""
    global _default
    if _default is None:
        _default = load_voice_model(default_model_path())
    return _default
