"""Predict the speaker gender of recordings: decode → 16 kHz → speech detection → model → calibrated p_female.

Only speech is classified: the speech regions the VAD finds are concatenated and scored as one clip (speech
longer than :data:`MAX_CHUNK_S` is scored in chunks whose logits are averaged, weighted by duration). A file with
less than ``min_speech_s`` of speech is answered ``no_speech`` (``p_female`` None) instead of a guess.

Concatenation rather than scoring fixed windows: every model kind takes variable-length input (the GE2E
encoder reads 1.6 s windows itself; the CNNs pool over time), pauses carry no gender information, and one
forward pass per file is the cheapest way to batch many short clips.

Memory does not grow with a file's length: files longer than :data:`STREAM_ABOVE_S` (or larger decoded than
:data:`MAX_DECODE_BYTES`) are decoded block by block, their speech handed to the model in chunks as the stream goes
(:class:`voicegender.vad.SpeechStream`), and only duration-weighted sums of chunk logits are kept. Speech longer
than one chunk is scored by the worker thread that decoded it, so a batch holds at most ``batch_size`` short clips.

Speaking time: ``female_s`` and ``male_s`` split ``speech_s`` by the timeline ``segment`` would draw (its windows,
smoothing and own speech detector; :class:`voicegender.segment.TimelineBuilder`), for recordings with more than
``speaking_time_above_s`` of speech. Shorter speech is all given to the predicted label: one or two words hold
no turns, and the windows would cost about three times the scoring of the clip itself.

A decode watchdog (:func:`iter_predictions`): a file whose decoding makes no progress for ``decode_timeout_s``
is answered ``error`` and its worker thread replaced (see :class:`_Workers` for what cannot be stopped).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import AudioTooLong, load_audio, resample, stream_audio
from .errors import ModelError, VoiceGenderError
from .vad import (
    TONAL_MAX_S,
    VAD_SAMPLE_RATE,
    WARMUP_S,
    SpeechStream,
    VadConfig,
    find_speech,
    looks_tonal,
    speech_only,
    speech_seconds,
)
from .vad_model import backend_name

log = logging.getLogger(__name__)

LABELS = ("female", "male", "no_speech", "error")
# the JSON/CSV contract (+ "error")
FIELDS = ("path", "label", "p_female", "p_child", "duration_s", "speech_s", "female_s", "male_s")
MIN_SPEECH_S = 0.15  # less speech than this (seconds) -> no_speech (a short word; see PREDICT_VAD)
MAX_CHUNK_S = 15.0  # speech longer than this is scored in chunks of at most this many seconds
CHUNKS_PER_CALL = 4  # chunks of a streamed file scored per model call (4 x 15 s x 64 kB/s: ~4 MB of speech)
STREAM_ABOVE_S = 300.0  # longer files (by their header) are streamed: memory holds blocks, not the file
MAX_DECODE_BYTES = 16_000_000  # files decoding to more float32 (all channels) are streamed (48 kHz stereo: 41 s)
STREAM_ABOVE_BYTES = 20_000_000  # files whose header soundfile cannot read (m4a, webm, ...) and are larger: streamed
STREAM_BLOCK_S = 10.0  # seconds decoded at a time when streaming (48 kHz stereo: ~14 MB peak)
P_CLIP = 1e-6  # probabilities are clipped to [P_CLIP, 1 - P_CLIP] before averaging logits
# female_s / male_s come from segment's windows when there is more speech than this (seconds); below, all speech
# is given to the predicted label: 2 s turns are the shortest the timeline keeps, so 8 s holds a few of them. The
# windows (1.5 s every 0.5 s: 3 s of model input per second of speech) are the cost. Measured with the shipped
# model on 2 busy cores (benchmarks/long_audio.py --cost, load 1.7-2.8): 3 and 6 s clips unchanged (15-44 ms per
# file, below the threshold); 12 s clips 47-56 -> 91-101 ms; 30 s clips 71-174 -> 384-528 ms; a 1 h conversation
# 15 s -> 37 s (load 3.8).
SPEAKING_TIME_ABOVE_S = 8.0
# batches given to the workers ahead of the one being scored, so that they never wait for it: 1,024 AudioMNIST-AZ
# clips took 5.5 -> 3.5 s in-process when scoring still ran in the waiting thread (one batch ahead, the workers
# idled while it scored); with the scoring on the workers (_score_batch) 1 or 2 differ by < 4 %
AHEAD_BATCHES = 2
DECODE_TIMEOUT_S = 60.0  # a file whose decoding makes no progress for this long (seconds) is given up: error row
MAX_STUCK_DECODES = 4  # worker threads replaced per run while their decoder is stuck; then remaining files: error


# For whole clips the decision "is there speech?" is made on the total (min_speech_s), so the detector keeps
# short bursts (0.1 s instead of silero's 0.25 s) and pads regions by 0.1 s (word onsets and tails). Measured
# on 300 clips each: clips answered no_speech fell from 2.7 % to 0 % (AudioMNIST-AZ digits), 7.3 % to 2.1 %
# (espeak-ng digits), 5.0 % to 4.7 % (BAVED; the rest are mostly 5-6-year-old speakers), with still no speech
# found in white noise, a tone or synthetic melodies.
# Short words (benchmarks/short_speech.py: AudioMNIST-AZ digits trimmed to the word, 8/16/48 kHz, clean and
# through the telephone channel) need more: silero reads 8 frames of silence first (warmup_s, see vad.WARMUP_S),
# a recording with less than MIN_SPEECH_S = 0.15 s at threshold 0.5 gets a second pass at 0.35, and speech that
# vad.looks_tonal (a tone or hum after silence) is dropped (vad.find_speech). On 885 AudioMNIST-AZ words and
# digit strings, no_speech fell from 11-50 % to 0.1-2.7 % (16 kHz clean: 11.1 % -> 0.1 %; 8 kHz: 19.4 % -> 1.4 %;
# telephone: 50 % -> 2.6 %). On 3,324 AudioMNIST-AZ and BAVED items of 0.15 s and more, the second pass took
# no_speech from 3.6 % to 1.6 % (at 0.25: 0.8 %, but quiet white noise after silence then passed). 852
# non-speech signals (silence, clicks, white/pink/brown noise, tones, buzzes, sweeps, melodies; alone, after
# silence or over a noise floor) stay no_speech; before, 50 of them - low tones after silence - got an answer.
PREDICT_VAD = VadConfig(min_speech_s=0.1, pad_s=0.1, warmup_s=WARMUP_S)


@dataclass
class Prediction:
    """The answer for one recording."""

    path: str  # the file (or a name given to an array)
    label: str  # "female" | "male" | "no_speech" | "error"
    p_female: float | None  # calibrated probability of a female speaker; None for no_speech and errors
    duration_s: float | None  # length of the recording in seconds; None when it could not be decoded
    speech_s: float | None  # seconds of detected speech (all of it with vad=False)
    error: str | None = None  # what went wrong (label "error" only)
    # probability that the voice is a child's (aged 12 or younger), where gender from voice is unreliable;
    # None when there is no speech or the model does not estimate it
    p_child: float | None = None
    # seconds of speech_s attributed to female and male voices (they add up to speech_s): from segment's windows
    # when there is more than PredictOptions.speaking_time_above_s of speech, else all to the label; 0 for
    # no_speech, None for errors
    female_s: float | None = None
    male_s: float | None = None

    def as_dict(self) -> dict:
        """The output record: exactly :data:`FIELDS`, plus ``error`` on error rows; floats rounded."""
        def seconds(x: float | None) -> float | None:
            return None if x is None else round(float(x), 3)

        d = {
            "path": self.path,
            "label": self.label,
            "p_female": None if self.p_female is None else round(float(self.p_female), 4),
            "p_child": None if self.p_child is None else round(float(self.p_child), 4),
            "duration_s": seconds(self.duration_s),
            "speech_s": seconds(self.speech_s),
            "female_s": seconds(self.female_s),
            "male_s": seconds(self.male_s),
        }
        if self.label == "error":
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class PredictOptions:
    """How recordings are turned into answers."""

    threshold: float = 0.5  # p_female >= threshold -> "female", else "male"
    min_speech_s: float = MIN_SPEECH_S  # less detected speech (seconds) -> "no_speech"
    vad: bool = True  # False: classify the whole recording as speech (no speech detection)
    vad_config: VadConfig = field(default_factory=lambda: PREDICT_VAD)  # speech detector thresholds
    batch_size: int = 32  # recordings decoded and scored together
    workers: int = 0  # threads decoding and detecting speech; 0: one per CPU core (at most 4)
    torch_threads: int = 1  # torch threads for the model (see torch_threads()); 0: leave torch's setting
    # more speech than this (seconds): female_s / male_s from segment's windows; math.inf: always from the label
    speaking_time_above_s: float = SPEAKING_TIME_ABOVE_S
    decode_timeout_s: float = DECODE_TIMEOUT_S  # iter_predictions: no decoding progress this long -> error; 0: off


def blas_single_thread() -> contextlib.AbstractContextManager:
    """Run numpy's BLAS on one thread inside the block.

    Features multiply small matrices (a 64x257 mel basis by a 257x100 spectrogram); OpenBLAS's threads only add
    hand-off cost there, and on a busy 2-core machine they made ``log_mel`` of a 1 s clip 7x slower (15.6 ms
    vs 2.1 ms). torch's own threads (the model forward) are not affected. threadpoolctl ships with
    scikit-learn; without it this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn (a dependency) brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads to ``n`` inside the block (0: unchanged), then restore them.

    Batch prediction runs the model on one thread and spends the other cores on decoding and speech detection
    of the next batch. Short clips make small tensors: with 2 threads on a busy 2-core machine each op waits
    for the other thread's time slice, and a SmallCNN forward took 338 ms of CPU per 1 s clip instead of 6 ms
    (GE2E: 69 ms vs 23 ms). Nothing is done while torch is not imported: a model that does not use it (onnx,
    numpy) is not made to load it (240 MB of resident memory).
    """
    if n <= 0 or "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_model(model: str | os.PathLike | object | None = None):
    """What scores speech: the shipped default model (None), a model file (a ``.npz`` voice head from
    ``voicegender fit`` or a ``.pt`` checkpoint from ``voicegender train``), or a model as given.

    A model is a :class:`voicegender.models.LoadedModel` or any callable mapping a list of 16 kHz speech
    arrays to an array of calibrated p_female (tests and experiments plug in their own scorers this way).
    """
    if model is None:
        from .default_model import load_default_model  # torch: imported on first use

        return load_default_model()
    if isinstance(model, (str, os.PathLike)):
        if Path(model).suffix == ".npz":  # a voice head written by `voicegender fit`
            from .default_model import load_voice_model

            return load_voice_model(model)
        from .models import load_checkpoint

        return load_checkpoint(Path(model))
    return model


def score_speech(loaded, waves16k: Sequence[np.ndarray]) -> np.ndarray:
    """Calibrated p_female of each speech clip (16 kHz), long clips scored in chunks (logits averaged).

    ``loaded``: a LoadedModel (scored by :func:`voicegender.default_model.p_female`), a VoiceModel or a scorer
    callable. Returns float64 ``(len(waves16k),)``.
    """
    return score_voices(loaded, waves16k)[0]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), P_CLIP, 1 - P_CLIP)
    return np.log(p / (1 - p))


def score_voices(loaded, waves16k: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(p_female, p_child or None) of each speech clip at 16 kHz; speech longer than :data:`MAX_CHUNK_S` is scored
    in equal chunks whose logits are averaged, weighted by duration."""
    chunk = int(MAX_CHUNK_S * VAD_SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    owner: list[int] = []
    for i, wave in enumerate(waves16k):
        n_chunks = max(1, -(-len(wave) // chunk))
        for part in np.array_split(wave, n_chunks):  # equal parts: no short leftover chunk
            pieces.append(part)
            owner.append(i)
    if not pieces:
        return np.zeros(0), None
    child = None
    if hasattr(loaded, "score"):  # a VoiceModel: gender and child voice
        scores = loaded.score(pieces)
        female, child = scores.p_female, scores.p_child
    elif callable(loaded):
        female = loaded(pieces)
    else:
        from .scoring import p_female

        female = p_female(loaded, pieces)
    if len(pieces) == len(waves16k):
        return (np.clip(np.asarray(female, np.float64), P_CLIP, 1 - P_CLIP),
                None if child is None else np.asarray(child, np.float64))
    weights = np.array([len(x) for x in pieces], np.float64)
    owner_arr = np.asarray(owner)

    def combine(p: np.ndarray) -> np.ndarray:
        mean = np.bincount(owner_arr, _logit(p) * weights) / np.bincount(owner_arr, weights)
        return 1 / (1 + np.exp(-mean))

    return combine(female), None if child is None else combine(child)


def _speech(samples16k: np.ndarray, options: PredictOptions) -> tuple[np.ndarray, float]:
    """The speech to classify and its duration in seconds."""
    if not options.vad:
        return samples16k, len(samples16k) / VAD_SAMPLE_RATE
    segments = find_speech(samples16k, options.vad_config, options.min_speech_s)
    return speech_only(samples16k, segments), speech_seconds(segments)


def _label(p: float, options: PredictOptions) -> str:
    return "female" if p >= options.threshold else "male"


@dataclass
class _Prepared:
    """A recording after decoding and speech detection: its speech waiting for the model, or already scored."""

    path: str
    duration_s: float | None = None
    speech: np.ndarray | None = None  # speech to score in the batch (at most MAX_CHUNK_S); None once scored
    speech_s: float | None = None
    error: str | None = None
    scores: tuple[float, float | None] | None = None  # (p_female, p_child) of speech scored by the worker
    female_share: float | None = None  # share of the speech segment's windows call female; None: use the label


# --- one file ---------------------------------------------------------------------------------------------------
class _Abandoned(BaseException):
    """Raised in a worker whose file was given up, at its next progress report (a BaseException, as
    asyncio.CancelledError: no ``except Exception`` on the way may swallow it)."""


class _Watch:
    """Progress of one file's decoding: the worker reports it, the thread waiting for the answer may give up."""

    def __init__(self) -> None:
        self.last: float | None = None  # time.monotonic() of the last progress; None: not started
        self.abandoned = False
        self.replaced = False  # the worker running it was replaced by a new thread

    def begin(self) -> None:
        self.last = time.monotonic()

    def progress(self, n: int = 1) -> None:
        """``n`` more frames decoded (0: none, but still running); stops the work once it was given up."""
        if self.abandoned:
            raise _Abandoned
        if n:
            self.last = time.monotonic()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _should_stream(path: Path) -> bool:
    """Long (by the header) or large once decoded: decode block by block instead of all at once."""
    try:
        info = sf.info(str(path))
        if info.frames > 0:
            return (info.frames / info.samplerate > STREAM_ABOVE_S
                    or info.frames * max(1, info.channels) * 4 > MAX_DECODE_BYTES)
    except (sf.LibsndfileError, RuntimeError, ZeroDivisionError):
        pass
    return path.stat().st_size > STREAM_ABOVE_BYTES


def _segment_options(options: PredictOptions):
    from .segment import SegmentOptions

    return SegmentOptions(threshold=options.threshold)


def _timeline(loaded, options: PredictOptions):
    from .segment import TimelineBuilder

    return TimelineBuilder(loaded, _segment_options(options))


def _female_share(timeline) -> float | None:
    from .segment import speaking_time

    segments, _ = timeline.finish()
    return speaking_time(segments).female_share


class _ChunkScorer:
    """Scores speech handed in piece by piece, in chunks of at most :data:`MAX_CHUNK_S`, and keeps only sums.

    The chunks' logits are averaged weighted by duration, as :func:`score_voices` does. One chunk's worth is kept
    back until the end, so that no chunk is short: the last 15-30 s are split into two equal halves (up to 30 s of
    speech the chunks are exactly those of score_voices). The first :data:`voicegender.vad.TONAL_MAX_S` of speech
    are kept for :func:`voicegender.vad.looks_tonal`.
    """

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        self.chunk = int(MAX_CHUNK_S * VAD_SAMPLE_RATE)
        self.pending: list[np.ndarray] = []  # speech not yet cut into chunks
        self.size = 0
        self.ready: list[np.ndarray] = []  # chunks waiting for a model call
        self.head: list[np.ndarray] = []  # the first TONAL_MAX_S of speech
        self.head_size = 0
        self.sums = np.zeros(3)  # weight, weight x female logit, weight x child logit
        self.child = True  # the model estimates p_child

    def add(self, piece: np.ndarray) -> None:
        if self.head_size < TONAL_MAX_S * VAD_SAMPLE_RATE:
            self.head.append(piece[:int(TONAL_MAX_S * VAD_SAMPLE_RATE) - self.head_size])
            self.head_size += len(self.head[-1])
        self.pending.append(piece)
        self.size += len(piece)
        if self.size >= 2 * self.chunk:
            speech = np.concatenate(self.pending)
            cut = len(speech) - self.chunk  # whole chunks, leaving between one and two chunks' worth
            cut -= cut % self.chunk
            self.ready.extend(np.split(speech[:cut], cut // self.chunk))
            self.pending, self.size = [speech[cut:]], len(speech) - cut
        if len(self.ready) >= CHUNKS_PER_CALL:
            self._score()

    def looks_tonal(self) -> bool:
        return bool(self.head) and looks_tonal(np.concatenate(self.head))

    def finish(self) -> tuple[float, float | None]:
        """(p_female, p_child) of all speech added."""
        if self.size:
            speech = np.concatenate(self.pending)
            self.ready.extend(np.array_split(speech, -(-len(speech) // self.chunk)))  # equal parts
            self.pending, self.size = [], 0
        self._score()
        weight, female, child = self.sums
        if weight <= 0:
            raise ValueError("no speech was scored")
        p_child = 1 / (1 + math.exp(-child / weight)) if self.child else None
        return 1 / (1 + math.exp(-female / weight)), p_child

    def _score(self) -> None:
        if not self.ready:
            return
        female, child = score_voices(self.loaded, self.ready)
        weights = np.array([len(x) for x in self.ready], np.float64)
        self.child = self.child and child is not None
        self.sums += [weights.sum(), float(weights @ _logit(female)),
                      float(weights @ _logit(child)) if child is not None else 0.0]
        self.ready = []


def _analyse_samples(name: str, samples16k: np.ndarray, duration_s: float, loaded, options: PredictOptions,
                     watch: _Watch) -> _Prepared:
    """Speech detection, speaking time and (for speech longer than one chunk) scores of audio in memory."""
    speech, speech_s = _speech(samples16k, options)
    watch.progress()
    prepared = _Prepared(name, duration_s, speech, speech_s)
    if speech_s < options.min_speech_s:
        return prepared
    if speech_s > options.speaking_time_above_s:
        timeline = _timeline(loaded, options)
        step = int(STREAM_BLOCK_S * VAD_SAMPLE_RATE)
        for i in range(0, len(samples16k), step):
            timeline.feed(samples16k[i:i + step])
            watch.progress(step)
        prepared.female_share = _female_share(timeline)
    if len(speech) > MAX_CHUNK_S * VAD_SAMPLE_RATE:  # scored here: a batch holds only short speech
        female, child = score_voices(loaded, [speech])
        prepared.scores = (float(female[0]), None if child is None else float(child[0]))
        prepared.speech = None
    return prepared


def _analyse_stream(path: Path, name: str, loaded, options: PredictOptions, watch: _Watch) -> _Prepared:
    """A long file block by block: speech scored chunk by chunk as it is found, windows as in ``segment``."""
    speech = SpeechStream(options.vad_config) if options.vad else None
    chunks = _ChunkScorer(loaded)
    # silero's TorchScript fallback holds one stream's state: the timeline's own detector then gets a second pass
    together = backend_name() == "onnx-sequence" or speech is None
    timeline = _timeline(loaded, options) if math.isfinite(options.speaking_time_above_s) and together else None
    total = 0
    for block in stream_audio(path, VAD_SAMPLE_RATE, STREAM_BLOCK_S, on_progress=watch.progress):
        total += len(block)
        for piece in speech.feed(block) if speech is not None else [block]:
            chunks.add(piece)
        if timeline is not None:
            timeline.feed(block)
        watch.progress(len(block))
    if speech is not None:
        for piece in speech.finish():
            chunks.add(piece)
    duration_s = total / VAD_SAMPLE_RATE
    speech_s = speech_seconds(speech.regions) if speech is not None else duration_s
    if speech is not None and speech_s and chunks.looks_tonal():  # as find_speech (no second pass: a file this
        speech_s = 0.0  # long rarely holds < 0.15 s of speech)
    prepared = _Prepared(name, duration_s, None, speech_s)
    if speech_s < options.min_speech_s:
        return prepared
    prepared.scores = chunks.finish()
    if speech_s > options.speaking_time_above_s:
        if timeline is None and not together:
            timeline = _timeline(loaded, options)
            for block in stream_audio(path, VAD_SAMPLE_RATE, STREAM_BLOCK_S, on_progress=watch.progress):
                timeline.feed(block)
                watch.progress(len(block))
        if timeline is not None:
            prepared.female_share = _female_share(timeline)
    return prepared


def _analyse_file(path: str | os.PathLike, loaded, options: PredictOptions, watch: _Watch) -> _Prepared:
    """Decode, detect speech, and score what is not left to the batch; raises on files that cannot be decoded."""
    name, path = str(path), Path(path)
    if path.is_file() and path.stat().st_size > 0 and _should_stream(path):
        return _analyse_stream(path, name, loaded, options, watch)
    try:
        audio = load_audio(path, sr=VAD_SAMPLE_RATE, max_bytes=MAX_DECODE_BYTES, on_progress=watch.progress)
    except AudioTooLong:  # a small file decoding to a lot (a header soundfile cannot read, silence compresses)
        return _analyse_stream(path, name, loaded, options, watch)
    watch.progress(len(audio.samples))
    return _analyse_samples(name, audio.samples, audio.duration_s, loaded, options, watch)


def _prepare(path: str | os.PathLike, loaded, options: PredictOptions, watch: _Watch | None = None) -> _Prepared:
    """:func:`_analyse_file`, with any problem of the file turned into an error row that names it in one line."""
    name = str(path)
    try:
        return _analyse_file(path, loaded, options, watch or _Watch())
    except ModelError:  # the model, not the file: stop
        raise
    except VoiceGenderError as e:
        return _Prepared(name, error=_one_line(str(e)))
    except Exception as e:  # whatever else a strange file makes a decoder raise (FFmpeg has many error types)
        log.debug("unexpected error on %s", name, exc_info=True)
        return _Prepared(name, error=_one_line(f"{name}: {type(e).__name__}: {e}"))


def _attribution(label: str, speech_s: float, female_share: float | None) -> tuple[float, float]:
    """(female_s, male_s): speech_s split by the windows' share, or all of it to the label."""
    if female_share is None:
        return (speech_s, 0.0) if label == "female" else (0.0, speech_s)
    return speech_s * female_share, speech_s * (1 - female_share)


def _finish(batch: list[_Prepared], loaded, options: PredictOptions, workers: _Workers | None = None
            ) -> list[Prediction]:
    """Score the batch's short speech (on ``workers`` when given) and build the predictions (input order)."""
    todo = [i for i, r in enumerate(batch)
            if r.error is None and r.scores is None and r.speech_s >= options.min_speech_s]
    female, child = _score_batch(loaded, [batch[i].speech for i in todo], workers) if todo else (np.zeros(0), None)
    for k, i in enumerate(todo):
        batch[i].scores = (float(female[k]), None if child is None else float(child[k]))
    out = []
    for r in batch:
        if r.error is not None:
            out.append(Prediction(r.path, "error", None, None, None, r.error))
        elif r.scores is not None and not math.isfinite(r.scores[0]):  # e.g. float samples of 1e38 in a file
            out.append(Prediction(r.path, "error", None, None, None, f"{r.path}: the model gave no probability for "
                                  "this audio (extreme sample values?)"))
        elif r.scores is not None and r.speech_s >= options.min_speech_s:
            p, pc = r.scores
            label = _label(p, options)
            female_s, male_s = _attribution(label, r.speech_s, r.female_share)
            out.append(Prediction(r.path, label, p, r.duration_s, r.speech_s, p_child=pc, female_s=female_s,
                                  male_s=male_s))
        else:
            out.append(Prediction(r.path, "no_speech", None, r.duration_s, r.speech_s, female_s=0.0, male_s=0.0))
    return out


def predict_waveform(samples: np.ndarray, sample_rate: int, model=None, options: PredictOptions = PredictOptions(),
                     name: str = "<waveform>") -> Prediction:
    """Predict from float mono samples in [-1, 1] at ``sample_rate`` Hz (any rate; resampled to 16 kHz).

    ``model``: None (the shipped default), a checkpoint path, or a loaded model (see :func:`load_model`).
    """
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}; average the channels first")
    loaded = load_model(model)
    with blas_single_thread(), torch_threads(options.torch_threads):
        wave = resample(samples, sample_rate, VAD_SAMPLE_RATE)
        prepared = _analyse_samples(name, wave, len(samples) / sample_rate, loaded, options, _Watch())
        return _finish([prepared], loaded, options)[0]


def predict_file(path: str | os.PathLike, model=None, options: PredictOptions = PredictOptions()) -> Prediction:
    """Predict the speaker gender of one recording.

    Parameters
    ----------
    path : an audio file in any format :func:`voicegender.audio.load_audio` decodes. Files longer than
        :data:`STREAM_ABOVE_S` (or decoding to more than :data:`MAX_DECODE_BYTES`) are streamed: memory holds a
        block of audio and a few chunks of speech, whatever the file's length.
    model : None (the shipped default model), a checkpoint path, or a loaded model.
    options : threshold, minimum speech (seconds), VAD on/off, speaking time.

    Returns
    -------
    Prediction with label "female" / "male" / "no_speech".

    Raises
    ------
    AudioDecodeError naming the file when it cannot be decoded (use :func:`predict_files` for error rows; only
    those have the decode watchdog).
    """
    loaded = load_model(model)
    with blas_single_thread(), torch_threads(options.torch_threads):
        return _finish([_analyse_file(path, loaded, options, _Watch())], loaded, options)[0]


# --- many files: worker threads with a watchdog -------------------------------------------------------------------
# A batch's speech is scored by the worker threads, in parts of at least this many clips: the GE2E encoder runs
# one 1.6 s window per short clip, and onnxruntime's LSTM costs 5.3 ms per window one at a time but 2.3-2.6 ms
# from 4 windows on (1 thread; 8: 2.6, 16: 2.5, 32: 2.6, 64: 2.5 ms).
SCORE_PART_MIN = 8


def _score_part(loaded, waves: list[np.ndarray], watch: _Watch) -> tuple[np.ndarray, np.ndarray | None]:
    return score_voices(loaded, waves)


def _score_batch(loaded, waves: list[np.ndarray], workers: _Workers | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`score_voices` of a batch, split over the worker threads for models with a ``score`` method.

    Why: the thread waiting for the batch scoring it was the bottleneck: the encoder (2.5 ms per clip) took one
    core while the workers, done with the next batches, idled. 1,024 AudioMNIST-AZ clips in-process on 2 cores:
    3.4-3.5 s with the model in the waiting thread, 2.6-2.9 s split over the workers (three alternating runs, load
    0.7-1.2). The parts go before waiting decodes (``urgent``) and no thread is added: each core runs one task
    (onnxruntime on 1 intra-op thread; two sessions side by side lose 2-6 % per window, measured). A ``score``
    method (:class:`VoiceModel`) scores each clip on its own, so the parts give the answers of one call (to 1e-16);
    other models (checkpoints, plain scorers, which may batch clips together) keep one call in this thread. When
    every worker is stuck on a file the watchdog gave up, a part still waiting is scored here.
    """
    parts = 1 if workers is None or not hasattr(loaded, "score") else min(workers.size, len(waves) // SCORE_PART_MIN)
    if parts <= 1:
        return score_voices(loaded, waves)
    from .embeddings import PARTIAL_SAMPLES

    # equal work per part: the encoder's windows grow with the clip's length (short clips are one window)
    cost = np.cumsum([max(len(w), PARTIAL_SAMPLES) for w in waves])
    cuts = [0, *np.searchsorted(cost, cost[-1] * np.arange(1, parts) / parts).tolist(), len(waves)]
    spans = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    futures = [workers.submit(_score_part, loaded, waves[a:b], urgent=True)[0] for a, b in spans]
    results = []
    for future, (a, b) in zip(futures, spans, strict=True):
        while True:
            try:
                results.append(future.result(timeout=0.5))
                break
            except FutureTimeout:
                if workers.exhausted and future.cancel():
                    results.append(score_voices(loaded, waves[a:b]))
                    break
    female = np.concatenate([r[0] for r in results])
    child = None if any(r[1] is None for r in results) else np.concatenate([r[1] for r in results])
    return female, child


class _Workers:
    """Daemon threads decoding files; a file that makes no progress is given up and its thread replaced.

    Python cannot stop a thread. A worker whose file was given up stops at its next progress report (every block,
    PyAV frame, or step of the analysis): memory is freed and the thread leaves, since a new one took its place.
    A decoder stuck inside one C call (libsndfile, FFmpeg, soxr) never reports: its thread keeps running, with
    the memory it holds, until that call returns. Such threads are daemons (they do not keep the process alive
    at exit, unlike ThreadPoolExecutor's, which are joined), at most :data:`MAX_STUCK_DECODES` are replaced per
    run, and once every worker is stuck the files still waiting are answered error instead of waiting forever.
    """

    def __init__(self, workers: int, max_stuck: int | None = None) -> None:
        # (priority, order, task): scoring (0) before decoding (1) before the stop signal (2), else first come
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self.size = workers
        self._lock = threading.Lock()
        self._serving = 0  # threads taking tasks
        self._stuck = 0  # threads busy with a given-up task
        self._replaced = 0
        self._max_stuck = MAX_STUCK_DECODES if max_stuck is None else max_stuck
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        self._serving += 1
        threading.Thread(target=self._run, name="voicegender-decode", daemon=True).start()

    def submit(self, fn: Callable[..., object], *args, urgent: bool = False) -> tuple[Future, _Watch]:
        """Run ``fn(*args, watch)`` on a worker; ``urgent`` tasks go before every waiting non-urgent one."""
        future: Future = Future()
        watch = _Watch()
        self._tasks.put((0 if urgent else 1, next(self._order), (future, watch, fn, args)))
        return future, watch

    def _run(self) -> None:
        while (task := self._tasks.get()[2]) is not None:
            future, watch, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            watch.begin()
            try:
                future.set_result(fn(*args, watch))
            except BaseException as e:  # _Abandoned, or a bug: the waiting thread re-raises it (unless it gave up)
                future.set_exception(e)
            with self._lock:
                if watch.abandoned:
                    self._stuck -= 1
                    if watch.replaced:  # a new thread took this one's place
                        return
                    self._serving += 1

    def give_up(self, future: Future, watch: _Watch) -> bool:
        """Abandon a running task (False if it finished meanwhile); replace its thread while allowed."""
        with self._lock:
            if future.done():
                return False
            watch.abandoned = True
            self._serving -= 1
            self._stuck += 1
            if self._replaced < self._max_stuck:
                self._replaced += 1
                watch.replaced = True
                self._spawn()
            return True

    @property
    def exhausted(self) -> bool:
        """Every thread is stuck and none may be added: waiting tasks would never start."""
        return self._serving <= 0

    def close(self, pending: Iterable[Future] = ()) -> None:
        for future in pending:
            future.cancel()
        with self._lock:
            for _ in range(self._serving + self._stuck):
                self._tasks.put((2, next(self._order), None))


def _wait(future: Future, watch: _Watch, path: str, workers: _Workers, timeout_s: float) -> _Prepared:
    """The worker's answer for ``path``, or an error row once its decoding made no progress for ``timeout_s``."""
    poll = min(1.0, timeout_s / 4) if timeout_s > 0 else None
    while True:
        try:
            return future.result(timeout=poll)
        except FutureTimeout:
            pass
        if watch.last is not None and time.monotonic() - watch.last > timeout_s and workers.give_up(future, watch):
            log.warning("%s: decoding made no progress for %g s; given up", path, timeout_s)
            return _Prepared(path, error=f"{path}: decoding made no progress for {timeout_s:g} s; gave up "
                                         "(a corrupt or hostile file?)")
        if watch.last is None and workers.exhausted and future.cancel():
            return _Prepared(path, error=f"{path}: not decoded: every decoder thread is stuck on an earlier file")


def iter_predictions(paths: Iterable[str | os.PathLike], model=None, options: PredictOptions = PredictOptions(),
                     show_progress: bool = True) -> Iterator[Prediction]:
    """Predictions for many files, in input order, as each batch finishes; a bad file gives an "error" row.

    Decoding and speech detection run in worker threads (soundfile, soxr and onnxruntime release the GIL),
    :data:`AHEAD_BATCHES` batches ahead; the speech of ``options.batch_size`` files is then scored together, in
    parts on the same workers for a :class:`~voicegender.default_model.VoiceModel` (:func:`_score_batch`), else in
    one call on ``options.torch_threads`` threads (speech longer than one chunk is scored by its worker). A file whose
    decoding makes no progress for ``options.decode_timeout_s`` seconds becomes an error row (see
    :class:`_Workers` for the limits of giving up a thread).
    """
    from .progress import progress

    paths = list(paths)
    loaded = load_model(model)
    n_workers = options.workers or min(4, os.cpu_count() or 1)
    batches = [paths[i:i + options.batch_size] for i in range(0, len(paths), options.batch_size)]
    bar = progress(range(len(paths)), desc="predict", unit="file") if show_progress else iter(range(len(paths)))
    workers = _Workers(n_workers)
    pending: list[tuple[str, Future, _Watch]] = []
    try:
        with blas_single_thread(), torch_threads(options.torch_threads):

            def submit(batch: list) -> list[tuple[str, Future, _Watch]]:
                return [(str(p), *workers.submit(_prepare, p, loaded, options)) for p in batch]

            ahead: list[list[tuple[str, Future, _Watch]]] = [submit(b) for b in batches[:AHEAD_BATCHES]]
            for k in range(len(batches)):
                current = ahead.pop(0)
                pending = [t for b in ahead for t in b] + current
                prepared = [_wait(f, w, p, workers, options.decode_timeout_s) for p, f, w in current]
                # decode and detect speech in the next batches while the model scores this one
                if k + AHEAD_BATCHES < len(batches):
                    ahead.append(submit(batches[k + AHEAD_BATCHES]))
                pending = [t for b in ahead for t in b]
                for prediction in _finish(prepared, loaded, options, workers):
                    next(bar, None)
                    yield prediction
    finally:
        workers.close(f for _, f, _ in pending)
    for _ in bar:  # close the bar
        pass


def predict_files(paths: Iterable[str | os.PathLike], model=None, options: PredictOptions = PredictOptions(),
                  show_progress: bool = True) -> list[Prediction]:
    """:func:`iter_predictions` as a list."""
    return list(iter_predictions(paths, model, options, show_progress))


# --- which files ------------------------------------------------------------------------------------------------
_GLOB_CHARS = set("*?[")


def expand_paths(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files from files, folders (searched recursively for audio extensions) and glob patterns, in order.

    A path that does not exist (or a pattern matching nothing) is kept as it is, so that it becomes an error
    row naming it instead of silently disappearing.
    """
    from glob import glob

    from .audio import AUDIO_EXTENSIONS

    out: list[str] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                log.warning("%s: no audio files (%s) in this folder", p, ", ".join(AUDIO_EXTENSIONS))
            out.extend(found)
        elif not p.exists() and _GLOB_CHARS & set(text):
            matches = sorted(m for m in glob(text, recursive=True) if Path(m).is_file())
            out.extend(matches if matches else [text])
        else:
            out.append(text)
    return out


def classified_speech(samples16k: np.ndarray, options: PredictOptions = PredictOptions()) -> tuple[np.ndarray, float]:
    """What ``predict`` classifies in a 16 kHz recording: its detected speech (concatenated) and its seconds.

    ``voicegender fit`` builds its training copies with this, so a head learns from exactly what it is shown.
    """
    return _speech(np.asarray(samples16k, np.float32), options)
