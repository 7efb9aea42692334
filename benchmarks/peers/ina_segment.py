#!/usr/bin/env python
"""Run inaSpeechSegmenter 0.8.0 (vad_engine='smn', detect_gender=True) on audio files; one JSON line per file.

The peer of benchmarks/conversations.py (which calls it once per run). Run it with the python of the venv that
setup.sh (beside this file) builds in $VOICEGENDER_INA_DIR (default .cache/peers/ina under the repository root):

    $INA/venv/bin/python benchmarks/peers/ina_segment.py --out results.jsonl a.wav b.wav ...
    $INA/venv/bin/python benchmarks/peers/ina_segment.py --out results.jsonl --list files.txt   # one path a line
    $INA/venv/bin/python benchmarks/peers/ina_segment.py --out - --threads 1 a.wav              # JSON lines on stdout

Each output line: {"path": ..., "segments": [[label, start_s, end_s], ...], "seconds": wall-clock processing
time of that file (read + features + networks + Viterbi), "duration_s": audio length, "cpu_seconds": CPU time
of the process (all threads) for that file}. Labels: female, male
(speech, split by gender), music, noise, noEnergy. A file that fails gives {"path", "segments": null, "error"}
and the exit status is 1 at the end. A summary (versions, threads, start-up times, totals) goes to stderr as one
JSON line starting with "ina_segment:".

The three Keras models are loaded once, from --models (default: $VOICEGENDER_INA_DIR/models, laid out by setup.sh),
each checked against its SHA-256; nothing is ever downloaded (ina's own get_remote would fetch them from GitHub).
No ffmpeg is needed: audio is read with soundfile. ina reads 16 kHz mono with soundfile itself; other rates or
channel counts are converted here (channel mean, scipy.signal.resample_poly), which differs slightly from the
ffmpeg conversion ina does when ffmpeg is given.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# where setup.sh puts the venv and the models: $VOICEGENDER_INA_DIR, else .cache/peers/ina under the repository root
INA_DIR = Path(os.environ.get("VOICEGENDER_INA_DIR") or HERE.parents[1] / ".cache" / "peers" / "ina")
SR = 16_000
MODEL_SHA256 = {  # the files in inaSpeechSegmenter 0.5.1's sdist (PyPI), MIT licence
    "keras_speech_music_noise_cnn.hdf5": "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8",
    "keras_male_female_cnn.hdf5": "2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f",
    "keras_speech_music_cnn.hdf5": "14379ba71352d8981bc24a15c069c84cf6f78ff2ffe7377d43b32465ebd06e01",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="audio files (WAV/FLAC/Ogg..., best 16 kHz mono)")
    ap.add_argument("--list", type=Path, action="append", default=[], help="text file: one audio path a line")
    ap.add_argument("--out", required=True, help="JSON-lines output file ('-' = stdout)")
    ap.add_argument("--threads", type=int, default=0,
                    help="TensorFlow intra- and inter-op threads (and BLAS/OpenMP threads); 0 = TF default (all cores)")
    ap.add_argument("--models", type=Path, default=INA_DIR / "models",
                    help="folder with the three .hdf5 models (setup.sh puts them there)")
    ap.add_argument("--batch-size", type=int, default=32, help="Keras predict batch size (ina's default 32)")
    ap.add_argument("--vad-engine", choices=["smn", "sm"], default="smn")
    ap.add_argument("--no-gender", action="store_true", help="label speech 'speech' instead of female/male")
    ap.add_argument("--energy-ratio", type=float, default=0.03, help="ina's energy threshold (default 0.03)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the 3 s warm-up run (then the first file also pays TF's one-off graph tracing)")
    a = ap.parse_args(argv)
    paths = list(a.files)
    for lst in a.list:
        paths += [Path(line.strip()) for line in lst.read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    if not paths:
        ap.error("no input files (give paths and/or --list)")
    a.paths = paths
    return a


def set_thread_env(n: int) -> None:
    """Must run before numpy / TensorFlow are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's info lines (oneDNN, CPU features)
    if n > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_model_resolver(models_dir: Path):
    def get_local(model_fname: str) -> str:
        p = models_dir / model_fname
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing: run benchmarks/peers/setup.sh (it takes the models from "
                                    f"the inaSpeechSegmenter 0.5.1 sdist) or pass --models DIR")
        want = MODEL_SHA256.get(model_fname)
        if want is not None and sha256(p) != want:
            raise ValueError(f"{p}: SHA-256 differs from the 0.5.1 sdist file ({want})")
        return str(p)
    return get_local


