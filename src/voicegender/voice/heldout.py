"""How well a head does on what it never saw: folds (leave-one-corpus-out, speaker k-fold), out-of-fold scores, and
the held-out report (balanced accuracy per corpus, copy and speech-duration band; calibration cross-fitted; the child
flag on held-out corpora; the speech check on new non-speech sounds)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .calibration import (
    BAND_KINDS,
    CELL_KINDS,
    Calibration,
    calibration_summary,
    fit_held_out,
    fit_temperature,
    held_out_cells,
    stacked_logits,
)
from .head import DURATION_BANDS, SPEECH_MIN_LOGIT, LinearLayer, duration_band
from .layers import HeadConfig, design, fit_child, fit_gender, fit_short, nonspeech_embeddings, speech_examples
from .training_set import FeatureTable

log = logging.getLogger(__name__)


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


# --- held-out report ----------------------------------------------------------------------------------------
def bacc(y: np.ndarray, female: np.ndarray) -> float:
    """Balanced accuracy (:func:`voicegender.metrics.balanced_accuracy`) of "female" answers for labels ``y``
    (0 = female); NaN when a class is missing."""
    from ..metrics import balanced_accuracy, confusion_matrix

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return balanced_accuracy(confusion_matrix(y, np.where(np.asarray(female, bool), 0, 1)))


def heldout_report(table: FeatureTable, oof: dict[str, np.ndarray], folds: Folds) -> dict:
    """Per held-out corpus and test copy: adults' balanced accuracy and accuracy, children, clips without
    speech, BAVED's low-arousal level (emotion 0); per speech-duration band on the short crops; calibration
    (:func:`calibration_report`)."""
    res: dict = {"corpora": {}, "bands": {}, "calibration": {}}
    emotion = np.array([str(m.get("emotion", "")) for m in table.meta])
    for name, _, test in folds:
        r = {}
        for k, logits in oof.items():
            rows = test[np.isfinite(logits[test])]
            adult, child = rows[~table.child[rows]], rows[table.child[rows]]
            f = logits >= 0
            acc = float((f[adult] == (table.y[adult] == 0)).mean()) if len(adult) else float("nan")  # none: n/a
            r[k] = {"bacc": bacc(table.y[adult], f[adult]), "acc": acc,
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
    res["calibration"] = calibration_report(table, oof, folds)
    return res


def calibration_report(table: FeatureTable, oof: dict[str, np.ndarray], folds: Folds) -> dict:
    """How well calibrated the held-out answers are, **cross-fitted**: each held-out unit is calibrated on the
    other units' cells only (:func:`~voicegender.voice.calibration.fit_held_out`), then judged per cell (unit ×
    clean / telephone / codec copy), per speech-duration band of the short crops and pooled. Three calibrations
    side by side: ``before`` (the raw log-odds), ``pooled_temperature`` (one temperature on the pooled held-out
    clips, clean, channel and short copies: the recipe up to 2.2) and ``shipped`` (:func:`fit_calibration`).

    Returns ``cells`` ({method: {unit: {kind: summary}}}), ``bands`` ({method: [summary per band]}), pooled
    ``ece_<method>``, ``worst_cell`` ({method: ECE}) and ``fold_calibrations`` ({unit: {method: [temperatures,
    floor]}})."""
    units = {name: test for name, _, test in folds}
    cells = held_out_cells(table, oof, units)
    methods = ("before", "pooled_temperature", "shipped")
    out: dict = {"cells": {m: {} for m in methods}, "bands": {m: [] for m in methods}, "fold_calibrations": {},
                 "worst_cell": {}}
    judged: dict[str, list] = {m: [] for m in methods}
    short: dict[str, list] = {m: [] for m in methods}
    for name, test in units.items():
        others = np.setdiff1d(np.arange(len(table.y)), test)
        z_o, y_o, _, w_o = stacked_logits(table, oof, [k for k in CELL_KINDS + BAND_KINDS if k in oof],
                                          others[~table.child[others]])
        fitted = {"before": Calibration(),
                  "pooled_temperature": Calibration.one_temperature(fit_temperature(z_o, y_o, w_o)),
                  "shipped": fit_held_out(cells, leave_out=name)}
        out["fold_calibrations"][name] = {m: [list(c.temperatures), c.floor] for m, c in fitted.items()}
        for m, cal in fitted.items():
            for k in CELL_KINDS + BAND_KINDS:
                if (name, k) not in cells:
                    continue
                z, y, s = cells[(name, k)]
                p = cal.p_female(z, s)
                if k in CELL_KINDS:
                    out["cells"][m].setdefault(name, {})[k] = calibration_summary(p, y)
                    judged[m].append((p, y))
                else:
                    short[m].append((p, y, s))
    for m in methods:
        if judged[m]:
            p, y = (np.concatenate(a) for a in zip(*judged[m], strict=True))
            out[f"ece_{m}"] = calibration_summary(p, y)["ece"]
            out["worst_cell"][m] = max(c["ece"] for unit in out["cells"][m].values() for c in unit.values()
                                       if c["n"])
        if short[m]:
            p, y, s = (np.concatenate(a) for a in zip(*short[m], strict=True))
            band = duration_band(s)
            out["bands"][m] = [{"band": f"{lo:g}-{hi:g}", **calibration_summary(p[band == b], y[band == b])}
                               for b, (lo, hi) in enumerate(DURATION_BANDS)]
    return out


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


def speech_check_report(layer: LinearLayer, table: FeatureTable, n: int = 1500, seed: int = 2) -> dict:
    """Non-speech accepted (new synthetic sounds, another seed) and training speech rejected by the check."""
    held_out = nonspeech_embeddings(n, seed, whole=False)  # what the check will be asked about
    pos = speech_examples(table)
    return {"nonspeech_asked": int(len(held_out)), "nonspeech_sounds": n,
            "nonspeech_accepted": float(np.mean(layer.logit(held_out) >= SPEECH_MIN_LOGIT)) if len(held_out) else None,
            "speech_rejected": float(np.mean(layer.logit(pos) < SPEECH_MIN_LOGIT))}
