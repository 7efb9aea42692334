"""Cost of the ECAPA speaker encoder's two forms, "float32" (speechbrain's weights) and "int8" (uint8 convolutions).

Table 1 (in this process, one onnxruntime thread, numpy's BLAS on one thread as ``segment`` runs it, the encoder
built beforehand): CPU ms per second of audio for
clips of 1, 2 and 3 s (the diarizer embeds the middle 2 s of each turn's speech), fbank included (``embed`` does it);
repetitions are interleaved across the rows (round robin) and the median is printed, so a load change hits every
row; "x float32" is the ratio of CPU time to the float32 row of the same length. Table 1b: how close int8's
embeddings are to float32's on the same clips (cosine = dot product: the rows are L2-normalised).

Table 2 (whole processes, ``python -c``, start-up included): each process caps glibc's malloc arenas and fixes its mmap
threshold as the command line does (:func:`voicegender.memory.limit_heap_arenas` and ``map_large_blocks``, first
thing), builds ``SpeakerEncoder(checkpoint_path(),
precision=...)`` and embeds ``--processes-clips`` clips of 2 s of synthetic speech in batches of 8 on two threads
side by side, as ``voicegender.listen.speakers.embed_turns`` does. Wall time (median; the precisions alternate),
the child's own CPU time and its split into start-up and embedding, and its peak RSS (``VmHWM`` from
/proc/self/status: ``ru_maxrss`` would carry this process's peak over fork and exec), once the encoder is
built and at the end. The "floor" row imports
the same modules and makes the same clips without an encoder. One untimed process per precision runs first, so
the weights files exist in the cache (the first build of a precision writes them) and are in the page cache.

Clips of table 1 are AudioMNIST-AZ (sorted paths, every k-th; a clip is cut to its middle or tiled to the length)
when ``../shared/data`` exists, synthetic voices otherwise. The checkpoint must be fetched
(``voicegender models fetch``). Report the load average with the figures: the script prints it before and after.

Usage::

    python benchmarks/speaker_encoder_speed.py [--clips 100] [--seconds 1 2 3] [--repeats 5] [--threads 1]
        [--processes-clips 200] [--startup-repeats 3] [--tables all]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from voicegender.threads import blas_single_thread
from voicegender.voice import speaker_encoder as se

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "audiomnist_az"
REFERENCE = "float32"  # the row every ratio is against
ORDER = [REFERENCE] + [p for p in se.PRECISIONS if p != REFERENCE]  # float32, int8
RATE = se.SAMPLE_RATE
EMBED_BATCH, EMBED_THREADS = 8, 2  # as voicegender.listen.speakers (EMBED_BATCH, EMBED_THREADS)
PROCESS_SECONDS = 2.0  # length of a clip in table 2 (SpeakerOptions.embed_max_s)
PROCESS_VOICES = 16  # distinct synthetic voices a table-2 process makes and cycles through (cheap to make)
FLOOR = "floor"

# One table-2 process: argv = precision (or "floor"), clips, seconds, batch, threads. Prints one JSON line.
CHILD = """
import time
t0 = time.perf_counter()
from voicegender.memory import limit_heap_arenas, map_large_blocks
arenas = limit_heap_arenas()
map_large_blocks()
import json, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import onnxruntime
from voicegender.audio.synth import synth_voice
from voicegender.threads import blas_single_thread
from voicegender.voice.speaker_encoder import SpeakerEncoder, checkpoint_path
precision, n, seconds, batch, threads, voices = sys.argv[1], *map(float, sys.argv[2:])
n, batch, threads, voices = int(n), int(batch), int(threads), int(voices)
def vm():
    with open("/proc/self/status") as f:
        return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in f if line.startswith(("VmHWM", "VmRSS"))}
rng = np.random.default_rng(0)
made = [synth_voice(float(rng.uniform(90, 260)), seconds, seed=i) for i in range(min(n, voices))]
clips = [made[i % len(made)] for i in range(n)]
t1 = time.perf_counter()
encoder = None if precision == "floor" else SpeakerEncoder(checkpoint_path(), precision=precision)
t2 = time.perf_counter()
cpu2 = time.process_time()
built = vm()
if encoder is not None:
    with blas_single_thread(), ThreadPoolExecutor(threads) as pool:  # as segment and predict run it
        out = np.concatenate(list(pool.map(encoder.embed, [clips[i:i + batch] for i in range(0, n, batch)])))
    assert out.shape == (n, 192), out.shape
