"""Compare candidate heads for the shipped model by leave-one-corpus-out (LOCO) on ../shared/data.

    python scripts/compare_heads.py [--data ../shared/data] [--cache runs/fitcache] [--json runs/compare_heads.json]

Every candidate is fitted on all corpora but one and scored on the held-out corpus's clean, telephone and codec
copies (adults; children and BAVED's low-arousal level 0 get their own rows), and on short crops (0.15–1.5 s) per
speech-duration band. Candidates are ranked by the **worst** held-out corpus (balanced accuracy), never the mean.
Calibration is cross-fitted: each held-out corpus is calibrated with temperatures fitted on the other corpora's
out-of-fold logits. Features come from :mod:`voicegender.training_set` (computed once, cached).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from voicegender import fit
from voicegender.corpora import load_corpus
from voicegender.training_set import load_feature_table

log = logging.getLogger("compare_heads")

CORPORA = ("audiomnist_az", "baved", "speechocean762_train", "cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")
GROUPS = {"audiomnist_az": ("audiomnist_az",), "baved": ("baved",), "speechocean762": ("speechocean762_train",),
          "common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}
TEST_KINDS = ("clean", "tel", "codec", "short", "short_tel")


def candidates() -> dict[str, object]:
    base = fit.HeadConfig()
    out = {
        "GE2E + LR (v1 recipe, new data)": replace(base, features="ge2e", kinds=("clean", "tel", "aug1", "aug2")),
        "GE2E + LR": replace(base, features="ge2e"),
        "voice + LR": replace(base, features="voice", c=1.0),
    }
    for w in (1.0, 3.0, 10.0):
        out[f"GE2E + voice + LR (w={w:g})"] = replace(base, voice_weight=w)
    for c in (3e-4, 3e-3):
        out[f"GE2E + voice + LR (C={c:g})"] = replace(base, c=c)
    return out


def sklearn_candidate(kind: str, features: str = "ge2e+voice"):
    """Non-linear comparison heads (not shippable without sklearn at prediction time)."""

    def make(table, cfg: fit.HeadConfig | None = None):
        cfg = cfg or fit.HeadConfig()

        def fit_fn(train: np.ndarray):
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.impute import SimpleImputer
            from sklearn.neural_network import MLPClassifier
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            rows = fit.training_rows(table, train, cfg)
            w0 = fit.balanced_weights(table.y[rows], table.speaker[rows])
            xs, ys, ws = [], [], []
            for k in cfg.kinds:
                ok = table.get(k, "lengths")[rows] > 0
                xs.append(fit.design(table, k, rows[ok], features))
                ys.append(table.y[rows[ok]])
                ws.append(w0[ok])
            x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
            if kind == "hgb":
                model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                                       l2_regularization=1.0, random_state=0)
                model.fit(x, y, sample_weight=w)
            else:  # MLPClassifier has no sample weights: resample by weight
                rng = np.random.default_rng(0)
                pick = rng.choice(len(y), len(y), p=w / w.sum())
                model = make_pipeline(SimpleImputer(), StandardScaler(),
                                      MLPClassifier((64,), alpha=1.0, max_iter=200, early_stopping=True,
                                                    random_state=0))
                model.fit(x[pick], y[pick])

            def score(k: str, r: np.ndarray) -> np.ndarray:
                p = np.clip(model.predict_proba(fit.design(table, k, r, features))[:, 0], 1e-6, 1 - 1e-6)
                return np.log(p / (1 - p))

            return score

        return fit_fn

    return make


def summary_row(name: str, r: dict) -> str:
    cells = []
    for k in ("clean", "tel", "codec"):
        vals = [r["corpora"][c][k]["bacc"] for c in GROUPS]
        cells.append(" / ".join(f"{100 * v:.1f}" for v in vals) + f" (worst {100 * min(vals):.1f}, "
                     f"macro {100 * np.mean(vals):.1f})")
    emo = r["corpora"]["baved"]["clean"].get("emotion0_bacc")
    bands = " / ".join(f"{100 * b['bacc']:.0f}" for b in r["bands"]["short"])
    cal = r["calibration"]
    return (f"| {name} | " + " | ".join(cells) + f" | {100 * emo:.1f} | {bands} | {cal['ece_before']:.3f} → "
            f"{cal['ece_band_temperatures']:.3f} |")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--cache", default="runs/fitcache")
    p.add_argument("--json", default="runs/compare_heads.json")
    p.add_argument("--only", nargs="*", help="candidate names to run (default all)")
    p.add_argument("--sklearn", action="store_true", help="also the MLP and gradient-boosting comparison heads")
    args = p.parse_args()
    corpora = [load_corpus(Path(args.data) / n, name=n) for n in CORPORA]
    table = load_feature_table(corpora, args.cache)
    folds = fit.corpus_folds(table, GROUPS)
    results = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    runs = {name: fit.gender_scorer(table, cfg) for name, cfg in candidates().items()}
    if args.sklearn:
        runs["GE2E + voice + MLP(64)"] = sklearn_candidate("mlp")(table)
        runs["GE2E + voice + gradient boosting"] = sklearn_candidate("hgb")(table)
        runs["voice + gradient boosting"] = sklearn_candidate("hgb", "voice")(table)
    for name, fit_fn in runs.items():
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        oof = fit.out_of_fold(table, folds, fit_fn, TEST_KINDS)
        results[name] = fit.heldout_report(table, oof, folds)
        log.info("%s: %.0f s", name, time.time() - t0)
        print(summary_row(name, results[name]), flush=True)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    print("| candidate | clean bacc az / baved / so762 / cv | telephone | codec | BAVED emotion 0 | short crops by "
          "band | ECE |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(summary_row(name, r))


if __name__ == "__main__":
    main()
