"""GE2E speaker embeddings (256-d) from resemblyzer's pretrained voice encoder, as a feature kind.

The encoder is a 3-layer LSTM over 40-band mel frames, trained with the GE2E loss on thousands of speakers; its
weights (``pretrained.pt``, 17 MB, Apache-2.0) ship inside the ``resemblyzer`` wheel. voicegender ships the same
network as ONNX (:mod:`voicegender.voice.encoder_onnx`), so predicting needs neither torch nor resemblyzer. The
torch network below loads ``pretrained.pt`` directly (when the research extras are installed) instead of importing
``resemblyzer`` itself: its package import pulls in ``webrtcvad`` (and through it ``pkg_resources``) for a VAD we
do not use.

Choices, deliberately different from ``resemblyzer.preprocess_wav``:

- **No webrtcvad trimming.** Speech detection belongs to the caller (``voicegender.speech.vad`` before predict); the
  encoder sees what it is given, so training and prediction see the same thing.
- **DC removal + volume normalisation** to -30 dBFS RMS (resemblyzer's target), up *and* down, so the embedding
  does not depend on recording gain (AudioMNIST-AZ carries a DC offset of -0.085 full scale).
- **Short clips are tiled, not zero-padded.** The encoder reads 1.6 s windows and keeps the LSTM's *last* hidden
  state; resemblyzer pads a 0.5 s clip with 1.1 s of zeros, so the state it keeps is that of silence. Repeating
  the clip until it fills a window keeps every frame speech.

Two back ends run the network, chosen by ``backend=`` / ``$VOICEGENDER_ENCODER`` / :func:`use_backend`:

- ``"onnx"``: onnxruntime in float32 over the ONNX file shipped in the package (:mod:`voicegender.voice.encoder_onnx`)
  — no torch in the process.
- ``"torch"``: the network below in torch, in bfloat16 autocast where the CPU has native bf16 (``"torch-fp32"``:
  never); needs the research extras (torch, resemblyzer's weights). Used for gradients (``explain``), the export
  of the shipped file (``scripts/make_onnx_assets.py``), and as the fallback.
- ``"auto"`` (default): ONNX, torch only when the shipped file cannot be loaded (after a warning).

This module imports neither torch nor librosa at import time (together ~3 s of a cold start): torch only inside
the torch functions, and the mel filterbank is computed here in numpy (equal to librosa's, tested).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache import sha256_file
from ..errors import ModelError, VoiceGenderError
from ..extras import MissingExtraError, require
from . import encoder_onnx

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz, the encoder's input rate
EMBEDDING_DIM = 256  # size of one embedding
MEL_BANDS = 40  # mel channels the encoder reads
MEL_WINDOW = 400  # samples: 25 ms at 16 kHz
MEL_HOP = 160  # samples: 10 ms at 16 kHz
PARTIAL_FRAMES = 160  # frames per partial utterance: 1.6 s
PARTIAL_SAMPLES = (PARTIAL_FRAMES - 1) * MEL_HOP  # 25,440 samples: exactly 160 centred mel frames (1 + n // hop)
TAIL_MIN_FRAMES = PARTIAL_FRAMES // 4  # a last window is added only to cover at least this many frames (0.4 s)
HIDDEN_SKIP_FRAMES = 40  # frames of each window left out of the hidden mean: the LSTM's state is still settling
PARTIAL_STEP_FRAMES = 77  # frames between partial windows: resemblyzer's rate 1.3/s -> round(16000/1.3/160)
TARGET_DBFS = -30.0  # RMS level every clip is normalised to (resemblyzer's audio_norm_target_dBFS)
MIN_SAMPLES = 160  # shortest input accepted (10 ms); callers should give >= 0.5 s of speech
BACKENDS = ("auto", "onnx", "torch", "torch-fp32")  # see the module docstring

_lock = threading.Lock()
_encoder: Any = None  # the torch GE2EEncoder, loaded once
_backend_override: str | None = None  # set by use_backend()
_onnx_failed: list[str] = []  # why the shipped ONNX encoder cannot run (then "auto" uses torch without asking again)


@functools.cache
def use_bf16() -> bool:
    """True where the torch back end runs its LSTM in bfloat16 (imports torch on first call).

    The LSTM in bfloat16 where the CPU supports it natively (AVX512-BF16 / AMX): 4.5x faster per 1.6 s window
    (5.4 -> 1.2 ms on one thread here); embeddings keep cosine >= 0.996 with float32, and on 300 held-out adult
    clips the shipped head's p_female moved by at most 0.06 with no label flipped (accuracy 96.0 % both ways).
    ``VOICEGENDER_FP32=1`` turns it off.
    """
    if os.environ.get("VOICEGENDER_FP32", "") == "1":
        return False
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _encoder_class() -> type:
    import torch
    from torch import nn

    class GE2EEncoder(nn.Module):
        """resemblyzer's VoiceEncoder network (same parameter names, so its ``pretrained.pt`` loads strictly)."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(MEL_BANDS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, EMBEDDING_DIM)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            """(batch, frames, 40) mel power frames -> (batch, 256) L2-normalised, non-negative embeddings."""
            return self.forward_with_hidden(mels)[0]

        def forward_with_hidden(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(embeddings, hidden means): also the top LSTM layer's output averaged over the frames from
            :data:`HIDDEN_SKIP_FRAMES` on — what the short-speech head reads (see :func:`ge2e_features`)."""
            out, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return (raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12),
                    out[:, HIDDEN_SKIP_FRAMES:].mean(dim=1))

    GE2EEncoder.__module__ = __name__
    return GE2EEncoder


def __getattr__(name: str) -> Any:
    if name == "GE2EEncoder":  # the torch class, built on first use so importing this module needs no torch
        return _encoder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weights_path() -> Path:
    """Where resemblyzer's ``pretrained.pt`` lies (found without importing resemblyzer; research extras)."""
    require("research", "the torch GE2E encoder", ("torch", "resemblyzer"))
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the torch GE2E encoder", "research", ("resemblyzer",))
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelError(f"{path}: resemblyzer is installed but its pretrained.pt is missing; reinstall it")
    return path


def _read_encoder(path: Path) -> Any:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
    except Exception as e:  # unreadable or not the expected dict
        raise ModelError(f"{path}: cannot read resemblyzer's encoder weights ({e})") from e
    encoder = _encoder_class()()
    # resemblyzer's file also holds its training-time similarity scale/bias; we need only the network
    encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    return encoder.eval()


def load_encoder() -> Any:
    """The torch encoder (``GE2EEncoder``) on CPU in eval mode, loaded once per process (thread-safe).

    Warns when resemblyzer's weights are not the ones the shipped ONNX encoder holds (a future resemblyzer release):
    then explanations and the torch fallback would not describe the network that predicts.
    """
    global _encoder
    with _lock:
        if _encoder is None:
            path = weights_path()
            if sha256_file(path) != encoder_onnx.SOURCE["source_sha256"]:  # 17 MB: ~20 ms, next to torch's ~2 s
                warnings.warn(f"{path}: not the weights of the shipped GE2E encoder (resemblyzer 0.1.4's); the "
                              "torch encoder answers differently from the one predict runs", RuntimeWarning,
                              stacklevel=2)
            _encoder = _read_encoder(path)
        return _encoder


# ----------------------------------------------------------------------------------------------------
# ONNX export (torch + onnx: scripts/make_onnx_assets.py) and the shipped ONNX encoder (neither)
# ----------------------------------------------------------------------------------------------------


def export_encoder_onnx(weights: Path, metadata: dict[str, Any] | None = None) -> bytes:
    """The encoder in ``weights`` as ONNX bytes: input ``mels`` (batch, 160, 40) → ``embeddings`` (batch, 256) and
    ``hidden_mean`` (batch, 256) (:meth:`GE2EEncoder.forward_with_hidden`).

    Uses torch's TorchScript exporter (``dynamo=False``; the dynamo one would also need ``onnxscript``). In torch
    2.13 that exporter needs the ``onnx`` package too — it parses its own output to merge custom functions —
    so both must be installed; only running the file needs neither. ``metadata`` is stored in the model's
    ``metadata_props`` (provenance, licence: :func:`encoder_onnx.provenance`). Before returning, onnxruntime's
    output on a batch of 3 random windows is checked against torch's (cosine ≥ 0.9999), so a faulty export is
    never written.
    """
    require("research", "exporting the GE2E encoder to ONNX", ("torch", "onnx"))
    import onnx
    import torch

    encoder = _read_encoder(weights)

    class WithHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.encoder.forward_with_hidden(mels)

    buffer = io.BytesIO()
    outputs = [encoder_onnx.OUTPUT_NAME, encoder_onnx.HIDDEN_NAME]
    names = {"input_names": [encoder_onnx.INPUT_NAME], "output_names": outputs}
    batch_axis = {encoder_onnx.INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated; the LSTM batch-size note does not apply (no h0/c0 inputs, and
        # the dynamic batch is checked below)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(WithHidden().eval(), (torch.zeros(1, PARTIAL_FRAMES, MEL_BANDS),), buffer, **names,
                              dynamic_axes=batch_axis, opset_version=encoder_onnx.ONNX_OPSET, dynamo=False)
        except Exception as e:  # exporter errors have many types (OnnxExporterError, RuntimeError, ...)
            raise ModelError(f"torch {torch.__version__} cannot export the GE2E encoder to ONNX ({e})") from e
    model = onnx.load_model_from_string(buffer.getvalue())
    model.doc_string = "GE2E speaker encoder (resemblyzer weights), exported by voicegender"
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    onnx.helper.set_model_props(model, props)
    data = model.SerializeToString()

    import onnxruntime as ort

    probe = np.random.default_rng(0).gamma(0.5, 1.0, (3, PARTIAL_FRAMES, MEL_BANDS)).astype(np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got, got_hidden = session.run(None, {encoder_onnx.INPUT_NAME: probe})
    with torch.no_grad():
        want, want_hidden = (t.numpy() for t in encoder.forward_with_hidden(torch.from_numpy(probe)))
    if (got.shape != want.shape or float(np.min(np.sum(got * want, axis=1))) < 0.9999
            or got_hidden.shape != want_hidden.shape or float(np.max(np.abs(got_hidden - want_hidden))) > 1e-4):
        raise ModelError(f"the ONNX export of {weights} does not reproduce torch's embeddings; not written")
    return data


def onnx_encoder(threads: int = encoder_onnx.DEFAULT_THREADS) -> encoder_onnx.OnnxEncoder:
    """The shipped encoder as an onnxruntime session (no torch), made once per process and thread count.

    Raises
    ------
    ModelError
        onnxruntime is missing, or the shipped file is missing or damaged (reinstall voicegender).
    """
    if not encoder_onnx.onnxruntime_available():
        raise ModelError("the GE2E encoder needs the 'onnxruntime' package (a dependency: reinstall voicegender)")
    return encoder_onnx.load_session(encoder_onnx.model_path(), threads)


def _auto_onnx(threads: int) -> encoder_onnx.OnnxEncoder | None:
    """The ONNX encoder; None (after one warning per process) when it cannot be loaded but the torch encoder can
    stand in. Without the research extras the ONNX error itself is raised."""
    if _onnx_failed:
        return None
    try:
        return onnx_encoder(threads)
    except ModelError as e:
        try:
            weights_path()  # the torch encoder can stand in only with torch and resemblyzer's weights
        except VoiceGenderError:
            raise e from None
        _onnx_failed.append(str(e))
        warnings.warn(f"GE2E encoder falls back to torch: {e}", RuntimeWarning, stacklevel=3)
        return None


def resolve_backend(backend: str | None = None) -> str:
    """The back end a call will use: ``backend``, else :func:`use_backend`'s, else ``$VOICEGENDER_ENCODER``."""
    name = backend or _backend_override or os.environ.get("VOICEGENDER_ENCODER") or "auto"
    if name not in BACKENDS:
        raise ValueError(f"unknown GE2E encoder back end {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Run every GE2E embedding in the block through ``backend`` (process-wide, for tests and comparisons)::

        with embeddings.use_backend("torch-fp32"):
            p_torch = model(waves)
    """
    global _backend_override
    resolve_backend(backend)  # validate
    previous, _backend_override = _backend_override, backend
    try:
        yield
    finally:
        _backend_override = previous


# ----------------------------------------------------------------------------------------------------
# Audio → mel frames → windows → embeddings
# ----------------------------------------------------------------------------------------------------


def prepare(wave16k: np.ndarray) -> np.ndarray:
    """Remove DC, normalise RMS to -30 dBFS and tile clips shorter than 1.6 s: float32 ready for :func:`mel_frames`.

    Raises ValueError for fewer than 10 ms of samples or non-finite values (callers check speech length first).
    """
    wave = np.asarray(wave16k, dtype=np.float64).reshape(-1)
    if wave.size < MIN_SAMPLES:
        raise ValueError(f"GE2E embedding needs at least {MIN_SAMPLES} samples (10 ms at 16 kHz), got {wave.size}")
    if not np.all(np.isfinite(wave)):
        raise ValueError("audio holds NaN or infinite samples")
    wave = wave - wave.mean()
    rms = np.sqrt(np.mean(wave**2))
    if rms > 1e-8:  # digital silence stays silence
        wave = wave * (10 ** (TARGET_DBFS / 20) / rms)
    if wave.size < PARTIAL_SAMPLES:
        wave = np.tile(wave, int(np.ceil(PARTIAL_SAMPLES / wave.size)))[:PARTIAL_SAMPLES]
    return wave.astype(np.float32)


_MEL_LINEAR_HZ = 200.0 / 3  # Slaney mel scale: 200/3 Hz per mel below 1 kHz ...
_MEL_LOG_START = 1000.0 / _MEL_LINEAR_HZ  # ... (mel 15 at 1 kHz) ...
_MEL_LOG_STEP = math.log(6.4) / 27  # ... and log-spaced above (librosa's constants, bit for bit)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    log_part = _MEL_LOG_START + np.log(np.maximum(hz, 1e-10) / 1000.0) / _MEL_LOG_STEP
    return np.where(hz >= 1000.0, log_part, hz / _MEL_LINEAR_HZ)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= _MEL_LOG_START, 1000.0 * np.exp(_MEL_LOG_STEP * (mel - _MEL_LOG_START)),
                    mel * _MEL_LINEAR_HZ)


def mel_band_centres_hz() -> np.ndarray:
    """Centre frequency (Hz) of each of the encoder's 40 mel bands, lowest first (librosa's ``mel_frequencies``)."""
    return _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_BANDS + 2))[1:-1]


@functools.lru_cache(maxsize=1)
def _mel_basis_and_window() -> tuple[np.ndarray, np.ndarray]:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40).T`` (Slaney scale and area norm, float32 like
    librosa's) and the periodic Hann window, in numpy: importing ``librosa.filters`` costs ~1.2 s (scipy.signal,
    numba) of a cold start. Equality with librosa is tested."""
    fft_hz = np.fft.rfftfreq(MEL_WINDOW, 1.0 / SAMPLE_RATE)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), MEL_BANDS + 2))
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / np.diff(edges)[:-1, None]
    upper = ramps[2:] / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    window = 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, MEL_WINDOW + 1)[:-1])  # scipy's periodic "hann"
    return weights.T.astype(np.float64), window


