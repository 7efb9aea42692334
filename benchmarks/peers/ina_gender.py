"""Female or male: inaSpeechSegmenter's gender CNN run with numpy, frame by frame (a benchmark-side peer).

Not part of voicegender: it gives ina's opinion beside ours in ``benchmarks/ina_second_opinion.py`` (issue 21,
optional item: does it help the worst held-out cell? It did not). Import it by adding this folder to ``sys.path``
(as for ``ina_smn.py``, whose features, patches, convolution, batch-norm folding and Viterbi step it reuses). It
needs only numpy.

What ina 0.8.0's ``Gender`` segmenter (segmenter.py: ``Gender(DnnSegmenter)``, nmel = 24, outlabels
('female', 'male'), viterbi_arg = 80, inlabel 'speech') computes, without tensorflow:

1. the same SIDEKIT log mel spectrogram as the speech/music/noise network (``ina_smn.log_mel_spectrogram``: 25 ms
   frames every 10 ms, 24 HTK-mel bands 100 Hz-8 kHz, natural log), short signals padded to 68 frames with the
   spectrogram's minimum (``ina_smn._pad_short``);
2. ``_get_patches(mspec, 68, 2)`` on **all 24 bands** (smn reads 21): a 68 x 24 patch every 2 frames, each scaled to
   mean 0 and (population) standard deviation 1; the first patch repeated 17 times in front, the last behind, one
   patch per 20 ms frame (``ceil(n_mel_frames / 2)``, ina's ``difflen`` trimming for short signals included);
3. the CNN (:data:`ARCHITECTURE`; batch normalisation folded into the convolution / dense before it):
   68x24x1 -> conv 3x3 (64) 66x22 -> conv 3x3 (64) 64x20 -> max-pool 1x2 64x10 -> conv 3x3 (128) 62x8 ->
   conv 3x3 (128) 60x6 -> max-pool 2x2 30x3 -> conv 3x3 (256) 28x1 -> max-pool 28x1 -> 256 -> 4 x (dense 512 +
   ReLU) -> dense 2 + softmax; ReLU after every convolution; dropout is the identity at inference;
4. a non-finite patch (digital silence, log 0) gets 0.5 / 0.5, as ina does (``r[finite == False] = 0.5``);
5. ina labels each speech segment by a Viterbi path through the frames' log posteriors where a change of class
   costs 10**-80 (:func:`frame_labels`).

The gender *evidence* of a stretch of speech (what ``benchmarks/ina_second_opinion.py`` stacks) is
:func:`evidence`: the mean over its 20 ms frames (ina's frames, edge repeats included) of log(p_male / p_female) =
logit_male - logit_female (taken before the softmax, so it never saturates), frames whose patch is not finite
skipped.

The weights are read from ``$VOICEGENDER_INA_DIR/male_female.npz`` (default: ``.cache/peers/ina/male_female.npz``
under the repository root, which git ignores; 6.0 MB, ina's MIT licence beside it as ``LICENSE.inaSpeechSegmenter``).
``bash benchmarks/peers/setup.sh`` makes it, through ``make_ina_gender.py`` (beside this file), from ina's Keras
file: every weight unchanged, the source's SHA-256 checked.

Parity with ina itself (run with the voicegender venv; ina 0.8.0 runs in its own venv, made by setup.sh, in one
subprocess on one thread; the feature cache of ``voicegender fit`` and the shared corpora are needed, for the clips)::

    .venv/bin/python benchmarks/peers/ina_gender.py parity [--ina-python .cache/peers/ina/venv/bin/python]

Three clips of the feature table (the stored speech voicegender's features saw): baved's 6th clip, clean copy;
speechocean762_train's longest telephone copy; cv_en_delta13's longest codec copy. Each is written to a float WAV,
which both sides read. Compared: our normalised patches with ina's own ``_get_patches``; our network's posteriors
with Keras' ``model.predict`` on the same patches; our 20 ms frame posteriors with those ina's ``Gender`` hands to
its Viterbi step (the clip as one speech segment); the labels of the two Viterbi paths. Acceptance (exit 0): max
|delta posterior| <= 1e-4, network and pipeline. Measured: within 3.4e-6 of both, the same labels on every frame
(about 20 s, ina's start-up included).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # parity: one thread, as ina's side
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy is imported
        os.environ.setdefault(_var, "1")

import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import ina_smn  # noqa: E402  (beside this file)
import numpy as np  # noqa: E402
from ina_smn import PATCH_FRAMES, PATCH_STEP, _conv, _fold, _pad_short, log_mel_spectrogram  # noqa: E402

__all__ = ["GENDER_LABELS", "evidence", "frame_labels", "frame_logits", "frame_posteriors", "patch_logits"]

GENDER_LABELS = ("female", "male")  # the network's outputs, in ina's order (Gender.outlabels)
N_MELS_USED = 24  # Gender.nmel: all bands
VITERBI_EXPONENT = 80  # Gender.viterbi_arg: a change of class costs 10**-80
MODEL_FILE = "male_female.npz"  # in $VOICEGENDER_INA_DIR, beside ina_smn's speech_music_noise.npz
MAKE_COMMAND = ("bash benchmarks/peers/setup.sh (or, with ina's venv and models there: "
                ".cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_gender.py)")
SOURCE_SHA256 = "2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f"  # ina's .hdf5 (0.5.1 sdist)
BATCH_PATCHES = 16  # conv2's im2col of 16 patches: 47 MB

# the layers GenderNetwork implements, in order: ina_smn's blocks with 3x3 kernels, 'valid' pools, dense 512
_DENSE_BLOCK = [(kind, {**settings, "units": 512} if kind == "Dense" else settings)
                for kind, settings in ina_smn._dense_block()]
ARCHITECTURE = (
    ("Reshape", {"target_shape": [PATCH_FRAMES, N_MELS_USED, 1]}),
    *ina_smn._conv_block(64, [3, 3]), *ina_smn._conv_block(64, [3, 3], [1, 2], "valid"),
    *ina_smn._conv_block(128, [3, 3]), *ina_smn._conv_block(128, [3, 3], [2, 2], "valid"),
    *ina_smn._conv_block(256, [3, 3], [28, 1], "valid"),
    ("Flatten", {}),
    *_DENSE_BLOCK * 4,
    ("Dense", {"units": 2, "activation": "softmax", "use_bias": True}),
)


class GenderNetwork:
    """ina's male/female CNN, batch normalisation folded in; ``logits(patches)`` -> (n, 2) pre-softmax.

    Raises :class:`ina_smn.ModelError` naming ``path`` when the file is missing or is not that network."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ina_smn.ModelError(f"{path}: ina's male/female network is missing; make it with {MAKE_COMMAND}")
        with np.load(path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        labels, layers, source = (json.loads(str(weights.pop(k))) for k in ("labels", "layers", "source"))
        wrong = [(layer.get("name"), kind) for layer, (kind, settings) in zip(layers, ARCHITECTURE, strict=False)
                 if layer.get("type") != kind or any(layer.get(k) != v for k, v in settings.items())]
        if tuple(labels) != GENDER_LABELS or source.get("source_sha256") != SOURCE_SHA256 or wrong \
                or len(layers) != len(ARCHITECTURE):
            raise ina_smn.ModelError(f"{path}: not inaSpeechSegmenter's male/female network (labels {labels}, source "
                                     f"{source.get('source_sha256')}, {len(layers)} layers, unexpected: {wrong}); "
                                     f"remake it with {MAKE_COMMAND}")
        folded = [_fold(weights, layer["name"], layers[i + 1]) for i, layer in enumerate(layers)
                  if layer["type"] in ("Conv2D", "Dense") and layer["activation"] != "softmax"]
        self.convs = [(w.reshape(-1, w.shape[-1]), b) for w, b in folded[:5]]  # (9 * cin, cout): taps, then cin
        last = layers[-1]["name"]
        self.dense = [*folded[5:], (weights[f"{last}.kernel"], weights[f"{last}.bias"])]

    def logits(self, patches: np.ndarray) -> np.ndarray:
        """(n, 68, 24) float32 normalised patches -> (n, 2) float32 logits (female, male), before the softmax."""
        (w1, b1), (w2, b2), (w3, b3), (w4, b4), (w5, b5) = self.convs
        n = len(patches)
        h = np.maximum(_conv(patches[..., None], w1) + b1, 0)  # (n, 66, 22, 64)
        h = _conv(h, w2)  # (n, 64, 20, 64); bias and ReLU commute with the max-pool: pool first
        h = np.maximum(h.reshape(n, 64, 10, 2, -1).max(axis=3) + b2, 0)  # (n, 64, 10, 64)
        h = np.maximum(_conv(h, w3) + b3, 0)  # (n, 62, 8, 128)
        h = _conv(h, w4)  # (n, 60, 6, 128)
        h = np.maximum(h.reshape(n, 30, 2, 3, 2, -1).max(axis=(2, 4)) + b4, 0)  # (n, 30, 3, 128)
        h = np.maximum(_conv(h, w5).max(axis=(1, 2)) + b5, 0)  # (n, 28, 1, 256) -> (n, 256)
        for weight, bias in self.dense[:-1]:
            h = np.maximum(h @ weight + bias, 0)
        return (h @ self.dense[-1][0] + self.dense[-1][1]).astype(np.float32)


def model_path() -> Path:
    """``$VOICEGENDER_INA_DIR/male_female.npz``, default under ``.cache/peers/ina`` (where ina_smn's network lies)."""
    return ina_smn._model_path().with_name(MODEL_FILE)


@functools.cache
def network() -> GenderNetwork:
    """The network of :func:`model_path`, loaded once per process."""
    return GenderNetwork(model_path())


def patches_of(mspec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ina's ``_get_patches(mspec, 68, 2)`` without the edge repeats: (n_patches, 68, 24) float32 normalised
    patches (zeros where not finite) and which are finite. ``mspec`` already padded (``ina_smn._pad_short``)."""
    windows = np.lib.stride_tricks.sliding_window_view(mspec[:, :N_MELS_USED], PATCH_FRAMES, axis=0)[::PATCH_STEP]
    flat = windows.transpose(0, 2, 1).reshape(len(windows), -1).astype(np.float64)  # (n, 68 * 24) row-major
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = flat.mean(axis=1, keepdims=True)
        data = (flat - mean) / flat.std(axis=1, keepdims=True)
    finite = np.isfinite(data).all(axis=1)
    data[~finite] = 0
    return data.reshape(len(windows), PATCH_FRAMES, N_MELS_USED).astype(np.float32), finite


def patch_logits(wave16k: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(n_patches, 2) logits and finite mask of the distinct patches, and the number of 20 ms frames."""
    mspec = log_mel_spectrogram(wave16k)
    n_rows = -(-len(mspec) // PATCH_STEP)
    if n_rows == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool), 0
    patches, finite = patches_of(_pad_short(mspec))
    net = network()
    out = np.zeros((len(patches), 2), np.float32)
    for start in range(0, len(patches), BATCH_PATCHES):
        stop = min(start + BATCH_PATCHES, len(patches))
        out[start:stop] = net.logits(patches[start:stop])
    return out, finite, n_rows


def frame_index(n_patches: int, n_rows: int) -> np.ndarray:
    """Which patch each 20 ms frame gets: 17 repeats of the first in front, the last one behind (ina)."""
    lead = PATCH_FRAMES // (2 * PATCH_STEP)
    return np.clip(np.arange(n_rows) - lead, 0, n_patches - 1)


def frame_logits(wave16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 20 ms frame: (n, 2) logits (female, male) and whether its patch is finite."""
    logits, finite, n_rows = patch_logits(wave16k)
    idx = frame_index(len(logits), n_rows)
    return logits[idx], finite[idx]


def softmax(logits: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """(n, 2) float64 probabilities of (n, 2) logits; 0.5 / 0.5 where ``finite`` is False (as ina)."""
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p[~finite] = ina_smn.UNKNOWN_POSTERIOR
    return p


def frame_posteriors(wave16k: np.ndarray) -> np.ndarray:
    """(ceil(n_mel / 2), 2) probabilities (female, male) per 20 ms frame; 0.5 where the patch is not finite."""
    return softmax(*frame_logits(wave16k))


def _smoothed(posteriors: np.ndarray) -> np.ndarray:
    """ina's Viterbi path (0 female, 1 male) through (n, 2) frame posteriors, as one speech segment."""
    with np.errstate(divide="ignore"):
        return ina_smn._viterbi(np.log(posteriors), -VITERBI_EXPONENT * np.log(10))


def frame_labels(wave16k: np.ndarray) -> np.ndarray:
    """ina's Viterbi-smoothed label per frame (0 female, 1 male) over the signal as one speech segment."""
    return _smoothed(frame_posteriors(wave16k))


EVIDENCE_FIELDS = ("log_odds_male", "frames", "patch_log_odds_male", "patches", "male_share")


def evidence(wave16k: np.ndarray) -> dict:
    """ina's gender evidence on a stretch of speech: ``log_odds_male`` = mean over its finite 20 ms frames of
    log(p_male / p_female), ``frames`` used; also over the distinct patches only (``patch_log_odds_male``,
    ``patches``) and the share of frames ina's Viterbi path labels male (``male_share``); NaN / 0 where there is
    nothing to average (:data:`EVIDENCE_FIELDS`)."""
    logits, finite, n_rows = patch_logits(wave16k)
    out = {"log_odds_male": np.nan, "frames": 0, "patch_log_odds_male": np.nan, "patches": 0, "male_share": np.nan}
    if n_rows == 0:
        return out
    idx = frame_index(len(logits), n_rows)
    d = (logits[:, 1] - logits[:, 0]).astype(np.float64)
    fr = finite[idx]
    if fr.any():
        out["log_odds_male"], out["frames"] = float(d[idx][fr].mean()), int(fr.sum())
    if finite.any():
        out["patch_log_odds_male"], out["patches"] = float(d[finite].mean()), int(finite.sum())
    out["male_share"] = float(_smoothed(softmax(logits[idx], fr)).mean())
    return out


# --- parity with ina itself -------------------------------------------------------------------------------------
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = ina_smn.ROOT.parent / "shared" / "data"  # the shared corpora, beside the repository
# Runs in ina's venv: argv = this folder, models folder, out npz, then pairs (wav, patches.npy). One thread, models
# through ina_segment.py's resolver (local files, SHA-256 checked). For each i: kpost{i} = Keras model.predict on
# our patches (no edge repeats); ina{i} = the exp of the log posteriors ina's Gender.__call__ hands to
# viterbi_decoding when the whole file is one 'speech' segment (its own SIDEKIT features, patches, repeats, 0.5 on
# non-finite patches); ipatch{i} = ina's own _get_patches on its own mspec.
INA_SCRIPT = r"""
import contextlib, io, sys, warnings
from pathlib import Path
here, models, out, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
sys.path.insert(0, here)
import ina_segment
ina_segment.set_thread_env(1)
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import inaSpeechSegmenter.segmenter as S
S.get_remote = ina_segment.make_model_resolver(models)
g = S.Gender(32)
seen = []
viterbi = S.viterbi_decoding
def watched(emission, transition, *a, **k):
    seen.append(np.array(emission))
    return viterbi(emission, transition, *a, **k)
S.viterbi_decoding = watched
warnings.simplefilter("ignore")
res = {}
with contextlib.redirect_stdout(io.StringIO()):
    for i in range(len(rest) // 2):
        wav, pat = rest[2 * i], rest[2 * i + 1]
        res[f"kpost{i}"] = g.nn.predict(np.load(pat)[..., None], batch_size=32, verbose=0)
        mspec, loge, difflen = S._media2feats(wav, None, None, None)
        patches, finite = S._get_patches(mspec, 68, 2)
        res[f"ipatch{i}"] = patches
        seen.clear()
        n = len(finite) - (int(difflen / 2) if difflen > 0 else 0)
        g(mspec, [("speech", 0, n)], difflen)
        res[f"ina{i}"] = np.exp(seen[0])
np.savez(out, **res)
"""


def load_table(data: Path = DEFAULT_DATA):
    """voicegender fit's feature table of its default corpora (its cache; the corpora under ``data``)."""
    from voicegender.corpora import load_corpus
    from voicegender.voice import fit
    from voicegender.voice.training_set import load_feature_table

    corpora = [load_corpus(data / name) for name in fit.DEFAULT_CORPORA]
    return load_feature_table(corpora, fit.default_cache_dir())


def parity(ina_python: Path, models: Path, data: Path = DEFAULT_DATA) -> int:
    import subprocess
    import tempfile

    import soundfile as sf

    table = load_table(data)

    def longest(c: int, kind: str) -> int:
        lo, hi = table.offsets[c], table.offsets[c + 1]
        return lo + int(np.argmax(table.speech_seconds(kind)[lo:hi]))

    # one clip of each of three held-out corpora, through the three copies
    rows = [("clean", table.offsets[1] + 5), ("tel", longest(2, "tel")), ("codec", longest(3, "codec"))]
    worst = {"net": 0.0, "pipeline": 0.0, "patch": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        args, mine = [], []
        for i, (kind, row) in enumerate(rows):
            x = table.speech(kind, row)
            wav, pat = Path(tmp) / f"{i}.wav", Path(tmp) / f"{i}.npy"
            sf.write(wav, x, 16_000, subtype="FLOAT")
            patches, finite = patches_of(_pad_short(log_mel_spectrogram(x)))
            np.save(pat, patches)
            logits, fin, n_rows = patch_logits(x)
            mine.append((kind, row, len(x), patches, softmax(logits, fin), frame_posteriors(x)))
            args += [str(wav), str(pat)]
        t = time.perf_counter()
        proc = subprocess.run([str(ina_python), "-c", INA_SCRIPT, str(HERE), str(models), f"{tmp}/ina.npz", *args],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"ina failed:\n{proc.stderr[-3000:]}")
        print(f"ina subprocess {time.perf_counter() - t:.1f} s")
        with np.load(f"{tmp}/ina.npz") as z:
            ina = dict(z)
    print(f"{'clip':48} {'kind':6} {'s':>5} {'patches':>7} {'frames':>6} {'max|dpatch|':>11} "
          f"{'net vs keras':>12} {'frames vs ina':>13} {'label diff':>10}")
    for i, (kind, row, n, patches, post, fpost) in enumerate(mine):
        kpost, ipost, ipatch = ina[f"kpost{i}"], ina[f"ina{i}"], ina[f"ipatch{i}"]
        lead = PATCH_FRAMES // (2 * PATCH_STEP)
        ip = ipatch[lead:lead + len(patches)]
        both = np.isfinite(ip).all(axis=(1, 2))
        d_patch = float(np.abs(ip[both] - patches[both]).max())
        fin = np.isfinite(patches).all(axis=(1, 2)) & both
        d_net = float(np.abs(kpost[fin] - post[fin]).max())
        assert fpost.shape == ipost.shape, (fpost.shape, ipost.shape)
        d_pipe = float(np.abs(fpost - ipost).max())
        lab_diff = int((_smoothed(fpost) != _smoothed(ipost)).sum())
        worst = {"net": max(worst["net"], d_net), "pipeline": max(worst["pipeline"], d_pipe),
                 "patch": max(worst["patch"], d_patch)}
        print(f"{Path(table.meta[row]['path']).name[:48]:48} {kind:6} {n / 16000:5.2f} {len(patches):7d} "
              f"{len(fpost):6d} {d_patch:11.2g} {d_net:12.2g} {d_pipe:13.2g} {lab_diff:10d}")
    print(json.dumps({"max_abs_posterior_net_vs_keras": worst["net"],
                      "max_abs_frame_posterior_vs_ina_pipeline": worst["pipeline"],
                      "max_abs_patch_diff": worst["patch"]}))
    return 0 if worst["net"] <= 1e-4 and worst["pipeline"] <= 1e-4 else 1


def main(argv: list[str] | None = None) -> int:
    import argparse

    ina_dir = model_path().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parity", help="compare with ina 0.8.0 itself on 3 clips of the feature table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ina-python", type=Path, default=ina_dir / "venv" / "bin" / "python",
                   help="the python of ina's venv (benchmarks/peers/setup.sh)")
    p.add_argument("--models", type=Path, default=ina_dir / "models", help="ina's Keras models (setup.sh)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared corpora")
    args = ap.parse_args(argv)
    return parity(args.ina_python, args.models, args.data)


if __name__ == "__main__":
    sys.exit(main())
