"""Long recordings in bounded memory: `predict` and `segment` on generated hours of speech (× real time, peak RSS).

The audio is generated, never stored: espeak-ng sentences (three male and three female voices; synth.py's
voices without espeak-ng) in turns of 1-4 sentences of one voice, 0.2-1.2 s pauses between sentences and 1-15 s of
quiet noise between some turns, written as a 16 kHz FLAC, turn by turn, into a temporary folder. The female and
male seconds of the script are printed next to the answers.

Each measurement runs in a fresh process. It first caps glibc's malloc arenas and fixes its mmap threshold as
``voicegender`` does when it starts (:func:`voicegender.memory.limit_heap_arenas` and
:func:`~voicegender.memory.map_large_blocks`; ``--arenas 0`` leaves glibc's defaults), then reports its peak
resident memory (``VmHWM``: ``ru_maxrss`` would carry over the parent's peak through fork and exec) and, as
the floor nothing in predict can go under, its RSS after loading the model and predicting a 10 s clip ("base").
× real time is the audio's duration over the wall-clock time of the call (model loading excluded). The load
average (``os.getloadavg``) before and after is printed with every figure: the machine is shared.

``--kinds``: ``predict`` (default options), ``predict-label-only`` (no speaking time: ``speaking_time_above_s``
infinite, what the speaking time costs on long files), ``segment`` (with speakers and overlaps),
``segment-no-overlaps`` (with speakers, without the overlap detector), ``segment-no-speakers``.

``--hostile``: a WAV whose header claims 4 GB but holds 1 s; a FLAC of 24 h of digital silence (a few MB);
60 s of 8 channels at 384 kHz. ``--cost``: predict's time per file on short clips (single voice and two voices)
with and without the speaking time (``speaking_time_above_s``), in this process.

Usage (from the repository root)::

    python benchmarks/long_audio.py [--hours 1 [10 ...]] [--model PATH] [--hostile] [--cost] [--skip-long]
                                    [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from voicegender.memory import HEAP_ARENAS

SR = 16_000
SENTENCES = (
    "Every morning I walk to the station and buy a newspaper before the train.",
    "She said the weather would be fine tomorrow, so we planned a picnic by the river.",
    "The committee will meet again next week to discuss the budget for the new library.",
    "Could you tell me how to get to the museum from here?",
    "We have been waiting for almost an hour, and nobody has told us anything.",
    "The results of the experiment were surprising, but they need to be confirmed.",
    "I think we should leave early to avoid the traffic on the motorway.",
    "My grandmother grew tomatoes, beans and potatoes in her small garden.",
)
# predict-label-only: speaking_time_above_s=inf; segment: with speakers (the speaker encoder when it is fetched);
# segment-no-overlaps: with speakers, without the overlap detector (what it costs); segment-no-speakers:
# SegmentOptions(speakers=False), the gender timeline alone
KINDS = ("predict", "predict-label-only", "segment", "segment-no-overlaps", "segment-no-speakers")
VOICES = (("en+m3", 30, "male"), ("en+m1", 20, "male"), ("en+m7", 40, "male"),
          ("en+f3", 70, "female"), ("en+f2", 80, "female"), ("en+f4", 60, "female"))


STANDIN = "onnx-standin"


class OnnxStandIn:
    """GE2E embeddings through onnxruntime and a fixed random linear head: no torch in the process, as with a
    numpy voice head (``--model onnx-standin``). Its answers mean nothing; its time and memory are a real model's."""

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).standard_normal(256) * 4

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        from voicegender.voice.embeddings import ge2e_embeddings

        return 1 / (1 + np.exp(-(ge2e_embeddings(waves, backend="onnx") @ self.w)))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's peak RSS (Linux /proc: VmHWM, reset by exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def sentence_pool() -> list[tuple[np.ndarray, str, int]]:
    """(16 kHz float32 speech, gender, voice number) for every voice and sentence."""
    espeak = shutil.which("espeak-ng")
    pool = []
    if espeak is None:
        from voicegender.audio.synth import synth_voice

        for v, (_, _, gender) in enumerate(VOICES):
            for i in range(4):
                f0 = (110.0 if gender == "male" else 210.0) * (1 + 0.05 * v)
                pool.append((synth_voice(f0, 2.5 + i % 3, SR, seed=10 * v + i), gender, v))
        return pool
    from voicegender.audio.decode import resample

    for v, (voice, pitch, gender) in enumerate(VOICES):
        for text in SENTENCES:
            wav = subprocess.run([espeak, "-v", voice, "-p", str(pitch), "--stdout", text], capture_output=True,
                                 check=True).stdout
            data, rate = sf.read(io.BytesIO(wav), dtype="float32")
            nonzero = np.flatnonzero(np.abs(data) > 1e-3)
            data = data[nonzero[0]:nonzero[-1] + 1] if len(nonzero) else data
            pool.append((resample(data, rate, SR), gender, v))
    return pool


