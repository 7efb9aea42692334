"""Clips per second of `voicegender predict` against the original pipeline, both as whole processes, in one run.

Both sides are timed as whole processes, start-up included (imports, model loading), in the same run, over the
first ``--clips`` AudioMNIST-AZ clips (sorted paths; 16 kHz FLAC words of ~1.4 s):

* **ours**: ``voicegender predict --format json FILE ...`` (decode → 16 kHz → speech detection → GE2E encoder
  through onnxruntime → the shipped head);
* **seed**: the original system's deployment path as a script (this file with ``--seed-worker``): read the
  file, soxr to 48 kHz, the seed MFCC (librosa, pre-emphasis, padded to 47,998 samples), the 224×224 8-bit image
  (scikit-image), then a ResNet-34 + fastai head forward (``models.SeedResNet``, random weights: speed does not
  depend on them), with each of ``--seed-threads`` torch thread counts, in batches of each of ``--batch`` images.
  Batch 1 is the original as it ran (its deployment notebook predicted one image at a time); larger batches are
  faster than anything the original did. A ratio is printed against the faster thread count of each batch size.

Wall time is measured around each child; its CPU time and peak resident memory come from ``os.wait4`` (that
child alone). The sides alternate (seed, ours, ...) over ``--repeats`` rounds. Also: ``voicegender predict
one.wav`` (the first clip as a 16 kHz WAV) wall time and peak memory over ``--startup-repeats`` runs, after one
untimed run (warm page cache), and ``voicegender --help``; the accuracy of our answers on the clips (the
manifest's gender); with ``--stages``, the cost of each stage per clip in this process on one thread.
The load average is printed with every figure: another job on the machine slows everything.

Usage (from the repository root)::

    python benchmarks/predict_speed.py [--clips 1024] [--repeats 1] [--seed-threads 1 2] [--batch 1 32]
                                       [--startup-repeats 3] [--stages] [--manifest CSV]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "audiomnist_az" / "manifest.csv"


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def clips(manifest: Path, n: int) -> list[tuple[str, str]]:
    """The first ``n`` (path, gender) rows of a manifest with ``path`` and ``gender`` columns, by sorted path."""
    with open(manifest, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    return [(str(manifest.parent / r["path"]), r["gender"]) for r in rows[:n]]


def run_child(cmd: list[str], stdout_path: Path | None = None) -> dict:
    """Run ``cmd`` to completion: wall seconds, CPU seconds and peak RSS (MB) of that child alone."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    load = _load()
    try:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err = child.stderr.read().decode(errors="replace")
        child.stderr.close()
    finally:
        if stdout_path:
            out.close()
    if child.returncode not in (0, 1):  # predict exits 1 when a file failed: its rows say which
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({child.returncode}):\n{err[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "load": f"{load} -> {_load()}"}


def voicegender_cmd() -> list[str]:
    """The ``voicegender`` console script next to this Python, else ``python -m voicegender``."""
    script = Path(sys.executable).parent / "voicegender"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "voicegender"]


# --- the seed side, run as its own process ---------------------------------------------------------------------
def seed_worker(list_file: str, threads: int, batch: int) -> None:
    """The original pipeline over the files listed in ``list_file``; prints how many clips it scored."""
    import soundfile as sf
    import torch

    from voicegender.audio.decode import INT16_SCALE
    from voicegender.research.features import seed_features, seed_mfcc_image
    from voicegender.research.models import SeedResNet

    torch.set_num_threads(threads)
    paths = Path(list_file).read_text().split("\n")
    net = SeedResNet("resnet34").eval()
    done = 0
    for start in range(0, len(paths), batch):
        images = []
        for path in paths[start:start + batch]:
            samples, rate = sf.read(path, dtype="int16")  # the seed read int16 sample values
            mfcc = seed_features(samples.astype(np.float32) / INT16_SCALE, rate)  # soxr to 48 kHz, pad, MFCC
            images.append(seed_mfcc_image(mfcc))
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            done += len(torch.softmax(net(x), dim=1))
    print(json.dumps({"clips": done}))


