"""Speech, music or noise: inaSpeechSegmenter's "smn" CNN run with numpy, frame by frame (a benchmark-side peer).

Not part of voicegender: tried as a music veto in ``segment``, it did not pay (it calls much speech over music
"music"), so it lives here, beside ina's own runner, to keep that result reproducible. Import it by adding this
folder to ``sys.path`` (``benchmarks/ina_smn_parity.py`` does). It needs only numpy.

inaSpeechSegmenter (Doukhan et al., Ina, MIT licence) labels audio with a small CNN over 0.68 s patches of a
log mel spectrogram; its ``SpeechMusicNoise`` network (``keras_speech_music_noise_cnn.hdf5``) tells speech from
music and from noise. This module computes what ina 0.8.0 computes, without tensorflow:

1. the log mel spectrogram ina takes from SIDEKIT (re-implemented here from the maths, not copied): 25 ms frames
   every 10 ms, pre-emphasis 0.97 inside each frame, a symmetric Hann window, 512-point power spectrum, 24
   triangular filters equally spaced on the HTK mel scale between 100 Hz and 8 kHz, natural log (no floor:
   digital silence gives -inf, as in ina);
2. patches of 68 frames (0.68 s) of the 21 lowest bands every 2 frames, each scaled to mean 0 and standard
   deviation 1; the first patch is repeated 17 times in front and the last 16-17 times behind, so there is one
   patch per 20 ms frame (``ceil(n_frames / 2)`` of them), centred on it;
3. the CNN (4 convolutions, 4 dense layers, batch normalisation folded into the weights) on all patches, as
   im2col + matrix products in float32;
4. a patch that is not finite (silence: log 0) gets 0.5 for every class instead of a prediction, as ina does;
5. for :func:`frame_labels`, ina's Viterbi smoothing: every change of class costs 10**-80.

So posteriors and labels come every 20 ms (:data:`FRAME_S`), not every 10 ms: ina's segments are counted in those
frames too. ina first keeps only the frames loud enough (mean log energy + log 0.03, itself Viterbi-smoothed) and
runs the network and the Viterbi step separately on each loud stretch, labelling the rest ``noEnergy``. That
energy gate is *not* applied here: :func:`frame_labels` smooths the whole signal as one stretch, which is what
ina gives for a recording loud throughout. Equal to ina's own output (probabilities within 1e-4, the same labels
on >= 99.9 % of frames): ``benchmarks/ina_smn_parity.py``.

Signals shorter than ina's 68 frames are padded with the spectrogram's minimum, as ina does (it warns that
results need at least 0.72 s). Unlike ina, any length works: fewer than 400 samples (one 25 ms frame) give no rows,
one frame gives one row, and 67 frames give 34 rows (ina fails below 560 samples, and at exactly 67 frames, where
its trimming drops every patch: "Expected input data to be non-empty").

The weights are read from ``$VOICEGENDER_INA_DIR/speech_music_noise.npz`` (default:
``.cache/peers/ina/speech_music_noise.npz`` under the repository root, which git ignores; 3.2 MB, ina's MIT licence
beside it as ``LICENSE.inaSpeechSegmenter``). ``bash benchmarks/peers/setup.sh`` makes it, through
``make_ina_smn.py`` (beside this file), from ina's Keras file: every weight unchanged, the source's SHA-256 checked.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["FRAME_S", "PATCH_SAMPLES", "SPEECH_MUSIC_NOISE_LABELS", "ModelError", "frame_labels", "frame_posteriors",
           "log_mel_spectrogram", "sparse_hidden", "sparse_posteriors"]


class ModelError(RuntimeError):
    """The weights file is missing or is not ina's speech/music/noise network (a one-line message naming it)."""


SPEECH_MUSIC_NOISE_LABELS = ("speech", "music", "noise")  # the network's outputs, in ina's order (outlabels)
SAMPLE_RATE = 16_000  # Hz
FRAME_S = 0.02  # seconds per posterior / label: one patch every PATCH_STEP mel frames of 10 ms