def write_conversation(path: Path, hours: float, seed: int = 0) -> dict:
    """A FLAC of ``hours`` of turns; returns the script's female / male / total seconds."""
    rng = np.random.default_rng(seed)
    pool = sentence_pool()
    by_voice: dict[int, list[np.ndarray]] = {}
    genders = {}
    for x, gender, voice in pool:
        by_voice.setdefault(voice, []).append(x)
        genders[voice] = gender
    total = int(hours * 3600 * SR)
    written, truth = 0, {"female": 0.0, "male": 0.0}
    with sf.SoundFile(path, "w", SR, 1, format="FLAC", subtype="PCM_16") as f:
        while written < total:
            voice = int(rng.integers(0, len(by_voice)))
            parts = []
            for _ in range(int(rng.integers(1, 5))):
                x = by_voice[voice][int(rng.integers(0, len(by_voice[voice])))]
                truth[genders[voice]] += len(x) / SR
                parts += [x, np.zeros(int(rng.uniform(0.2, 1.2) * SR), np.float32)]
            if rng.random() < 0.3:
                parts.append((0.003 * rng.standard_normal(int(rng.uniform(1, 15) * SR))).astype(np.float32))
            block = np.concatenate(parts)[:total - written]
            f.write(block)
            written += len(block)
    return {"female_s": round(truth["female"]), "male_s": round(truth["male"]), "duration_s": written / SR}


# --- one measurement per process ------------------------------------------------------------------------------
def child(kind: str, path: str, model: str | None, arenas: int) -> None:
    from voicegender.memory import limit_heap_arenas, map_large_blocks

    if arenas:
        limit_heap_arenas(arenas)
        map_large_blocks()
    from voicegender.audio.synth import synth_voice
    from voicegender.listen.predict import PredictOptions, load_model, predict_files, predict_waveform
    from voicegender.listen.segment import SegmentOptions, speaking_time, timeline_file

    loaded = OnnxStandIn() if model == STANDIN else load_model(model)
    predict_waveform(synth_voice(220.0, 10.0, SR, seed=0), SR, loaded)  # imports, encoder, VAD loaded
    base = _rss_mb()
    load_before = _load()
    t0 = time.perf_counter()
    if kind in KINDS[:2]:
        options = PredictOptions() if kind == "predict" else PredictOptions(speaking_time_above_s=float("inf"))
        (p,) = predict_files([path], loaded, options, show_progress=False)
        duration, answer = p.duration_s, p.as_dict()
    else:
        options = SegmentOptions(speakers=kind != "segment-no-speakers", overlaps=kind == "segment")
        timeline = timeline_file(path, loaded, options, show_progress=False)
        duration = timeline.duration_s
        answer = {"segments": len(timeline.segments), **speaking_time(timeline.segments).as_dict(),
                  "speakers": len(timeline.speakers), "speaker_embedding": timeline.embedder or None,
                  "overlaps": len(timeline.overlaps), "overlap_s": round(timeline.overlap_s, 1)}
    elapsed = time.perf_counter() - t0
    print(json.dumps({"kind": kind, "seconds": elapsed, "duration_s": duration, "base_mb": base,
                      "peak_mb": _peak_mb(), "load_before": load_before, "load_after": _load(),
                      "answer": answer}))


def measure(kind: str, path: Path, model: str | None, arenas: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(path), "--arenas", str(arenas)]
    cmd += ["--model", model] if model else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(label: str, r: dict) -> None:
    speed = f"{(r['duration_s'] or 0) / r['seconds']:7.1f}x" if r["duration_s"] else "      -"
    print(f"{label:<26} {r['kind']:<18} {r['seconds']:7.1f} s {speed} real time  peak {r['peak_mb']:6.0f} MB "
          f"(base {r['base_mb']:4.0f} MB, +{r['peak_mb'] - r['base_mb']:4.0f})  load {r['load_before']} -> "
          f"{r['load_after']}", flush=True)
    print(f"{'':<26} {json.dumps(r['answer'])}", flush=True)


