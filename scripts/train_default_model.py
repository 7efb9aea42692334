"""Reproduce the shipped default model (src/voicegender/assets/default_model.pt) from ../shared/data.

Three steps, each a sub-command (run from the repository root with the venv active):

    python scripts/train_default_model.py cache   --data /work/shared/data --cache /work/cache/vg_default
    python scripts/train_default_model.py compare --cache /work/cache/vg_default --out docs/DEFAULT_MODEL.md
    python scripts/train_default_model.py ship    --cache /work/cache/vg_default

``cache`` decodes every clip of the three audio corpora once, makes its augmented copies (telephone, noise,
reverberation) with fixed seeds, and stores per copy: the GE2E embedding (256-d), a 3 s log-mel (for the
SmallCNN candidate) and the median f0 (pitch baseline), as .npy under --cache. ``compare`` runs the
leave-one-corpus-out and speaker k-fold comparisons from those arrays and writes the tables. ``ship`` trains the
chosen recipe on all corpora, fits the calibration temperature and writes the package asset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger("train_default_model")

CORPORA = ("audiomnist_az", "baved", "speechocean762_train")  # audio corpora in ../shared/data (not the images)
VARIANTS = ("clean", "tel", "noise", "reverb")  # copies of every clip; "tel" also serves as the robustness test
LOGMEL_FRAMES = 300  # 3 s of log-mel per clip for the SmallCNN candidate (short clips tiled, long ones centred)
SR = 16_000
CHILD_MAX_AGE = 12  # age <= 12 counts as a child
SHIP_CANDIDATE = "GE2E + LR, clean+aug"  # the compare-table row whose recipe `ship` trains
SHIP_C = 1e-3  # inverse L2 strength of the logistic regression (strong: generalises across corpora, see docs)


# ------------------------------------------------------------------------------------------------------------------
# step 1: cache
# ------------------------------------------------------------------------------------------------------------------


def load_clips(data: Path):
    from voicegender.corpora import load_corpus

    clips = []
    for name in CORPORA:
        clips += load_corpus(data / name, name=name).clips
    return clips


def clean_wave(path: Path) -> np.ndarray:
    """Decode at 16 kHz, remove DC (AudioMNIST-AZ's -0.085 offset), trim leading/trailing silence (as a VAD would)."""
    import librosa

    from voicegender.audio import load_audio

    x = load_audio(path, SR).samples.astype(np.float32)
    x = x - x.mean()
    trimmed, _ = librosa.effects.trim(x, top_db=35, frame_length=400, hop_length=160)
    return trimmed if len(trimmed) >= int(0.3 * SR) else x


def make_variant(wave: np.ndarray, variant: str, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    from voicegender import augment

    if variant == "clean":
        return wave
    if variant == "tel":
        return augment.telephone(wave, SR, codec=True)
    if variant == "noise":
        kind = str(rng.choice(["white", "pink", "babble"]))
        return augment.add_noise(wave, float(rng.uniform(5, 20)), rng, kind, pool)
    if variant == "reverb":
        return augment.reverberate(wave, SR, rng, rt60=float(rng.uniform(0.3, 0.9)),
                                   direct_ratio=float(rng.uniform(0.2, 0.7)))
    raise ValueError(variant)


def fixed_logmel(wave: np.ndarray) -> np.ndarray:
    from voicegender.features import log_mel

    m = log_mel(wave)
    if m.shape[1] < LOGMEL_FRAMES:
        m = np.tile(m, (1, int(np.ceil(LOGMEL_FRAMES / m.shape[1]))))
    start = (m.shape[1] - LOGMEL_FRAMES) // 2
    return m[:, start:start + LOGMEL_FRAMES].astype(np.float16)


def median_f0(wave: np.ndarray) -> float:
    """Median f0 (Hz) over voiced, loud frames (librosa.yin; 60–400 Hz); NaN when nothing is voiced."""
    import librosa

    if len(wave) < 2048:
        wave = np.tile(wave, int(np.ceil(2048 / max(1, len(wave)))) + 1)
    f0 = librosa.yin(wave, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
    energy = librosa.feature.rms(y=wave, frame_length=1024, hop_length=160)[0][: len(f0)]
    f0 = f0[: len(energy)]
    loud = energy > 0.3 * np.median(energy[energy > 0]) if np.any(energy > 0) else np.zeros_like(f0, bool)
    ok = loud & (f0 > 62) & (f0 < 395)
    return float(np.median(f0[ok])) if ok.any() else float("nan")


def cmd_cache(args: argparse.Namespace) -> None:
    import torch

    from voicegender.embeddings import ge2e_embeddings

    torch.set_num_threads(1)
    out = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_clips(Path(args.data))
    meta = [{"path": str(c.path), "speaker": c.speaker_key, "gender": c.gender, "corpus": c.corpus,
             "age": c.age} for c in clips]
    (out / "clips.json").write_text(json.dumps(meta))
    log.info("%d clips", len(clips))
    # babble pool: 40 clean clips per corpus
    pool_rng = np.random.default_rng(123)
    pool = [clean_wave(clips[i].path) for i in pool_rng.choice(len(clips), 120, replace=False)]
    for variant in args.variants:
        if (out / f"ge2e_{variant}.npy").exists():
            log.info("%s cached already", variant)
            continue
        t0 = time.time()
        emb, mels, f0s, batch = [], [], [], []
        vid = VARIANTS.index(variant)
        for i, c in enumerate(clips):
            rng = np.random.default_rng([vid, i])
            w = make_variant(clean_wave(c.path), variant, rng, pool)
            batch.append(w)
            mels.append(fixed_logmel(w))
            f0s.append(median_f0(w) if variant in ("clean", "tel") else np.nan)
            if len(batch) == 64 or i == len(clips) - 1:
                emb.append(ge2e_embeddings(batch))
                batch = []
                rate = (i + 1) / (time.time() - t0)
                log.info("%s %d/%d  %.1f clips/s", variant, i + 1, len(clips), rate)
        np.save(out / f"logmel_{variant}.npy", np.stack(mels))
        np.save(out / f"f0_{variant}.npy", np.asarray(f0s))
        np.save(out / f"ge2e_{variant}.npy", np.concatenate(emb))  # last: its presence marks the variant done
        log.info("%s done in %.0f s (%.1f clips/s incl. decode, augmentation, log-mel, f0)", variant,
                 time.time() - t0, len(clips) / (time.time() - t0))


# ------------------------------------------------------------------------------------------------------------------
# step 2: compare candidates
# ------------------------------------------------------------------------------------------------------------------


class Cache:
    """The arrays written by ``cache``: clip table, and per variant GE2E embeddings, log-mels and median f0."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.meta = json.loads((self.root / "clips.json").read_text())
        self.y = np.array([0 if m["gender"] == "female" else 1 for m in self.meta])  # 0 = female
        self.speaker = np.array([m["speaker"] for m in self.meta])
        self.corpus = np.array([m["corpus"] for m in self.meta])
        self.child = np.array([m["age"] is not None and m["age"] <= CHILD_MAX_AGE for m in self.meta])
        self.variants = [v for v in VARIANTS if (self.root / f"ge2e_{v}.npy").exists()]
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, kind: str, variant: str) -> np.ndarray:
        key = f"{kind}_{variant}"
        while not (self.root / f"ge2e_{variant}.npy").exists():  # a concurrent `cache` run is still writing it
            log.info("waiting for the %s variant to be cached", variant)
            time.sleep(60)
        if key not in self._arrays:
            self._arrays[key] = np.load(self.root / f"{key}.npy", mmap_mode="r" if kind == "logmel" else None)
        return self._arrays[key]


def metrics(y: np.ndarray, p_female: np.ndarray, child: np.ndarray) -> dict:
    """Accuracy and balanced accuracy for all clips, adults and children (NaN where a group is empty)."""
    from sklearn.metrics import balanced_accuracy_score

    pred = np.where(p_female >= 0.5, 0, 1)
    out = {}
    for name, mask in (("all", np.ones_like(child)), ("adult", ~child), ("child", child)):
        if mask.sum() == 0:
            out[f"acc_{name}"] = out[f"bacc_{name}"] = float("nan")
            continue
        out[f"acc_{name}"] = float((pred[mask] == y[mask]).mean())
        out[f"bacc_{name}"] = (float(balanced_accuracy_score(y[mask], pred[mask]))
                               if len(np.unique(y[mask])) == 2 else float("nan"))
        out[f"n_{name}"] = int(mask.sum())
    return out


def _softmax_female(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 0] / e.sum(axis=1)


# Each candidate: fit(cache, train_idx, seed) -> predictor(variant, test_idx) -> logits (n, 2), class 0 = female.


def _embedding_training_set(cache: Cache, idx: np.ndarray, variants: tuple[str, ...],
                            exclude_children: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GE2E embeddings of the clips ``idx`` in every variant, their labels, and gender/speaker-balanced weights."""
    from voicegender.default_model import balanced_weights

    if exclude_children:
        idx = idx[~cache.child[idx]]
    x = np.concatenate([cache.get("ge2e", v)[idx] for v in variants])
    y = np.tile(cache.y[idx], len(variants))
    w = np.tile(balanced_weights(cache.y[idx], cache.speaker[idx]), len(variants))
    return x, y, w


def cand_ge2e_lr(train_variants: tuple[str, ...], c: float = 1e-3, exclude_children: bool = True):
    """GE2E embedding -> standardise -> logistic regression (C = ``c``), built as the shipped head is."""

    def fit(cache: Cache, idx: np.ndarray, seed: int = 0):
        from voicegender.default_model import head_logits, train_linear_head

        x, y, w = _embedding_training_set(cache, idx, train_variants, exclude_children)
        model, _ = train_linear_head(x, y, w, c=c)
        return lambda variant, test: head_logits(model, cache.get("ge2e", variant)[test])

    return fit


def cand_ge2e_mlp(train_variants: tuple[str, ...], hidden: int = 64, epochs: int = 20, exclude_children: bool = True):
    def fit(cache: Cache, idx: np.ndarray, seed: int = 0):
        from voicegender.default_model import head_logits, train_head

        x, y, w = _embedding_training_set(cache, idx, train_variants, exclude_children)
        model, _ = train_head(x, y, w, hidden=hidden, epochs=epochs, seed=seed)
        return lambda variant, test: head_logits(model, cache.get("ge2e", variant)[test])

    return fit


def cand_f0(train_variants: tuple[str, ...] = ("clean", "tel")):
    """Pitch baseline: logistic regression on log median f0 (NaN -> training median)."""

    def fit(cache: Cache, idx: np.ndarray, seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        from voicegender.default_model import balanced_weights

        f = np.concatenate([cache.get("f0", v)[idx] for v in train_variants])
        fill = float(np.nanmedian(f))
        x = np.log(np.where(np.isfinite(f), f, fill))[:, None]
        y = np.tile(cache.y[idx], len(train_variants))
        w = np.tile(balanced_weights(cache.y[idx], cache.speaker[idx]), len(train_variants))
        clf = LogisticRegression().fit(x, y, sample_weight=w)

        def predict(variant: str, test: np.ndarray) -> np.ndarray:
            f = cache.get("f0", variant)[test]
            d = clf.decision_function(np.log(np.where(np.isfinite(f), f, fill))[:, None])
            return np.stack([np.zeros_like(d), d], axis=1)

        return predict

    return fit


def _norm_mel(m: np.ndarray) -> np.ndarray:
    """Per-utterance mean normalisation of a batch of log-mels (gain invariance)."""
    m = np.asarray(m, np.float32)
    return m - m.mean(axis=(-2, -1), keepdims=True)


def cand_small_cnn(train_variants: tuple[str, ...], steps: int = 200, crop: int = 100, width: int = 8):
    """SmallCNN on 64-band log-mel: ``steps`` batches of 64 random 1 s crops of the cached 3 s, frequency masking,
    per-utterance mean normalisation, sampling balanced by gender and speaker. A modest CPU budget."""

    def fit(cache: Cache, idx: np.ndarray, seed: int = 0):
        import torch

        from voicegender.default_model import balanced_weights
        from voicegender.models import ModelConfig, build_model

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = build_model(ModelConfig(arch="small_cnn", in_rows=64, width=width))
        pairs = [(v, i) for v in train_variants for i in idx]
        w = np.tile(balanced_weights(cache.y[idx], cache.speaker[idx]), len(train_variants))
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
        bs = 64
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        model.train()
        for _ in range(steps):
            pick = rng.choice(len(pairs), bs, p=w / w.sum())  # balanced by gender and speaker
            xb = np.empty((bs, 1, 64, crop), np.float32)
            for j, k in enumerate(pick):
                v, i = pairs[k]
                start = int(rng.integers(0, LOGMEL_FRAMES - crop + 1))
                m = np.asarray(cache.get("logmel", v)[i, :, start:start + crop], np.float32)
                f0 = int(rng.integers(0, 56))
                m = m - m.mean()
                m[f0:f0 + int(rng.integers(0, 8)), :] = 0.0  # frequency mask
                xb[j, 0] = m
            yb = torch.from_numpy(np.array([cache.y[pairs[k][1]] for k in pick]))
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()

        def predict(variant: str, test: np.ndarray) -> np.ndarray:
            out = []
            with torch.inference_mode():
                for s in range(0, len(test), 128):
                    m = _norm_mel(cache.get("logmel", variant)[test[s:s + 128]])[:, None]
                    out.append(model(torch.from_numpy(m)).numpy())
            return np.concatenate(out).astype(np.float64)

        return predict

    return fit


def run_protocol(cache: Cache, fit, folds: list[tuple[str, np.ndarray, np.ndarray]], test_variants=("clean", "tel")):
    """Out-of-fold logits per test variant: {variant: (n, 2) array, NaN for clips never tested}."""
    oof = {v: np.full((len(cache.y), 2), np.nan) for v in test_variants}
    for name, train, test in folds:
        t0 = time.time()
        predict = fit(cache, train)
        for v in oof:
            oof[v][test] = predict(v, test)
        log.info("  fold %s: %d train / %d test clips, %.0f s", name, len(train), len(test), time.time() - t0)
    return oof


def loco_folds(cache: Cache, exclude_children: bool = False):
    folds = []
    for c in CORPORA:
        train = np.flatnonzero((cache.corpus != c) & ~(exclude_children & cache.child))
        folds.append((c, train, np.flatnonzero(cache.corpus == c)))
    return folds


def kfold_folds(cache: Cache, k: int = 5, seed: int = 0, exclude_children: bool = False):
    """Speaker-disjoint, gender-stratified k folds over the pooled corpora (voicegender.splits.speaker_folds)."""
    from voicegender.corpora import Clip
    from voicegender.splits import speaker_folds

    clips = [Clip(Path(m["path"]), m["speaker"], m["gender"], "") for m in cache.meta]  # speaker already unique
    groups = speaker_folds(clips, k, seed)
    key = np.array([f"/{s}" for s in cache.speaker])
    folds = []
    for i, g in enumerate(groups):
        in_test = np.isin(key, g)
        folds.append((f"fold{i}", np.flatnonzero(~in_test & ~(exclude_children & cache.child)),
                      np.flatnonzero(in_test)))
    return folds


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.1f}"


def cmd_compare(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    cache = Cache(Path(args.cache))
    aug = tuple(v for v in VARIANTS if v in cache.variants)
    log.info("variants cached: %s", aug)
    if args.only_cnn:  # the slow candidate runs as its own job: LOCO only, its own results file
        train_v = tuple(args.cnn_variants)
        fit = cand_small_cnn(train_v, steps=args.cnn_steps)
        results = {"train_variants": list(train_v), "steps": args.cnn_steps, "loco": {}}
        oof = run_protocol(cache, fit, loco_folds(cache))
        name = f"SmallCNN log-mel, {'+'.join(train_v)}"
        results["loco"][name] = _metric_rows(cache, oof)
        results["calibration"] = {name: _calibration(cache, oof)}
        _save(results, args)
        return
    candidates = {  # all but the children ablation train on speakers older than 12 (see the children table)
        "f0 (median pitch) + LR": cand_f0(tuple(v for v in ("clean", "tel") if v in aug)),
        "GE2E + LR, clean only": cand_ge2e_lr(("clean",)),
        SHIP_CANDIDATE: cand_ge2e_lr(aug),
        "GE2E + MLP(64), clean+aug": cand_ge2e_mlp(aug),
    }
    results: dict = {"variants": list(aug), "loco": {}, "kfold": {}, "children": {}, "calibration": {}}
    oof_store = {}
    for name, fit in candidates.items():
        protocols = [("loco", loco_folds(cache))]
        if not name.startswith("SmallCNN"):
            protocols.append(("kfold", kfold_folds(cache)))
        for proto, folds in protocols:
            log.info("%s / %s", name, proto)
            oof = run_protocol(cache, fit, folds)
            oof_store[(name, proto)] = oof
            results[proto][name] = _metric_rows(cache, oof)
            _save(results, args)
    # children: does training on age <= 12 help adults?  (the shipped recipe, with vs without children)
    with_kids = cand_ge2e_lr(aug, exclude_children=False)
    for proto, maker in (("loco", loco_folds), ("kfold", kfold_folds)):
        log.info("children ablation / %s", proto)
        oof = run_protocol(cache, with_kids, maker(cache))
        res = {}
        for v, logits in oof.items():
            p = _softmax_female(logits)
            without = _softmax_female(oof_store[(SHIP_CANDIDATE, proto)][v])
            res[v] = {"with_children": metrics(cache.y, p, cache.child),
                      "without_children": metrics(cache.y, without, cache.child)}
            for c in CORPORA:
                m = cache.corpus == c
                res[v][f"with_children/{c}"] = metrics(cache.y[m], p[m], cache.child[m])
                res[v][f"without_children/{c}"] = metrics(cache.y[m], without[m], cache.child[m])
        results["children"][proto] = res
        _save(results, args)
    # calibration: temperature fitted on two held-out corpora's out-of-fold logits, ECE measured on the third
    # on adults (the model's purpose: children's clips are near chance whatever the temperature) and on all clips
    results["calibration_all"] = {}
    for name in candidates:
        results["calibration"][name] = _calibration(cache, oof_store[(name, "loco")], ~cache.child)
        results["calibration_all"][name] = _calibration(cache, oof_store[(name, "loco")])
    _save(results, args)
    log.info("done")


def _metric_rows(cache: Cache, oof: dict) -> dict:
    rows = {}
    for v, logits in oof.items():
        p = _softmax_female(logits)
        rows[v] = {"pooled": metrics(cache.y, p, cache.child)}
        for c in CORPORA:
            m = cache.corpus == c
            rows[v][c] = metrics(cache.y[m], p[m], cache.child[m])
    return rows


def _calibration(cache: Cache, oof: dict, use: np.ndarray | None = None) -> dict:
    """ECE before/after temperature scaling, the temperature cross-fitted: for each held-out corpus, T is fitted
    on the out-of-fold logits of the two others (clean and telephone copies) and applied to it. ``use`` restricts
    fitting and measuring to some clips (e.g. adults); ``temperature_all`` is fitted on all of them."""
    from voicegender.default_model import expected_calibration_error, fit_temperature

    use = np.ones(len(cache.y), bool) if use is None else use
    pb, pa, ys, temps = [], [], [], []
    for c in CORPORA:
        fit_mask = (cache.corpus != c) & use
        t = fit_temperature(np.concatenate([oof[v][fit_mask] for v in oof]), np.tile(cache.y[fit_mask], len(oof)))
        temps.append(t)
        m = (cache.corpus == c) & use
        for v in oof:
            pb.append(_softmax_female(oof[v][m]))
            pa.append(_softmax_female(oof[v][m] / t))
            ys.append(cache.y[m] == 0)
    pb, pa, ys = np.concatenate(pb), np.concatenate(pa), np.concatenate(ys)
    t_all = fit_temperature(np.concatenate([oof[v][use] for v in oof]), np.tile(cache.y[use], len(oof)))
    return {"ece_before": expected_calibration_error(pb, ys), "ece_after": expected_calibration_error(pa, ys),
            "fold_temperatures": temps, "temperature_all": t_all}


def _save(results: dict, args: argparse.Namespace) -> None:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))


# ------------------------------------------------------------------------------------------------------------------
# step 3: ship
# ------------------------------------------------------------------------------------------------------------------

SHIP_VARIANTS = ("clean", "tel", "noise", "reverb")  # every training clip is used clean and in three degraded copies


def cmd_ship(args: argparse.Namespace) -> None:
    import torch

    from voicegender.default_model import (
        DEFAULT_MODEL_NAME,
        DEFAULT_MODEL_VERSION,
        balanced_weights,
        head_logits,
        train_linear_head,
    )
    from voicegender.features import feature_config_dict
    from voicegender.models import save_checkpoint

    torch.set_num_threads(1)
    cache = Cache(Path(args.cache))
    compare = json.loads(Path(args.compare_json).read_text())
    idx = np.flatnonzero(~cache.child)  # adults and teenagers: children's voices hurt adults (docs/DEFAULT_MODEL.md)
    x = np.concatenate([cache.get("ge2e", v)[idx] for v in SHIP_VARIANTS])
    y = np.tile(cache.y[idx], len(SHIP_VARIANTS))
    w = np.tile(balanced_weights(cache.y[idx], cache.speaker[idx]), len(SHIP_VARIANTS))
    model, cfg = train_linear_head(x, y, w, c=SHIP_C)
    train_acc = float((head_logits(model, cache.get("ge2e", "clean")[idx]).argmax(1) == cache.y[idx]).mean())
    calib = compare["calibration"][SHIP_CANDIDATE]
    loco = compare["loco"][SHIP_CANDIDATE]
    extra = {
        "name": DEFAULT_MODEL_NAME,
        "version": DEFAULT_MODEL_VERSION,
        "date": datetime.date.today().isoformat(),
        "training_corpora": list(CORPORA),
        "n_clips": int(len(idx)), "n_speakers": int(len(np.unique(cache.speaker[idx]))),
        "excluded": f"speakers aged <= {CHILD_MAX_AGE} ({int(cache.child.sum())} clips)",
        "recipe": ("resemblyzer GE2E embedding (256-d, voicegender.embeddings: DC removed, -30 dBFS, short clips "
                   "tiled) of each clip (silence trimmed) and of its telephone, noise and reverberation copies -> "
                   f"standardise -> logistic regression C={SHIP_C} weighted to balance genders and speakers; "
                   "stored as an exactly equivalent EmbeddingHead (hidden=2)"),
        "command": "python scripts/train_default_model.py cache && python scripts/train_default_model.py compare "
                   "&& python scripts/train_default_model.py ship",
        "encoder": "resemblyzer pretrained.pt (GE2E, ships in the resemblyzer wheel; not in this file)",
        "calibration_temperature": float(calib["temperature_all"]),
        "calibration": {"method": "temperature scaling on leave-one-corpus-out logits of adults, clean + telephone",
                        "ece_before": calib["ece_before"], "ece_after": calib["ece_after"]},
        "metrics": {"loco_clean": loco["clean"]["pooled"], "loco_telephone": loco.get("tel", {}).get("pooled"),
                    "training_accuracy_clean": train_acc},
    }
    path = Path(args.out)
    save_checkpoint(path, model, cfg, feature_config_dict("ge2e"), ["female", "male"], extra)
    path.chmod(0o644)
    log.info("wrote %s (%d bytes); T=%.3f; training accuracy %.3f", path, path.stat().st_size,
             extra["calibration_temperature"], train_acc)


# ------------------------------------------------------------------------------------------------------------------
# report: markdown tables from the compare JSON files
# ------------------------------------------------------------------------------------------------------------------


def _loco_table(loco: dict, variant: str) -> list[str]:
    lines = ["| candidate | " + " | ".join(f"{c} acc / bacc" for c in CORPORA) + " | pooled acc / bacc "
             "| adults acc / bacc | children acc / bacc |",
             "|---" * (len(CORPORA) + 4) + "|"]
    for name, rows in loco.items():
        if variant not in rows:
            continue
        r = rows[variant]
        cells = [f"{_fmt(r[c]['acc_all'])} / {_fmt(r[c]['bacc_all'])}" for c in CORPORA]
        p = r["pooled"]
        cells += [f"{_fmt(p['acc_all'])} / {_fmt(p['bacc_all'])}", f"{_fmt(p['acc_adult'])} / {_fmt(p['bacc_adult'])}",
                  f"{_fmt(p['acc_child'])} / {_fmt(p['bacc_child'])}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cmd_report(args: argparse.Namespace) -> None:
    results = json.loads(Path(args.json).read_text())
    for extra_json in args.extra_json:
        if Path(extra_json).exists():
            other = json.loads(Path(extra_json).read_text())
            results["loco"].update(other.get("loco", {}))
            results.setdefault("calibration_all", {}).update(other.get("calibration", {}))  # all clips
    out = []
    for title, variant in (("clean test audio", "clean"), ("telephone-degraded test audio (300–3400 Hz, 8 kHz, "
                                                           "µ-law)", "tel")):
        out += [f"### Leave-one-corpus-out, {title}", "", *_loco_table(results["loco"], variant), ""]
    for title, variant in (("clean", "clean"), ("telephone", "tel")):
        out += [f"### Speaker-disjoint 5-fold (pooled corpora), {title} test audio", "",
                "| candidate | all acc / bacc | adults acc / bacc | children acc / bacc |", "|---|---|---|---|"]
        for name, rows in results["kfold"].items():
            if variant in rows:
                p = rows[variant]["pooled"]
                out.append(f"| {name} | {_fmt(p['acc_all'])} / {_fmt(p['bacc_all'])} | {_fmt(p['acc_adult'])} / "
                           f"{_fmt(p['bacc_adult'])} | {_fmt(p['acc_child'])} / {_fmt(p['bacc_child'])} |")
        out.append("")
    out += ["### Does training on children (age ≤ 12) help adults?", "",
            "| protocol | test audio | trained | adults acc / bacc | children acc / bacc | "
            "speechocean762 adults acc / bacc |", "|---|---|---|---|---|---|"]
    for proto, res in results["children"].items():
        for variant, r in res.items():
            for which in ("with_children", "without_children"):
                p, so = r[which], r[f"{which}/speechocean762_train"]
                out.append(f"| {proto} | {variant} | {which.replace('_', ' ')} | {_fmt(p['acc_adult'])} / "
                           f"{_fmt(p['bacc_adult'])} | {_fmt(p['acc_child'])} / {_fmt(p['bacc_child'])} | "
                           f"{_fmt(so['acc_adult'])} / {_fmt(so['bacc_adult'])} |")
    for key, who in (("calibration", "adults (age > 12)"), ("calibration_all", "all clips incl. children")):
        out += ["", f"### Calibration on {who}: leave-one-corpus-out logits, clean + telephone; T cross-fitted on "
                "the other two corpora", "", "| candidate | ECE before | ECE after | fold temperatures | T on all |",
                "|---|---|---|---|---|"]
        for name, c in results.get(key, {}).items():
            temps = ", ".join(f"{t:.2f}" for t in c["fold_temperatures"])
            out.append(f"| {name} | {c['ece_before']:.3f} | {c['ece_after']:.3f} | {temps} | "
                       f"{c['temperature_all']:.2f} |")
    print("\n".join(out))


def cmd_short(args: argparse.Namespace) -> None:
    """Short clips: leave-one-corpus-out balanced accuracy of the shipped recipe on random 0.5 s / 1 s / 2 s crops
    of up to 200 adult clips per held-out corpus, clean and through the telephone channel."""
    import torch

    from voicegender import augment
    from voicegender.default_model import balanced_weights, head_logits, train_linear_head
    from voicegender.embeddings import ge2e_embeddings

    torch.set_num_threads(1)
    cache = Cache(Path(args.cache))
    rng = np.random.default_rng(7)
    results = {}
    for corpus in CORPORA:
        train = np.flatnonzero((cache.corpus != corpus) & ~cache.child)
        x = np.concatenate([cache.get("ge2e", v)[train] for v in SHIP_VARIANTS])
        w = np.tile(balanced_weights(cache.y[train], cache.speaker[train]), len(SHIP_VARIANTS))
        model, _ = train_linear_head(x, np.tile(cache.y[train], len(SHIP_VARIANTS)), w, c=SHIP_C)
        pool = np.flatnonzero((cache.corpus == corpus) & ~cache.child)
        test = np.sort(rng.choice(pool, min(200, len(pool)), replace=False))
        waves = [clean_wave(Path(cache.meta[i]["path"])) for i in test]
        for seconds in args.seconds:
            crops = []
            for wv in waves:
                n = int(seconds * SR)
                start = int(rng.integers(0, max(1, len(wv) - n + 1)))
                crops.append(wv[start:start + n])
            for variant, batch in (("clean", crops), ("tel", [augment.telephone(c, SR) for c in crops])):
                p = _softmax_female(head_logits(model, ge2e_embeddings(batch)))
                m = metrics(cache.y[test], p, np.zeros(len(test), bool))
                results.setdefault(f"{seconds:g}s/{variant}", {})[corpus] = m
                log.info("%s %.1f s %s: bacc %.3f", corpus, seconds, variant, m["bacc_all"])
    Path(args.json).write_text(json.dumps(results, indent=1))
    print("| crop | test audio | " + " | ".join(f"{c} acc / bacc" for c in CORPORA) + " |")
    print("|---" * (len(CORPORA) + 2) + "|")
    for key, rows in results.items():
        seconds, variant = key.split("/")
        print(f"| {seconds} | {variant} | " + " | ".join(f"{_fmt(rows[c]['acc_all'])} / {_fmt(rows[c]['bacc_all'])}"
                                                     for c in CORPORA) + " |")


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="decode, augment, embed; arrays to --cache")
    c.add_argument("--data", default="/work/shared/data")
    c.add_argument("--cache", default="/work/cache/vg_default")
    c.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    c = sub.add_parser("compare", help="candidates on leave-one-corpus-out and speaker k-fold; results JSON")
    c.add_argument("--cache", default="/work/cache/vg_default")
    c.add_argument("--json", default="/work/runs/default_model/compare.json")
    c.add_argument("--only-cnn", action="store_true", help="run only the SmallCNN candidate (the slow one)")
    c.add_argument("--cnn-steps", type=int, default=200)
    c.add_argument("--cnn-variants", nargs="+", default=["clean", "noise"], choices=VARIANTS)
    c = sub.add_parser("ship", help="train the chosen recipe on everything; write the package asset")
    c.add_argument("--cache", default="/work/cache/vg_default")
    c.add_argument("--compare-json", default="/work/runs/default_model/compare.json")
    repo = Path(__file__).resolve().parents[1]
    c.add_argument("--out", default=str(repo / "src/voicegender/assets/default_model.pt"))
    c.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("report", help="print markdown tables from compare JSON files")
    c.add_argument("--json", default="/work/runs/default_model/compare.json")
    c.add_argument("--extra-json", nargs="*", default=["/work/runs/default_model/compare_cnn.json"])
    c = sub.add_parser("short", help="leave-one-corpus-out accuracy on 0.5-2 s crops (adults)")
    c.add_argument("--cache", default="/work/cache/vg_default")
    c.add_argument("--json", default="/work/runs/default_model/short.json")
    c.add_argument("--seconds", nargs="+", type=float, default=[0.5, 1.0, 2.0])
    args = p.parse_args()
    commands = {"cache": cmd_cache, "compare": cmd_compare, "ship": cmd_ship, "report": cmd_report, "short": cmd_short}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
