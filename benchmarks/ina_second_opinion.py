"""Does inaSpeechSegmenter's gender CNN, as a second opinion beside voicegender's own held-out log-odds, help the
worst held-out cell (issue 21, optional item)? Measured, not shipped: docs/DEFAULT_MODEL.md.

Cross-fitted exactly like benchmarks/calibration.py: the shipped recipe's leave-one-corpus-out log-odds (each test
corpus — audiomnist_az, baved, speechocean762_train, common_voice — scored by the head fitted on the others, through
the clean, telephone and codec copies; adults), and every combination used on a held-out corpus fitted on the other
three corpora's cells only.

Steps:

1. ina's male/female network as numpy weights: ``bash benchmarks/peers/setup.sh`` (``make_ina_gender.py``), read by
   the numpy port ``benchmarks/peers/ina_gender.py`` (equal to ina 0.8.0 itself: its ``parity`` command).
2. ``--compute``: ina's gender evidence on the stored speech (the exact audio voicegender's features saw) of every
   clip of ``voicegender fit``'s feature table and each of its clean / telephone / codec copies
   (:func:`ina_gender.evidence`: the mean over the copy's 20 ms frames of log p_male/p_female, and more), written
   to ``.cache/bench/ina_gender_oof.npz``. **About 40 minutes of CPU** (5,424 clips x 3 copies, 6.4 h of speech,
   ~10x real time on one thread: 2,283 s CPU, 2,313 s wall on a 2-core machine, the other core busy);
   resumable: progress is saved every 2 minutes to ``ina_gender_oof.partial.npz`` beside it, and a rerun goes on
   from there. ``--limit N`` runs only N clips spread over the table and extrapolates the time (writes nothing).
3. (default) read that file and compare, per held-out cell, six methods:

   * ``shipped``: the shipped calibration alone (:func:`voicegender.voice.calibration.fit_held_out`, as
     ``calibration_report``'s ``shipped``; checked equal to it, cell by cell);
   * ``ina_cal``: ina's log-odds alone through the shipped-style calibration (reference);
   * ``stack0`` / ``stack1``: logistic regression of is-female on [our out-of-fold log-odds, ina's log-odds of
     female] without / with an intercept, fitted by log-loss with every training cell weighted equally (each cell's
     mean log-loss, then the mean over cells, as the shipped calibration weighs them);
   * ``stack0+cal`` / ``stack1+cal``: the stack's logit then the shipped-style calibration
     (:func:`voicegender.voice.calibration.fit_calibration` on the training cells' stacked logits: a temperature,
     the confidence floor, softer temperatures under 0.6 s of speech from the cells' own short clips; no short
     crops, ina was not run on them).

   ina's log-odds of female of a clip's copy = -(its ``log_odds_male``; ``--ina-field``); a clip with no ina frame
   gets 0 (no opinion). Printed: the fitted coefficients per held-out corpus; accuracy / ECE / gap per cell; the
   worst cell, means and pooled ECE; accuracy per speaker (a speaker's clips' log-odds averaged, weighted by speech,
   as calibration.py); with ``--suspects``, the worst cell without the label-suspect speakers.

Answer: no. The worst cell's accuracy is 91.3 % shipped and at best 91.2 % stacked; its ECE 0.054 shipped, 0.053
at best (within noise), and ina gets a weight of 0.06-0.16 beside ~1.0-1.3 for ours.

Both steps run on one BLAS thread (set here unless the environment says otherwise): step 2 as it was timed, and
step 3's figures do not depend on the number of cores (with a threaded BLAS they moved by ~1e-9, in ``--out``'s
JSON only; on one thread they equal the experiment's to the last bit).

Usage (from the repository root; the fit extra; the feature cache of ``voicegender fit`` and the shared corpora)::

    bash benchmarks/peers/setup.sh                                  # step 1 (ina's venv, models, male_female.npz)
    python benchmarks/ina_second_opinion.py --compute [--limit 20]  # step 2: ~40 min of CPU
    python benchmarks/ina_second_opinion.py [--suspects .cache/bench/suspects.json] [--out stack.json]  # step 3
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # one thread: step 2 as timed, step 3's figures whatever the number of cores
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy is imported
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from voicegender.voice.calibration import CELL_KINDS  # noqa: E402  (clean, tel, codec: the held-out cells' copies)

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import ina_gender  # noqa: E402  (benchmarks/peers/)

ROOT = Path(__file__).resolve().parents[1]
OOF_PATH = ROOT / ".cache" / "bench" / "ina_gender_oof.npz"
KIND_NAMES = {"clean": "clean", "tel": "telephone", "codec": "codec"}
METHODS = ("shipped", "ina_cal", "stack0", "stack1", "stack0+cal", "stack1+cal")


# --- step 2: ina's evidence per clip of the feature table -------------------------------------------------------
def compute(data: Path, out: Path, limit: int | None = None, save_every_s: float = 120.0) -> int:
    """ina's evidence on the stored speech of every clip of the table and every copy in :data:`CELL_KINDS`; resumable
    through ``<out>.partial.npz``. With ``limit``: only that many clips spread over the table, timed, nothing
    written."""
    table = ina_gender.load_table(data)
    n = len(table.y)
    todo = np.arange(n) if limit is None else np.unique(np.linspace(0, n - 1, limit).astype(int))
    paths = np.array([m["path"] for m in table.meta])
    partial = out.with_suffix(".partial.npz")
    res = {f"{k}.{f}": np.full(n, np.nan) for k in CELL_KINDS for f in ina_gender.EVIDENCE_FIELDS}
    done = np.zeros(n, bool)
    if partial.is_file() and limit is None:
        with np.load(partial) as z:
            if len(z["paths"]) == n and (z["paths"] == paths).all():
                res = {k: z[k] for k in res}
                done = z["done"]
    print(f"load {os.getloadavg()}; {int(done[todo].sum())} of {len(todo)} rows already done", flush=True)
    t0 = last = time.perf_counter()
    cpu0 = time.process_time()
    seconds = 0.0
    for row in todo:
        if done[row]:
            continue
        for k in CELL_KINDS:
            x = table.speech(k, row)
            seconds += len(x) / 16_000
            for f, value in ina_gender.evidence(x).items():
                res[f"{k}.{f}"][row] = value
        done[row] = True
        if time.perf_counter() - last > save_every_s and limit is None:
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(partial, paths=paths, done=done, **res)
            last = time.perf_counter()
            rate = (last - t0) / max(seconds, 1e-9)
            left = sum(table.speech_seconds(k)[~done].sum() for k in CELL_KINDS) * rate
            print(f"{int(done.sum())}/{n} rows, {seconds:.0f} s of speech in {last - t0:.0f} s "
                  f"({seconds / (last - t0):.1f}x RT); ~{left / 60:.0f} min left; load {os.getloadavg()[0]:.2f}",
                  flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"{len(todo)} rows x {len(CELL_KINDS)} copies, {seconds:.0f} s of speech: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({seconds / max(wall, 1e-9):.1f}x real time); load {os.getloadavg()}", flush=True)
    if limit is not None:  # extrapolate by distinct patches (the network's work) and by speech seconds
        def patches(k: str) -> np.ndarray:
            samples = table.get(k, "lengths")
            n_mel = np.where(samples >= 400, (samples - 400) // 160 + 1, 0)
            step, frames = ina_gender.PATCH_STEP, ina_gender.PATCH_FRAMES
            return np.where(n_mel == 0, 0, (np.maximum(n_mel, frames) - frames) // step + 1)
        p_all = sum(patches(k).sum() for k in CELL_KINDS)
        p_here = sum(patches(k)[todo].sum() for k in CELL_KINDS)
        s_all = sum(table.speech_seconds(k).sum() for k in CELL_KINDS)
        print(f"estimate for all {n} rows: {wall * p_all / p_here / 60:.0f} min by patches ({p_here} of {p_all}), "
              f"{wall * s_all / seconds / 60:.0f} min by speech seconds")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, paths=paths, speakers=table.speaker, corpus=table.corpus,
             folders=np.array([str(f) for f in table.folders]), offsets=np.array(table.offsets),
             wall_s=wall, cpu_s=cpu, **res)
    partial.unlink(missing_ok=True)
    print(f"wrote {out}")
    return 0


# --- step 3: the stacking ---------------------------------------------------------------------------------------
def fit_logistic(parts: list[tuple[np.ndarray, np.ndarray]], intercept: bool) -> np.ndarray:
    """Coefficients minimising the mean over ``parts`` ((X, is-female) per cell) of each part's mean log-loss of
    sigmoid(X @ coef [+ b]) — Newton's method with step halving."""
    from voicegender.voice.model import sigmoid

    xs = [np.column_stack([x, np.ones(len(x))]) if intercept else x for x, _ in parts]
    X = np.concatenate(xs)
    y = np.concatenate([y for _, y in parts])
    w = np.concatenate([np.full(len(x), 1.0 / (len(x) * len(parts))) for x in xs])

    def loss(c: np.ndarray) -> float:
        z = X @ c
        return float(np.sum(w * (np.logaddexp(0, z) - y * z)))

    coef = np.zeros(X.shape[1])
    current = loss(coef)
    for _ in range(100):
        p = sigmoid(X @ coef)
        grad = X.T @ (w * (p - y))
        hess = X.T @ (X * (w * p * (1 - p))[:, None]) + 1e-12 * np.eye(len(coef))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and loss(coef - t * step) > current:
            t /= 2
        new = coef - t * step
        new_loss = loss(new)
        coef = new
        if current - new_loss < 1e-12:
            break
        current = new_loss
    return coef


