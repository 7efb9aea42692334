"""Cost of the GE2E encoder: torch bf16, torch fp32 and onnxruntime fp32, on 1 and 2 threads; and process start-up.

Table 1 (in-process, encoder only, mel frames precomputed): ms per 1.6 s window when windows are batched 64 at a
time (as ``ge2e_embeddings`` batches all windows of many clips) and one at a time; ms per clip when each clip is
its own call (all its windows in one batch: one file at a time) and when all clips' windows go in batches of 64.
Repetitions are interleaved across rows (round robin) and the median is printed, so a load change hits every row.

Table 2 (whole processes, ``python -c``): ``import voicegender.voice.embeddings`` + the first embedding of one 1.5 s
clip,
per back end: wall time (median) and peak RSS (GNU ``/usr/bin/time``). The ONNX row runs the file shipped in the
package.

Clips are AudioMNIST-AZ (sorted paths, every k-th) when ``../shared/data`` exists, synthetic voices otherwise.
Report ``uptime`` with the figures: the script prints the load average before and after.

Usage::

    python benchmarks/encoder_speed.py [--clips 200] [--repeats 5] [--startup-repeats 3] [--tables all]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voicegender.voice import embeddings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "audiomnist_az"
BACKENDS = ("torch", "torch-fp32", "onnx")  # torch = bf16 autocast where the CPU has it
LABELS = {"torch": "torch bf16", "torch-fp32": "torch fp32", "onnx": "ORT fp32"}
TIME = "/usr/bin/time"  # GNU time, for the peak RSS of a child process
STARTUP = """
import numpy as np
from voicegender.voice import embeddings
t = np.arange(24_000) / 16_000
wave = (np.sin(2 * np.pi * 150 * t) + 0.3 * np.sin(2 * np.pi * 450 * t)).astype(np.float32)
embeddings.ge2e_embeddings([wave])
"""


def load_clips(n: int) -> tuple[list[np.ndarray], str]:
    if (SHARED / "manifest.csv").is_file():
        from voicegender.audio.decode import load_audio

        with open(SHARED / "manifest.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
        rows = rows[:: max(1, len(rows) // n)][:n]
        return [load_audio(SHARED / r["path"]).samples for r in rows], f"{len(rows)} AudioMNIST-AZ clips"
    from voicegender.audio.synth import synth_voice

    rng = np.random.default_rng(0)
    waves = [synth_voice(float(rng.uniform(90, 260)), float(rng.uniform(0.5, 3.0)), seed=i) for i in range(n)]
    return waves, f"{n} synthetic clips (no ../shared/data)"


def clip_windows(waves: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for w in waves:
        mel = embeddings.mel_frames(embeddings.prepare(w))
        out.append(np.stack([mel[s] for s in embeddings.partial_windows(len(mel))]))
    return out


def encoder(backend: str, threads: int) -> Callable[[np.ndarray, int], np.ndarray]:
    if backend == "onnx":
        session = embeddings.onnx_encoder(threads)
        return lambda x, batch: session(x, batch)

    import torch

    def run(x: np.ndarray, batch: int) -> np.ndarray:
        torch.set_num_threads(threads)
        return embeddings.encode_windows(x, backend=backend, batch_windows=batch)

    return run


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def in_process_table(waves: list[np.ndarray], repeats: int) -> None:
    per_clip = clip_windows(waves)
    windows = np.concatenate(per_clip)
    n_clips, n_win = len(per_clip), len(windows)
    singles = windows[: min(64, n_win)]
    mel_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clip_windows(waves)
        mel_times.append(time.perf_counter() - t0)
    mel_ms = statistics.median(mel_times) * 1e3 / n_clips
    rows = [(b, t) for b in BACKENDS for t in (1, 2)]
    runs = {row: encoder(*row) for row in rows}
    cases: dict[str, Callable[[Callable[[np.ndarray, int], np.ndarray]], None]] = {
        "win64": lambda f: f(windows, 64),
        "win1": lambda f: [f(w[None], 1) for w in singles],
        "clip1": lambda f: [f(c, 64) for c in per_clip],
    }
    for f in runs.values():  # warm-up: sessions, oneDNN primitives, the ONNX file
        f(windows[:64], 64)
        f(windows[:1], 1)
    times: dict[tuple[tuple[str, int], str], list[float]] = {}
    for _ in range(repeats):
        for row, f in runs.items():
            for case, call in cases.items():
                t0 = time.perf_counter()
                call(f)
                times.setdefault((row, case), []).append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"\n{n_clips} clips, {n_win} windows ({n_win / n_clips:.2f} per clip); mel frames "
          f"{mel_ms:.2f} ms/clip (numpy, median; not in the table); median of {repeats}")
    print("| encoder | threads | ms/window, batch 64 | ms/window, batch 1 | ms/clip, one clip per call "
          "| ms/clip, batched 64 | vs torch bf16 1 thr (batched) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ref = med[(("torch", 1), "win64")]
    for row in rows:
        b, t = row
        print(f"| {LABELS[b]} | {t} | {med[(row, 'win64')] / n_win:.2f} | {med[(row, 'win1')] / len(singles):.2f} "
              f"| {med[(row, 'clip1')] / n_clips:.2f} | {med[(row, 'win64')] / n_clips:.2f} "
              f"| {med[(row, 'win64')] / ref:.2f}x |")


def _run_process(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``python -c code`` process.

    Peak RSS comes from ``/usr/bin/time``: a child forked straight from this (large) process would report this
    process's RSS as its own high-water mark, since Linux carries it across fork and exec.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        cmd = [sys.executable, "-c", code]
        if os.path.exists(TIME):
            cmd = [TIME, "-f", "%M", "-o", out.name, *cmd]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        wall = time.perf_counter() - t0
        text = out.read().strip()
    return wall, float(text.splitlines()[-1]) / 1024 if text else float("nan")  # %M is in KiB


def startup_table(repeats: int) -> None:
    embeddings.onnx_encoder()  # the file is read once here: the ONNX row measures a warm page cache
    rows = {"python + numpy (floor)": ("import numpy", {}),
            "ONNX (auto, shipped file)": (STARTUP, {"VOICEGENDER_ENCODER": "auto"}),
            "torch bf16": (STARTUP, {"VOICEGENDER_ENCODER": "torch"}),
            "torch fp32": (STARTUP, {"VOICEGENDER_ENCODER": "torch-fp32"})}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    for _ in range(repeats):
        for name, (code, extra) in rows.items():
            results[name].append(_run_process(code, {**os.environ, **extra}))
    print(f"\nstart-up: import voicegender.voice.embeddings + first embedding of a 1.5 s clip, whole process, "
          f"median of {repeats}")
    print("| path | wall s (median) | wall s (min) | peak RSS MB (max) |")
    print("| --- | ---: | ---: | ---: |")
    for name, rs in results.items():
        walls = [r[0] for r in rs]
        print(f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {max(r[1] for r in rs):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", type=int, default=200, help="clips for the in-process table")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per row")
    p.add_argument("--startup-repeats", type=int, default=3, help="processes per start-up row")
    p.add_argument("--tables", choices=("all", "encoder", "startup"), default="all", help="which tables to print")
    args = p.parse_args()
    print(f"cpus {os.cpu_count()}; {load()}")
    if args.tables in ("all", "startup"):
        startup_table(args.startup_repeats)
    if args.tables in ("all", "encoder"):
        print(f"bf16 autocast in torch: {embeddings.use_bf16()}")
        waves, what = load_clips(args.clips)
        print(what)
        in_process_table(waves, args.repeats)
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
