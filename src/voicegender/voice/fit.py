"""Fit the shipped model's kind of head on labelled corpora: GE2E embedding + pitch / vocal-tract measures → gender,
child voice, and calibration per speech duration.

The recipe (``voicegender fit``) reads its features from :mod:`voicegender.voice.training_set` (cached copies of every
clip through several channels) and fits, with numpy and scikit-learn only:

1. the **gender head**: a logistic regression on the standardised GE2E embedding and the voice measures of
   :mod:`voicegender.voice.acoustic` (missing measures imputed with the training mean), strongly L2-regularised and
   weighted so each gender, and each speaker within a gender, counts equally;
2. the **child head**: the same kind of regression for "speaker aged 12 or younger", on the clips with a known age;
3. **calibration**: a temperature fitted on out-of-fold logits — leave-one-corpus-out when there are several
   corpora, speaker k-fold otherwise — over clean, channel and short (0.15–1.5 s) copies, checked per
   speech-duration band (:data:`DURATION_BANDS`) so a 0.2 s word does not get the confidence of a 10 s sentence.

The result is a :class:`voicegender.voice.head.VoiceHead` (a small ``.npz``; no torch needed to use it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .head import DURATION_BANDS, SPEECH_MIN_LOGIT, LinearLayer, VoiceHead, duration_band
from .training_set import MIN_FEATURE_SAMPLES, TRAIN_KINDS, FeatureTable

log = logging.getLogger(__name__)


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


# --- out-of-fold logits -------------------------------------------------------------------------------------
Folds = list[tuple[str, np.ndarray, np.ndarray]]  # (name, train rows, test rows)


def corpus_folds(table: FeatureTable, groups: dict[str, tuple[str, ...]] | None = None) -> Folds:
    """Leave-one-corpus-out folds; ``groups`` joins corpora into one test corpus (e.g. the Common Voice sets)."""
    names = sorted(set(table.corpus))
    groups = groups or {n: (n,) for n in names}
    folds = []
    for name, members in groups.items():
        test = np.flatnonzero(np.isin(table.corpus, members))
        if len(test):
            folds.append((name, np.flatnonzero(~np.isin(table.corpus, members)), test))
    return folds


def speaker_folds(table: FeatureTable, k: int = 5, seed: int = 0, stratify: np.ndarray | None = None) -> Folds:
    """Speaker-disjoint k-fold, speakers dealt round-robin within each stratum (default: gender)."""
    rng = np.random.default_rng(seed)
    strata = table.y if stratify is None else stratify
    fold_of: dict[str, int] = {}
    for s in np.unique(strata):
        spk = np.unique(table.speaker[strata == s])
        spk = [x for x in rng.permutation(spk) if x not in fold_of]
        for i, x in enumerate(spk):
            fold_of[x] = i % k
    f = np.array([fold_of[s] for s in table.speaker])
    return [(f"fold{i}", np.flatnonzero(f != i), np.flatnonzero(f == i)) for i in range(k)]


def out_of_fold(table: FeatureTable, folds: Folds, fit_fn: Callable[[np.ndarray], Callable[[str, np.ndarray],
                np.ndarray]], kinds: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Out-of-fold scores per test kind: ``fit_fn(train rows)`` returns ``score(kind, test rows)``; rows never
    tested (or with no speech) stay NaN."""
    out = {k: np.full(len(table.y), np.nan) for k in kinds}
    for name, train, test in folds:
        score = fit_fn(train)
        for k in kinds:
            ok = test[table.get(k, "lengths")[test] > 0]
            out[k][ok] = score(k, ok)
        log.info("fold %s: %d train / %d test clips", name, len(train), len(test))
    return out


def gender_scorer(table: FeatureTable, cfg: HeadConfig) -> Callable[[np.ndarray], Callable]:
    """For :func:`out_of_fold`: fit the gender head on the train rows; score = log-odds of *female*."""

    def fit_fn(train: np.ndarray):
        layer, short = fit_gender(table, train, cfg), fit_short(table, train, cfg)

        def score(kind: str, rows: np.ndarray) -> np.ndarray:
            z = -layer.logit(design(table, kind, rows, cfg.features))
            if short is None:
                return z
            is_short = table.speech_seconds(kind)[rows] < cfg.short_max_s
            if is_short.any():
                z[is_short] = -short.logit(design(table, kind, rows[is_short], cfg.short_features))
            return z

        return score

    return fit_fn


# --- calibration --------------------------------------------------------------------------------------------
MIN_TEMPERATURE = 0.3  # sharpest calibration allowed: separable held-out data would otherwise drive T to 0


