"""The voice head's linear layers and how they are fitted (numpy and scikit-learn): what each layer reads
(:class:`HeadConfig`, the design matrices of :class:`voicegender.voice.training_set.FeatureTable`), sample weights
that balance genders and speakers, and the gender, short-speech, child-voice and speech-check layers.
:mod:`voicegender.voice.fit` puts them together into a :class:`~voicegender.voice.head.VoiceHead`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .head import SPEECH_MIN_LOGIT, LinearLayer, VoiceHead
from .training_set import MIN_FEATURE_SAMPLES, TRAIN_KINDS, FeatureTable


@dataclass(frozen=True)
class HeadConfig:
    """What the gender head sees and how strongly it is regularised."""

    # "+"-joined: ge2e (the embedding) and measure groups of acoustic.FEATURE_GROUPS (pitch, hnr, formants, voice =
    # all). The measures did not help the worst held-out corpus (docs/DEFAULT_MODEL.md), so the shipped head reads
    # the GE2E embedding only
    features: str = "ge2e"
    c: float = 3e-4  # inverse L2 strength of the logistic regression (strong: generalises across corpora)
    voice_weight: float = 1.0  # standardised voice measures are multiplied by this (a weaker penalty on them)
    kinds: tuple[str, ...] = TRAIN_KINDS  # copies of each training clip the head learns from
    exclude_children: bool = True  # children's voices carry little gender and hurt adults (docs/DEFAULT_MODEL.md)
    child_c: float = 1e-2  # inverse L2 strength of the child head
    # what the child head reads: the encoder's hidden means flag fewer adult women on corpora never trained on than
    # the embedding does (held out, at p_child >= 0.8: worst corpus 59 -> 37 %, mean 22 -> 13 %) and catch as many
    # children (docs/DEFAULT_MODEL.md, "Child voices")
    child_features: str = "hidden"
    # speech shorter than short_max_s seconds is answered by a second gender layer over short_features (0: none).
    # The encoder's hidden means hold more of a single word than its embedding: held out, short crops of 0.15-0.3 s
    # 82 -> 85 %, BAVED low arousal 94.8 -> 95.8 %; on longer speech they lose on home-microphone recordings
    # (docs/DEFAULT_MODEL.md), so the embedding keeps answering there
    short_features: str = "hidden"
    short_max_s: float = 1.0
    # the speech check (GE2E embedding -> speech or not) that confirms speech found only by the lenient VAD passes
    speech_check: bool = True
    speech_c: float = 1e-2  # inverse L2 strength of the speech check


# --- design matrices ----------------------------------------------------------------------------------------
ENCODER_FEATURES = ("ge2e", "hidden")  # the GE2E embedding; the encoder's hidden means (embeddings.ge2e_features)

def parse_features(features: str) -> tuple[bool, list[int]]:
    """("ge2e+pitch" ->) whether the embedding is read, and the columns of :data:`acoustic.FEATURE_NAMES` read
    ("hidden", the encoder's hidden means, is checked by :func:`reads_hidden`)."""
    from .acoustic import FEATURE_GROUPS, FEATURE_NAMES

    parts = [p.strip() for p in features.split("+") if p.strip()]
    unknown = [p for p in parts if p not in ENCODER_FEATURES and p not in FEATURE_GROUPS]
    if unknown or not parts:
        raise ValueError(f"features {features!r}: '+'-joined names among {', '.join(ENCODER_FEATURES)}, "
                         f"{', '.join(FEATURE_GROUPS)}")
    names = {n for p in parts if p not in ENCODER_FEATURES for n in FEATURE_GROUPS[p]}
    return "ge2e" in parts, [i for i, n in enumerate(FEATURE_NAMES) if n in names]


def reads_hidden(features: str) -> bool:
    return "hidden" in [p.strip() for p in features.split("+")]


def feature_names(features: str) -> list[str]:
    from .acoustic import FEATURE_NAMES
    from .embeddings import EMBEDDING_DIM

    ge2e, columns = parse_features(features)
    return ([f"ge2e_{i}" for i in range(EMBEDDING_DIM)] if ge2e else []) + (
        [f"hidden_{i}" for i in range(EMBEDDING_DIM)] if reads_hidden(features) else []) + [
        FEATURE_NAMES[i] for i in columns]


def design(table: FeatureTable, kind: str, rows: np.ndarray, features: str) -> np.ndarray:
    """Raw features (NaN where missing) of the ``kind`` copies of ``rows``: (len(rows), d) float64."""
    ge2e, columns = parse_features(features)
    parts = []
    if ge2e:
        parts.append(table.get(kind, "ge2e")[rows])
    if reads_hidden(features):
        parts.append(table.get(kind, "hidden")[rows])
    if columns:
        parts.append(table.get(kind, "acoustic")[rows][:, columns])
    return np.concatenate(parts, axis=1).astype(np.float64)


def balanced_weights(labels: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Per-sample weights: each class equal in total, each speaker equal within its class; mean 1."""
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    w = np.zeros(len(labels))
    for g in np.unique(labels):
        in_g = labels == g
        spk, counts = np.unique(speakers[in_g], return_counts=True)
        per = dict(zip(spk, counts, strict=True))
        w[in_g] = [1.0 / (len(spk) * per[s]) for s in speakers[in_g]]
    return w * len(w) / w.sum()


def fit_linear(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float, group_scale: np.ndarray | None = None
               ) -> LinearLayer:
    """Weighted L2 logistic regression on standardised, mean-imputed features; returns the layer that computes the
    log-odds of class 1 from raw features (NaN allowed)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, np.float64)
    impute = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
    impute = np.where(np.isfinite(impute), impute, 0.0)
    xf = np.where(np.isfinite(x), x, impute)
    mean = np.average(xf, axis=0, weights=w)
    scale = np.sqrt(np.average((xf - mean) ** 2, axis=0, weights=w))
    scale = np.where(scale > 1e-8, scale, 1.0)
    if group_scale is not None:
        scale = scale / group_scale  # z * k == (x - mean) / (scale / k)
    clf = LogisticRegression(C=c, max_iter=5000).fit((xf - mean) / scale, y, sample_weight=w)
    if list(clf.classes_) != [0, 1]:
        raise ValueError(f"need both classes 0 and 1 to fit a head; got {list(clf.classes_)}")
    return LinearLayer(impute=impute, mean=mean, scale=scale, coef=clf.coef_[0].copy(), bias=float(clf.intercept_[0]))


def _voice_scale(features: str, weight: float) -> np.ndarray | None:
    if weight == 1.0 or not parse_features(features)[1]:
        return None
    names = feature_names(features)
    return np.array([weight if not n.startswith(("ge2e_", "hidden_")) else 1.0 for n in names])


def training_rows(table: FeatureTable, rows: np.ndarray, cfg: HeadConfig) -> np.ndarray:
    return rows[~table.child[rows]] if cfg.exclude_children else rows


def training_matrix(table: FeatureTable, rows: np.ndarray, labels: np.ndarray, cfg: HeadConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and weights of the ``cfg.kinds`` copies of ``rows`` (copies without speech left out).

    ``labels`` holds one label per row; weights balance the classes, and the speakers within each class.
    """
    xs, ys, ws = [], [], []
    base_w = balanced_weights(labels, table.speaker[rows])
    for kind in cfg.kinds:
        ok = table.get(kind, "lengths")[rows] > 0
        xs.append(design(table, kind, rows[ok], cfg.features))
        ys.append(labels[ok])
        ws.append(base_w[ok])
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def fit_gender(table: FeatureTable, rows: np.ndarray, cfg: HeadConfig = HeadConfig()) -> LinearLayer:
    """The gender head (log-odds of *male*) fitted on the ``cfg.kinds`` copies of ``rows``."""
    rows = training_rows(table, rows, cfg)
    x, y, w = training_matrix(table, rows, table.y[rows], cfg)
    return fit_linear(x, y, w, cfg.c, _voice_scale(cfg.features, cfg.voice_weight))


def fit_short(table: FeatureTable, rows: np.ndarray, cfg: HeadConfig = HeadConfig()) -> LinearLayer | None:
    """The gender layer for short speech (over ``cfg.short_features``), or None when ``cfg.short_max_s`` is 0."""
    if cfg.short_max_s <= 0:
        return None
    return fit_gender(table, rows, replace(cfg, features=cfg.short_features))


SPEECH_KINDS = ("short", "short_tel", "short_aug", "tel", "codec")  # real speech the speech check learns from
NONSPEECH_SOUNDS = 4000  # synthetic non-speech recordings the check learns from (voicegender.speech.nonspeech)


def lenient_pass_speech(waves16k: list[np.ndarray]) -> list[np.ndarray]:
    """What the speech check is asked about in each recording: the speech that only the lenient passes of
    :func:`voicegender.speech.vad.find_speech` found, as predict would hand it over (recordings without such are left
    out)."""
    from ..speech.classified import MIN_SPEECH_S, PREDICT_VAD
    from ..speech.vad import find_speech

    asked: list[np.ndarray] = []
    for wave in waves16k:
        find_speech(wave, PREDICT_VAD, MIN_SPEECH_S, check=lambda speech: asked.append(speech) or False)
    return [w for w in asked if len(w) >= MIN_FEATURE_SAMPLES]


def nonspeech_embeddings(n: int | None = None, seed: int = 1, whole: bool = True) -> np.ndarray:
    """GE2E embeddings of synthetic non-speech: what the lenient VAD passes accept in ``n`` recordings (default
    :data:`NONSPEECH_SOUNDS`; about one in five passes) and, with ``whole``, every other recording itself (its sound
    without the silent lead), so the check sees more non-speech than the sounds that pass."""
    from ..speech import nonspeech
    from .embeddings import EMBEDDING_DIM, ge2e_embeddings

    sounds = [x for _, x in nonspeech.sounds(NONSPEECH_SOUNDS if n is None else n, seed)]
    clips = lenient_pass_speech(sounds)
    if whole:
        clips += [x[np.flatnonzero(x)[0]:] for x in sounds[::2] if np.count_nonzero(x) >= MIN_FEATURE_SAMPLES]
    return ge2e_embeddings(clips, threads=2) if clips else np.zeros((0, EMBEDDING_DIM), np.float32)


def speech_examples(table: FeatureTable) -> np.ndarray:
    """GE2E embeddings of the :data:`SPEECH_KINDS` copies of every clip with speech: what the check calls speech."""
    pos = np.concatenate([table.get(k, "ge2e")[table.get(k, "lengths") > 0] for k in SPEECH_KINDS])
    return pos[np.isfinite(pos).all(axis=1)]


def fit_speech_check(table: FeatureTable, negatives: np.ndarray, cfg: HeadConfig = HeadConfig()
                     ) -> LinearLayer | None:
    """The speech check: log-odds of speech over the GE2E embedding, from the :data:`SPEECH_KINDS` copies of every
    clip (speech) against ``negatives`` (non-speech embeddings), each side weighing half."""
    if not cfg.speech_check or not len(negatives):
        return None
    pos = speech_examples(table)
    x = np.concatenate([pos, negatives]).astype(np.float64)
    y = np.r_[np.ones(len(pos), int), np.zeros(len(negatives), int)]
    w = np.where(y == 1, 0.5 / len(pos), 0.5 / len(negatives)) * len(y)
    return fit_linear(x, y, w, cfg.speech_c)


def fit_child(table: FeatureTable, rows: np.ndarray, cfg: HeadConfig = HeadConfig()) -> LinearLayer | None:
    """The child head (log-odds of *aged 12 or younger*) on the clips of ``rows`` with a known age; None when they
    hold no child or no adult."""
    rows = rows[[a is not None for a in table.age[rows]]]
    labels = table.child[rows].astype(int)
    if len(np.unique(labels)) < 2:
        return None
    x, y, w = training_matrix(table, rows, labels, replace(cfg, features=cfg.child_features))
    return fit_linear(x, y, w, cfg.child_c, _voice_scale(cfg.child_features, cfg.voice_weight))


def config_dict(cfg: HeadConfig) -> dict:
    d = asdict(cfg)
    d["kinds"] = list(cfg.kinds)
    return d


def build_head(table: FeatureTable, cfg: HeadConfig, temperatures: list[float], metadata: dict,
               speech: LinearLayer | None = None, confidence_floor: float = 0.0) -> VoiceHead:
    """The final head on every (adult) clip of ``table``, with the given band temperatures, confidence floor and
    speech check."""
    rows = np.arange(len(table.y))
    short = fit_short(table, rows, cfg)
    return VoiceHead(features=cfg.features, feature_names=feature_names(cfg.features), gender=fit_gender(table, rows,
                     cfg), child=fit_child(table, rows, cfg), temperatures=list(temperatures), metadata=metadata,
                     short=short, short_max_s=cfg.short_max_s if short is not None else 0.0, speech=speech,
                     speech_min_logit=SPEECH_MIN_LOGIT, child_features=child_layer_reads(cfg),
                     confidence_floor=confidence_floor)


def child_layer_reads(cfg: HeadConfig) -> str:
    """:attr:`VoiceHead.child_features` of ``cfg``'s child layer: "hidden", or "" for the main layer's inputs."""
    if cfg.child_features == "hidden":
        return "hidden"
    if cfg.child_features != cfg.features:
        raise ValueError(f"child features {cfg.child_features!r}: 'hidden' or the main layer's ({cfg.features!r})")
    return ""
