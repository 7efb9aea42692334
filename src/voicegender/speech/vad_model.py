"""silero-vad's model: the back end that runs it, and the speech probability of each 32 ms frame.

The model scores 32 ms frames (512 samples at 16 kHz) with a small LSTM that carries state from frame to frame
(:func:`frame_probabilities` for audio in memory, :class:`StreamingVad` for audio fed block by block, equal to one
pass); :mod:`voicegender.speech.vad` turns the probabilities into speech regions.

Back ends, fastest first (measured on 2 shared CPU cores, 1 s clips): silero's *sequence* ONNX model runs a whole
block of frames in one onnxruntime call (~5 ms per 1 s clip, one hour of audio in ~20 s); the TorchScript model
needs one Python call per frame (~20 ms per 1 s clip at batch 1). The sequence model runs as
:mod:`voicegender.speech.vad_fast` rewrote it (its convolutions as matrix products: 3x faster, the same
probabilities to ~1e-6), from the file shipped inside this package: no silero-vad, torch or network needed. With
``VOICEGENDER_VAD_MODEL=stock`` (or when the shipped file cannot be loaded) silero's own sequence file is run, and
without onnxruntime silero's TorchScript model: both only when silero-vad is installed (research extras).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import ModelError
from . import vad_fast

log = logging.getLogger(__name__)

VAD_SAMPLE_RATE = 16_000  # Hz, the rate the speech detector reads
FRAME_SAMPLES = 512  # silero's frame at 16 kHz
FRAME_S = FRAME_SAMPLES / VAD_SAMPLE_RATE  # 0.032 s per probability
CONTEXT_SAMPLES = 64  # samples of the previous frame that silero prepends to each frame
SEQUENCE_BLOCK_FRAMES = 512  # frames per onnxruntime call of the sequence model: 16.4 s of audio
# silero's LSTM state can collapse on long stretches of band-limited speech: in simulated telephone conversations
# (benchmarks/conversations.py), after 20-30 s every later frame scored below 0.05, speech included (AudioMNIST-AZ
# through the telephone line: 27 % of speech frames < 0.05, against 5.5 % on the clean copy). So the state is made
# afresh every REFRESH_FRAMES frames: from the warm-up state (silence) over the CONTEXT_FRAMES frames before the
# refresh point (their probabilities already given), then on. With 10 s / 1 s, those telephone mixes' frames went
# back to clean levels (inside speech: mean probability 0.0 -> 0.6-0.8 after the collapse); the extra frames cost
# 10 % of the detector (about 0.1 ms per second of audio). Recordings shorter than 10 s are scored as before.
REFRESH_FRAMES = 313  # 10.0 s of 32 ms frames
CONTEXT_FRAMES = 31  # 1.0 s
REFRESH_WARMUP = 8  # frames of silence before the context (as speech.vad.WARMUP_S)


# --- back ends ------------------------------------------------------------------------------------------------
class _SequenceBackend:
    """silero's sequence ONNX model: one onnxruntime call per block of up to 512 frames."""

    name = "onnx-sequence"

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1  # the LSTM is tiny: threads cost more than they bring; parallelise clips
        self.path = path
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.warm_states: dict[int, tuple[np.ndarray, ...]] = {}  # state after n frames of silence (never mutated)

    def initial_state(self) -> tuple[np.ndarray, ...]:
        z = np.zeros((1, 1, 128), np.float32)
        return z, z.copy(), np.zeros(CONTEXT_SAMPLES, np.float32)

    def run(self, frames: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
        """Probabilities of (n, 512) frames continuing the stream ``state``; returns them and the new state."""
        h, c, context = state
        out = []
        for start in range(0, len(frames), SEQUENCE_BLOCK_FRAMES):
            block = frames[start:start + SEQUENCE_BLOCK_FRAMES]
            contexts = np.empty((len(block), CONTEXT_SAMPLES), np.float32)
            contexts[0] = context
            contexts[1:] = block[:-1, -CONTEXT_SAMPLES:]
            probs, h, c = self.session.run(["speech_probs", "hn", "cn"],
                                           {"input": np.concatenate([contexts, block], axis=1), "h": h, "c": c})
            out.append(np.asarray(probs, np.float32).reshape(-1))
            context = block[-1, -CONTEXT_SAMPLES:].copy()
        return np.concatenate(out), (h, c, context)


class _JitBackend:
    """silero's TorchScript model: one call per frame (its state lives in the model, hence the lock)."""

    name = "torchscript"

    def __init__(self) -> None:
        import warnings

        from silero_vad import load_silero_vad

        with warnings.catch_warnings():  # importlib.resources.path and torch.jit.load deprecations inside silero
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = load_silero_vad(onnx=False)
        self.lock = threading.Lock()
        self.streams = 0  # the model holds one stream's state: keep track of whose it is
        self._current: int | None = None

    def initial_state(self) -> tuple[int]:
        with self.lock:
            self.streams += 1
            return (self.streams, 0)

    def run(self, frames: np.ndarray, state: tuple[int, int]) -> tuple[np.ndarray, tuple]:
        import torch

        stream, done = state
        with self.lock, torch.inference_mode():
            if done == 0 or self._current != stream:
                if done:  # another stream used the model in between: this stream's state is lost
                    log.warning("torchscript VAD shared between streams; restarting state")
                self.model.reset_states()
                self._current = stream
            x = torch.from_numpy(np.ascontiguousarray(frames))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # one frame per call: tiny ops, which stall when threads share busy cores
            try:
                probs = np.array([float(self.model(x[i], VAD_SAMPLE_RATE)) for i in range(len(frames))], np.float32)
            finally:
                torch.set_num_threads(threads)
        return probs, (stream, done + len(frames))


_backend_lock = threading.Lock()
_backend_instance: _SequenceBackend | _JitBackend | None = None


def _backend() -> _SequenceBackend | _JitBackend:
    """The speech detector, made once per process (thread-safe; onnxruntime sessions may run concurrently).

    Once, not per call: with a new session per recording (and its warm-up state computed again) silero took 4.2 ms
    of a 1.4 s AudioMNIST-AZ clip, with one 1.5 ms (512 clips, one thread).
    """
    global _backend_instance
    with _backend_lock:
        if _backend_instance is None:
            _backend_instance = _make_backend()
        return _backend_instance


def _make_backend() -> _SequenceBackend | _JitBackend:
    if importlib.util.find_spec("onnxruntime") is not None:
        shipped, silero = vad_fast.model_path(), vad_fast.silero_model_path()
        if os.environ.get("VOICEGENDER_VAD_MODEL", "") == "stock":
            if silero is not None:
                return _sequence_backend(silero)
            log.warning("VOICEGENDER_VAD_MODEL=stock needs silero-vad installed; using the shipped model")
        if shipped is not None:
            try:
                return _sequence_backend(shipped)
            except Exception as e:  # onnxruntime's own error types: a damaged installation
                if silero is None:
                    raise ModelError(f"{shipped}: onnxruntime cannot load the speech detector ({e}); reinstall "
                                     "voicegender") from e
                log.warning("%s: onnxruntime cannot load it (%s); using silero's own file", shipped, e)
        if silero is not None:
            return _sequence_backend(silero)
    elif importlib.util.find_spec("silero_vad") is not None:
        log.info("silero-vad: onnxruntime is missing; using the slower TorchScript model")
        return _JitBackend()
    raise ModelError("speech detection needs onnxruntime and the model shipped with voicegender; reinstall "
                     "voicegender")


def _sequence_backend(path: Path) -> _SequenceBackend:
    backend = _SequenceBackend(str(path))
    log.debug("silero-vad back end: %s (%s)", backend.name, path)
    return backend


def backend_name() -> str:
    """Which silero model is in use: ``"onnx-sequence"`` or ``"torchscript"``."""
    return _backend().name


# --- frame probabilities --------------------------------------------------------------------------------------
def _frames(samples: np.ndarray) -> np.ndarray:
    """(n, 512) float32 frames, the last one zero-padded."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    n = -(-len(samples) // FRAME_SAMPLES)
    frames = np.zeros((n, FRAME_SAMPLES), np.float32)
    frames.reshape(-1)[:len(samples)] = samples
    return frames


def _start(backend: _SequenceBackend | _JitBackend, warmup_frames: int = 0) -> tuple:
    """A fresh stream's state, after ``warmup_frames`` frames of digital silence (see
    :data:`voicegender.speech.vad.WARMUP_S`)."""
    if warmup_frames <= 0:
        return backend.initial_state()
    cache = getattr(backend, "warm_states", None)  # the sequence model's state is plain arrays: computed once
    if cache is not None and warmup_frames in cache:
        return cache[warmup_frames]
    _, state = backend.run(np.zeros((warmup_frames, FRAME_SAMPLES), np.float32), backend.initial_state())
    if cache is not None:
        cache[warmup_frames] = state
    return state


def frame_probabilities(samples16k: np.ndarray, warmup_frames: int = 0) -> np.ndarray:
    """Speech probability of each 32 ms frame of float mono audio at 16 kHz: float32 (ceil(n / 512),).

    warmup_frames : frames of digital silence the model reads first (their probabilities are not returned).
    The model's state is refreshed every :data:`REFRESH_FRAMES` frames (see there).
    """
    if len(samples16k) == 0:
        return np.zeros(0, np.float32)
    vad = StreamingVad(warmup_frames)
    return np.concatenate([vad.feed(samples16k), vad.finish()])


def frame_levels_db(samples16k: np.ndarray) -> np.ndarray:
    """The level (dB of the mean square) of each whole :data:`FRAME_SAMPLES` frame of 16 kHz audio: the frames
    silero scores."""
    x = np.asarray(samples16k, np.float32).reshape(-1)
    frames = x[:len(x) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)  # a view: no copy of the audio
    power = np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES
    return (10.0 * np.log10(power + 1e-10)).astype(np.float32)


class StreamingVad:
    """Frame probabilities of audio fed block by block (any block sizes), equal to scoring it all at once.

    Every :data:`REFRESH_FRAMES` frames (at fixed frame numbers, whatever the blocks) the model's state is made
    afresh from the :data:`CONTEXT_FRAMES` frames before (see :data:`REFRESH_FRAMES` for why).

    >>> vad = StreamingVad()
    >>> for block in stream_audio(path):     # doctest: +SKIP
    ...     probs = vad.feed(block)           # new frame probabilities (float32)
    >>> probs = vad.finish()                  # the last, zero-padded frame
    """

    def __init__(self, warmup_frames: int = 0) -> None:
        self._backend = _backend()
        self._state = _start(self._backend, warmup_frames)
        self._pending = np.zeros(0, np.float32)  # samples not yet making a whole frame
        self._context = np.zeros((0, FRAME_SAMPLES), np.float32)  # the frames before the next refresh point
        self.frames = 0  # frames scored so far

    def _run(self, frames: np.ndarray) -> np.ndarray:
        out = []
        while len(frames):
            if self.frames and self.frames % REFRESH_FRAMES == 0 and len(self._context):
                _, self._state = self._backend.run(self._context, _start(self._backend, REFRESH_WARMUP))
            take = REFRESH_FRAMES - self.frames % REFRESH_FRAMES
            part, frames = frames[:take], frames[take:]
            probs, self._state = self._backend.run(part, self._state)
            self._context = np.concatenate([self._context, part])[-CONTEXT_FRAMES:]
            self.frames += len(part)
            out.append(probs)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _whole_frames(self, block: np.ndarray) -> np.ndarray:
        """The whole frames the pending samples and ``block`` make, (n, FRAME_SAMPLES); the rest waits."""
        data = np.concatenate([self._pending, np.asarray(block, np.float32).reshape(-1)])
        whole = len(data) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = data[whole:]
        return data[:whole].reshape(-1, FRAME_SAMPLES)

    def feed(self, block: np.ndarray) -> np.ndarray:
        return self._run(self._whole_frames(block))

    def feed_with_levels(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`feed`, and the level of each frame it scored (:func:`frame_levels_db`)."""
        frames = self._whole_frames(block)
        return self._run(frames), frame_levels_db(frames)

    def finish(self) -> np.ndarray:
        if len(self._pending) == 0:
            return np.zeros(0, np.float32)
        probs = self._run(_frames(self._pending))
        self._pending = np.zeros(0, np.float32)
        return probs


def stream_probabilities(blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each 16 kHz block, yield (block, probabilities of the frames completed so far); the tail comes last."""
    vad = StreamingVad()
    for block in blocks:
        yield block, vad.feed(block)
    yield np.zeros(0, np.float32), vad.finish()
