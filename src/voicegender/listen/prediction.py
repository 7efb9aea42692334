"""What a prediction is, and how speech becomes calibrated probabilities: the types and scoring that
:mod:`voicegender.listen.predict` and its helpers (:mod:`voicegender.listen.recording`,
:mod:`voicegender.listen.workers`) share.

Only speech is classified: the speech regions the VAD finds are concatenated and scored as one clip (speech
longer than :data:`MAX_CHUNK_S` is scored in chunks whose logits are averaged, weighted by duration). A file with
less than ``min_speech_s`` of speech is answered ``no_speech`` (``p_female`` None) instead of a guess.

Concatenation rather than scoring fixed windows: every model kind takes variable-length input (the GE2E
encoder reads 1.6 s windows itself; the CNNs pool over time), pauses carry no gender information, and one
forward pass per file is the cheapest way to batch many short clips.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..speech.vad import VAD_SAMPLE_RATE, WARMUP_S, VadConfig, find_speech, speech_only, speech_seconds

LABELS = ("female", "male", "no_speech", "error")
# the JSON/CSV contract (+ "error")
FIELDS = ("path", "label", "p_female", "p_child", "duration_s", "speech_s", "female_s", "male_s")
MIN_SPEECH_S = 0.15  # less speech than this (seconds) -> no_speech (a short word; see PREDICT_VAD)
MAX_CHUNK_S = 15.0  # speech longer than this is scored in chunks of at most this many seconds
P_CLIP = 1e-6  # probabilities are clipped to [P_CLIP, 1 - P_CLIP] before averaging logits
# female_s / male_s come from segment's windows when there is more speech than this (seconds); below, all speech
# is given to the predicted label: 2 s turns are the shortest the timeline keeps, so 8 s holds a few of them. The
# windows (1.5 s every 0.5 s: 3 s of model input per second of speech) are the cost. Measured with the shipped
# model on 2 busy cores (benchmarks/long_audio.py --cost, load 1.7-2.8): 3 and 6 s clips unchanged (15-44 ms per
# file, below the threshold); 12 s clips 47-56 -> 91-101 ms; 30 s clips 71-174 -> 384-528 ms; a 1 h conversation
# 15 s -> 37 s (load 3.8).
SPEAKING_TIME_ABOVE_S = 8.0
DECODE_TIMEOUT_S = 60.0  # a file whose decoding makes no progress for this long (seconds) is given up: error row


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

    A model is a :class:`voicegender.research.models.LoadedModel` or any callable mapping a list of 16 kHz speech
    arrays to an array of calibrated p_female (tests and experiments plug in their own scorers this way).
    """
    if model is None:
        from ..voice.default_model import load_default_model  # torch: imported on first use

        return load_default_model()
    if isinstance(model, (str, os.PathLike)):
        from ..voice.model_files import is_voice_head_file

        if is_voice_head_file(model):  # a voice head written by `voicegender fit`, whatever its name
            from ..voice.default_model import load_voice_model

            return load_voice_model(model)
        from ..research.models import load_checkpoint

        return load_checkpoint(Path(model))
    return model


def score_speech(loaded, waves16k: Sequence[np.ndarray]) -> np.ndarray:
    """Calibrated p_female of each speech clip (16 kHz), long clips scored in chunks (logits averaged).

    ``loaded``: a LoadedModel (scored by :func:`voicegender.voice.default_model.p_female`), a VoiceModel or a scorer
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
        from ..research.scoring import p_female

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


def _speech(samples16k: np.ndarray, options: PredictOptions, loaded=None) -> tuple[np.ndarray, float]:
    """The speech to classify and its duration in seconds; a model with a speech check (``loaded.is_speech``)
    confirms speech that only the lenient passes of :func:`find_speech` found."""
    if not options.vad:
        return samples16k, len(samples16k) / VAD_SAMPLE_RATE
    check = loaded.is_speech if getattr(loaded, "has_speech_check", False) else None
    segments = find_speech(samples16k, options.vad_config, options.min_speech_s, check=check)
    return speech_only(samples16k, segments), speech_seconds(segments)


def classified_speech(samples16k: np.ndarray, options: PredictOptions = PredictOptions()) -> tuple[np.ndarray, float]:
    """What ``predict`` classifies in a 16 kHz recording: its detected speech (concatenated) and its seconds.

    ``voicegender fit`` builds its training copies with this, so a head learns from what it is shown (without a
    model, so without the speech check that confirms what only the lenient passes of speech detection find).
    """
    return _speech(np.asarray(samples16k, np.float32), options)


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