def fit_temperature(logit_female: np.ndarray, is_female: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature T in [:data:`MIN_TEMPERATURE`, 20] minimising the weighted log-loss of ``sigmoid(logit / T)``
    (golden section over log T)."""
    z = np.asarray(logit_female, np.float64)
    y = np.asarray(is_female, np.float64)
    w = np.ones(len(z)) if weights is None else np.asarray(weights, np.float64)
    if len(z) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float((w * (np.logaddexp(0, s) - y * s)).sum() / w.sum())

    lo, hi = np.log(MIN_TEMPERATURE), np.log(20.0)
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


def fit_band_temperatures(logit_female: np.ndarray, is_female: np.ndarray, seconds: np.ndarray,
                          weights: np.ndarray | None = None, min_clips: int = 30) -> list[float]:
    """One temperature per :data:`DURATION_BANDS` band; a band with fewer than ``min_clips`` clips borrows the
    temperature of all clips. Temperatures never fall as speech gets shorter (shorter is never surer)."""
    w = np.ones(len(logit_female)) if weights is None else np.asarray(weights, np.float64)
    overall = fit_temperature(logit_female, is_female, w)
    band = duration_band(seconds)
    temps = []
    for b in range(len(DURATION_BANDS)):
        m = band == b
        temps.append(fit_temperature(logit_female[m], is_female[m], w[m]) if m.sum() >= min_clips else overall)
    for b in range(len(temps) - 2, -1, -1):  # bands run short -> long: a shorter band is at least as soft
        temps[b] = max(temps[b], temps[b + 1])
    return temps


def expected_calibration_error(p_female: np.ndarray, is_female: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-width bins of the predicted class's confidence (0.5…1)."""
    p = np.asarray(p_female, np.float64)
    y = np.asarray(is_female, bool)
    if p.size == 0:
        return 0.0
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == y
    which = np.clip(((confidence - 0.5) * 2 * n_bins).astype(int), 0, n_bins - 1)
    return float(sum((which == b).mean() * abs(correct[which == b].mean() - confidence[which == b].mean())
                     for b in range(n_bins) if (which == b).any()))


# --- held-out report ----------------------------------------------------------------------------------------
def bacc(y: np.ndarray, female: np.ndarray) -> float:
    """Balanced accuracy (:func:`voicegender.metrics.balanced_accuracy`) of "female" answers for labels ``y``
    (0 = female); NaN when a class is missing."""
    from ..metrics import balanced_accuracy, confusion_matrix

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return balanced_accuracy(confusion_matrix(y, np.where(np.asarray(female, bool), 0, 1)))


def _stack(table: FeatureTable, oof: dict[str, np.ndarray], kinds, rows: np.ndarray):
    """Out-of-fold female log-odds, is-female, speech seconds and balanced weights of ``rows`` over ``kinds``."""
    zs, ys, ss, ws = [], [], [], []
    w0 = balanced_weights(table.y[rows], table.speaker[rows]) if len(rows) else np.zeros(0)
    for k in kinds:
        ok = np.isfinite(oof[k][rows])
        zs.append(oof[k][rows[ok]])
        ys.append((table.y[rows[ok]] == 0).astype(float))
        ss.append(table.speech_seconds(k)[rows[ok]])
        ws.append(w0[ok])
    return tuple(np.concatenate(a) for a in (zs, ys, ss, ws))


CALIBRATION_KINDS = ("clean", "tel", "codec", "short", "short_tel")  # copies the temperatures are fitted on


def calibrate(table: FeatureTable, oof: dict[str, np.ndarray], rows: np.ndarray) -> list[float]:
    """Calibration temperatures per :data:`DURATION_BANDS` band from the out-of-fold logits of the adult clips among
    ``rows``: one temperature, shared by every band.

    Measured (docs/DEFAULT_MODEL.md): the head's logits already shrink with shorter speech, and a temperature per
    band fitted on the other corpora calibrated a held-out corpus *worse* than one shared temperature (ECE 0.044
    vs 0.028; worse in four of the five bands), so the bands share one; the file keeps one per band so a recipe
    that earns them can store them.
    """
    adults = rows[~table.child[rows]]
    z, y, _, w = _stack(table, oof, [k for k in CALIBRATION_KINDS if k in oof], adults)
    return [fit_temperature(z, y, w)] * len(DURATION_BANDS)


def heldout_report(table: FeatureTable, oof: dict[str, np.ndarray], folds: Folds) -> dict:
    """Per held-out corpus and test copy: adults' balanced accuracy and accuracy, children, clips without
    speech, BAVED's low-arousal level (emotion 0); per speech-duration band on the short crops; calibration
    (ECE before, with one temperature, with band temperatures — cross-fitted on the other folds)."""
    res: dict = {"corpora": {}, "bands": {}, "calibration": {}}
    emotion = np.array([str(m.get("emotion", "")) for m in table.meta])
    for name, _, test in folds:
        r = {}
        for k, logits in oof.items():
            rows = test[np.isfinite(logits[test])]
            adult, child = rows[~table.child[rows]], rows[table.child[rows]]
            f = logits >= 0
            r[k] = {"bacc": bacc(table.y[adult], f[adult]), "acc": float((f[adult] == (table.y[adult] == 0)).mean()),
                    "n": int(len(adult)), "no_speech": int(len(test) - len(rows)),
                    "child_bacc": bacc(table.y[child], f[child]) if len(child) else None}
            low = adult[emotion[adult] == "0"]
            if len(low):
                r[k]["emotion0_bacc"] = bacc(table.y[low], f[low])
                r[k]["emotion0_female_recall"] = float(f[low][table.y[low] == 0].mean())
        res["corpora"][name] = r
    for k in ("short", "short_tel"):
        if k not in oof:
            continue
        rows = np.flatnonzero(np.isfinite(oof[k]) & ~table.child)
        band = duration_band(table.speech_seconds(k)[rows])
        res["bands"][k] = [{"band": f"{lo:g}-{hi:g}", "n": int((band == b).sum()),
                            "bacc": bacc(table.y[rows[band == b]], oof[k][rows[band == b]] >= 0)}
                           for b, (lo, hi) in enumerate(DURATION_BANDS)]
    kinds = [k for k in CALIBRATION_KINDS if k in oof]
    pairs: dict[str, list] = {"before": [], "one": [], "bands": []}
    temps, fold_t, seconds = {}, {}, []
    for name, _, test in folds:
        others = np.setdiff1d(np.arange(len(table.y)), test)
        z_o, y_o, s_o, w_o = _stack(table, oof, kinds, others[~table.child[others]])
        z_t, y_t, s_t, _ = _stack(table, oof, kinds, test[~table.child[test]])
        t_band = fit_band_temperatures(z_o, y_o, s_o, w_o)
        temps[name] = t_band
        fold_t[name] = fit_temperature(z_o, y_o, w_o)
        seconds.append(s_t)
        pairs["before"].append((z_t, y_t))
        pairs["one"].append((z_t / fold_t[name], y_t))
        pairs["bands"].append((z_t / np.asarray(t_band)[duration_band(s_t)], y_t))

    def ece(which: str) -> float:
        z = np.concatenate([a for a, _ in pairs[which]])
        return expected_calibration_error(1 / (1 + np.exp(-z)), np.concatenate([b for _, b in pairs[which]]))

    res["calibration"] = {"ece_before": ece("before"), "ece_one_temperature": ece("one"),
                          "ece_band_temperatures": ece("bands"), "fold_band_temperatures": temps,
                          "fold_temperatures": fold_t}
    # per duration band, with the shipped calibration (one temperature, cross-fitted)
    z = np.concatenate([a for a, _ in pairs["one"]])
    y = np.concatenate([b for _, b in pairs["one"]])
    band = duration_band(np.concatenate(seconds))
    p = 1 / (1 + np.exp(-z))
    res["calibration"]["bands"] = [
        {"band": f"{lo:g}-{hi:g}", "n": int((band == b).sum()),
         "ece": expected_calibration_error(p[band == b], y[band == b]) if (band == b).any() else None,
         "accuracy": float(((p[band == b] >= 0.5) == (y[band == b] == 1)).mean()) if (band == b).any() else None,
         "mean_confidence": float(np.maximum(p, 1 - p)[band == b].mean()) if (band == b).any() else None}
        for b, (lo, hi) in enumerate(DURATION_BANDS)]
    return res


def child_auc(table: FeatureTable, cfg: HeadConfig, k: int = 5, seed: int = 0) -> dict:
    """Speaker k-fold ROC-AUC of the child head on the clean clips with a known age (folds stratified by child)."""
    from ..metrics import roc_auc

    known = np.flatnonzero([a is not None for a in table.age])
    sub_child = table.child.astype(int)
    scores = np.full(len(table.y), np.nan)
    for _, train, test in speaker_folds(table, k, seed, stratify=sub_child * 2 + table.y):
        layer = fit_child(table, np.intersect1d(train, known), cfg)
        test = np.intersect1d(test, known)
        ok = test[table.get("clean", "lengths")[test] > 0]
        if layer is not None and len(ok):
            scores[ok] = layer.logit(design(table, "clean", ok, cfg.child_features))
    rows = np.flatnonzero(np.isfinite(scores))
    y = table.child[rows]
    out = {"auc": roc_auc(y, scores[rows]) if len(np.unique(y)) == 2 else None,
           "n_clips": int(len(rows)), "n_child_speakers": int(len(np.unique(table.speaker[rows][y]))),
           "n_adult_speakers": int(len(np.unique(table.speaker[rows][~y])))}
    for name in sorted(set(table.corpus[rows])):
        m = table.corpus[rows] == name
        if len(np.unique(y[m])) == 2:
            out[f"auc_{name}"] = roc_auc(y[m], scores[rows][m])
        out[f"adult_flagged_{name}"] = float((scores[rows][m & ~y] > 0).mean()) if (m & ~y).any() else None
    return out


def child_flag_heldout(table: FeatureTable, cfg: HeadConfig, folds: Folds, kinds: tuple[str, ...] = ("clean", "tel",
                       "codec")) -> dict:
    """Shares of clips whose p_child reaches :data:`voicegender.voice.default_model.CHILD_FLAG` when their corpus was
    held out, per held-out corpus and copy: adult women's, adult men's and (where ages say so) children's clips.
    Folds whose training rows hold no child are skipped."""
    from .default_model import CHILD_FLAG

    out: dict = {}
    for name, train, test in folds:
        layer = fit_child(table, train, cfg)
        if layer is None:
            continue
        for kind in kinds:
            ok = test[table.get(kind, "lengths")[test] > 0]
            flagged = layer.logit(design(table, kind, ok, cfg.child_features)) >= np.log(CHILD_FLAG / (1 - CHILD_FLAG))
            adult, female = ~table.child[ok], table.y[ok] == 0
            out.setdefault(name, {})[kind] = {
                group: float(flagged[m].mean()) if m.any() else None
                for group, m in (("adult_women", adult & female), ("adult_men", adult & ~female),
                                 ("children", ~adult))}
    return out


def config_dict(cfg: HeadConfig) -> dict:
    d = asdict(cfg)
    d["kinds"] = list(cfg.kinds)
    return d


def build_head(table: FeatureTable, cfg: HeadConfig, temperatures: list[float], metadata: dict,
               speech: LinearLayer | None = None) -> VoiceHead:
    """The final head on every (adult) clip of ``table``, with the given band temperatures and speech check."""
    rows = np.arange(len(table.y))
    short = fit_short(table, rows, cfg)
    return VoiceHead(features=cfg.features, feature_names=feature_names(cfg.features), gender=fit_gender(table, rows,
                     cfg), child=fit_child(table, rows, cfg), temperatures=list(temperatures), metadata=metadata,
                     short=short, short_max_s=cfg.short_max_s if short is not None else 0.0, speech=speech,
                     speech_min_logit=SPEECH_MIN_LOGIT, child_features=child_layer_reads(cfg))


def child_layer_reads(cfg: HeadConfig) -> str:
    """:attr:`VoiceHead.child_features` of ``cfg``'s child layer: "hidden", or "" for the main layer's inputs."""
    if cfg.child_features == "hidden":
        return "hidden"
    if cfg.child_features != cfg.features:
        raise ValueError(f"child features {cfg.child_features!r}: 'hidden' or the main layer's ({cfg.features!r})")
    return ""


def speech_check_report(layer: LinearLayer, table: FeatureTable, n: int = 1500, seed: int = 2) -> dict:
    """Non-speech accepted (new synthetic sounds, another seed) and training speech rejected by the check."""
    held_out = nonspeech_embeddings(n, seed, whole=False)  # what the check will be asked about
    pos = speech_examples(table)
    return {"nonspeech_asked": int(len(held_out)), "nonspeech_sounds": n,
            "nonspeech_accepted": float(np.mean(layer.logit(held_out) >= SPEECH_MIN_LOGIT)) if len(held_out) else None,
            "speech_rejected": float(np.mean(layer.logit(pos) < SPEECH_MIN_LOGIT))}


# --- the recipe as one call ---------------------------------------------------------------------------------
TEST_KINDS = ("clean", "tel", "codec", "short", "short_tel")  # held-out copies scored for the report
DEFAULT_CORPORA = ("audiomnist_az", "baved", "speechocean762_train", "cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")
DEFAULT_GROUPS = {"common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}  # one test corpus in LOCO


def default_cache_dir() -> Path:
    """Where training features are cached: ``fit/`` in the user cache folder (``$VOICEGENDER_CACHE_DIR`` or the
    platform's, see :func:`voicegender.cache.cache_dir`)."""
    from ..cache import cache_dir

    return cache_dir() / "fit"


def fit_corpora(corpora: list, out: str | Path, cfg: HeadConfig = HeadConfig(), *,
                cache_dir: str | Path | None = None, groups: dict[str, tuple[str, ...]] | None = None,
                workers: int = 2, metadata: dict | None = None, rank: int = 0, world_size: int = 1
                ) -> tuple[VoiceHead, dict] | None:
    """Fit a voice head on labelled corpora and write it to ``out`` (``.npz``); returns (head, report).

    Parameters
    ----------
    corpora : list of :class:`voicegender.corpora.Corpus` (audio corpora with speaker and gender labels).
    out : the model file to write.
    cfg : features, regularisation, training copies (:class:`HeadConfig`).
    cache_dir : where the copies' features are cached (default :func:`default_cache_dir`).
    groups : corpora joined into one held-out corpus for leave-one-corpus-out, e.g. ``{"cv": ("cv_en", "cv_fa")}``.
    workers : processes computing features.
    metadata : extra fields for the file's metadata (name, version, command).
    rank, world_size : this process's place in a multi-process job (torchrun's ``RANK`` / ``WORLD_SIZE``, on
        machines sharing ``cache_dir``): every rank computes its share of the features; rank 0 gathers them, fits
        and writes ``out``; the other ranks return None.

    Calibration: with two or more (groups of) corpora the temperatures come from leave-one-corpus-out logits (and
    the report holds held-out-corpus accuracy); with one, from speaker 5-fold logits.
    """
    import datetime

    from .. import __version__
    from .training_set import load_feature_table

    table = load_feature_table(corpora, cache_dir or default_cache_dir(), workers, rank, world_size)
    if table is None:  # not rank 0: its share of the features is cached
        return None
    names = {c.name for c in corpora}
    joined = {g: tuple(m for m in members if m in names) for g, members in (groups or {}).items()}
    joined = {g: m for g, m in joined.items() if m}
    in_group = {m for members in joined.values() for m in members}
    test_groups = {**{n: (n,) for n in sorted(names - in_group)}, **joined}
    protocol = "leave-one-corpus-out" if len(test_groups) >= 2 else "speaker 5-fold"
    folds = corpus_folds(table, test_groups) if len(test_groups) >= 2 else speaker_folds(table)
    oof = out_of_fold(table, folds, gender_scorer(table, cfg), TEST_KINDS)
    report = heldout_report(table, oof, folds)
    report["protocol"] = protocol
    temperatures = calibrate(table, oof, np.arange(len(table.y)))
    report["temperatures"] = temperatures
    report["child"] = child_auc(table, cfg) if table.child.any() else None
    if table.child.any() and protocol == "leave-one-corpus-out":
        report["child_flag_heldout"] = child_flag_heldout(table, cfg, folds)
    adults = ~table.child if cfg.exclude_children else np.ones(len(table.y), bool)
    meta = {
        "date": datetime.date.today().isoformat(),
        "voicegender_version": __version__,
        "training_corpora": sorted(names),
        "n_clips": int(adults.sum()),
        "n_speakers": int(len(np.unique(table.speaker[adults]))),
        "config": config_dict(cfg),
        "calibration": {"method": f"one temperature (for every speech-duration band) on {protocol} logits (adults)",
                        "bands_s": [[lo, None if hi == float("inf") else hi] for lo, hi in DURATION_BANDS],
                        "temperatures": temperatures,
                        "ece_before": report["calibration"]["ece_before"],
                        "ece_after_cross_fitted": report["calibration"]["ece_one_temperature"]},
        "heldout": {g: {k: round(v["bacc"], 4) for k, v in r.items()} for g, r in report["corpora"].items()},
        "child_auc": None if report["child"] is None else report["child"].get("auc"),
        **(metadata or {}),
    }
    speech = fit_speech_check(table, nonspeech_embeddings(), cfg) if cfg.speech_check else None
    if speech is not None:
        report["speech_check"] = meta["speech_check"] = speech_check_report(speech, table)
    head = build_head(table, cfg, temperatures, meta, speech)
    head.save(out)
    log.info("wrote %s", out)
    return head, report