def make_loader(np, sf):
    """Replacement for ina's io.media2sig16kmono: soundfile, any rate / channel count, no ffmpeg."""
    def load(medianame, start_sec=None, stop_sec=None, ffmpeg=None, dtype="float64"):
        if start_sec is not None or stop_sec is not None:
            raise NotImplementedError("start_sec/stop_sec are not supported here")
        sig, sr = sf.read(str(medianame), dtype=dtype, always_2d=True)
        sig = sig[:, 0] if sig.shape[1] == 1 else sig.mean(axis=1)
        if sr != SR:
            from math import gcd

            from scipy.signal import resample_poly
            g = gcd(int(sr), SR)
            sig = resample_poly(sig, SR // g, int(sr) // g).astype(dtype)
        return np.ascontiguousarray(sig)
    return load


def main(argv=None) -> int:
    a = parse_args(argv)
    set_thread_env(a.threads)
    t0 = time.perf_counter()
    import numpy as np
    import soundfile as sf
    import tensorflow as tf
    if a.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    import inaSpeechSegmenter
    import inaSpeechSegmenter.segmenter as ina_seg
    t_import = time.perf_counter() - t0

    # Models from local files only (ina 0.8.0 would download them from GitHub at run time); audio via soundfile.
    ina_seg.get_remote = make_model_resolver(a.models.resolve())
    ina_seg.media2sig16kmono = make_loader(np, sf)

    out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    log = sys.stderr
    with contextlib.redirect_stdout(log):  # keras' predict(verbose=2) prints progress lines
        t1 = time.perf_counter()
        seg = ina_seg.Segmenter(vad_engine=a.vad_engine, detect_gender=not a.no_gender, ffmpeg=None,
                                batch_size=a.batch_size, energy_ratio=a.energy_ratio)
        t_load = time.perf_counter() - t1
        t_warm = 0.0
        if not a.no_warmup:  # 3 s of a noisy tone: traces the predict functions of both networks
            t2 = time.perf_counter()
            rng = np.random.default_rng(0)
            tt = np.arange(3 * SR) / SR
            sig = (0.3 * np.sin(2 * np.pi * 150 * tt) * (1 + np.sin(2 * np.pi * 3 * tt))
                   + 0.01 * rng.standard_normal(len(tt))).astype(np.float32)
            import warnings

            from inaSpeechSegmenter.sidekit_mfcc import mfcc
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, loge, _, mspec = mfcc(sig, get_mspec=True)
            seg.segment_feats(mspec, loge, 0, 0)
            t_warm = time.perf_counter() - t2

        n_err, total_audio, total_proc, total_cpu = 0, 0.0, 0.0, 0.0
        for p in a.paths:
            rec = {"path": str(p)}
            try:
                dur = sf.info(str(p)).duration
                t3, c3 = time.perf_counter(), time.process_time()
                lseg = seg(str(p))
                dt, dc = time.perf_counter() - t3, time.process_time() - c3
                rec.update(segments=[[lab, round(s, 3), round(e, 3)] for lab, s, e in lseg],
                           seconds=round(dt, 4), duration_s=round(dur, 4), cpu_seconds=round(dc, 4))
                total_audio += dur
                total_proc += dt
                total_cpu += dc
            except Exception as e:  # keep going: one bad file must not lose the others
                n_err += 1
                rec.update(segments=None, error=f"{type(e).__name__}: {e}")
            out.write(json.dumps(rec) + "\n")
            out.flush()
    if out is not sys.stdout:
        out.close()

    summary = {
        "ina_version": inaSpeechSegmenter.__version__, "tensorflow": tf.__version__, "numpy": np.__version__,
        "threads": a.threads or "default", "batch_size": a.batch_size, "vad_engine": a.vad_engine,
        "import_s": round(t_import, 3), "model_load_s": round(t_load, 3), "warmup_s": round(t_warm, 3),
        "files": len(a.paths), "errors": n_err, "audio_s": round(total_audio, 3),
        "processing_s": round(total_proc, 3), "cpu_s": round(total_cpu, 3),
        "x_real_time": round(total_audio / total_proc, 2) if total_proc > 0 else None,
    }
    print("ina_segment: " + json.dumps(summary), file=log)
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
