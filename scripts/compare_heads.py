"""Compare candidate heads for the shipped model by leave-one-corpus-out (LOCO) on ../shared/data.

    python scripts/compare_heads.py [--data ../shared/data] [--cache runs/fitcache] [--json runs/compare_heads.json]

Every candidate is fitted on all corpora but one and scored on the held-out corpus's clean, telephone and codec
copies (adults; children and BAVED's low-arousal level 0 get their own rows), and on short crops (0.15–1.5 s) per
speech-duration band. Candidates are ranked by the **worst** held-out corpus (balanced accuracy), never the mean.
Calibration is cross-fitted: each held-out corpus is calibrated with temperatures fitted on the other corpora's
out-of-fold logits. Features come from :mod:`voicegender.voice.training_set` (computed once, cached).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from voicegender.corpora import load_corpus
from voicegender.voice import heldout, layers
from voicegender.voice.training_set import load_feature_table

log = logging.getLogger("compare_heads")

CORPORA = ("audiomnist_az", "baved", "speechocean762_train", "cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")
GROUPS = {"audiomnist_az": ("audiomnist_az",), "baved": ("baved",), "speechocean762": ("speechocean762_train",),
          "common_voice": ("cv_en_delta13", "cv_fa", "cv_uz", "cv_vi")}
TEST_KINDS = ("clean", "tel", "codec", "short", "short_tel")


def candidates() -> dict[str, layers.HeadConfig]:
    """The linear heads compared; the shipped recipe is ``layers.HeadConfig()`` (GE2E embedding, and the encoder's
    hidden means for speech shorter than 1 s)."""
    base = layers.HeadConfig()
    return {
        "GE2E + LR C=1e-3, v1's copies (clean, tel, 2 random channels)": replace(
            base, c=1e-3, kinds=("clean", "tel", "aug1", "aug2")),
        "GE2E + LR C=1e-3": replace(base, c=1e-3),
        "GE2E + LR C=3e-4 (shipped)": base,
        "GE2E + LR C=3e-4 without the short-speech layer (v2)": replace(base, short_max_s=0.0),
        "GE2E + LR C=3e-4, short-speech layer below 0.6 s": replace(base, short_max_s=0.6),
        "GE2E + LR C=3e-4, short-speech layer below 1.5 s": replace(base, short_max_s=1.5),
        "hidden means + LR C=3e-4 for all speech": replace(base, features="hidden", short_max_s=0.0),
        "GE2E + LR C=1e-4": replace(base, c=1e-4),
        # the measures alone, for the ablation: no short-speech layer (it reads the encoder)
        "pitch + formants + LR": replace(base, features="voice", c=1.0, short_max_s=0.0),
        "pitch + LR": replace(base, features="pitch", c=1.0, short_max_s=0.0),
        "pitch + HNR + LR": replace(base, features="pitch+hnr", c=1.0, short_max_s=0.0),
        "formants + LR": replace(base, features="formants", c=1.0, short_max_s=0.0),
        "GE2E + pitch + LR": replace(base, features="ge2e+pitch"),
        "GE2E + pitch + formants + LR (w=1)": replace(base, features="ge2e+voice"),
        "GE2E + pitch + formants + LR (w=3)": replace(base, features="ge2e+voice", voice_weight=3.0),
    }


def sklearn_candidate(kind: str, features: str = "ge2e+voice"):
    """Non-linear comparison heads (not shippable without sklearn at prediction time)."""

    def make(table, cfg: layers.HeadConfig | None = None):
        cfg = cfg or layers.HeadConfig()

        def fit_fn(train: np.ndarray):
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.impute import SimpleImputer
            from sklearn.neural_network import MLPClassifier
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            rows = layers.training_rows(table, train, cfg)
            x, y, w = layers.training_matrix(table, rows, table.y[rows], replace(cfg, features=features))
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
                p = np.clip(model.predict_proba(layers.design(table, k, r, features))[:, 0], 1e-6, 1 - 1e-6)
                return np.log(p / (1 - p))

            return score

        return fit_fn

    return make


def checkpoint_candidate(table, path: str):
    """A fixed GE2E-head checkpoint scored on every fold's test rows (no fitting)."""
    import torch

    from voicegender.research.models import load_checkpoint
    from voicegender.research.scoring import calibration_temperature

    loaded = load_checkpoint(path)
    t = calibration_temperature(loaded)

    def fit_fn(train: np.ndarray):
        def score(kind: str, rows: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                logits = loaded.model(torch.from_numpy(table.get(kind, "ge2e")[rows])).numpy().astype(np.float64)
            return (logits[:, 0] - logits[:, 1]) / t

        return score

    return fit_fn


def summary_row(name: str, r: dict) -> str:
    cells = []
    for k in ("clean", "tel", "codec"):
        vals = [r["corpora"][c][k]["bacc"] for c in GROUPS]
        cells.append(" / ".join(f"{100 * v:.1f}" for v in vals) + f" (worst {100 * min(vals):.1f}, "
                     f"macro {100 * np.mean(vals):.1f})")
    emo = r["corpora"]["baved"]["clean"].get("emotion0_bacc")
    bands = " / ".join(f"{100 * b['bacc']:.0f}" for b in r["bands"]["short"])
    cal = r["calibration"]
    after = cal.get("ece_pooled_temperature", cal.get("ece_one_temperature"))  # results written before 2.3: old key
    return (f"| {name} | " + " | ".join(cells) + f" | {100 * emo:.1f} | {bands} | {cal['ece_before']:.3f} → "
            f"{after:.3f} |")


SHIPPED = "GE2E + LR C=3e-4 (shipped)"
CONDITIONS = {"clean": "clean", "tel": "telephone (8 kHz µ-law)", "codec": "low-bit-rate codec"}


def worst(r: dict) -> float:
    return min(r["corpora"][c][k]["bacc"] for c in GROUPS for k in CONDITIONS)


def report(results: dict) -> str:
    """Markdown tables for docs/DEFAULT_MODEL.md from the results JSON."""
    out = ["### Candidates: leave-one-corpus-out balanced accuracy (%), adults", "",
           "Per test condition: audiomnist_az / baved / speechocean762 / common_voice (worst, macro). "
           "*Worst* is the lowest of the twelve cells; BAVED emotion 0 is the low/tired level, clean.", "",
           "| candidate | worst | clean | telephone | codec | BAVED emotion 0 | short crops by band "
           "(0–0.3 / 0.3–0.6 / 0.6–1 / 1–3 s) | ECE before → after |", "|---|---|---|---|---|---|---|---|"]
    fixed = {n: r for n, r in results.items() if n.startswith("as shipped")}  # not refitted per fold
    for name, r in sorted(((n, r) for n, r in results.items() if n not in fixed), key=lambda kv: -worst(kv[1])):
        row = summary_row(name, r).split(" | ", 1)[1]
        out.append(f"| {name} | {100 * worst(r):.1f} | {row}")
    for name, r in fixed.items():
        row = summary_row(name, r).split(" | ", 1)[1]
        out.append(f"| {name} (fixed, not refitted: only the corpora it was not trained on are held out) | – | {row}")
    if SHIPPED in results:
        r = results[SHIPPED]
        out += ["", f"### The shipped recipe per held-out corpus ({SHIPPED})", "",
                "| held-out corpus | test copy | balanced acc % | acc % | adult clips | no speech found | "
                "children bacc % |", "|---|---|---|---|---|---|---|"]
        for c in GROUPS:
            for k, title in CONDITIONS.items():
                v = r["corpora"][c][k]
                child = "" if v.get("child_bacc") is None else f"{100 * v['child_bacc']:.1f}"
                out.append(f"| {c} | {title} | {100 * v['bacc']:.1f} | {100 * v['acc']:.1f} | {v['n']} | "
                           f"{v['no_speech']} | {child} |")
        emo = r["corpora"]["baved"]
        out += ["", "| BAVED emotion level 0 (low / tired), held out | balanced acc % | female recall % |",
                "|---|---|---|"]
        for k, title in CONDITIONS.items():
            out.append(f"| {title} | {100 * emo[k]['emotion0_bacc']:.1f} | "
                       f"{100 * emo[k]['emotion0_female_recall']:.1f} |")
        out += ["", "| short crops, held out | " + " | ".join(b["band"] + " s" for b in r["bands"]["short"]) + " |",
                "|---" * (len(r["bands"]["short"]) + 1) + "|"]
        for k in ("short", "short_tel"):
            out.append(f"| {k} (clips) | " + " | ".join(f"{100 * b['bacc']:.1f} ({b['n']})" if b["n"] else "–"
                                                       for b in r["bands"][k]) + " |")
        cal = r["calibration"]
        if "fold_temperatures" in cal:  # results written before 2.3 (one temperature on pooled clips)
            temps = ", ".join(f"{name} {t:.2f}" for name, t in cal["fold_temperatures"].items())
            out += ["", f"Calibration (adults; clean, telephone, codec and short copies; each held-out corpus "
                    f"calibrated on the other corpora's out-of-fold logits): ECE **{cal['ece_before']:.3f}** before, "
                    f"**{cal['ece_one_temperature']:.3f}** with one temperature (fold temperatures {temps})."]
        else:  # per cell, per band and the reliability diagrams: benchmarks/calibration.py
            out += ["", f"Calibration (cross-fitted, clean / telephone / codec cells): ECE {cal['ece_before']:.3f} "
                    f"before, {cal['ece_shipped']:.3f} shipped; worst cell {cal['worst_cell']['shipped']:.3f} "
                    "(benchmarks/calibration.py: per cell, per band, reliability diagrams)."]
    return "\n".join(out)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--cache", default="runs/fitcache")
    p.add_argument("--json", default="runs/compare_heads.json")
    p.add_argument("--only", nargs="*", help="candidate names to run (default all)")
    p.add_argument("--report", action="store_true", help="print the markdown tables of --json and exit")
    p.add_argument("--sklearn", action="store_true", help="also the MLP and gradient-boosting comparison heads")
    p.add_argument("--checkpoint", help="also score this GE2E-head checkpoint (e.g. v1's default_model.pt) as it is, "
                   "on every corpus; only the corpora it was not trained on are unseen by it")
    args = p.parse_args()
    if args.report:
        print(report(json.loads(Path(args.json).read_text())))
        return
    corpora = [load_corpus(Path(args.data) / n, name=n) for n in CORPORA]
    table = load_feature_table(corpora, args.cache)
    folds = heldout.corpus_folds(table, GROUPS)
    results = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    runs = {name: heldout.gender_scorer(table, cfg) for name, cfg in candidates().items()}
    if args.sklearn:
        runs["GE2E + pitch + formants + MLP(64)"] = sklearn_candidate("mlp")(table)
        runs["GE2E + pitch + formants + gradient boosting"] = sklearn_candidate("hgb")(table)
        runs["pitch + formants + gradient boosting"] = sklearn_candidate("hgb", "voice")(table)
    if args.checkpoint:
        runs[f"as shipped: {Path(args.checkpoint).name}"] = checkpoint_candidate(table, args.checkpoint)
    for name, fit_fn in runs.items():
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        oof = heldout.out_of_fold(table, folds, fit_fn, TEST_KINDS)
        results[name] = heldout.heldout_report(table, oof, folds)
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
