"""The default model that ships inside the package, and one scoring function for any checkpoint.

``load_default_model()`` restores ``assets/default_model.pt`` (found with :mod:`importlib.resources`, so it works
from a wheel or an editable install). The contract every caller relies on (see docs/DEFAULT_MODEL.md)::

    x = featurize(speech_16k, 16000, loaded.feature_config)       # per clip
    logits = loaded.model(batch of x)                              # (n, 2); class 0 = female
    p_female = softmax(logits / temperature)[:, 0]                 # temperature = calibration_temperature(loaded)

:func:`p_female` does exactly that, batched, for every checkpoint kind (GE2E head, SmallCNN on log-mel or MFCC,
the seed's ResNet on MFCC images), so ``predict`` and ``segment`` need one call.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ModelError
from .features import feature_sample_rate, featurize
from .models import LoadedModel, load_checkpoint
from .voice_head import VoiceHead

DEFAULT_MODEL_NAME = "ge2e-head-v1"  # the shipped model's name (in the model card and `extra["name"]`)
DEFAULT_MODEL_VERSION = "1.0.0"  # bumped whenever the shipped weights change
DEFAULT_MODEL_FILE = "default_model.pt"  # inside voicegender/assets/
SAMPLE_RATE = 16_000  # Hz: the rate callers hand audio to :func:`p_female` at
LOG_MEL_MIN_FRAMES = 32  # shortest log-mel input (frames) a SmallCNN is fed; shorter clips are tiled
_SEED_MFCC_IMAGE_MAX = 255.0  # seed images are uint8; the ResNet takes them scaled to 0…1


def default_model_path() -> Path:
    """The shipped checkpoint's path on disk (inside the installed package)."""
    resource = importlib.resources.files("voicegender") / "assets" / DEFAULT_MODEL_FILE
    path = Path(str(resource))
    if not path.is_file():
        raise ModelError(f"{path}: the shipped default model is missing from the installed package; "
                         "reinstall voicegender or pass --model PATH")
    return path


DEFAULT_MODEL_PATH = Path(str(importlib.resources.files("voicegender") / "assets" / DEFAULT_MODEL_FILE))

_cache: dict[str, LoadedModel] = {}


@dataclass
class Scores:
    """What a model says about speech clips."""

    p_female: np.ndarray  # calibrated probability of a female voice, per clip
    p_child: np.ndarray | None = None  # probability of a child's voice (aged 12 or younger); None: not estimated


class VoiceModel:
    """A :class:`~voicegender.voice_head.VoiceHead` with the feature extractors that feed it (the shipped kind).

    ``score(waves16k)`` embeds each speech clip with the GE2E encoder, measures pitch and formants
    (:mod:`voicegender.acoustic`) when the head uses them, and applies the head with the temperature of each
    clip's speech-duration band. Calling the model returns ``p_female`` only (the scorer-callable contract of
    :func:`voicegender.predict.score_speech`).
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
        ge2e = voice = None
        if "ge2e" in self.head.features:
            from .embeddings import ge2e_embeddings

            ge2e = ge2e_embeddings(waves16k)
        if self.head.uses_voice:
            from .acoustic import voice_features

            voice = np.stack([voice_features(w) for w in waves16k])
        return self.head.inputs(ge2e, voice)

    def score(self, waves16k: list[np.ndarray]) -> Scores:
        waves = [np.asarray(w, np.float32).reshape(-1) for w in waves16k]
        if not waves:
            return Scores(np.zeros(0), None if self.head.child is None else np.zeros(0))
        x = self.features(waves)
        seconds = np.array([len(w) / SAMPLE_RATE for w in waves])
        return Scores(self.head.p_female(x, seconds), self.head.p_child(x))

    def __call__(self, waves16k: list[np.ndarray]) -> np.ndarray:
        return self.score(waves16k).p_female


def load_voice_model(path: str | Path) -> VoiceModel:
    """A voice head file (``.npz`` written by ``voicegender fit``) as a :class:`VoiceModel`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return VoiceModel(VoiceHead.load(path), path)


