"""Clips per second of `voicegender predict` on ~1 s clips vs the seed pipeline, in the same run.

Both pipelines read the same 48 kHz WAV files (AudioMNIST's format) from disk:

* **ours**: :func:`voicegender.predict.predict_files` — decode → 16 kHz → silero VAD → the model's features →
  model → calibrated p_female, files batched (``--batch``), decoding and VAD in a thread pool;
* **seed**: the original system's deployment path — read the WAV as int16 values, the seed MFCC (librosa,
  pre-emphasis, padded to 47,998 samples), the 224×224 8-bit image (scikit-image resize), then a ResNet-34 +
  fastai head forward (``models.SeedResNet``, random weights: speed does not depend on them). Images are
  batched too (``--batch``), which flatters the seed: its notebook predicted one image at a time.

The two pipelines alternate in rounds in one process (other jobs on a shared machine then slow both alike);
wall-clock clips/s and CPU time per clip are both reported. Memory is measured separately, one subprocess per
pipeline on up to 64 clips: peak resident memory (``ru_maxrss``) and the tracemalloc Python-heap peak. Clips
are espeak-ng digits (male and female voices) when espeak-ng is installed, else synthetic voices; our accuracy
on them is printed for information (the seed's random weights have none).

Usage::

    python benchmarks/predict_speed.py [--clips 192] [--seed-clips 48] [--rounds 3] [--threads 2] [--batch 32]
                                       [--model PATH [--model PATH ...]]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 48_000  # Hz, AudioMNIST's rate
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = (("en+m3", 30, "male"), ("en+m1", 20, "male"), ("en+m7", 40, "male"),
          ("en+f3", 70, "female"), ("en+f2", 80, "female"), ("en+f4", 60, "female"))


def make_clips(folder: Path, n: int) -> list[tuple[Path, str]]:
    """``n`` ~1 s mono 48 kHz int16 WAVs (a spoken digit padded with silence) and their speaker gender."""
    from voicegender.audio import resample
    from voicegender.synth import FEMALE_F0, MALE_F0, synth_voice

    espeak = shutil.which("espeak-ng")
    out = []
    for i in range(n):
        voice, pitch, gender = VOICES[i % len(VOICES)]
        if espeak:
            wav = subprocess.run([espeak, "-v", voice, "-p", str(pitch), "-s", "190", "--stdout",
                                  DIGITS[i % 10]], capture_output=True, check=True).stdout
            data, rate = sf.read(io.BytesIO(wav), dtype="float32")
            speech = resample(data, rate, RATE)[: RATE]
        else:
            f0 = FEMALE_F0 if gender == "female" else MALE_F0
            speech = synth_voice(f0 * (1 + 0.02 * (i % 5)), 0.6, RATE, seed=i)
        clip = np.zeros(RATE, np.float32)  # ~1 s, speech placed like AudioMNIST's (variable onset)
        start = (i * 1013) % max(1, RATE - len(speech))
        clip[start:start + len(speech)] = speech
        path = folder / f"{i:04d}_{gender}.wav"
        sf.write(path, clip, RATE, subtype="PCM_16")
        out.append((path, gender))
    return out


# --- the two pipelines ---------------------------------------------------------------------------------------
def ours_pipeline(batch: int, model: str | None):
    """A function predicting a list of paths with voicegender (model loaded once)."""
    from voicegender.predict import PredictOptions, load_model, predict_files

    loaded = load_model(model)
    options = PredictOptions(batch_size=batch)
    return lambda paths: predict_files(paths, loaded, options, show_progress=False)


def seed_pipeline(batch: int):
    """A function running the seed's deployment path on a list of paths (ResNet-34, random weights)."""
    import torch

    from voicegender.audio import INT16_SCALE
    from voicegender.features import seed_features, seed_mfcc_image
    from voicegender.models import SeedResNet

    net = SeedResNet("resnet34").eval()

    def predict(paths: list[Path]) -> np.ndarray:
        out = []
        for start in range(0, len(paths), batch):
            images = []
            for path in paths[start:start + batch]:
                samples, rate = sf.read(str(path), dtype="int16")  # the seed read int16 sample values
                mfcc = seed_features(samples.astype(np.float32) / INT16_SCALE, rate)  # pads, int16 scale
                images.append(seed_mfcc_image(mfcc))
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
            with torch.inference_mode():
                out.append(torch.softmax(net(x), dim=1)[:, 0].numpy())
        return np.concatenate(out)

    return predict


def memory_worker(args: argparse.Namespace) -> None:
    """Peak memory of one pipeline on its own: ru_maxrss of this process and the tracemalloc heap peak."""
    import torch

    torch.set_num_threads(args.threads)
    paths = sorted(Path(args.folder).glob("*.wav"))[: args.n]
    fn = ours_pipeline(args.batch, args.model) if args.worker == "ours" else seed_pipeline(args.batch)
    fn(paths[:2])
    tracemalloc.start()
    fn(paths)
    heap = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "heap_peak_mb": heap}))


