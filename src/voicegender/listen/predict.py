"""Predict the speaker gender of recordings: decode → 16 kHz → speech detection → model → calibrated p_female.

The public entry points: :func:`predict_file`, :func:`predict_waveform`, :func:`predict_files` /
:func:`iter_predictions` (many files, in input order) and :func:`expand_paths`. Behind them:
:mod:`voicegender.listen.prediction` (:class:`Prediction`, :class:`PredictOptions`), :mod:`voicegender.listen.workers`
(worker threads with a decode watchdog: a file whose decoding makes no progress for ``decode_timeout_s`` is answered
``error``), :mod:`voicegender.listen.recording` (one recording: speech detection, streaming of long files in bounded
memory, speaking time) and the model interface (:mod:`voicegender.voice.model`: how speech is scored, long speech
in chunks).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from ..audio.decode import resample
from ..speech.vad import VAD_SAMPLE_RATE
from ..threads import blas_single_thread, torch_threads
from ..voice.loading import load_model
from ..voice.model import Model
from .prediction import Prediction, PredictOptions, Prepared
from .recording import analyse_file, analyse_samples, prepare_file
from .workers import Watch, Workers, score_batch, wait_for

__all__ = ["Prediction", "PredictOptions", "expand_paths", "iter_predictions", "load_model", "predict_file",
           "predict_files", "predict_waveform"]

log = logging.getLogger(__name__)

# batches given to the workers ahead of the one being scored, so that they never wait for it: 1,024 AudioMNIST-AZ
# clips took 5.5 -> 3.5 s in-process when scoring still ran in the waiting thread (one batch ahead, the workers
# idled while it scored); with the scoring on the workers (score_batch) 1 or 2 differ by < 4 %
AHEAD_BATCHES = 2


# --- scores -> answers ---------------------------------------------------------------------------------------------
def _label(p: float, options: PredictOptions) -> str:
    return "female" if p >= options.threshold else "male"


def _attribution(label: str, speech_s: float, female_share: float | None) -> tuple[float, float]:
    """(female_s, male_s): speech_s split by the windows' share, or all of it to the label."""
    if female_share is None:
        return (speech_s, 0.0) if label == "female" else (0.0, speech_s)
    return speech_s * female_share, speech_s * (1 - female_share)


def _finish(batch: list[Prepared], model: Model, options: PredictOptions, workers: Workers | None = None
            ) -> list[Prediction]:
    """Score the batch's short speech (on ``workers`` when given) and build the predictions (input order)."""
    todo = [i for i, r in enumerate(batch)
            if r.error is None and r.scores is None and r.speech_s >= options.min_speech_s]
    scores = score_batch(model, [batch[i].speech for i in todo], workers) if todo else None
    for k, i in enumerate(todo):
        child = scores.p_child
        batch[i].scores = (float(scores.p_female[k]), None if child is None else float(child[k]))
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
                                  male_s=male_s, speakers=r.speakers, timeline=r.timeline))
        else:
            out.append(Prediction(r.path, "no_speech", None, r.duration_s, r.speech_s, female_s=0.0, male_s=0.0))
    return out


def predict_waveform(samples: np.ndarray, sample_rate: int, model=None, options: PredictOptions = PredictOptions(),
                     name: str = "<waveform>") -> Prediction:
    """Predict from float mono samples in [-1, 1] at ``sample_rate`` Hz (any rate; resampled to 16 kHz).

    ``model``: None (the shipped default), a model file, or a loaded model (see :func:`load_model`).
    """
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}; average the channels first")
    model = load_model(model)
    with blas_single_thread(), torch_threads(options.torch_threads):
        wave = resample(samples, sample_rate, VAD_SAMPLE_RATE)
        prepared = analyse_samples(name, wave, len(samples) / sample_rate, model, options, Watch())
        return _finish([prepared], model, options)[0]