# --- per-stage costs in this process ---------------------------------------------------------------------------
def stage_costs(paths: list[str], batch: int) -> dict[str, float]:
    """ms per clip of each stage of predict on one thread, the encoder and head over batches of ``batch`` clips."""
    from voicegender.audio.decode import load_audio
    from voicegender.speech import vad
    from voicegender.speech.classified import PREDICT_VAD
    from voicegender.threads import blas_single_thread
    from voicegender.voice import embeddings
    from voicegender.voice.default_model import load_default_model

    model = load_default_model()
    totals = dict.fromkeys(("decode", "speech detection", "features", "encoder", "head"), 0.0)

    def timed(stage: str, fn, *args):
        started = time.perf_counter()
        out = fn(*args)
        totals[stage] += time.perf_counter() - started
        return out

    with blas_single_thread():
        first = load_audio(paths[0]).samples  # warm-up: sessions, caches
        model.score([vad.speech_only(first, vad.find_speech(first, PREDICT_VAD))])
        speech = []
        for path in paths:
            samples = timed("decode", lambda p: load_audio(p).samples, path)
            regions = timed("speech detection", vad.find_speech, samples, PREDICT_VAD)
            if vad.speech_seconds(regions) >= 0.15:
                speech.append(vad.speech_only(samples, regions))
        for start in range(0, len(speech), batch):
            waves = speech[start:start + batch]
            mels = timed("features", lambda ws: [embeddings.mel_frames(embeddings.prepare(w)) for w in ws], waves)
            windows, owner = [], []
            for i, mel in enumerate(mels):
                for s in embeddings.partial_windows(len(mel)):
                    windows.append(mel[s])
                    owner.append(i)
            partial, hidden = timed("encoder", lambda w: embeddings.encode_windows(w, hidden=True),
                                    np.stack(windows))

            def head(partial=partial, hidden=hidden, owner=owner, waves=waves):
                emb, hidden_means = embeddings.pool_windows(partial, hidden, owner, len(waves))
                x = model.head.inputs(emb, None)
                seconds = np.array([len(w) / 16_000 for w in waves])
                return model.head.p_female(x, seconds, hidden_means), model.head.p_child(x)

            timed("head", head)
    return {k: 1000 * v / len(paths) for k, v in totals.items()}


