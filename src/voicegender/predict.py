"""Predict the speaker gender of recordings: decode → 16 kHz → speech detection → model → calibrated p_female.

Only speech is classified: the speech regions the VAD finds are concatenated and scored as one clip (speech
longer than :data:`MAX_CHUNK_S` is scored in chunks whose logits are averaged, weighted by duration). A file with
less than ``min_speech_s`` of speech is answered ``no_speech`` (``p_female`` None) instead of a guess.

Concatenation rather than scoring fixed windows: every model kind takes variable-length input (the GE2E
encoder reads 1.6 s windows itself; the CNNs pool over time), pauses carry no gender information, and one
forward pass per file is the cheapest way to batch many short clips.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import load_audio, resample, stream_audio
from .errors import VoiceGenderError
from .vad import (
    VAD_SAMPLE_RATE,
    WARMUP_S,
    VadConfig,
    find_speech,
    looks_tonal,
    speech_only,
    speech_seconds,
    stream_speech,
)

log = logging.getLogger(__name__)

LABELS = ("female", "male", "no_speech", "error")
FIELDS = ("path", "label", "p_female", "p_child", "duration_s", "speech_s")  # the JSON/CSV contract (+ "error")
MIN_SPEECH_S = 0.15  # less speech than this (seconds) -> no_speech (a short word; see PREDICT_VAD)
MAX_CHUNK_S = 15.0  # speech longer than this is scored in chunks of at most this many seconds
STREAM_ABOVE_S = 300.0  # longer files (by their header) are streamed: only speech is held in memory
STREAM_ABOVE_BYTES = 20_000_000  # the same for files whose header soundfile cannot read (m4a, webm, ...)
STREAM_BLOCK_S = 10.0  # seconds decoded at a time when streaming (48 kHz stereo: ~14 MB peak)
P_CLIP = 1e-6  # probabilities are clipped to [P_CLIP, 1 - P_CLIP] before averaging logits


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

    def as_dict(self) -> dict:
        """The output record: exactly :data:`FIELDS`, plus ``error`` on error rows; floats rounded."""
        d = {
            "path": self.path,
            "label": self.label,
            "p_female": None if self.p_female is None else round(float(self.p_female), 4),
            "p_child": None if self.p_child is None else round(float(self.p_child), 4),
            "duration_s": None if self.duration_s is None else round(float(self.duration_s), 3),
            "speech_s": None if self.speech_s is None else round(float(self.speech_s), 3),
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
    (GE2E: 69 ms vs 23 ms).
    """
    if n <= 0:
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
        from .default_model import p_female

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
    """A recording after decoding and speech detection, waiting for the model."""

    path: str
    duration_s: float | None = None
    speech: np.ndarray | None = None
    speech_s: float | None = None
    error: str | None = None


def _is_long(path: Path) -> bool:
    try:
        info = sf.info(str(path))
        if info.frames > 0:
            return info.frames / info.samplerate > STREAM_ABOVE_S
    except (sf.LibsndfileError, RuntimeError):
        pass
    return path.stat().st_size > STREAM_ABOVE_BYTES


def _load_speech(path: str | os.PathLike, options: PredictOptions) -> tuple[float, np.ndarray, float]:
    """(duration, speech samples at 16 kHz, speech seconds) of a file; long files are streamed."""
    path = Path(path)
    if options.vad and path.is_file() and path.stat().st_size > 0 and _is_long(path):
        speech, segments, duration = stream_speech(stream_audio(path, VAD_SAMPLE_RATE, STREAM_BLOCK_S),
                                                   options.vad_config)
        if looks_tonal(speech):  # as find_speech (no second pass: a file this long rarely holds < 0.15 s)
            return duration, np.zeros(0, np.float32), 0.0
        return duration, speech, speech_seconds(segments)
    audio = load_audio(path, sr=VAD_SAMPLE_RATE)
    speech, speech_s = _speech(audio.samples, options)
    return audio.duration_s, speech, speech_s


