"""How well ``p_female`` is calibrated on corpora the model never saw (issue 21, item 3): per held-out cell, per
speech-duration band, per speaker, with reliability diagrams.

The shipped recipe's leave-one-corpus-out logits (``voicegender fit``'s: each test corpus — audiomnist_az, baved,
speechocean762_train, common_voice = the four ``cv_*`` folders — scored by the head fitted on the others, through
the clean, telephone and codec copies; adults) are calibrated **cross-fitted**: each held-out corpus by a calibration
fitted on the other corpora's cells only (:func:`voicegender.voice.heldout.calibration_report`). Three calibrations
side by side:

* ``before``: the head's raw log-odds;
* ``pooled_temperature``: one temperature minimising the log-loss of the pooled held-out clips (the recipe up to
  2.2);
* ``shipped``: a temperature and a confidence floor minimising the mean log-loss of the held-out cells, each cell
  weighted equally (:func:`voicegender.voice.calibration.fit_calibration`, 2.3).

Printed: ECE (10 equal-width confidence bins), the gap mean confidence − accuracy (> 0 over-confident) and the
log-loss per cell; the worst cell; the same per speech-duration band on the short crops (0.15–1.5 s); per speaker (a
speaker's ``p_female`` from its clips' calibrated log-odds averaged, weighted by speech seconds, as ``voicegender
speakers`` does); and, with ``--suspects`` (benchmarks/label_suspects.py --out), every cell again without the
speakers whose pitch and vocal-tract length both contradict their label. ``--plot`` draws the reliability diagram of
each cell and band.

Usage (from the repository root; the fit extra; the feature cache of ``voicegender fit`` is reused — about 11 minutes
to make on 2 cores when it is cold)::

    python benchmarks/calibration.py [--data ../shared/data] [--suspects .cache/bench/suspects.json]
        [--plot docs/img/calibration_reliability.png] [--out calibration.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path("..") / "shared" / "data"
METHODS = ("before", "pooled_temperature", "shipped")
KIND_NAMES = {"clean": "clean", "tel": "telephone", "codec": "codec"}


def held_out_logits(data: Path, cache: Path | None):
    """The feature table, the leave-one-corpus-out folds and the out-of-fold log-odds of the shipped recipe."""
    from voicegender.corpora import load_corpus
    from voicegender.voice import fit
    from voicegender.voice.training_set import load_feature_table

    corpora = [load_corpus(data / name) for name in fit.DEFAULT_CORPORA]
    table = load_feature_table(corpora, cache or fit.default_cache_dir())
    _, folds, oof = fit.held_out_logits(table, {c.name for c in corpora}, groups=fit.DEFAULT_GROUPS)
    return table, folds, oof


def speaker_summary(table, oof: dict, folds, calibrations: dict, kind: str = "clean") -> dict:
    """Per held-out unit and method: the speakers' calibrated p_female (clips' log-odds averaged, weighted by speech
    seconds) judged against their labels."""
    from voicegender.voice.calibration import Calibration, calibration_summary
    from voicegender.voice.model import logit, sigmoid, weighted_log_odds

    out: dict = {}
    for name, _, test in folds:
        rows = test[~table.child[test] & np.isfinite(oof[kind][test])]
        speakers = np.unique(table.speaker[rows])
        for method in METHODS:
            temperatures, floor = calibrations[name][method]
            cal = Calibration(tuple(temperatures), floor)
            log_odds = logit(cal.p_female(oof[kind][rows], table.speech_seconds(kind)[rows]))
            seconds = np.maximum(table.speech_seconds(kind)[rows], 1e-3)
            p = np.array([sigmoid(weighted_log_odds(log_odds[table.speaker[rows] == s],
                                                    seconds[table.speaker[rows] == s])) for s in speakers])
            is_female = np.array([table.y[rows][table.speaker[rows] == s][0] == 0 for s in speakers])
            out.setdefault(name, {})[method] = calibration_summary(p, is_female)
    return out


def without_speakers(table, oof: dict, folds, calibrations: dict, excluded: set[str]) -> dict:
    """The shipped calibration's per-cell summary without the ``excluded`` speakers' clips."""
    from voicegender.voice.calibration import CELL_KINDS, Calibration, calibration_summary

    out: dict = {}
    for name, _, test in folds:
        temperatures, floor = calibrations[name]["shipped"]
        cal = Calibration(tuple(temperatures), floor)
        for kind in CELL_KINDS:
            rows = test[~table.child[test] & np.isfinite(oof[kind][test]) & ~np.isin(table.speaker[test],
                                                                                      list(excluded))]
            p = cal.p_female(oof[kind][rows], table.speech_seconds(kind)[rows])
            out.setdefault(name, {})[kind] = calibration_summary(p, table.y[rows] == 0)
    return out


def cell_table(cells: dict) -> list[str]:
    lines = ["| held-out corpus | copy | clips | accuracy % | " + " | ".join(
        f"{m}: ECE / gap / log-loss" for m in METHODS) + " |", "|---" * (4 + len(METHODS)) + "|"]
    for unit, kinds in cells["shipped"].items():
        for kind, s in kinds.items():
            figures = [cells[m][unit][kind] for m in METHODS]
            lines.append(f"| {unit} | {KIND_NAMES.get(kind, kind)} | {s['n']} | {100 * s['accuracy']:.1f} | "
                         + " | ".join(f"{f['ece']:.3f} / {f['gap']:+.3f} / {f['log_loss']:.3f}" for f in figures)
                         + " |")
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = report["cells"]
    units = list(cells["shipped"])
    kinds = list(next(iter(cells["shipped"].values())))
    fig, axes = plt.subplots(len(units) + 1, len(kinds), figsize=(3.2 * len(kinds), 3.0 * (len(units) + 1)),
                             squeeze=False)
    bands = [b for b in report["bands"]["shipped"] if b.get("n")]

    def draw(ax, summaries: dict, title: str) -> None:
        ax.plot([0.5, 1], [0.5, 1], color="0.7", lw=1)
        for method, style in (("pooled_temperature", dict(color="tab:orange", marker="s", ls="--")),
                              ("shipped", dict(color="tab:blue", marker="o"))):
            s = summaries[method]
            bins = [b for b in s["reliability"] if b["n"] >= 10]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], ms=4, lw=1.2,
                    label=f"{method.replace('_', ' ')} (ECE {s['ece']:.3f})", **style)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0.5, 1.0)
        ax.set_ylim(0.4, 1.0)
        ax.legend(fontsize=7, loc="lower right")
        ax.tick_params(labelsize=7)

    for i, unit in enumerate(units):
        for j, kind in enumerate(kinds):
            draw(axes[i, j], {m: cells[m][unit][kind] for m in METHODS},
                 f"{unit}, {KIND_NAMES.get(kind, kind)} (n={cells['shipped'][unit][kind]['n']})")
    for j in range(len(kinds)):
        ax = axes[len(units), j]
        if j < len(bands):
            b = bands[j]
            draw(ax, {m: next(x for x in report["bands"][m] if x["band"] == b["band"]) for m in METHODS},
                 f"short crops, {b['band']} s of speech (n={b['n']})")
        else:
            ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("confidence", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared corpora")
    ap.add_argument("--cache", type=Path, default=None, help="voicegender fit's feature cache (default: its own)")
    ap.add_argument("--suspects", type=Path, default=None, help="benchmarks/label_suspects.py --out JSON")
    ap.add_argument("--plot", type=Path, default=None, help="PNG of the reliability diagrams")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every figure")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: not found (the shared corpora; --data)", file=sys.stderr)
        return 2
    from voicegender.voice.heldout import calibration_report

    t0 = time.time()
    table, folds, oof = held_out_logits(args.data, args.cache)
    report = calibration_report(table, oof, folds)
    calibrations = report["fold_calibrations"]
    print(f"# Calibration on held-out corpora (cross-fitted; {time.time() - t0:.0f} s)\n")
    print("Fold calibrations (temperatures per speech-duration band, floor), fitted without the held-out corpus:")
    for unit, cals in calibrations.items():
        print(f"  {unit}: " + "; ".join(f"{m} T={'/'.join(f'{t:.2f}' for t in ts)} floor={f:.4f}"
                                       for m, (ts, f) in cals.items() if m != "before"))
    print("\n" + "\n".join(cell_table(report["cells"])))
    print("\n| | " + " | ".join(METHODS) + " |\n|---" * 1 + "|---" * len(METHODS) + "|")
    print("| worst cell ECE | " + " | ".join(f"{report['worst_cell'][m]:.3f}" for m in METHODS) + " |")
    print("| pooled ECE | " + " | ".join(f"{report[f'ece_{m}']:.3f}" for m in METHODS) + " |")
    print("\nShort crops (0.15-1.5 s of speech; clean and telephone), per speech-duration band:\n")
    print("| band | clips | accuracy % | " + " | ".join(f"{m}: ECE / gap" for m in METHODS) + " |")
    print("|---" * (3 + len(METHODS)) + "|")
    for i, b in enumerate(report["bands"]["shipped"]):
        if b.get("n"):
            print(f"| {b['band']} s | {b['n']} | {100 * b['accuracy']:.1f} | " + " | ".join(
                f"{report['bands'][m][i]['ece']:.3f} / {report['bands'][m][i]['gap']:+.3f}" for m in METHODS) + " |")
    speakers = speaker_summary(table, oof, folds, calibrations)
    print("\nPer speaker (clean copies; a speaker's clips' calibrated log-odds averaged, weighted by speech):\n")
    print("| held-out corpus | speakers | accuracy % | " + " | ".join(f"{m}: ECE / gap" for m in METHODS) + " |")
    print("|---" * (3 + len(METHODS)) + "|")
    for unit, s in speakers.items():
        print(f"| {unit} | {s['shipped']['n']} | {100 * s['shipped']['accuracy']:.1f} | " + " | ".join(
            f"{s[m]['ece']:.3f} / {s[m]['gap']:+.3f}" for m in METHODS) + " |")
    record = {"calibration": report, "speakers": speakers}
    if args.suspects:
        suspects = {k for r in json.loads(args.suspects.read_text()).values() for k in r["suspects"]}
        clean = without_speakers(table, oof, folds, calibrations, suspects)
        print(f"\nShipped calibration without the {len(suspects)} label-suspect speakers "
              "(benchmarks/label_suspects.py):\n")
        print("| held-out corpus | copy | clips | accuracy % | ECE | gap |\n|---|---|---|---|---|---|")
        for unit, kinds in clean.items():
            for kind, s in kinds.items():
                print(f"| {unit} | {KIND_NAMES[kind]} | {s['n']} | {100 * s['accuracy']:.1f} | {s['ece']:.3f} | "
                      f"{s['gap']:+.3f} |")
        print(f"\nworst cell without them: {max(s['ece'] for k in clean.values() for s in k.values()):.3f}")
        record["without_suspects"] = clean
    if args.plot:
        plot(report, args.plot)
        print(f"\nwrote {args.plot}")
    if args.out:
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