def stack_logit(cell: dict, coef: np.ndarray) -> np.ndarray:
    """The stacked logit of a cell's clips: [ours, ina's] @ ``coef`` (+ its third entry, an intercept, if any)."""
    x = np.column_stack([cell["z"], cell["zi"]] + ([np.ones(len(cell["z"]))] if len(coef) == 3 else []))
    return x @ coef


def without_reliability(summary: dict) -> dict:
    return {x: v for x, v in summary.items() if x != "reliability"}


def stack(data: Path, ina_path: Path, ina_field: str, suspects_path: Path | None, out: Path | None) -> int:
    from calibration import held_out_logits  # benchmarks/calibration.py, beside this file

    from voicegender.voice.calibration import calibration_summary, fit_calibration, fit_held_out, held_out_cells
    from voicegender.voice.heldout import calibration_report
    from voicegender.voice.model import logit, sigmoid, weighted_log_odds

    if not ina_path.is_file():
        sys.exit(f"{ina_path}: missing; make it with python benchmarks/ina_second_opinion.py --compute (~40 min)")
    table, folds, oof = held_out_logits(data, None)
    report = calibration_report(table, oof, folds)
    with np.load(ina_path) as ina:
        paths = np.array([m["path"] for m in table.meta])
        if len(ina["paths"]) != len(paths) or not (ina["paths"] == paths).all():
            sys.exit(f"{ina_path}: its rows are not the feature table's (paths differ)")
        ina_f = {k: -ina[f"{k}.{ina_field}"] for k in CELL_KINDS}  # ina's log-odds of *female*

    units = {name: test for name, _, test in folds}
    cells: dict[tuple[str, str], dict] = {}
    missing = 0
    for name, test in units.items():
        adults = test[~table.child[test]]
        for k in CELL_KINDS:
            rows = adults[np.isfinite(oof[k][adults])]  # as stacked_logits / held_out_cells
            zi = ina_f[k][rows]
            missing += int((~np.isfinite(zi)).sum())
            cells[(name, k)] = {"rows": rows, "z": oof[k][rows], "zi": np.where(np.isfinite(zi), zi, 0.0),
                                "y": (table.y[rows] == 0).astype(float), "s": table.speech_seconds(k)[rows]}
    shipped_cells = held_out_cells(table, oof, units)  # with the short crops, for the shipped band temperatures

    # fit every method on the other corpora's cells, apply it to the held-out corpus's
    p_of: dict[str, dict[tuple[str, str], np.ndarray]] = {m: {} for m in METHODS}
    fitted: dict[str, dict] = {}
    for name in units:
        train = [c for (u, _), c in cells.items() if u != name]
        shipped = fit_held_out(shipped_cells, leave_out=name)
        ina_cal = fit_calibration([(c["zi"], c["y"], c["s"]) for c in train])
        coefs = {i: fit_logistic([(np.column_stack([c["z"], c["zi"]]), c["y"]) for c in train], bool(i))
                 for i in (0, 1)}
        post = {i: fit_calibration([(stack_logit(c, coefs[i]), c["y"], c["s"]) for c in train]) for i in (0, 1)}
        fitted[name] = {"shipped": [list(shipped.temperatures), shipped.floor],
                        "ina_cal": [list(ina_cal.temperatures), ina_cal.floor],
                        **{f"stack{i}": list(coefs[i]) for i in (0, 1)},
                        **{f"stack{i}+cal": [list(post[i].temperatures), post[i].floor] for i in (0, 1)}}
        for key, c in cells.items():
            if key[0] != name:
                continue
            p_of["shipped"][key] = shipped.p_female(c["z"], c["s"])
            p_of["ina_cal"][key] = ina_cal.p_female(c["zi"], c["s"])
            for i in (0, 1):
                p_of[f"stack{i}"][key] = sigmoid(stack_logit(c, coefs[i]))
                p_of[f"stack{i}+cal"][key] = post[i].p_female(stack_logit(c, coefs[i]), c["s"])

    summary = {m: {key: calibration_summary(p, cells[key]["y"]) for key, p in ps.items()} for m, ps in p_of.items()}
    for (name, k), s in summary["shipped"].items():  # (a) must be calibration.py's shipped figures
        ref = report["cells"]["shipped"][name][k]
        assert s["n"] == ref["n"] and abs(s["accuracy"] - ref["accuracy"]) < 1e-12 \
            and abs(s["ece"] - ref["ece"]) < 1e-12, (name, k, s["ece"], ref["ece"])
    print(f"# ina's gender CNN as a second opinion (cross-fitted; ina field {ina_field}; {missing} clips of the "
          "cells had no ina frame -> 0)\n")
    print("(a) shipped reproduces benchmarks/calibration.py's cells exactly (n, accuracy, ECE checked).\n")
    print("Fitted per held-out corpus (on the other corpora's cells):")
    for name, f in fitted.items():
        print(f"  {name}: stack0 [ours, ina] = {np.round(f['stack0'], 3).tolist()}; stack1 [ours, ina, b] = "
              f"{np.round(f['stack1'], 3).tolist()}; floors shipped {f['shipped'][1]:.4f}, ina_cal "
              f"{f['ina_cal'][1]:.4f}, stack0+cal {f['stack0+cal'][1]:.4f} (T {f['stack0+cal'][0][-1]:.2f}), "
              f"stack1+cal {f['stack1+cal'][1]:.4f} (T {f['stack1+cal'][0][-1]:.2f})")
    print("\nPer cell: accuracy % / ECE / gap (mean confidence - accuracy)\n")
    print("| held-out corpus | copy | clips | " + " | ".join(METHODS) + " |\n|---|---|---|" + "---|" * len(METHODS))
    for key in cells:
        print(f"| {key[0]} | {KIND_NAMES[key[1]]} | {summary['shipped'][key]['n']} | " + " | ".join(
            f"{100 * summary[m][key]['accuracy']:.1f} / {summary[m][key]['ece']:.3f} / "
            f"{summary[m][key]['gap']:+.3f}" for m in METHODS) + " |")
    print("\n| | " + " | ".join(METHODS) + " |\n|---|" + "---|" * len(METHODS))

    def worst(m: str, what: str) -> tuple[tuple[str, str], dict]:
        items = summary[m].items()
        return (min(items, key=lambda kv: kv[1]["accuracy"]) if what == "accuracy"
                else max(items, key=lambda kv: kv[1]["ece"]))

    def where(key: tuple[str, str]) -> str:
        return f"{key[0]}/{key[1]}"

    print("| worst cell accuracy % | " + " | ".join(
        f"{100 * worst(m, 'accuracy')[1]['accuracy']:.1f} ({where(worst(m, 'accuracy')[0])})" for m in METHODS) + " |")
    print("| worst cell ECE | " + " | ".join(
        f"{worst(m, 'ece')[1]['ece']:.3f} ({where(worst(m, 'ece')[0])})" for m in METHODS) + " |")
    for label, field, digits in (("mean cell accuracy %", "accuracy", 2), ("mean cell ECE", "ece", 3),
                                 ("mean cell log-loss", "log_loss", 3)):
        scale = 100 if field == "accuracy" else 1
        print(f"| {label} | " + " | ".join(
            f"{scale * np.mean([s[field] for s in summary[m].values()]):.{digits}f}" for m in METHODS) + " |")
    pooled = {m: calibration_summary(np.concatenate(list(p_of[m].values())),
                                     np.concatenate([cells[k]["y"] for k in p_of[m]])) for m in METHODS}
    print("| pooled ECE | " + " | ".join(f"{pooled[m]['ece']:.3f}" for m in METHODS) + " |")

    # per speaker, as calibration.py's speaker_summary: calibrated log-odds averaged, weighted by speech seconds
    speakers: dict = {}
    for k in CELL_KINDS:
        print(f"\nPer speaker ({KIND_NAMES[k]} copies): accuracy % (speakers)\n")
        print("| held-out corpus | speakers | " + " | ".join(METHODS) + " |\n|---|---|" + "---|" * len(METHODS))
        for name in units:
            c = cells[(name, k)]
            spk = table.speaker[c["rows"]]
            uniq = np.unique(spk)
            seconds = np.maximum(c["s"], 1e-3)
            is_female = np.array([c["y"][spk == s][0] == 1 for s in uniq])
            row = {}
            for m in METHODS:
                lo = logit(p_of[m][(name, k)])
                p = np.array([sigmoid(weighted_log_odds(lo[spk == s], seconds[spk == s])) for s in uniq])
                row[m] = calibration_summary(p, is_female)
            speakers.setdefault(k, {})[name] = row
            print(f"| {name} | {len(uniq)} | " + " | ".join(f"{100 * row[m]['accuracy']:.1f}" for m in METHODS) + " |")

    record = {"cells": {m: {where(key): without_reliability(s) for key, s in summary[m].items()} for m in METHODS},
              "fitted": fitted,
              "speakers": {k: {u: {m: without_reliability(s) for m, s in r.items()} for u, r in d.items()}
                           for k, d in speakers.items()}}
    if suspects_path:
        suspects = {s for r in json.loads(suspects_path.read_text()).values() for s in r["suspects"]}
        print(f"\nWithout the {len(suspects)} label-suspect speakers: worst cell accuracy % / worst ECE\n")
        print("| | " + " | ".join(METHODS) + " |\n|---|" + "---|" * len(METHODS))
        clean = {m: {key: calibration_summary(p[keep], cells[key]["y"][keep]) for key, p in p_of[m].items()
                     if (keep := ~np.isin(table.speaker[cells[key]["rows"]], list(suspects))).any()} for m in METHODS}
        print("| worst accuracy % | " + " | ".join(f"{100 * min(s['accuracy'] for s in clean[m].values()):.1f}"
                                                for m in METHODS) + " |")
        print("| worst ECE | " + " | ".join(f"{max(s['ece'] for s in clean[m].values()):.3f}" for m in METHODS) + " |")
        record["without_suspects"] = {m: {where(key): without_reliability(s) for key, s in clean[m].items()}
                                      for m in METHODS}
    if out:
        out.write_text(json.dumps(record, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--compute", action="store_true",
                    help="step 2: compute ina's evidence (~40 min of CPU) into --ina instead of the stacking")
    ap.add_argument("--limit", type=int, default=None,
                    help="with --compute: only this many clips spread over the table (timing); writes nothing")
    ap.add_argument("--ina", type=Path, default=OOF_PATH, help="ina's evidence per clip copy (step 2's file)")
    ap.add_argument("--data", type=Path, default=ina_gender.DEFAULT_DATA, help="the shared corpora")
    ap.add_argument("--suspects", type=Path, default=None, help="benchmarks/label_suspects.py --out JSON")
    ap.add_argument("--ina-field", default="log_odds_male", choices=("log_odds_male", "patch_log_odds_male"),
                    help="ina's evidence: mean over the 20 ms frames, or over the distinct patches")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the figures (step 3)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: not found (the shared corpora; --data)", file=sys.stderr)
        return 2
    if args.compute:
        return compute(args.data, args.ina, args.limit)
    return stack(args.data, args.ina, args.ina_field, args.suspects, args.out)


if __name__ == "__main__":
    sys.exit(main())