def load_default_model(device: str | None = None) -> LoadedModel:
    """The shipped default model (loaded once per process and device), in eval mode.

    ``.extra["calibration_temperature"]`` holds the temperature for :func:`p_female`; ``.extra`` also records
    the training corpora, recipe, metrics and date (see assets/MODEL_CARD.md).
    """
    key = str(device or "cpu")
    if key not in _cache:
        _cache[key] = load_checkpoint(default_model_path(), device=device)
    return _cache[key]


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
        from .embeddings import ge2e_embeddings  # batched over all 1.6 s windows of all clips

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
        From :func:`load_default_model` or :func:`voicegender.models.load_checkpoint` (GE2E head, SmallCNN on
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


# ----------------------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------------------


def expected_calibration_error(p_female: np.ndarray, is_female: np.ndarray, n_bins: int = 10) -> float:
    """ECE of binary probabilities: sum over equal-width bins of |accuracy - confidence| weighted by bin size.

    Confidence is that of the predicted class, ``max(p, 1 - p)``, so the bins span 0.5…1.
    """
    p = np.asarray(p_female, np.float64)
    y = np.asarray(is_female, bool)
    if p.size == 0:
        return 0.0
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == y
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The temperature T > 0 minimising the (weighted) negative log-likelihood of ``softmax(logits / T)``.

    A 1-D search over log T (golden section on [0.05, 20]); T > 1 softens over-confident models.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, int)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        return float(-(w * logp[np.arange(len(y)), y]).sum() / w.sum())

    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


# ----------------------------------------------------------------------------------------------------------------
# Training recipe for the GE2E head (the data side lives in scripts/train_default_model.py)
# ----------------------------------------------------------------------------------------------------------------


def balanced_weights(labels: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Per-sample weights giving each gender equal total weight and each speaker equal weight within its gender.

    The corpora are male-heavy and speakers have 7 to 134 clips; unweighted training would learn "male" and
    the voices of the talkative few. Weights average 1.
    """
    labels = np.asarray(labels)
    speakers = np.asarray(speakers)
    w = np.zeros(len(labels))
    for g in np.unique(labels):
        in_g = labels == g
        spk = np.unique(speakers[in_g])
        for s in spk:
            m = in_g & (speakers == s)
            w[m] = 1.0 / (len(spk) * m.sum())
    return w * len(w) / w.sum()


def train_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, hidden: int = 64,
               dropout: float = 0.2, epochs: int = 60, lr: float = 3e-3, weight_decay: float = 1e-3,
               batch_size: int = 256, seed: int = 0):
    """Train an :class:`~voicegender.models.EmbeddingHead` on embeddings ``x`` (n, D) with labels ``y`` (0 = female).

    AdamW with cosine learning-rate decay, weighted cross-entropy (``weights`` per sample, e.g.
    :func:`balanced_weights`). Returns ``(model in eval mode, ModelConfig)``.
    """
    from .models import ModelConfig, build_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = ModelConfig(arch="ge2e_head", in_rows=int(x.shape[1]), hidden=hidden, dropout=dropout)
    model = build_model(cfg)
    xt = torch.from_numpy(np.asarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    wt = torch.from_numpy(np.asarray(np.ones(len(y)) if weights is None else weights, np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, int(np.ceil(len(y) / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch_size):
            idx = torch.from_numpy(order[i:i + batch_size])
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx], reduction="none")
            loss = (loss * wt[idx]).sum() / wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval(), cfg


def head_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits (n, 2) of a trained head on embeddings ``x``."""
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, np.float32))).numpy().astype(np.float64)


def train_linear_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, c: float = 1e-3):
    """Weighted, strongly L2-regularised logistic regression on standardised embeddings, returned as an exactly
    equivalent :class:`~voicegender.models.EmbeddingHead` (so it saves, loads and explains like any head).

    The regression is ``z = w · (x - mean) / std + b`` (log-odds of "male"). The head computes it exactly:
    BatchNorm with running mean/var = the standardiser's, two hidden ReLU units ``relu(z)`` and ``relu(-z)``,
    and output logits ``(0, relu(z) - relu(-z)) = (0, z)``. ``c`` is sklearn's inverse regularisation strength.
    Returns ``(model in eval mode, ModelConfig)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from .models import ModelConfig, build_model

    x = np.asarray(x, np.float64)
    scaler = StandardScaler().fit(x, sample_weight=weights)
    clf = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), y, sample_weight=weights)
    if list(clf.classes_) != [0, 1]:
        raise ValueError(f"need both classes 0 (female) and 1 (male); got {clf.classes_}")
    cfg = ModelConfig(arch="ge2e_head", in_rows=int(x.shape[1]), hidden=2, dropout=0.0)
    model = build_model(cfg).eval()
    coef = torch.tensor(clf.coef_[0], dtype=torch.float32)
    bias = float(clf.intercept_[0])
    with torch.no_grad():
        bn = model.input_norm
        bn.running_mean.copy_(torch.tensor(scaler.mean_, dtype=torch.float32))
        bn.running_var.copy_(torch.tensor(scaler.scale_**2, dtype=torch.float32) - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        lin1 = model.body[0]
        lin1.weight.copy_(torch.stack([coef, -coef]))
        lin1.bias.copy_(torch.tensor([bias, -bias]))
        model.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0]]))
        model.head.bias.zero_()
    return model, cfg