def accuracy(jsonl: Path, truth: dict[str, str]) -> str:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    answered = [r for r in rows if r["label"] in ("female", "male")]
    right = [r["label"] == truth[r["path"]] for r in answered]
    per_class = [np.mean([r["label"] == g for r in answered if truth[r["path"]] == g]) for g in ("female", "male")
                 if any(truth[r["path"]] == g for r in answered)]
    no_speech = sum(r["label"] == "no_speech" for r in rows)
    errors = sum(r["label"] == "error" for r in rows)
    return (f"{len(answered)}/{len(rows)} clips answered ({no_speech} no_speech, {errors} errors); accuracy "
            f"{np.mean(right):.1%}, balanced {np.mean(per_class):.1%} "
            f"({sum(truth[r['path']] == 'female' for r in answered)} female, "
            f"{sum(truth[r['path']] == 'male' for r in answered)} male)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", type=int, default=1024, help="the first N clips of the manifest (sorted paths)")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="CSV with path (relative to it) and gender")
    p.add_argument("--repeats", type=int, default=1, help="rounds of both sides (alternating)")
    p.add_argument("--seed-threads", type=int, nargs="+", default=[1, 2], help="torch threads of the seed runs")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32],
                   help="images per ResNet forward in the seed script (1: as the original ran)")
    p.add_argument("--startup-repeats", type=int, default=3, help="timed `predict one.wav` runs")
    p.add_argument("--stages", action="store_true", help="also the per-stage cost per clip (in this process)")
    p.add_argument("--seed-worker", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.seed_worker:
        seed_worker(args.seed_worker, args.threads, args.batch[0])
        return
    if not args.manifest.is_file():
        sys.exit(f"{args.manifest}: no manifest (the AudioMNIST-AZ corpus of ../shared/data); give --manifest CSV")
    rows = clips(args.manifest, args.clips)
    paths = [path for path, _ in rows]
    truth = dict(rows)
    vg = voicegender_cmd()
    print(f"{len(paths)} clips from {args.manifest.parent.name} (first by sorted path), {os.cpu_count()} cores, "
          f"load before {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        list_file = tmp_dir / "files.txt"
        list_file.write_text("\n".join(paths))
        ours_out = tmp_dir / "ours.jsonl"
        results: dict[str, list[dict]] = {}
        run_child([*vg, "predict", "--format", "json", *paths[:4]])  # warm-up: page cache, the ONNX files
        for _ in range(args.repeats):
            for batch in args.batch:
                for threads in args.seed_threads:
                    cmd = [sys.executable, __file__, "--seed-worker", str(list_file), "--threads", str(threads),
                           "--batch", str(batch)]
                    results.setdefault(f"seed, batch {batch}, {threads} thread{'s' if threads > 1 else ''}",
                                       []).append(run_child(cmd))
            results.setdefault("voicegender predict --format json", []).append(
                run_child([*vg, "predict", "--format", "json", *paths], ours_out))
        print(f"\n{'pipeline (whole process)':<38} {'run':>3} {'wall s':>7} {'clips/s':>8} {'CPU ms/clip':>12} "
              f"{'peak MB':>8}  load 1/5/15 min before -> after")
        rates = {}
        for name, runs in results.items():
            for i, r in enumerate(runs):
                print(f"{name:<38} {i + 1:>3} {r['wall']:>7.2f} {len(paths) / r['wall']:>8.1f} "
                      f"{1000 * r['cpu'] / len(paths):>12.2f} {r['rss_mb']:>8.0f}  {r['load']}")
            rates[name] = max(len(paths) / r["wall"] for r in runs)
        ours = rates["voicegender predict --format json"]
        worst = min(len(paths) / r["wall"] for r in results["voicegender predict --format json"])
        print()
        for batch in args.batch:
            seed_name = max((k for k in rates if k.startswith(f"seed, batch {batch},")), key=rates.get)
            print(f"ratio against the seed in batches of {batch}{' (as the original ran)' if batch == 1 else ''}: "
                  f"{ours / rates[seed_name]:.1f}x ({ours:.1f} vs {rates[seed_name]:.1f} clips/s, best runs; slowest "
                  f"run of ours {worst / rates[seed_name]:.1f}x; faster seed setting: {seed_name})")
        print(f"our answers: {accuracy(ours_out, truth)}")

        import soundfile as sf

        one = tmp_dir / "one.wav"
        data, rate = sf.read(paths[0], dtype="int16")
        sf.write(one, data, rate, subtype="PCM_16")
        run_child([*vg, "predict", str(one)])  # untimed: warm page cache
        starts = [run_child([*vg, "predict", str(one)]) for _ in range(args.startup_repeats)]
        helps = [run_child([*vg, "--help"]) for _ in range(args.startup_repeats)]
        walls = [r["wall"] for r in starts]
        print(f"`voicegender predict one.wav` ({rate // 1000} kHz, {len(data) / rate:.2f} s): wall median "
              f"{statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), peak RSS "
              f"{max(r['rss_mb'] for r in starts):.0f} MB; `voicegender --help` "
              f"{statistics.median(r['wall'] for r in helps):.2f} s; load {starts[0]['load']}")
    if args.stages:
        costs = stage_costs(paths, 32)
        print(f"\nper-stage cost in one process on one thread, ms per clip ({len(paths)} clips; encoder and head in "
              f"batches of 32; load {_load()}):")
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()) + f"; total {sum(costs.values()):.2f}")
    print(f"load after {_load()}")


if __name__ == "__main__":
    if not hasattr(os, "wait4"):  # pragma: no cover
        sys.exit("this benchmark needs Linux or macOS (os.wait4: each child's own CPU time and peak memory)")
    main()