def mel_frames(wave: np.ndarray) -> np.ndarray:
    """resemblyzer's encoder input: mel power frames (frames, 40) float32 of prepared 16 kHz audio.

    Equal (to 1e-6 relative) to ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160,
    n_mels=40).T`` — centred frames, zero padding, Hann window, power 2 — but with the mel basis built once and
    one numpy FFT over all frames: 2.4x faster per 1.6 s window (0.48 vs 1.13 ms).
    """
    basis, window = _mel_basis_and_window()
    padded = np.pad(np.asarray(wave, dtype=np.float64), MEL_WINDOW // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_WINDOW)[::MEL_HOP]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (power @ basis).astype(np.float32)


def partial_windows(n_frames: int) -> list[slice]:
    """1.6 s windows every 0.77 s over ``n_frames`` (>= 160) frames; one more window ends at the last frame when
    the others leave at least :data:`TAIL_MIN_FRAMES` uncovered (as resemblyzer's 75 % minimum coverage).

    Short clips are tiled to exactly 160 frames, so they cost one window: before, the centred STFT gave them 161
    frames and a second window shifted by 10 ms, doubling the encoder's work for every single word (measured on
    297 clips: the head's p_female moved by at most 0.022, mean 0.0013, no label changed; 8.3 -> 4.8 ms per clip).
    """
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + 1), PARTIAL_STEP_FRAMES))
    if n_frames - (starts[-1] + PARTIAL_FRAMES) >= TAIL_MIN_FRAMES:
        starts.append(n_frames - PARTIAL_FRAMES)  # cover the tail, never pad with silence
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


