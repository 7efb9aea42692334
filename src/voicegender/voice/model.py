"""What scores speech: the one interface every model kind implements (:class:`Model`) and scoring speech of any
length with it (:func:`score_speech`). :func:`voicegender.voice.loading.load_model` gives a Model from a file.

Two kinds implement :class:`Model`: the shipped kind, a GE2E voice head (:class:`voicegender.voice.default_model
.VoiceModel`, numpy and onnxruntime), and the networks ``voicegender train`` writes (``.pt`` checkpoints, torch;
:class:`voicegender.research.models.LoadedModel`). ``predict``, ``segment``, the web page and ``explain`` see only
this interface. A plain function from speech clips to p_female is wrapped as a :class:`ScorerModel` (tests and
experiments plug in their own scorers that way).

"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000  # Hz: the rate speech is handed to :meth:`Model.score` at
GENDERS = ("female", "male")  # what a model tells apart; p_female is the probability of the first
MAX_CHUNK_S = 15.0  # speech longer than this is scored in chunks of at most this many seconds
P_CLIP = 1e-6  # probabilities are clipped to [P_CLIP, 1 - P_CLIP] before averaging logits
# A batch split over threads (score_parts) is cut in parts of at least this many clips: the GE2E encoder runs one
# 1.6 s window per short clip, and onnxruntime's LSTM costs 5.3 ms per window one at a time but 2.3-2.6 ms from 4
# windows on (1 thread; 8: 2.6, 16: 2.5, 32: 2.6, 64: 2.5 ms).
SCORE_PART_MIN = 8


@dataclass
class Scores:
    """What a model says about speech clips."""

    p_female: np.ndarray  # calibrated probability of a female voice, per clip
    p_child: np.ndarray | None = None  # probability of a child's voice (aged 12 or younger); None: not estimated
    # a voice embedding per clip (n, d), rows L2-normalised, when the model makes one on the way (the shipped kind:
    # GE2E, 256-d); the timeline finds speaker changes with it. None: the model makes none
    embeddings: np.ndarray | None = None


@runtime_checkable
class Model(Protocol):
    """A model that tells a speaker's gender from speech (16 kHz float32 clips holding speech only)."""

    name: str  # how the model is called (in the web page, /api/health, reports)
    version: str  # the model's own version (the shipped model's, or the voicegender version that wrote a checkpoint)
    metadata: dict  # what the file says of itself: recipe, training corpora, metrics, ...
    # speech samples -> is it speech? Asked about what only the lenient passes of speech detection found; None: none
    speech_check: Callable[[np.ndarray], bool] | None
    # score() answers each clip on its own, so a batch may be split over threads and give the same answers
    scores_clips_apart: bool

    def score(self, waves16k: Sequence[np.ndarray]) -> Scores:
        """Calibrated p_female (and p_child, where the model estimates it) of each speech clip."""
        ...


class ScorerModel:
    """A plain function from a list of 16 kHz speech clips to their p_female, as a :class:`Model`."""

    speech_check = None
    scores_clips_apart = False

    def __init__(self, scorer: Callable[[list[np.ndarray]], np.ndarray], name: str | None = None) -> None:
        self.scorer = scorer
        self.name = name or getattr(scorer, "__name__", "scorer")
        self.version = ""
        self.metadata: dict = {}

    def score(self, waves16k: Sequence[np.ndarray]) -> Scores:
        return Scores(np.asarray(self.scorer(list(waves16k)), np.float64).reshape(-1))


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities clipped to [P_CLIP, 1 - P_CLIP]."""
    p = np.clip(np.asarray(p, np.float64), P_CLIP, 1 - P_CLIP)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    """Probability of log-odds ``z``."""
    return 1 / (1 + np.exp(-z))


def weighted_log_odds(log_odds: np.ndarray, weights: np.ndarray) -> float:
    """One voice's log-odds from those of its pieces: their mean weighted by each piece's speech (seconds, or a
    share of a window). Both callers pool a speaker this way: its windows in a recording
    (:func:`voicegender.listen.speakers.speakers_of`) and its clips in a corpus
    (:func:`voicegender.listen.speaker_answers.pool_speakers`). 0.0 (even odds) when nothing weighs."""
    log_odds, weights = np.asarray(log_odds, np.float64), np.asarray(weights, np.float64)
    if not len(log_odds) or weights.sum() <= 0:
        return 0.0
    return float(np.average(log_odds, weights=weights))


def score_parts(waves16k: Sequence[np.ndarray], parts: int) -> list[tuple[int, int]]:
    """``waves16k`` cut into at most ``parts`` consecutive (start, end) spans of about equal encoder work (the
    GE2E encoder's windows grow with a clip's length; a clip shorter than a window costs one), for scoring them
    on as many threads by a model that scores each clip on its own (:attr:`Model.scores_clips_apart`)."""
    from .embeddings import PARTIAL_SAMPLES

    if not len(waves16k):
        return []
    cost = np.cumsum([max(len(w), PARTIAL_SAMPLES) for w in waves16k])
    cuts = [0, *np.searchsorted(cost, cost[-1] * np.arange(1, max(1, parts)) / max(1, parts)).tolist(),
            len(waves16k)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def joined_scores(parts: Sequence[Scores]) -> Scores:
    """The :class:`Scores` of consecutive parts of a batch as one (p_child and embeddings only when every part has
    them)."""
    female = np.concatenate([r.p_female for r in parts])
    child = None if any(r.p_child is None for r in parts) else np.concatenate([r.p_child for r in parts])
    emb = None if any(r.embeddings is None for r in parts) else np.concatenate([r.embeddings for r in parts])
    return Scores(female, child, emb)


def score_speech(model: Model, waves16k: Sequence[np.ndarray]) -> Scores:
    """:meth:`Model.score` of speech clips of any length: speech longer than :data:`MAX_CHUNK_S` is scored in equal
    chunks whose logits are averaged, weighted by duration; p_female is clipped to [P_CLIP, 1 - P_CLIP]."""
    chunk = int(MAX_CHUNK_S * SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    owner: list[int] = []
    for i, wave in enumerate(waves16k):
        n_chunks = max(1, -(-len(wave) // chunk))
        for part in np.array_split(wave, n_chunks):  # equal parts: no short leftover chunk
            pieces.append(part)
            owner.append(i)
    if not pieces:
        return Scores(np.zeros(0))
    scores = model.score(pieces)
    female, child, emb = scores.p_female, scores.p_child, scores.embeddings
    if len(pieces) == len(waves16k):
        return Scores(np.clip(np.asarray(female, np.float64), P_CLIP, 1 - P_CLIP),
                      None if child is None else np.asarray(child, np.float64), emb)
    weights = np.array([len(x) for x in pieces], np.float64)
    owner_arr = np.asarray(owner)

    def combine(p: np.ndarray) -> np.ndarray:
        return sigmoid(np.bincount(owner_arr, logit(p) * weights) / np.bincount(owner_arr, weights))

    if emb is not None:  # the duration-weighted mean of the chunks' embeddings, L2-normalised
        sums = np.zeros((len(waves16k), emb.shape[1]))
        np.add.at(sums, owner_arr, emb * weights[:, None])
        emb = (sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
    return Scores(combine(female), None if child is None else combine(child), emb)