t3 = time.perf_counter()
end = vm()
print(json.dumps({"start_s": t2 - t0, "build_s": t2 - t1, "embed_s": t3 - t2, "cpu_s": time.process_time(),
                  "embed_cpu_s": time.process_time() - cpu2, "built_peak_mb": built["VmHWM"],
                  "peak_mb": end["VmHWM"], "rss_mb": end["VmRSS"], "arenas": arenas}))
"""


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fit(wave: np.ndarray, n: int) -> np.ndarray:
    """``wave`` cut to its middle ``n`` samples, or tiled to ``n``."""
    if len(wave) >= n:
        a = (len(wave) - n) // 2
        return np.ascontiguousarray(wave[a:a + n], np.float32)
    return np.resize(wave, n).astype(np.float32)  # np.resize repeats the clip


def load_clips(n: int) -> tuple[list[np.ndarray], str]:
    if (SHARED / "manifest.csv").is_file():
        from voicegender.audio.decode import load_audio

        with open(SHARED / "manifest.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
        rows = rows[:: max(1, len(rows) // n)][:n]
        mean_s = statistics.fmean(float(r["duration_s"]) for r in rows)
        return ([load_audio(SHARED / r["path"]).samples for r in rows],
                f"{len(rows)} AudioMNIST-AZ clips (mean {mean_s:.2f} s; cut to the middle or tiled)")
    from voicegender.audio.synth import synth_voice

    rng = np.random.default_rng(0)
    waves = [synth_voice(float(rng.uniform(90, 260)), 3.0, seed=i) for i in range(n)]
    return waves, f"{n} synthetic voices (no ../shared/data; cut to the length)"


def speed_table(waves: list[np.ndarray], seconds: list[float], repeats: int, threads: int) -> None:
    checkpoint = se.checkpoint_path()
    encoders = {}
    for precision in ORDER:  # the first build of a precision writes its weights file: not timed
        t0 = time.perf_counter()
        encoders[precision] = se.SpeakerEncoder(checkpoint, threads, precision=precision)
        print(f"{precision}: encoder built in {time.perf_counter() - t0:.2f} s")
    sets = {s: [fit(w, int(round(s * RATE))) for w in waves] for s in seconds}
    rows = [(p, s) for s in seconds for p in ORDER]
    embeddings = {row: encoders[row[0]].embed(sets[row[1]][:2]) for row in rows}  # warm-up
    cpu: dict[tuple[str, float], list[float]] = {row: [] for row in rows}
    wall: dict[tuple[str, float], list[float]] = {row: [] for row in rows}
    for _ in range(repeats):
        for row in rows:
            precision, s = row
            c0, t0 = time.process_time(), time.perf_counter()
            with blas_single_thread():  # as segment and predict run it: OpenBLAS's idle threads would spin
                embeddings[row] = encoders[precision].embed(sets[s])
            wall[row].append(time.perf_counter() - t0)
            cpu[row].append(time.process_time() - c0)
    print(f"\nTable 1: in-process, {threads} onnxruntime thread(s), {len(waves)} clips per row, median of "
          f"{repeats} (rows interleaved)")
    print(f"| precision | clip s | CPU ms per s of audio | wall ms per s of audio | x {REFERENCE} (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for precision, s in rows:
        audio_s = s * len(waves)
        ms = statistics.median(cpu[(precision, s)]) * 1e3 / audio_s
        ref = statistics.median(cpu[(REFERENCE, s)]) * 1e3 / audio_s
        print(f"| {precision} | {s:g} | {ms:.1f} | {statistics.median(wall[(precision, s)]) * 1e3 / audio_s:.1f} "
              f"| {ms / ref:.2f} |")
    print(f"\nTable 1b: cosine between the two forms' embeddings of the same clip ({len(waves)} clips)")
    others = [p for p in ORDER if p != REFERENCE]
    print("| precision | clip s | mean cosine | min cosine | mean 1 - cosine |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for precision in others:
        for s in seconds:
            cos = np.sum(embeddings[(precision, s)] * embeddings[(REFERENCE, s)], axis=1, dtype=np.float64)
            print(f"| {precision} vs {REFERENCE} | {s:g} | {cos.mean():.5f} | {cos.min():.5f} "
                  f"| {(1 - cos).mean():.2e} |")


def run_process(what: str, clips: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", CHILD, what, str(clips), str(PROCESS_SECONDS), str(EMBED_BATCH),
           str(EMBED_THREADS), str(PROCESS_VOICES)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"the {what} process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def process_table(clips: int, repeats: int) -> None:
    rows = [FLOOR, *ORDER]
    for precision in ORDER:  # untimed: writes the weights file if missing, warms the page cache
        run_process(precision, min(clips, EMBED_BATCH))
    results: dict[str, list[dict[str, float]]] = {r: [] for r in rows}
    for _ in range(repeats):
        for r in rows:  # alternating: a load change hits every row
            results[r].append(run_process(r, clips))
    arenas = {bool(x["arenas"]) for rs in results.values() for x in rs}
    print(f"\nTable 2: whole processes, {clips} clips of {PROCESS_SECONDS:g} s of synthetic speech, batches of "
          f"{EMBED_BATCH} on {EMBED_THREADS} threads (1 onnxruntime thread each); median of {repeats}, precisions "
          f"alternating; glibc arenas capped: {'yes' if arenas == {True} else 'no' if arenas == {False} else 'mixed'}")
    print(f"| process | weights MB | wall s | start-up s (build s) | embed wall s | CPU s "
          f"| embed CPU ms per s of audio | peak RSS MB after build | peak RSS MB (max) | RSS at end MB "
          f"| x {REFERENCE} wall | x {REFERENCE} peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def med(r: str, key: str) -> float:
        return statistics.median(x[key] for x in results[r])

    audio_s = clips * PROCESS_SECONDS
    ref_wall, ref_peak = med(REFERENCE, "wall_s"), max(x["peak_mb"] for x in results[REFERENCE])
    for r in rows:
        peak = max(x["peak_mb"] for x in results[r])
        weights = "-" if r == FLOOR else f"{se.layout(r)['total_length'] / 1e6:.0f}"
        name = f"{FLOOR} (imports + clips, no encoder)" if r == FLOOR else r
        embed = "-" if r == FLOOR else f"{med(r, 'embed_cpu_s') * 1e3 / audio_s:.1f}"
        ratios = "- | -" if r == FLOOR else f"{med(r, 'wall_s') / ref_wall:.2f} | {peak / ref_peak:.2f}"
        print(f"| {name} | {weights} | {med(r, 'wall_s'):.2f} | {med(r, 'start_s'):.2f} ({med(r, 'build_s'):.2f}) "
              f"| {med(r, 'embed_s'):.2f} | {med(r, 'cpu_s'):.2f} | {embed} | {med(r, 'built_peak_mb'):.0f} "
              f"| {peak:.0f} | {med(r, 'rss_mb'):.0f} | {ratios} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", type=int, default=100, help="clips per row of table 1")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="clip lengths of table 1")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per row of table 1")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads in table 1")
    p.add_argument("--processes-clips", type=int, default=200, help="2 s clips each process of table 2 embeds")
    p.add_argument("--startup-repeats", type=int, default=3, help="processes per row of table 2")
    p.add_argument("--tables", choices=("all", "speed", "processes"), default="all", help="which tables to print")
    args = p.parse_args()
    if se.checkpoint_path() is None:
        sys.exit("the ECAPA checkpoint is not in the cache: run `voicegender models fetch` first")
    print(f"cpus {os.cpu_count()}; {load()}")
    if args.tables in ("all", "speed"):
        waves, what = load_clips(args.clips)
        print(what)
        speed_table(waves, args.seconds, args.repeats, args.threads)
        print(f"\n{load()}")
        gc.collect()  # the encoders go before the processes start (their peak RSS is their own: VmHWM)
    if args.tables in ("all", "processes"):
        process_table(args.processes_clips, args.startup_repeats)
        print(f"\n{load()}")


if __name__ == "__main__":
    main()
