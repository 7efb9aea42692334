"""Would a layer fitted on inaSpeechSegmenter's learned features tell speech over music from music alone? (issue 19;
the answer was no: docs/CONVERSATIONS.md, "Tried and dropped").

ina's speech / music / noise CNN calls much speech over music "music" (``benchmarks/music_veto.py``): its labels
follow a broadcast convention, not this benchmark's. Its last hidden layer (256 units over 0.68 s of log mel
spectrogram, ``benchmarks/peers/ina_smn.py``'s ``sparse_hidden``) may still hold the difference. This script fits
a new output on it, on the conversations of development runs, leave-one-corpus-out: the layer that judges the
mixes of corpus k is fitted on the mixes of the other corpora, whose music comes from the other artist groups
(``benchmarks/conversations.py``), so neither the speakers nor the artists of a test mix were seen.

- Patches every 0.1 s; a patch is "speech" when its middle 0.2 s lies wholly in reference turns, "music alone"
  when none of it does and it lies in a music stretch; other patches are not used.
- Two layers: a logistic regression on the 256 units (classes weighted equally), and a small network (64 hidden
  units) on the units of the patch and of its neighbours 0.3 s before and after (speech 4:1 subsampled).
- Printed: per test corpus, the patches called the wrong way; then the veto ``segment`` could apply: a gendered
  segment whose patches average a speech probability below a threshold loses its gender. For each threshold,
  music-alone frames (music condition) still given a gender, and speech frames that lose their gender per condition.

Usage (from the repository root; ina's network: ``bash benchmarks/peers/setup.sh``; the results files of
``benchmarks/conversations.py --from-mixes DIR --heads .cache/heads --out FILE`` whose mixes are still on disk)::

    python benchmarks/music_layer.py --results .cache/bench/dev_tail09.json .cache/bench/dev2_tail09.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import ina_smn  # noqa: E402  (benchmarks/peers/)

HOP_S = 0.1  # a patch every 0.1 s
LABEL_HALF_S = 0.1  # a patch is labelled by its middle 0.2 s
CONTEXT = 3  # neighbours 3 patches (0.3 s) before and after
FRAME_S = 0.01  # scoring frame
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


def features(results: list[Path], cache: Path) -> list[dict]:
    """Every mix of the results files: its record and ina's hidden layer (computed once, kept in ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    import soundfile

    mixes = []
    for path in results:
        for mix in json.loads(path.read_text())["mixes"]:
            key = f"{Path(mix['path']).parent.name}__{mix['name']}"  # names repeat across runs
            stored = cache / f"{key}.npz"
            if not stored.is_file():
                wave, rate = soundfile.read(mix["path"], dtype="float32")
                if rate != ina_smn.SAMPLE_RATE:
                    raise SystemExit(f"{mix['path']}: {rate} Hz, expected {ina_smn.SAMPLE_RATE}")
                hidden, finite = ina_smn.sparse_hidden(wave, HOP_S)
                np.savez(stored, hidden=hidden, finite=finite)
            with np.load(stored) as z:
                centres = np.arange(len(z["hidden"])) * HOP_S + ina_smn.PATCH_SAMPLES / 2 / ina_smn.SAMPLE_RATE
                mixes.append(dict(mix, key=key, hidden=z["hidden"], finite=z["finite"], t=centres))
    return mixes


def patch_labels(mix: dict) -> np.ndarray:
    """1 speech, 0 music alone, -1 unused, per patch."""
    t, ref = mix["t"], mix["reference"]
    covered = np.zeros(len(t))
    for turn in ref["turns"]:
        covered += np.clip(np.minimum(t + LABEL_HALF_S, turn["end_s"]) - np.maximum(t - LABEL_HALF_S, turn["start_s"]),
                           0, None) / (2 * LABEL_HALF_S)
    music = np.zeros(len(t), bool)
    for a, b in ref.get("music") or []:
        music |= (t >= a - LABEL_HALF_S) & (t < b + LABEL_HALF_S)
    y = np.full(len(t), -1)
    y[covered >= 0.99] = 1
    y[(covered <= 0.01) & music] = 0
    return np.where(mix["finite"], y, -1)


def with_context(hidden: np.ndarray) -> np.ndarray:
    padded = np.pad(hidden, ((CONTEXT, CONTEXT), (0, 0)), mode="edge")
    return np.concatenate([hidden, padded[:-2 * CONTEXT], padded[2 * CONTEXT:]], axis=1)