def _model_name(model: str | None) -> str:
    return "default model" if model is None else Path(model).name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", type=int, default=192, help="clips for our pipeline (over all rounds)")
    p.add_argument("--seed-clips", type=int, default=48, help="clips for the (slow) seed pipeline")
    p.add_argument("--rounds", type=int, default=3, help="the pipelines alternate this many times")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--batch", type=int, default=32, help="clips per batch in both pipelines")
    p.add_argument("--model", action="append", default=None,
                   help="checkpoint for ours, or 'default' for the shipped model (repeat for more rows)")
    p.add_argument("--worker", choices=("ours", "seed"), help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.model = args.model[0] if args.model else None
        memory_worker(args)
        return
    models = [None if m in (None, "default") else m for m in (args.model or [None])]
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), max(args.clips, args.seed_clips))
        paths = [c[0] for c in clips]
        # memory first, while this process is still small: Linux keeps ru_maxrss across fork + exec
        memory = {}
        for key, worker, model in [("seed", "seed", None)] + [(f"ours{i}", "ours", m) for i, m in enumerate(models)]:
            n = min(64, args.seed_clips if worker == "seed" else args.clips)
            cmd = [sys.executable, __file__, "--worker", worker, "--folder", tmp, "--n", str(n),
                   "--threads", str(args.threads), "--batch", str(args.batch)] + (["--model", model] if model else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{key} memory run failed:\n{done.stderr}")
            memory[key] = json.loads(done.stdout.strip().splitlines()[-1])
        memory["seed1"] = memory["seed"]
        import torch

        from voicegender.predict import torch_threads

        torch.set_num_threads(args.threads)
        seed = seed_pipeline(args.batch)

        def seed_on(n: int):
            def run(chunk):
                with torch_threads(n):
                    return seed(chunk)
            return run

        # the seed gets its best thread count on this machine (2 threads can lose on a busy machine)
        pipelines = {"seed": seed_on(args.threads), "seed1": seed_on(1)}
        counts = {"seed": args.seed_clips, "seed1": args.seed_clips}
        labels = {"seed": f"seed: MFCC -> 224x224 -> ResNet-34, {args.threads} thr",
                  "seed1": "seed: MFCC -> 224x224 -> ResNet-34, 1 thr"}
        for i, model in enumerate(models):
            pipelines[f"ours{i}"] = ours_pipeline(args.batch, model)
            counts[f"ours{i}"] = args.clips
            labels[f"ours{i}"] = f"ours: predict, {_model_name(model)}"
        for fn in pipelines.values():
            fn(paths[:2])  # warm-up: imports, model load, allocator
        wall = dict.fromkeys(pipelines, 0.0)
        cpu = dict.fromkeys(pipelines, 0.0)
        preds: dict[str, list] = {name: [] for name in pipelines}
        # alternate in rounds so that load from other processes on a shared machine hits all alike
        for r in range(args.rounds):
            for name, fn in pipelines.items():
                n = counts[name]
                chunk = paths[r * n // args.rounds:(r + 1) * n // args.rounds]
                w0, c0 = time.perf_counter(), time.process_time()
                result = fn(chunk)
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.process_time() - c0
                if name.startswith("ours"):
                    preds[name].extend(result)
    speech = "espeak-ng digits" if shutil.which("espeak-ng") else "synthetic voices"
    print(f"~1 s clips at 48 kHz ({speech}), {args.threads} torch threads, batch {args.batch}, "
          f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'pipeline':<46} {'clips':>5} {'clips/s':>8} {'x seed':>7} {'CPU ms/clip':>12} {'x seed':>7} "
          f"{'RSS MB':>7} {'heap MB':>8}")
    best_seed = min(("seed", "seed1"), key=lambda k: wall[k] / counts[k])
    seed_rate = counts[best_seed] / wall[best_seed]
    seed_cpu = cpu[best_seed] / counts[best_seed]
    for name in pipelines:
        rate = counts[name] / wall[name]
        cpu_ms = cpu[name] / counts[name]
        print(f"{labels[name]:<46} {counts[name]:>5} {rate:>8.1f} {rate / seed_rate:>7.1f} {1000 * cpu_ms:>12.1f} "
              f"{seed_cpu / cpu_ms:>7.1f} {memory[name]['maxrss_mb']:>7.0f} {memory[name]['heap_peak_mb']:>8.1f}")
    print(f"x seed: against the faster seed row ({labels[best_seed]}); ours runs the model on 1 torch thread "
          f"and decodes/detects speech on {min(4, os.cpu_count() or 1)} pool threads, one batch ahead")
    truth = {c[0]: c[1] for c in clips}
    for name in pipelines:
        if name.startswith("ours"):
            answered = [p for p in preds[name] if p.label in ("female", "male")]
            correct = sum(p.label == truth[Path(p.path)] for p in answered)
            print(f"{labels[name]}: answered {len(answered)}/{len(preds[name])} clips (the rest no_speech), "
                  f"accuracy on them {correct / max(1, len(answered)):.1%}")


if __name__ == "__main__":
    main()