def _torch_embed(windows: np.ndarray, bf16: bool, batch_windows: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    encoder = load_encoder()
    embs, hiddens = [], []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(windows), batch_windows):
            emb, hidden = encoder.forward_with_hidden(torch.from_numpy(windows[start:start + batch_windows]))
            embs.append(emb.float().numpy())
            hiddens.append(hidden.float().numpy())
    return np.concatenate(embs), np.concatenate(hiddens)


def encode_windows(windows: np.ndarray, *, backend: str | None = None, threads: int = encoder_onnx.DEFAULT_THREADS,
                   batch_windows: int = 64, hidden: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Embeddings (n, 256) float32 of 1.6 s mel windows (n, 160, 40), through ``backend`` (see :data:`BACKENDS`);
    with ``hidden``, (embeddings, hidden means) from the same run.

    ``threads`` sets the ONNX session's intra-op threads (torch keeps its own global setting).
    """
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if windows.ndim != 3 or windows.shape[1:] != (PARTIAL_FRAMES, MEL_BANDS):
        raise ValueError(f"GE2E windows must be (n, {PARTIAL_FRAMES}, {MEL_BANDS}), got {windows.shape}")
    if not len(windows):
        empty = np.zeros((0, EMBEDDING_DIM), np.float32)
        return (empty, empty.copy()) if hidden else empty
    name = resolve_backend(backend)
    if name in ("auto", "onnx"):
        session = onnx_encoder(threads) if name == "onnx" else _auto_onnx(threads)
        if session is not None:
            return session.with_hidden(windows, batch_windows) if hidden else session(windows, batch_windows)
    emb, hidden_means = _torch_embed(windows, name != "torch-fp32" and use_bf16(), batch_windows)
    return (emb, hidden_means) if hidden else emb


def ge2e_features(waves16k: Sequence[np.ndarray], batch_windows: int = 64, *, backend: str | None = None,
                  threads: int = encoder_onnx.DEFAULT_THREADS) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, hidden means) of many clips at 16 kHz, each (n, 256) float32, from one run of the encoder.

    Embeddings as :func:`ge2e_embeddings`. A clip's hidden mean is the mean over its windows of the top LSTM
    layer's output averaged over frames 40-159 of the window: the network's state along the whole word rather
    than at its last frame. For a single short word (tiled to one window) it holds more of the word, and the
    shipped model reads it for speech shorter than 1 s (docs/DEFAULT_MODEL.md: held-out short crops of 0.15-0.3 s
    82 -> 85 %, 0.3-0.6 s 90 -> 92 %); on longer speech the embedding, trained to ignore the channel, is better.
    """
    if not len(waves16k):
        empty = np.zeros((0, EMBEDDING_DIM), np.float32)
        return empty, empty.copy()
    windows, owner = [], []
    for i, wave in enumerate(waves16k):
        mel = mel_frames(prepare(wave))
        for s in partial_windows(len(mel)):
            windows.append(mel[s])
            owner.append(i)
    partial, hidden = encode_windows(np.stack(windows), backend=backend, threads=threads,
                                     batch_windows=batch_windows, hidden=True)
    return pool_windows(partial, hidden, owner, len(waves16k))


def pool_windows(partial: np.ndarray, hidden: np.ndarray, owner: Sequence[int], n_clips: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Clip-level (embeddings, hidden means) from per-window ones: the L2-normalised mean of a clip's window
    embeddings, and the mean of its windows' hidden means (``owner[i]``: the clip of window ``i``)."""
    owner_index = np.asarray(owner)
    sums = np.zeros((n_clips, partial.shape[1]), np.float64)
    np.add.at(sums, owner_index, partial)
    hidden_sums = np.zeros((n_clips, hidden.shape[1]), np.float64)
    np.add.at(hidden_sums, owner_index, hidden)
    counts = np.bincount(owner_index, minlength=n_clips)[:, None].clip(1)
    return ((sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)).astype(np.float32),
            (hidden_sums / counts).astype(np.float32))


def ge2e_embeddings(waves16k: Sequence[np.ndarray], batch_windows: int = 64, *, backend: str | None = None,
                    threads: int = encoder_onnx.DEFAULT_THREADS) -> np.ndarray:
    """Embeddings of many clips at 16 kHz: (n, 256) float32, each row L2-normalised.

    Each clip is cut into 1.6 s windows; every window of every clip goes through the encoder in batches of
    ``batch_windows``; a clip's embedding is the L2-normalised mean of its windows' embeddings. ``backend``
    (default ``"auto"``: ONNX, else torch) and ``threads`` as in :func:`encode_windows`.
    """
    return ge2e_features(waves16k, batch_windows, backend=backend, threads=threads)[0]


def ge2e_embedding(wave16k: np.ndarray) -> np.ndarray:
    """The GE2E embedding of one clip of 16 kHz float audio: (256,) float32, L2 norm 1, non-negative.

    Parameters
    ----------
    wave16k : np.ndarray
        Mono float samples at 16 kHz (speech only, ideally >= 0.5 s; shorter clips are tiled to 1.6 s).

    Returns
    -------
    np.ndarray
        The embedding.
    """
    return ge2e_embeddings([wave16k])[0]


@dataclass(frozen=True)
class BackendAgreement:
    """How far two encoder back ends' answers lie apart on the same clips."""

    backends: tuple[str, str]
    clips: int
    max_cosine_distance: float  # max over clips of 1 - cos(embedding_a, embedding_b)
    max_abs_score_delta: float | None  # max |score_a - score_b| (e.g. p_female) when a scorer was given


def backend_agreement(waves16k: Sequence[np.ndarray],
                      score: Callable[[list[np.ndarray]], np.ndarray] | None = None,
                      backends: tuple[str, str] = ("onnx", "torch-fp32")) -> BackendAgreement:
    """Embed ``waves16k`` with both ``backends`` and, if given, run ``score(waves)`` under each (inside
    :func:`use_backend`, so any model that calls :func:`ge2e_embeddings` follows); report the largest gaps.

    For the head-level check: ``backend_agreement(waves, score=lambda w: model.score(w).p_female)``; then
    ``max_abs_score_delta <= 0.01``. Compare against ``"torch-fp32"``: torch's
    bf16 path itself moves p_female by up to 0.06 (see :func:`use_bf16`).
    """
    waves = [np.asarray(w, np.float32).reshape(-1) for w in waves16k]
    emb, scores = [], []
    for name in backends:
        with use_backend(name):
            emb.append(ge2e_embeddings(waves))
            if score is not None:
                scores.append(np.asarray(score(waves), np.float64).reshape(-1))
    cosine = np.sum(emb[0].astype(np.float64) * emb[1], axis=1)
    delta = float(np.max(np.abs(scores[0] - scores[1]))) if scores and len(waves) else None
    return BackendAgreement((backends[0], backends[1]), len(waves),
                            float(np.max(1.0 - cosine)) if len(waves) else 0.0, delta)