def fit(kind: str, x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
        return model.fit(x, y)
    rng = np.random.default_rng(0)
    music, speech = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    keep = np.concatenate([music, rng.choice(speech, min(len(speech), 4 * len(music)), replace=False)])
    model = make_pipeline(StandardScaler(), MLPClassifier((64,), alpha=1e-2, max_iter=200, early_stopping=True,
                                                          random_state=0))
    return model.fit(x[keep], y[keep])


def frames(mix: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame times, reference speech and music-alone frames of a mix (the benchmark's frames: each counts at its
    centre, :mod:`voicegender.voice.conversations`)."""
    from voicegender.voice.conversations import Turn, frame_mask, frame_speaker_counts

    ref = mix["reference"]
    speech = frame_speaker_counts([Turn(**t) for t in ref["turns"]], ref["duration_s"], FRAME_S) > 0
    t = (np.arange(len(speech)) + 0.5) * FRAME_S
    return t, speech, frame_mask(ref.get("music") or [], ref["duration_s"], FRAME_S) & ~speech


def veto_table(mixes: list[dict], p_speech: dict[str, np.ndarray]) -> list[str]:
    conditions = sorted({m["condition"] for m in mixes})
    rows = [f"| veto below | music alone given a gender | speech frames losing their gender: "
            f"{' / '.join(conditions)} |", "|---|---|---|"]
    for threshold in (None, *THRESHOLDS):
        kept_music = music_total = 0
        lost, speech_total = dict.fromkeys(conditions, 0), dict.fromkeys(conditions, 0)
        for mix in mixes:
            t, speech, alone = frames(mix)
            music_total += alone.sum() if mix["condition"] == "music" else 0
            for start, end, label, _speaker in mix["results"]["voicegender"]["segments"]:
                if label not in ("female", "male"):
                    continue
                inside = (t >= start) & (t < end)
                nearest = np.abs(mix["t"] - (start + end) / 2)
                patches = (mix["t"] >= start) & (mix["t"] < end) | (nearest == nearest.min())
                vetoed = threshold is not None and p_speech[mix["key"]][patches].mean() < threshold
                speech_total[mix["condition"]] += (inside & speech).sum()
                if vetoed:
                    lost[mix["condition"]] += (inside & speech).sum()
                elif mix["condition"] == "music":
                    kept_music += (inside & alone).sum()
        cells = " / ".join(f"{100 * lost[c] / max(speech_total[c], 1):.2f}" for c in conditions)
        rows.append(f"| {'none' if threshold is None else threshold} | {100 * kept_music / max(music_total, 1):.1f} % "
                    f"| {cells} % |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--results", type=Path, nargs="+", required=True,
                    help="benchmarks/conversations.py --out files (development runs) whose mixes are on disk")
    ap.add_argument("--cache", type=Path, default=Path(".cache/music_layer"), help="ina's hidden layer per mix")
    args = ap.parse_args(argv)
    t0 = time.time()
    mixes = features(args.results, args.cache)
    for mix in mixes:
        mix["y"] = patch_labels(mix)
        mix["context"] = with_context(mix["hidden"])
    corpora = sorted({m["corpus"] for m in mixes})
    print(f"# A layer on ina's hidden units, leave-one-corpus-out: {len(mixes)} mixes of "
          f"{', '.join(str(p) for p in args.results)} ({time.time() - t0:.0f} s for the features)\n")
    for kind, key in (("logistic", "hidden"), ("network", "context")):
        p_speech, rows = {}, []
        for corpus in corpora:
            train = [m for m in mixes if m["corpus"] != corpus]
            x = np.concatenate([m[key][m["y"] >= 0] for m in train])
            y = np.concatenate([m["y"][m["y"] >= 0] for m in train])
            model = fit(kind, x, y)
            test = [m for m in mixes if m["corpus"] == corpus]
            for m in test:
                p = model.predict_proba(m[key])[:, list(model.classes_).index(1)]
                p_speech[m["key"]] = np.where(m["finite"], p, 1.0)
            y_test = np.concatenate([m["y"] for m in test])
            p_test = np.concatenate([p_speech[m["key"]] for m in test])
            rows.append(f"| {corpus} | {(y_test == 0).sum()} | {100 * (p_test[y_test == 0] >= 0.5).mean():.1f} % | "
                        f"{(y_test == 1).sum()} | {100 * (p_test[y_test == 1] < 0.5).mean():.1f} % |")
        print(f"## {kind} ({key})\n\n| test corpus | music-alone patches | called speech | speech patches | "
              f"called music |\n|---|---|---|---|---|")
        print("\n".join(rows) + "\n")
        print("\n".join(veto_table(mixes, p_speech)) + "\n", flush=True)
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