# --- ina's features (sidekit_mfcc.mfcc with its defaults, as ina's _media2feats calls it) ---------------------
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
N_FFT = 512  # the next power of two above the window
PRE_EMPHASIS = 0.97  # x[n] - 0.97 x[n-1] inside each frame; the first sample uses itself as x[-1]
N_MELS = 24
MEL_LOW_HZ, MEL_HIGH_HZ = 100.0, 8000.0
N_MELS_USED = 21  # SpeechMusicNoise.nmel: the network reads the 21 lowest bands
PATCH_FRAMES = 68  # 0.68 s of mel frames per patch
PATCH_STEP = 2  # a patch every 2 frames
VITERBI_EXPONENT = 80  # SpeechMusicNoise.viterbi_arg: a change of class costs 10**-80
UNKNOWN_POSTERIOR = 0.5  # what ina puts in every class of a patch that is not finite

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is benchmarks/peers/ina_smn.py)
MODEL_FILE = "speech_music_noise.npz"  # in $VOICEGENDER_INA_DIR, as setup.sh's INA_DIR
MAKE_COMMAND = ("bash benchmarks/peers/setup.sh (or, with ina's venv and models there: "
                ".cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_smn.py)")
SOURCE_SHA256 = "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8"  # ina's .hdf5 (0.5.1 sdist)
HIDDEN_UNITS = 256  # the last hidden dense layer
BATCH_PATCHES = 64  # patches per forward pass: keeps the im2col copies (7 MB for conv2) near the caches
_FFT_BLOCK = 4096  # mel frames per FFT block: bounds the complex spectrum of long signals (17 MB)


def _conv_block(filters: int, kernel: list[int], pool: list[int] | None = None, padding: str = "same") -> list:
    conv = {"filters": filters, "kernel_size": kernel, "strides": [1, 1], "padding": "valid", "dilation_rate": [1, 1],
            "activation": "linear", "use_bias": True}
    block = [("Conv2D", conv), ("BatchNormalization", {"axis": -1, "center": True, "scale": True}),
             ("Activation", {"activation": "relu"})]
    return block + ([("MaxPooling2D", {"pool_size": pool, "strides": pool, "padding": padding})] if pool else [])


def _dense_block() -> list:
    return [("Dense", {"units": 256, "activation": "linear", "use_bias": True}),
            ("BatchNormalization", {"axis": -1, "center": True, "scale": True}),
            ("Activation", {"activation": "relu"}), ("Dropout", {})]


# the layers _Network implements, in order: (Keras type, settings); checked against the npz's layer list
_ARCHITECTURE = (
    ("Reshape", {"target_shape": [PATCH_FRAMES, N_MELS_USED, 1]}),
    *_conv_block(64, [7, 4], [4, 2]), *_conv_block(128, [3, 3]), *_conv_block(128, [3, 3], [2, 2]),
    *_conv_block(256, [3, 3], [4, 1], "valid"),
    ("Flatten", {}),
    *_dense_block(), *_dense_block(), *_dense_block(), *_dense_block(),
    ("Dense", {"units": 3, "activation": "softmax", "use_bias": True}),
)


