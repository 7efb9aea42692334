"""ina_smn (benchmarks/peers/ina_smn.py, the numpy port of ina's speech/music/noise CNN) against inaSpeechSegmenter
itself: the same posteriors and labels, and the speed of each.

For each file (the package's examples, 3 conversation mixes with music from .cache/conversation_mixes, 2 music
files of ../shared/data/background cropped to --seconds), the audio is decoded once to 16 kHz float32 and written to
a temporary float WAV, which both sides read unchanged. ina 0.8.0 runs in its own venv (benchmarks/peers/setup.sh)
in one subprocess, on one thread (TensorFlow intra/inter-op and BLAS), with its default Keras batch of 32: its
``_media2feats`` (SIDEKIT features), then its ``SpeechMusicNoise`` segmenter on the whole file as one ``energy``
stretch (no energy gate), whose ``viterbi_decoding`` call is watched to take its input (the log posteriors) and its
output (the label path). The port runs here, on one thread too.

Printed per file: max |delta| of the log mel spectrogram (finite cells; the -inf cells must match), max |delta
posterior|, the share of 20 ms frames whose Viterbi label differs; then the speed of each side in x real time
(posteriors = features + network; labels = posteriors + Viterbi). Acceptance: max |delta posterior| <= 1e-4 and
labels identical on >= 99.9 % of frames.

The port is not part of voicegender (as a music veto in ``segment`` it did not pay); its weights,
``$VOICEGENDER_INA_DIR/speech_music_noise.npz``, are made by ``bash benchmarks/peers/setup.sh`` (make_ina_smn.py).

Usage::

    python benchmarks/ina_smn_parity.py [--ina-python .cache/peers/ina/venv/bin/python] [--seconds 60]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy is imported
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from voicegender.audio.decode import load_audio  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))  # the port lives beside ina's runner
import ina_smn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INA_DIR = Path(os.environ.get("VOICEGENDER_INA_DIR") or ROOT / ".cache" / "peers" / "ina")
EXAMPLES = ROOT / "src" / "voicegender" / "examples"
MIXES = ROOT / ".cache" / "conversation_mixes"
BACKGROUND = ROOT.parent / "shared" / "data" / "background"
SR = ina_smn.SAMPLE_RATE

# Runs in ina's venv: argv = models folder, output .npz, wav files. Saves per file i: mspec{i}, post{i} (ina's
# posteriors as its Viterbi step receives them), labels{i} (its path), time{i} = (features s, network + Viterbi s,
# Viterbi s), all on one thread after a warm-up run.
INA_SCRIPT = r"""
import os, sys, time, contextlib, io, warnings
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import inaSpeechSegmenter.segmenter as S
models, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
S.get_remote = lambda name: os.path.join(models, name)
smn = S.SpeechMusicNoise(32)
seen = []
viterbi = S.viterbi_decoding
def watched(emission, transition, *args, **kwargs):
    t = time.perf_counter()
    path = viterbi(emission, transition, *args, **kwargs)
    seen.append((np.array(emission), np.asarray(path, np.int64), time.perf_counter() - t))
    return path