def predict_file(path: str | os.PathLike, model=None, options: PredictOptions = PredictOptions()) -> Prediction:
    """Predict the speaker gender of one recording.

    Parameters
    ----------
    path : an audio file in any format :func:`voicegender.audio.decode.load_audio` decodes. Files longer than
        :data:`STREAM_ABOVE_S` (or decoding to more than :data:`MAX_DECODE_BYTES`) are streamed: memory holds a
        block of audio and a few chunks of speech, whatever the file's length.
    model : None (the shipped default model), a model file, or a loaded model (see :func:`load_model`).
    options : threshold, minimum speech (seconds), VAD on/off, speaking time.

    Returns
    -------
    Prediction with label "female" / "male" / "no_speech".

    Raises
    ------
    AudioDecodeError naming the file when it cannot be decoded (use :func:`predict_files` for error rows; only
    those have the decode watchdog).
    """
    model = load_model(model)
    options = _one_recording(options)
    with blas_single_thread(), torch_threads(options.torch_threads):
        return _finish([analyse_file(path, model, options, Watch())], model, options)[0]


def _one_recording(options: PredictOptions) -> PredictOptions:
    """``options`` for predicting a single recording: its timeline (when it is long) scores on two threads unless
    the caller chose (:attr:`PredictOptions.score_threads`)."""
    return options if options.score_threads else dataclasses.replace(options, score_threads=2)


# --- many files ----------------------------------------------------------------------------------------------------
def iter_predictions(paths: Iterable[str | os.PathLike], model=None, options: PredictOptions = PredictOptions(),
                     show_progress: bool = True) -> Iterator[Prediction]:
    """Predictions for many files, in input order, as each batch finishes; a bad file gives an "error" row.

    Decoding and speech detection run in worker threads (soundfile, soxr and onnxruntime release the GIL),
    :data:`AHEAD_BATCHES` batches ahead; the speech of ``options.batch_size`` files is then scored together, in
    parts on the same workers for a :class:`~voicegender.voice.default_model.VoiceModel`
    (:func:`voicegender.listen.workers.score_batch`), else in one call on ``options.torch_threads`` threads
    (speech longer than one chunk is scored by its worker). A file whose decoding makes no progress for
    ``options.decode_timeout_s`` seconds becomes an error row (see :class:`voicegender.listen.workers.Workers`
    for the limits of giving up a thread).
    """
    from ..progress import progress

    paths = list(paths)
    model = load_model(model)
    if len(paths) == 1:
        options = _one_recording(options)
    n_workers = options.workers or min(4, os.cpu_count() or 1)
    batches = [paths[i:i + options.batch_size] for i in range(0, len(paths), options.batch_size)]
    bar = progress(range(len(paths)), desc="predict", unit="file") if show_progress else iter(range(len(paths)))
    workers = Workers(n_workers)
    pending: list[tuple[str, Future, Watch]] = []
    try:
        with blas_single_thread(), torch_threads(options.torch_threads):

            def submit(batch: list) -> list[tuple[str, Future, Watch]]:
                return [(str(p), *workers.submit(prepare_file, p, model, options)) for p in batch]

            ahead: list[list[tuple[str, Future, Watch]]] = [submit(b) for b in batches[:AHEAD_BATCHES]]
            for k in range(len(batches)):
                current = ahead.pop(0)
                pending = [t for b in ahead for t in b] + current
                prepared = [wait_for(f, w, p, workers, options.decode_timeout_s) for p, f, w in current]
                # decode and detect speech in the next batches while the model scores this one
                if k + AHEAD_BATCHES < len(batches):
                    ahead.append(submit(batches[k + AHEAD_BATCHES]))
                pending = [t for b in ahead for t in b]
                for prediction in _finish(prepared, model, options, workers):
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


# --- which files ---------------------------------------------------------------------------------------------------
_GLOB_CHARS = set("*?[")


def expand_paths(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files from files, folders (searched recursively for audio extensions) and glob patterns, in order.

    A path that does not exist (or a pattern matching nothing) is kept as it is, so that it becomes an error
    row naming it instead of silently disappearing.
    """
    from glob import glob

    from ..audio.decode import AUDIO_EXTENSIONS, audio_files

    out: list[str] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(str(f) for f in audio_files(p))
            if not found:
                log.warning("%s: no audio files (%s) in this folder", p, ", ".join(AUDIO_EXTENSIONS))
            out.extend(found)
        elif not p.exists() and _GLOB_CHARS & set(text):
            matches = sorted(m for m in glob(text, recursive=True) if Path(m).is_file())
            out.extend(matches if matches else [text])
        else:
            out.append(text)
    return out