def _prepare(path: str | os.PathLike, options: PredictOptions) -> _Prepared:
    name = str(path)
    try:
        duration, speech, speech_s = _load_speech(path, options)
    except VoiceGenderError as e:
        return _Prepared(name, error=str(e))
    except (OSError, ValueError, RuntimeError, MemoryError) as e:  # anything else a strange file can raise
        log.debug("unexpected error on %s", name, exc_info=True)
        return _Prepared(name, error=f"{name}: {type(e).__name__}: {e}")
    return _Prepared(name, duration, speech, speech_s)


def _finish(batch: list[_Prepared], loaded, options: PredictOptions) -> list[Prediction]:
    """Score the batch's speech in one model call and build the predictions (input order)."""
    todo = [i for i, r in enumerate(batch) if r.error is None and r.speech_s >= options.min_speech_s]
    female, child = score_voices(loaded, [batch[i].speech for i in todo]) if todo else (np.zeros(0), None)
    probs = {i: k for k, i in enumerate(todo)}
    out = []
    for i, r in enumerate(batch):
        if r.error is not None:
            out.append(Prediction(r.path, "error", None, None, None, r.error))
        elif i in probs:
            p = float(female[probs[i]])
            pc = None if child is None else float(child[probs[i]])
            out.append(Prediction(r.path, _label(p, options), p, r.duration_s, r.speech_s, p_child=pc))
        else:
            out.append(Prediction(r.path, "no_speech", None, r.duration_s, r.speech_s))
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
        speech, speech_s = _speech(wave, options)
        prepared = _Prepared(name, len(samples) / sample_rate, speech, speech_s)
        return _finish([prepared], loaded, options)[0]


def predict_file(path: str | os.PathLike, model=None, options: PredictOptions = PredictOptions()) -> Prediction:
    """Predict the speaker gender of one recording.

    Parameters
    ----------
    path : an audio file in any format :func:`voicegender.audio.load_audio` decodes. Files longer than
        :data:`STREAM_ABOVE_S` are streamed through the speech detector: memory holds their speech, not the file.
    model : None (the shipped default model), a checkpoint path, or a loaded model.
    options : threshold, minimum speech (seconds), VAD on/off.

    Returns
    -------
    Prediction with label "female" / "male" / "no_speech".

    Raises
    ------
    AudioDecodeError naming the file when it cannot be decoded (use :func:`predict_files` for error rows).
    """
    loaded = load_model(model)
    with blas_single_thread(), torch_threads(options.torch_threads):
        duration, speech, speech_s = _load_speech(path, options)
        return _finish([_Prepared(str(path), duration, speech, speech_s)], loaded, options)[0]


def iter_predictions(paths: Iterable[str | os.PathLike], model=None, options: PredictOptions = PredictOptions(),
                     show_progress: bool = True) -> Iterator[Prediction]:
    """Predictions for many files, in input order, as each batch finishes; a bad file gives an "error" row.

    Decoding and speech detection run in a thread pool (soundfile, soxr and onnxruntime release the GIL), one
    batch ahead; the speech of ``options.batch_size`` files then goes through the model in one call, on
    ``options.torch_threads`` threads.
    """
    from .progress import progress

    paths = list(paths)
    loaded = load_model(model)
    workers = options.workers or min(4, os.cpu_count() or 1)
    batches = [paths[i:i + options.batch_size] for i in range(0, len(paths), options.batch_size)]
    bar = progress(range(len(paths)), desc="predict", unit="file") if show_progress else iter(range(len(paths)))
    with ThreadPoolExecutor(max_workers=workers) as pool, blas_single_thread(), torch_threads(options.torch_threads):

        def submit(batch: list) -> list:
            return [pool.submit(_prepare, p, options) for p in batch]

        pending = submit(batches[0]) if batches else []
        for k in range(len(batches)):
            prepared = [f.result() for f in pending]
            # decode and detect speech in the next batch while the model scores this one
            pending = submit(batches[k + 1]) if k + 1 < len(batches) else []
            for prediction in _finish(prepared, loaded, options):
                next(bar, None)
                yield prediction
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
