"""The model that ships inside the package: a GE2E voice head (``assets/default_model.npz``).

``load_default_model()`` returns a :class:`VoiceModel`: resemblyzer's GE2E speaker encoder (weights in the
resemblyzer wheel) feeding a :class:`~voicegender.voice.head.VoiceHead` (numpy arrays + JSON, no pickle),
rebuilt with ``voicegender fit`` (see assets/MODEL_CARD.md and docs/DEFAULT_MODEL.md). ``score(waves16k)`` gives the
calibrated probability of a female voice (temperature per speech-duration band) and of a child's voice: it is the
shipped kind of :class:`voicegender.voice.model.Model`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .head import VoiceHead
from .model import SAMPLE_RATE, Scores

DEFAULT_MODEL_NAME = "ge2e-head-v2"  # the shipped model's name (in the model card and its metadata)
# bumped whenever the shipped weights change; the file's own metadata["version"] says the same (a test checks), and
# that is what VoiceModel.version, the web page, /api/health and `voicegender --version` show (fit --model-version)
DEFAULT_MODEL_VERSION = "2.3.0"
DEFAULT_MODEL_FILE = "default_model.npz"  # inside voicegender/assets/
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


class VoiceModel:
    """A :class:`~voicegender.voice.head.VoiceHead` with the feature extractors that feed it (the shipped kind of
    :class:`~voicegender.voice.model.Model`).

    ``score(waves16k)`` embeds each speech clip with the GE2E encoder, measures pitch and formants
    (:mod:`voicegender.voice.acoustic`) when the head uses them, and applies the head with the temperature of each
    clip's speech-duration band. Each clip is scored on its own (``scores_clips_apart``).
    """

    scores_clips_apart = True

    def __init__(self, head: VoiceHead, path: Path | None = None) -> None:
        self.head, self.path = head, path
        self.metadata = dict(head.metadata)  # name, version, recipe, training corpora, metrics, command

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or (self.path.stem if self.path else "voice-head"))

    @property
    def version(self) -> str:
        """The model's own version (``metadata["version"]``), else the voicegender version that fitted it."""
        return str(self.metadata.get("version") or self.metadata.get("voicegender_version") or "")

    def features(self, waves16k: list[np.ndarray]) -> np.ndarray:
        """Raw head inputs (n, d) of speech clips at 16 kHz."""
        return self._inputs(waves16k)[0]

    def _inputs(self, waves16k: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(head inputs, hidden means or None, GE2E embeddings or None) from one run of the encoder."""
        ge2e = voice = hidden = None
        if self.head.uses_ge2e or self.head.needs_hidden:
            from .embeddings import ge2e_features

            ge2e, hidden = ge2e_features(waves16k)
        if self.head.uses_voice:
            from .acoustic import voice_features

            voice = np.stack([voice_features(w) for w in waves16k])
        return self.head.inputs(ge2e, voice, hidden), hidden, ge2e

    def score(self, waves16k: list[np.ndarray]) -> Scores:
        waves = [np.asarray(w, np.float32).reshape(-1) for w in waves16k]
        if not waves:
            return Scores(np.zeros(0), None if self.head.child is None else np.zeros(0))
        x, hidden, ge2e = self._inputs(waves)
        seconds = np.array([len(w) / SAMPLE_RATE for w in waves])
        return Scores(self.head.p_female(x, seconds, hidden), self.head.p_child(x, hidden), ge2e)

    @property
    def speech_check(self):
        """The head's speech check (:meth:`is_speech`), or None when the head has none."""
        return self.is_speech if self.head.speech is not None else None

    def is_speech(self, wave16k: np.ndarray) -> bool:
        """The head's speech check on one clip of detected speech (True when the head has none)."""
        if self.head.speech is None:
            return True
        from .embeddings import ge2e_embeddings

        return bool(self.head.is_speech(ge2e_embeddings([np.asarray(wave16k, np.float32).reshape(-1)]))[0])


def load_voice_model(path: str | Path) -> VoiceModel:
    """A voice head file (``.npz`` written by ``voicegender fit``) as a :class:`VoiceModel`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return VoiceModel(VoiceHead.load(path), path)


_default: VoiceModel | None = None


def load_default_model() -> VoiceModel:
    """The shipped default model (loaded once per process); ``.metadata`` holds its name, version, training corpora,
    recipe, calibration and held-out metrics (see assets/MODEL_CARD.md)."""
    global _default
    if _default is None:
        _default = load_voice_model(default_model_path())
    return _default