# --- hostile inputs -------------------------------------------------------------------------------------------
def hostile_files(folder: Path) -> dict[str, Path]:
    from voicegender.audio.synth import synth_noise, synth_voice

    liar = folder / "claims_4GB_holds_1s.wav"
    sf.write(liar, synth_noise(1.0, SR, 0, 0.1), SR, subtype="PCM_16")
    data = bytearray(liar.read_bytes())
    struct.pack_into("<I", data, 4, 0xFFFFFFF0)
    struct.pack_into("<I", data, data.find(b"data") + 4, 0xF0000000)
    liar.write_bytes(bytes(data))
    silence = folder / "24h_digital_silence.flac"
    with sf.SoundFile(silence, "w", SR, 1, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros(600 * SR, np.int16)
        for _ in range(24 * 6):
            f.write(block)
    wide = folder / "8ch_384kHz_60s.wav"
    voice = synth_voice(220.0, 10.0, 384_000, seed=0)
    with sf.SoundFile(wide, "w", 384_000, 8, subtype="PCM_16") as f:
        for _ in range(6):
            f.write(np.stack([voice * (0.3 + 0.1 * c) for c in range(8)], axis=1))
    return {"4 GB header, 1 s of audio": liar, "24 h of digital silence": silence, "8 ch at 384 kHz, 60 s": wide}


# --- the cost of the speaking time on short clips ---------------------------------------------------------------
def cost(model: str | None, folder: Path, files_per_length: int = 16) -> None:
    from voicegender.listen.predict import PredictOptions, load_model, predict_files

    pool = sentence_pool()
    female = [x for x, g, _ in pool if g == "female"]
    male = [x for x, g, _ in pool if g == "male"]
    loaded = OnnxStandIn() if model == STANDIN else load_model(model)
    rng = np.random.default_rng(0)
    print(f"\nspeaking time cost: {files_per_length} files per length, predict_files, seconds per file")
    for seconds in (3, 6, 12, 30):
        for voices in ("one", "two"):
            paths = []
            for i in range(files_per_length):
                parts, n = [], 0
                while n < seconds * SR:
                    src = female if (voices == "one" or len(parts) % 4 == 0) else male
                    x = src[int(rng.integers(0, len(src)))]
                    parts += [x, np.zeros(SR // 3, np.float32)]
                    n += len(x) + SR // 3
                path = folder / f"cost_{seconds}_{voices}_{i}.wav"
                sf.write(path, np.concatenate(parts)[:seconds * SR], SR)
                paths.append(path)
            times = {}
            for name, above in (("off", float("inf")), ("on", PredictOptions.speaking_time_above_s)):
                options = PredictOptions(speaking_time_above_s=above)
                predict_files(paths[:2], loaded, options, show_progress=False)  # warm
                t0 = time.perf_counter()
                preds = predict_files(paths, loaded, options, show_progress=False)
                times[name] = (time.perf_counter() - t0) / len(paths)
            share = np.mean([p.female_s / p.speech_s for p in preds if p.speech_s])
            print(f"  {seconds:3d} s, {voices} voice(s): without {times['off'] * 1000:6.1f} ms, with "
                  f"{times['on'] * 1000:6.1f} ms ({times['on'] / times['off']:.2f}x); mean female share "
                  f"{share:.2f}  load {_load()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0], help="lengths of the generated recordings")
    ap.add_argument("--model", default=None, help=f"model file (default: the shipped model), or {STANDIN}: the "
                    "GE2E encoder through onnxruntime and a random linear head (no torch)")
    ap.add_argument("--hostile", action="store_true", help="also the 4 GB header, 24 h silence, 8 ch 384 kHz files")
    ap.add_argument("--cost", action="store_true", help="also the speaking time's cost on short clips")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="what to run on the long files")
    ap.add_argument("--skip-long", action="store_true", help="only --hostile / --cost")
    ap.add_argument("--keep", type=Path, default=None,
                    help="write the audio here and keep it; a recording already there is reused (default: a temp dir)")
    ap.add_argument("--arenas", type=int, default=HEAP_ARENAS,
                    help="glibc malloc arenas the measured process may use, as voicegender's command line sets "
                         f"(default {HEAP_ARENAS}); 0: glibc's default (8 per core)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.model, args.arenas)
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="voicegender-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        print(f"cpus {os.cpu_count()}, load {_load()}", flush=True)
        if not args.skip_long:
            for hours in args.hours:
                path = folder / f"conversation_{hours:g}h.flac"
                if args.keep is not None and path.exists():  # a kept recording: the same audio for an A/B
                    print(f"\n{hours:g} h: {path.stat().st_size / 1e6:.0f} MB FLAC kept from an earlier run",
                          flush=True)
                else:
                    t0 = time.perf_counter()
                    truth = write_conversation(path, hours)
                    print(f"\n{hours:g} h: {path.stat().st_size / 1e6:.0f} MB FLAC written in "
                          f"{time.perf_counter() - t0:.0f} s; script: {json.dumps(truth)}", flush=True)
                for kind in args.kinds:
                    report(f"{hours:g} h conversation", measure(kind, path, args.model, args.arenas))
        if args.hostile:
            print(flush=True)
            for label, path in hostile_files(folder).items():
                report(label, measure("predict", path, args.model, args.arenas))
        if args.cost:
            cost(args.model, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
