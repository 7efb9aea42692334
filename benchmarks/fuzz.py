"""Fuzzing `voicegender predict`: mutated WAV/FLAC/MP3/OGG-Opus/M4A files, each must get exactly one answer.

The files come from ``tests/fuzzing.py`` (the generator the CI test uses on 200 files): seven small recordings of
a synthetic voice mutated by bit flips, truncation, zeroed blocks, copied spans, garbage tails, another format's
header, and WAV header lies (sample rate 0/1/4e9, channels 0/65535, bits 0/7/64, data size 0/0xFFFFFFFF,
duplicated chunks). All go through :func:`voicegender.listen.predict.iter_predictions` in one run (the CLI's path:
worker
threads, batches, the decode watchdog), timed per file as its answer arrives.

Printed: answers per outcome (label; errors by their first words), hangs (files given up by the watchdog),
answers missing or doubled, tracebacks on stderr, the whole run's files per second and its peak RSS
(``VmHWM``), with the load average; then each file once more on its own (``predict_files([file])``, one
worker) for the slowest files.

Usage (from the repository root)::

    python benchmarks/fuzz.py [--files 2000] [--seed 13] [--model PATH|stand-in] [--timeout 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the generator lives next to the test that runs it in CI

from fuzzing import write_fuzz_files  # noqa: E402


def stand_in(waves: list[np.ndarray]) -> np.ndarray:
    """A cheap model (loudness): decoding, resampling and speech detection are what is fuzzed."""
    return np.array([1 / (1 + np.exp(1 - 20 * np.sqrt(np.mean(np.asarray(w, np.float64) ** 2)))) for w in waves])


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Everything written to stderr in the block, Python's and the C libraries' (libmpg123 warns on fd 2)."""
    text = io.StringIO()
    with tempfile.TemporaryFile("w+") as tmp, contextlib.redirect_stderr(text):
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.write(tmp.read())


def peak_mb() -> float:
    """This process's peak RSS (Linux /proc: VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB


def error_kind(message: str, path: str) -> str:
    """An error message without the file name, numbers and decoder details: its kind."""
    text = message.replace(path, "").lstrip(": ")
    text = re.sub(r"\(.*", "", text)  # decoder details in parentheses
    return re.sub(r"\d+", "N", text).strip()[:70]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--model", default=None, help="model file (default: the shipped model); 'stand-in': loudness")
    ap.add_argument("--timeout", type=float, default=60.0, help="decode watchdog: seconds without progress")
    ap.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    args = ap.parse_args()

    from voicegender.listen.predict import PredictOptions, iter_predictions, load_model, predict_files

    folder = args.keep or Path(tempfile.mkdtemp(prefix="voicegender-fuzz-"))
    try:
        t0 = time.perf_counter()
        files = write_fuzz_files(folder, args.files, args.seed)
        print(f"{len(files)} files (seed {args.seed}) written in {time.perf_counter() - t0:.1f} s; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        model = stand_in if args.model == "stand-in" else load_model(args.model)
        paths = [str(p) for p, _ in files]
        options = PredictOptions(decode_timeout_s=args.timeout)
        answers: Counter = Counter()
        errors: Counter = Counter()
        seen: list[str] = []
        rss_before = peak_mb()
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        with captured_stderr() as stderr:
            for (path, _), p in zip(files, iter_predictions(paths, model, options, show_progress=False),
                                    strict=True):
                seen.append(p.path)
                answers[p.label] += 1
                if p.label == "error":
                    errors[error_kind(p.error, str(path))] += 1
        elapsed = time.perf_counter() - t0
        peak = peak_mb()
        hangs = sum(n for kind, n in errors.items() if "no progress" in kind or "decoder thread is stuck" in kind)
        print(f"\n{len(seen)} answers for {len(paths)} files in {elapsed:.1f} s ({len(paths) / elapsed:.0f} files/s); "
              f"load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
        print(f"missing or doubled answers: {sum(a != b for a, b in zip(seen, paths, strict=True))}; "
              f"hangs (given up by the watchdog): {hangs}; tracebacks on stderr: "
              f"{stderr.getvalue().count('Traceback')} (other lines the decoders wrote there: "
              f"{len(stderr.getvalue().splitlines())})")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in answers.most_common()))
        print("errors by kind:")
        for kind, n in errors.most_common():
            print(f"  {n:5d}  {kind}")
        print(f"peak RSS {peak:.0f} MB (before the run {rss_before:.0f} MB)", flush=True)
        one = PredictOptions(decode_timeout_s=args.timeout, workers=1)
        times = []
        with captured_stderr():
            for path, case in files:
                t = time.perf_counter()
                (p,) = predict_files([path], model, one, show_progress=False)
                times.append((time.perf_counter() - t, case.name, p.label))
        print(f"one at a time: median {np.median([t for t, _, _ in times]) * 1000:.0f} ms per file; slowest "
              f"(load {os.getloadavg()[0]:.2f}):")
        for seconds, name, label in sorted(times, reverse=True)[:5]:
            print(f"  {seconds:6.2f} s  {name}  -> {label}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