# --- features ---------------------------------------------------------------------------------------------------
def _mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) float32: SIDEKIT's triangles (``trfbank`` with 0 linear and 24 log filters).

    Each triangle spans three consecutive edges of 26 points equally spaced on the HTK mel scale; its area is 1
    (peak 2 / width in Hz). A bin gets the rising side when ``floor(lo) < bin <= floor(centre)`` and the falling
    side when ``floor(centre) < bin < floor(hi)`` (edges in bins, floored): the bin at ``floor(hi)`` stays 0.
    """
    mel_low = 2595 * np.log10(1 + MEL_LOW_HZ / 700.0)
    mel_high = 2595 * np.log10(1 + MEL_HIGH_HZ / 700.0)
    mels = mel_low + np.arange(N_MELS + 2) * ((mel_high - mel_low) / (N_MELS + 1))
    edges = 700.0 * (10 ** (mels / 2595.0) - 1)  # Hz
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    height = 2.0 / (hi - lo)
    bins = np.arange(N_FFT // 2 + 1)
    hz = bins / (1.0 * N_FFT) * SAMPLE_RATE

    def floor_bin(f: np.ndarray) -> np.ndarray:
        return np.floor(f * N_FFT / SAMPLE_RATE)

    rising = (floor_bin(lo) < bins) & (bins <= floor_bin(centre))
    falling = (floor_bin(centre) < bins) & (bins < np.minimum(floor_bin(hi), N_FFT - 1))
    bank = np.where(rising, height / (centre - lo) * (hz - lo), 0.0)
    bank = np.where(falling, height / (hi - centre) * (hi - hz), bank)
    return np.ascontiguousarray(bank.T, dtype=np.float32)


_FILTERBANK = _mel_filterbank()
_WINDOW = np.hanning(WINDOW_SAMPLES)  # symmetric Hann, float64


def log_mel_spectrogram(wave16k: np.ndarray) -> np.ndarray:
    """ina's features: (n_frames, 24) float32 natural-log mel energies, one row per 10 ms.

    ``n_frames = (len - 400) // 160 + 1`` (0 below 400 samples). Values are -inf where a frame's band is silent.
    """
    x = np.asarray(wave16k, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples (a 1-D array), got shape {x.shape}: mix the channels down first")
    if len(x) < WINDOW_SAMPLES:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[::HOP_SAMPLES]
    n = len(frames)
    out = np.empty((n, N_MELS), np.float32)
    with np.errstate(divide="ignore"):
        for start in range(0, n, _FFT_BLOCK):
            block = frames[start:start + _FFT_BLOCK]
            emphasised = block.copy()
            emphasised[:, 1:] -= block[:, :-1] * PRE_EMPHASIS  # float32, as SIDEKIT
            emphasised[:, 0] -= block[:, 0] * PRE_EMPHASIS
            spectrum = np.fft.rfft(emphasised * _WINDOW, N_FFT, axis=-1)
            power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
            out[start:start + len(block)] = np.log(power @ _FILTERBANK)
    return out


def _pad_short(mspec: np.ndarray) -> np.ndarray:
    """Fewer than 68 frames are padded with the spectrogram's minimum (over all 24 bands), as ina's _media2feats."""
    if len(mspec) >= PATCH_FRAMES:
        return mspec
    fill = np.full((PATCH_FRAMES - len(mspec), N_MELS), np.min(mspec), mspec.dtype)
    return np.concatenate([mspec, fill])


# --- the network ------------------------------------------------------------------------------------------------
class _Network:
    """The smn CNN, batch normalisation folded into the convolution or dense layer before it.

    Layers (Keras, channels last), for one 68 x 21 patch: conv 7x4 -> 62x18x64, max-pool 4x2 ('same': one row of
    padding above and below) -> 16x9x64, conv 3x3 -> 14x7x128, conv 3x3 -> 12x5x128, max-pool 2x2 ('same': one
    column of padding on the right) -> 6x3x128, conv 3x3 -> 4x1x256, max-pool 4x1 -> 256, three dense 256 + ReLU,
    dense 3 + softmax; ReLU after every convolution.

    The first convolution and pool are computed once for a run of overlapping patches instead of once per patch.
    Patch ``p`` is ``(x - m_p) / s_p`` (its mean and standard deviation), and a convolution is linear, so its
    output is ``(conv(x) - m_p * sum(kernel)) / s_p + bias``: an increasing function of the shared ``conv(x)``
    (``s_p > 0``), through which the max-pool and ReLU pass unchanged. So ``conv(x)`` is max-pooled once (every
    4-frame window; 3 frames at the patch edges, where TensorFlow's padding holds no value) and each patch only
    rescales its 16 x 9 pooled cells: the same values for a small part of the work (that layer and its pool were
    40 % of the time per patch).
    """

    def __init__(self, first: tuple[np.ndarray, np.ndarray], convs: list[tuple[np.ndarray, np.ndarray]],
                 dense: list[tuple[np.ndarray, np.ndarray]]) -> None:
        kernel, self.first_bias = first  # (7, 4, 1, 64), (64,)
        self.first_kernel = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)  # (28, 64), taps row-major
        self.first_sum = self.first_kernel.sum(axis=0)
        self.convs = [(w.reshape(-1, w.shape[-1]), b) for w, b in convs]  # (3 * 3 * cin, cout): taps, then cin
        self.dense = dense  # (weight (in, out), bias (out,)); the last one is the softmax layer

    def first_block(self, frames: np.ndarray, step: int = PATCH_STEP) -> tuple[np.ndarray, np.ndarray]:
        """The patches starting every ``step`` frames of ``frames`` ((n, 21), n = a multiple of step + 68 - step):
        after the first convolution, ReLU and pool, (n_patches, 16, 9, 64) float32; and which patches are finite
        (the others are zeros)."""
        windows = np.lib.stride_tricks.sliding_window_view(frames, PATCH_FRAMES, axis=0)[::step]
        flat = windows.reshape(len(windows), -1).astype(np.float64)
        with np.errstate(invalid="ignore"):
            mean = flat.mean(axis=1)
            std = np.sqrt(np.mean((flat - mean[:, None]) ** 2, axis=1))
        finite = np.isfinite(mean) & np.isfinite(std) & (std > 0)  # else ina's normalised patch holds NaN / inf
        # the convolution runs on frames minus their overall mean, so that the float32 maps hold deviations of the
        # size of a patch's standard deviation, not whole log-energies (the subtraction below then loses nothing)
        ok = np.isfinite(frames)
        centre = float(frames[ok].mean()) if ok.any() else 0.0
        clean = np.where(ok, frames - centre, 0).astype(np.float64)
        taps = np.lib.stride_tricks.sliding_window_view(clean, (7, 4)).reshape(-1, 28)
        shared = (taps @ self.first_kernel).astype(np.float32)
        shared = shared.reshape(len(frames) - 6, 9, 2, -1).max(axis=2)  # columns paired
        max3 = np.maximum(np.maximum(shared[:-2], shared[1:-1]), shared[2:])  # max3[r]: rows r..r+2
        max4 = np.maximum(max3[:-1], shared[3:])  # rows r..r+3
        starts = step * np.arange(len(windows))
        # the 16 pool windows of a patch starting at row s: s..s+2, then s+4i-1..s+4i+2 (i = 1..14), s+59..s+61
        out = np.empty((len(windows), 16, *shared.shape[1:]), np.float32)
        out[:, 0] = max3[starts]
        out[:, 1:15] = max4[starts[:, None] + np.arange(3, 59, 4)]
        out[:, 15] = max3[starts + 59]
        scale = np.where(finite, 1 / np.where(finite, std, 1), 0)
        offset = self.first_bias - ((np.where(finite, mean, centre) - centre) * scale)[:, None] * self.first_sum
        out *= scale.astype(np.float32)[:, None, None, None]
        out += np.where(finite[:, None], offset, 0).astype(np.float32)[:, None, None, :]
        np.maximum(out, 0, out=out)
        return out, finite

    def __call__(self, frames: np.ndarray, step: int = PATCH_STEP) -> np.ndarray:
        """(n_patches, 3) float32 class probabilities of the patches starting every ``step`` frames of ``frames``;
        0.5 everywhere for the patches that are not finite."""
        h, finite = self.hidden(frames, step)
        logits = h @ self.dense[-1][0] + self.dense[-1][1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        probs[~finite] = UNKNOWN_POSTERIOR
        return probs

    def hidden(self, frames: np.ndarray, step: int = PATCH_STEP) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden layer (n_patches, 256) of the patches starting every ``step`` frames of ``frames`` (what
        the softmax layer reads), and which patches are finite."""
        h, finite = self.first_block(frames, step)  # (n, 16, 9, 64)
        (w2, b2), (w3, b3), (w4, b4) = self.convs
        h = np.maximum(_conv(h, w2) + b2, 0)  # (n, 14, 7, 128)
        # a bias and a ReLU commute with a max-pool: pool first, on 4x fewer values
        h = _conv(h, w3)  # (n, 12, 5, 128)
        h = np.concatenate([h[:, :, :4].reshape(len(h), 6, 2, 2, 2, -1).max(axis=(2, 4)),  # 'same' pool 2x2: the
                            h[:, :, 4:].reshape(len(h), 6, 2, 1, -1).max(axis=2)], axis=2)  # 5th column alone
        h = np.maximum(h + b3, 0)  # (n, 6, 3, 128)
        h = np.maximum(_conv(h, w4).max(axis=(1, 2)) + b4, 0)  # (n, 4, 1, 256) -> pool 4x1 -> (n, 256)
        for weight, bias in self.dense[:-1]:
            h = np.maximum(h @ weight + bias, 0)
        return h, finite


def _conv(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """3x3 'valid' convolution (no bias) of (n, h, w, cin): im2col (taps, then channels) + one matmul."""
    n, h, w, cin = x.shape
    cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (n, h - 2, w - 2, cin, 3, 3)
    out = cols.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 9 * cin) @ weight
    return out.reshape(n, h - 2, w - 2, -1)


def _fold(weights: dict[str, np.ndarray], layer: str, norm: dict) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of ``layer`` with the batch normalisation layer ``norm`` that follows it folded in."""
    w = {k: v.astype(np.float64) for k, v in weights.items() if k.split(".")[0] in (layer, norm["name"])}
    bn = f"{norm['name']}."
    scale = w[bn + "gamma"] / np.sqrt(w[bn + "moving_variance"] + norm["epsilon"])
    bias = (w[f"{layer}.bias"] - w[bn + "moving_mean"]) * scale + w[bn + "beta"]
    return (w[f"{layer}.kernel"] * scale).astype(np.float32), bias.astype(np.float32)


def _check_architecture(layers: list[dict]) -> None:
    if len(layers) != len(_ARCHITECTURE):
        raise ValueError(f"{len(layers)} layers, expected {len(_ARCHITECTURE)}")
    for layer, (kind, settings) in zip(layers, _ARCHITECTURE, strict=True):
        if layer.get("type") != kind or any(layer.get(k) != v for k, v in settings.items()):
            raise ValueError(f"layer {layer.get('name')} is {layer}, expected {kind} with {settings}")


def _load_network(path: str | Path) -> _Network:
    """The network in the archive ``path`` (as ``make_ina_smn.py`` writes it).

    Raises :class:`ModelError` naming the file when it is missing or is not that network.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ina's speech/music/noise network is missing; make it with {MAKE_COMMAND}")
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        labels = tuple(json.loads(str(weights.pop("labels"))))
        layers = json.loads(str(weights.pop("layers")))
        source = json.loads(str(weights.pop("source")))
        if labels != SPEECH_MUSIC_NOISE_LABELS:
            raise ValueError(f"labels {labels}, expected {SPEECH_MUSIC_NOISE_LABELS}")
        if source.get("source_sha256") != SOURCE_SHA256:
            raise ValueError(f"made from a file with SHA-256 {source.get('source_sha256')}, expected {SOURCE_SHA256}")
        _check_architecture(layers)
        for layer in layers:
            for name, shape in layer["weights"].items():
                found = weights[f"{layer['name']}.{name}"]
                if list(found.shape) != shape or found.dtype != np.float32:
                    raise ValueError(f"{layer['name']}.{name}: {found.dtype} {found.shape}, expected float32 {shape}")
        folded = [_fold(weights, layer["name"], layers[i + 1]) for i, layer in enumerate(layers)
                  if layer["type"] in ("Conv2D", "Dense") and layer["activation"] != "softmax"]
        last = layers[-1]["name"]
        network = _Network(folded[0], folded[1:4], [*folded[4:], (weights[f"{last}.kernel"], weights[f"{last}.bias"])])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ModelError(f"{path}: not inaSpeechSegmenter's speech/music/noise network ({e}); remake it with "
                         f"{MAKE_COMMAND}") from e
    return network


def _model_path() -> Path:
    """The network's path: ``$VOICEGENDER_INA_DIR/speech_music_noise.npz``, default under ``.cache/peers/ina``."""
    return Path(os.environ.get("VOICEGENDER_INA_DIR") or ROOT / ".cache" / "peers" / "ina") / MODEL_FILE


_lock = threading.Lock()
_network: _Network | None = None


def _cached_network() -> _Network:
    """The network of :func:`_model_path`, loaded once per process (thread-safe)."""
    global _network
    with _lock:
        if _network is None:
            _network = _load_network(_model_path())
        return _network


# --- public API -------------------------------------------------------------------------------------------------
def frame_posteriors(wave16k: np.ndarray) -> np.ndarray:
    """Speech / music / noise probabilities of every 20 ms frame, as ina computes them before its Viterbi step.

    Parameters
    ----------
    wave16k : mono float samples at 16 kHz, 1-D (any scale: each patch is normalised).

    Returns
    -------
    (ceil(n_mel_frames / 2), 3) float32, columns in :data:`SPEECH_MUSIC_NOISE_LABELS` order; row ``i`` covers
    ``i * FRAME_S`` to ``(i + 1) * FRAME_S`` seconds. Rows whose patch is not finite (it holds digital silence)
    are 0.5 in every column, as in ina. Empty (0, 3) below 400 samples.
    """
    mspec = log_mel_spectrogram(wave16k)
    n_rows = -(-len(mspec) // PATCH_STEP)
    if n_rows == 0:
        return np.zeros((0, len(SPEECH_MUSIC_NOISE_LABELS)), np.float32)
    per_patch = _patch_posteriors(mspec, PATCH_STEP)
    n_patches = len(per_patch)
    # ina repeats the first patch PATCH_FRAMES // (2 * PATCH_STEP) = 17 times in front and the last one behind,
    # up to one row per 20 ms frame: the patch of row i is centred on it
    lead = PATCH_FRAMES // (2 * PATCH_STEP)
    return per_patch[np.clip(np.arange(n_rows) - lead, 0, n_patches - 1)]


PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES  # 10,840 samples (0.6775 s) of audio per patch


def sparse_posteriors(wave16k: np.ndarray, hop_s: float = 0.5) -> np.ndarray:
    """Speech / music / noise probabilities of patches starting every ``hop_s`` seconds (a multiple of 10 ms):
    the network's own verdict on each 0.68 s of audio, without ina's dense grid of a patch every 20 ms — for
    callers that only ask about stretches of a second or more, ``hop_s / 0.02`` times less work.

    Row ``k`` is the patch of samples ``k * hop .. k * hop + PATCH_SAMPLES``; a recording shorter than one patch
    gives one row (ina's padding, :func:`frame_posteriors`), an empty one (under 400 samples) none.
    """
    step = int(round(hop_s / (HOP_SAMPLES / SAMPLE_RATE)))
    if step < 1:
        raise ValueError(f"hop_s {hop_s}: at least {HOP_SAMPLES / SAMPLE_RATE} s")
    mspec = log_mel_spectrogram(wave16k)
    if len(mspec) == 0:
        return np.zeros((0, len(SPEECH_MUSIC_NOISE_LABELS)), np.float32)
    return _patch_posteriors(mspec, step)


def sparse_hidden(wave16k: np.ndarray, hop_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The network's last hidden layer for patches starting every ``hop_s`` seconds, as :func:`sparse_posteriors`
    lays them out: (n_patches, 256) float32 (what ina's softmax layer reads: a learned description of 0.68 s of
    audio, for fitting another layer on) and (n_patches,) bool, which patches are finite (the others hold
    digital silence and no description)."""
    step = int(round(hop_s / (HOP_SAMPLES / SAMPLE_RATE)))
    if step < 1:
        raise ValueError(f"hop_s {hop_s}: at least {HOP_SAMPLES / SAMPLE_RATE} s")
    mspec = log_mel_spectrogram(wave16k)
    if len(mspec) == 0:
        return np.zeros((0, HIDDEN_UNITS), np.float32), np.zeros(0, bool)
    bands = _pad_short(mspec)[:, :N_MELS_USED]
    n_patches = (len(bands) - PATCH_FRAMES) // step + 1
    network = _cached_network()
    hidden, finite = np.empty((n_patches, HIDDEN_UNITS), np.float32), np.empty(n_patches, bool)
    for start in range(0, n_patches, BATCH_PATCHES):
        stop = min(start + BATCH_PATCHES, n_patches)
        hidden[start:stop], finite[start:stop] = network.hidden(bands[step * start:step * (stop - 1) + PATCH_FRAMES],
                                                                step)
    return hidden, finite


def _patch_posteriors(mspec: np.ndarray, step: int) -> np.ndarray:
    """(n_patches, 3) class probabilities of the patches starting every ``step`` frames of a (non-empty) log mel
    spectrogram (padded first when shorter than a patch, as ina does), in batches of :data:`BATCH_PATCHES`."""
    bands = _pad_short(mspec)[:, :N_MELS_USED]
    n_patches = (len(bands) - PATCH_FRAMES) // step + 1
    network = _cached_network()
    out = np.empty((n_patches, len(SPEECH_MUSIC_NOISE_LABELS)), np.float32)
    for start in range(0, n_patches, BATCH_PATCHES):
        stop = min(start + BATCH_PATCHES, n_patches)
        out[start:stop] = network(bands[step * start:step * (stop - 1) + PATCH_FRAMES], step)
    return out


def _viterbi(log_probs: np.ndarray, change_log_cost: float) -> np.ndarray:
    """Most likely class path through (n, k) log-probabilities when every change of class adds
    ``change_log_cost`` (< 0) and staying adds 0; equal starting odds. Ties go to the lowest class, as in
    pyannote's viterbi_decoding that ina uses. Returns (n,) int64."""
    n, k = log_probs.shape
    if n == 0:
        return np.zeros(0, np.int64)
    emission = log_probs.astype(np.float64)
    back = np.empty((n, k), np.int64)
    score = emission[0] + np.log(np.ones(k) / k)
    stay = np.eye(k, dtype=bool)
    for t in range(1, n):
        # cand[i, j]: best path ending in i at t - 1, then a step i -> j
        cand = np.where(stay, score[:, None], score[:, None] + change_log_cost)
        back[t] = np.argmax(cand, axis=0)
        score = emission[t] + cand[back[t], np.arange(k)]
    path = np.empty(n, np.int64)
    path[-1] = np.argmax(score)
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def frame_labels(wave16k: np.ndarray) -> np.ndarray:
    """ina's smoothed class of every 20 ms frame: (n,) int64 indices into :data:`SPEECH_MUSIC_NOISE_LABELS`.

    The Viterbi path through :func:`frame_posteriors` with ina's smn setting (a change of class costs 10**-80,
    equal starting odds), over the whole signal as one stretch. ina's energy gate is *not* applied: ina would
    label quiet stretches ``noEnergy`` and smooth each loud stretch on its own. Frames of digital silence carry
    no evidence (0.5 for every class): they take their neighbours' class, and an all-silent signal gets class 0.
    """
    with np.errstate(divide="ignore"):
        log_probs = np.log(frame_posteriors(wave16k))
    return _viterbi(log_probs, -VITERBI_EXPONENT * np.log(10))