S.viterbi_decoding = watched
warnings.simplefilter("ignore")
with contextlib.redirect_stdout(io.StringIO()):  # keras' predict(verbose=2) progress lines
    from inaSpeechSegmenter.sidekit_mfcc import mfcc
    rng = np.random.default_rng(0)
    _, loge, _, mspec = mfcc((0.1 * rng.standard_normal(32000)).astype(np.float32), get_mspec=True)
    smn(mspec, [("energy", 0, (len(loge) + 1) // 2)], 0)  # warm-up: traces keras' predict function
    res = {}
    for i, p in enumerate(paths):
        seen.clear()
        t0 = time.perf_counter()
        mspec, loge, difflen = S._media2feats(p, None, None, None)
        t1 = time.perf_counter()
        smn(mspec, [("energy", 0, (len(loge) + 1) // 2)], difflen)
        t2 = time.perf_counter()
        (emission, path, t_viterbi), = seen
        res.update({f"mspec{i}": mspec, f"post{i}": np.exp(emission), f"labels{i}": path,
                    f"time{i}": np.array([t1 - t0, t2 - t1, t_viterbi])})
np.savez(out, **res)
"""


def pick(paths: list[Path], n: int) -> list[Path]:
    """``n`` of ``paths`` spread evenly over the sorted list (the same ones every run)."""
    paths = sorted(paths)
    return [paths[i * len(paths) // n] for i in range(n)] if len(paths) >= n else paths


def inputs(seconds: float, n_mixes: int, n_music: int) -> list[tuple[str, np.ndarray]]:
    files = [(p, None) for p in sorted(EXAMPLES.glob("*.ogg"))]
    files += [(p, None) for p in pick(list(MIXES.glob("*_music_*.wav")) + list(MIXES.glob("*_music_*.flac")),
                                      n_mixes)]
    if (BACKGROUND / "manifest.csv").is_file():
        with open(BACKGROUND / "manifest.csv", newline="") as f:
            tracks = [BACKGROUND / r["path"] for r in csv.DictReader(f) if r["kind"] == "music"]
        files += [(p, seconds) for p in pick(tracks, n_music)]
    out = []
    for path, crop in files:
        x = load_audio(path).samples
        out.append((path.name, x[:int(crop * SR)] if crop else x))
    return out


def run_ina(python: Path, models: Path, wavs: list[Path], out: Path) -> dict[str, np.ndarray]:
    proc = subprocess.run([str(python), "-c", INA_SCRIPT, str(models), str(out), *map(str, wavs)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ina failed:\n{proc.stderr[-3000:]}")
    with np.load(out) as z:
        return dict(z)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--ina-python", type=Path, default=INA_DIR / "venv" / "bin" / "python")
    ap.add_argument("--models", type=Path, default=INA_DIR / "models", help="ina's .hdf5 files (setup.sh)")
    ap.add_argument("--seconds", type=float, default=60.0, help="crop the background music files to this")
    ap.add_argument("--mixes", type=int, default=3, help="conversation mixes with music")
    ap.add_argument("--music", type=int, default=2, help="background music files")
    args = ap.parse_args(argv)
    if not args.ina_python.is_file():
        sys.exit(f"{args.ina_python}: missing; run benchmarks/peers/setup.sh")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    files = inputs(args.seconds, args.mixes, args.music)
    with tempfile.TemporaryDirectory() as tmp:
        wavs = []
        for i, (_, x) in enumerate(files):
            wavs.append(Path(tmp) / f"{i}.wav")
            sf.write(wavs[-1], x, SR, subtype="FLOAT")
        t = time.perf_counter()
        ina = run_ina(args.ina_python, args.models, wavs, Path(tmp) / "ina.npz")
        print(f"ina subprocess: {time.perf_counter() - t:.1f} s wall (TensorFlow import and model load included)")

    try:
        ina_smn.frame_posteriors(files[0][1][:SR])  # loads the network
    except ina_smn.ModelError as e:
        sys.exit(str(e))
    cost = -ina_smn.VITERBI_EXPONENT * np.log(10)
    print(f"{'file':42} {'audio s':>8} {'frames':>7} {'max|dmel|':>10} {'max|dpost|':>11} {'labels differ':>14} "
          f"{'port xRT':>9} {'ina xRT':>8}")
    total = {"audio": 0.0, "frames": 0, "differ": 0, "port_post": 0.0, "port_vit": 0.0, "ina_post": 0.0,
             "ina_vit": 0.0}
    worst_post = worst_mel = 0.0
    for i, (name, x) in enumerate(files):
        t0 = time.perf_counter()
        post = ina_smn.frame_posteriors(x)
        t1 = time.perf_counter()
        with np.errstate(divide="ignore"):
            labels = ina_smn._viterbi(np.log(post), cost)
        t2 = time.perf_counter()
        mel = ina_smn.log_mel_spectrogram(x)
        ina_mel, ina_post, ina_labels = ina[f"mspec{i}"], ina[f"post{i}"], ina[f"labels{i}"]
        t_feat, t_call, t_vit = ina[f"time{i}"]
        assert mel.shape == ina_mel.shape and post.shape == ina_post.shape, (name, mel.shape, ina_mel.shape)
        both = np.isfinite(mel) & np.isfinite(ina_mel)
        assert (np.isfinite(mel) == np.isfinite(ina_mel)).all(), f"{name}: -inf cells differ"
        d_mel = float(np.abs(mel[both] - ina_mel[both]).max()) if both.any() else 0.0
        d_post = float(np.abs(post - ina_post).max())
        differ = int((labels != ina_labels).sum())
        seconds = len(x) / SR
        port_s, ina_s = t2 - t0, t_feat + t_call
        print(f"{name[:42]:42} {seconds:8.1f} {len(post):7d} {d_mel:10.2g} {d_post:11.2g} "
              f"{100 * differ / len(post):13.3f}% {seconds / port_s:9.0f} {seconds / ina_s:8.0f}")
        worst_post, worst_mel = max(worst_post, d_post), max(worst_mel, d_mel)
        total["audio"] += seconds
        total["frames"] += len(post)
        total["differ"] += differ
        total["port_post"] += t1 - t0
        total["port_vit"] += t2 - t1
        total["ina_post"] += t_feat + t_call - t_vit
        total["ina_vit"] += t_vit
    a = total["audio"]
    same = 100 * (1 - total["differ"] / total["frames"])
    print(f"\n{len(files)} files, {a:.0f} s of audio, {total['frames']} frames of 20 ms")
    print(f"max |delta log mel| {worst_mel:.2g}; max |delta posterior| {worst_post:.2g} (<= 1e-4: "
          f"{'yes' if worst_post <= 1e-4 else 'NO'}); Viterbi labels identical on {same:.3f} % of frames "
          f"(>= 99.9 %: {'yes' if same >= 99.9 else 'NO'})")
    print("one thread, x real time   posteriors   labels (+ Viterbi)")
    for who, post_s, vit_s in (("ina_smn (numpy port)", total["port_post"], total["port_vit"]),
                               ("inaSpeechSegmenter (TF)", total["ina_post"], total["ina_vit"])):
        print(f"  {who:24}{a / post_s:10.0f}   {a / (post_s + vit_s):8.0f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps({"max_abs_posterior_diff": worst_post, "labels_identical_pct": round(same, 4),
                      "port_posteriors_xrt": round(a / total["port_post"], 1),
                      "ina_posteriors_xrt": round(a / total["ina_post"], 1)}))
    return 0 if worst_post <= 1e-4 and same >= 99.9 else 1


if __name__ == "__main__":
    sys.exit(main())
