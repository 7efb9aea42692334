"""Speaker changes placed to the frame: once the speakers are known, each change between two of them moves to where
the sound of one voice gives way to the other's.

The change detector (:func:`voicegender.listen.speakers.change_points`) compares 1.5 s windows every 0.5 s, so a
change it finds is 0.2-0.3 s off on average; frames on the wrong side take the other speaker's gender. Here each
change is looked at again frame by frame, in the same second read of the audio that feeds the speaker encoder:

1. Around every change (+- :data:`REACH_S`) the cepstrum of each 10 ms frame (the log-mel filterbank the speaker
   encoder reads, :mod:`voicegender.voice.fbank`, through a DCT; c0, the loudness, left out).
2. Each speaker's voice is a diagonal Gaussian over the cepstra of the frames :data:`FAR_S` or more from its
   changes, on its side (the sums are kept per change, so nothing is held but the frames near the change).
3. The change moves, within +- :data:`REACH_S`, to the split where the frames before it are most the first
   speaker's and those after it the second's (summed per-frame log-likelihood ratios); where silence makes many
   splits equally good, to the middle of them.

Development conversations (100 mixes, seed 1000, the speakers found by the pipeline), speech-frame gender accuracy
before → after: clean 0.919 → 0.934, cross-talk 0.911 → 0.931, babble 0.842 → 0.865, telephone 0.896 → 0.909,
music 0.924 → 0.930; moving every change the pipeline matched with a true one exactly onto it would give 0.935,
0.931, 0.869, 0.914, 0.937. Pitch alone instead of cepstra: +0.6, +1.5, +1.3, -0.2, -0.2 points (music and noise
fool the pitch tracker); models of the two turns' own frames instead of the speakers': about two thirds of the
gain. Costs ~1 ms of log-mel per change (the filterbank runs at ~1,400x real time) and ~1.5 kB per change (cepstra
kept as int8, in :class:`ChangesHeard`) until the speakers are known.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..voice.fbank import HOP, N_MELS, SAMPLE_RATE, log_mel

REACH_S = 0.6  # a change moves at most this far, and the frames this near it are kept
FAR_S = 0.3  # frames at least this far from a change (on its side) describe the speaker
N_CEPSTRA = 19  # c1..c19 of the 80-band log-mel
KEEP_EVERY = 2  # frames kept near a change: every 20 ms (the move is scored at that resolution)
FRAME_S = KEEP_EVERY * HOP / SAMPLE_RATE  # seconds between kept frames
ACTIVE_DB = 25.0  # frames this far below the neighbourhood's loud ones (90th percentile) are silence: no evidence
SILENCE_DB = -50.0  # nor frames whose loudest band is below this (log-mel dB; digital silence is -100)
LLR_CLIP = 20.0  # one frame's log-likelihood ratio counts at most this
LLR_WEIGHT = 0.1  # the frames of a voice are not independent: their summed evidence is damped by this
TIE = 0.5  # splits whose score is within this of the best are equally good (silence between two voices) ...
TIE_MAX_S = 0.6  # ... and the middle of them is taken when they span less than this
MIN_TURN_S = 0.2  # a moved change leaves at least this much of either turn
MIN_FRAMES = 30  # a speaker needs this many far frames to be described
STD_FLOOR = 1e-3
N_STATS = 1 + 2 * N_CEPSTRA  # [n, sums, sums of squares]


@functools.cache
def _dct() -> np.ndarray:
    """(80, N_CEPSTRA) orthonormal DCT-II rows 1..N_CEPSTRA (c0 left out)."""
    n = np.arange(N_MELS)
    k = np.arange(1, N_CEPSTRA + 1)
    return (np.sqrt(2.0 / N_MELS) * np.cos(np.pi * k[None, :] * (2 * n[:, None] + 1) / (2 * N_MELS))).astype(np.float32)


def cepstra(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, N_CEPSTRA) cepstra of 16 kHz ``samples``, one every 10 ms (the speaker encoder's log-mel through a
    DCT, c0 left out), and which frames are loud enough to be a voice (within :data:`ACTIVE_DB` of the loud ones
    and above :data:`SILENCE_DB`)."""
    mel = log_mel(samples)
    loudest = mel.max(axis=1)
    active = (loudest >= np.percentile(loudest, 90) - ACTIVE_DB) & (loudest >= SILENCE_DB)
    return mel @ _dct(), active


def cepstral_statistics(cep: np.ndarray) -> np.ndarray:
    """Sufficient statistics [n, sums..., sums of squares...] (float32, :data:`N_STATS`) of some frames' cepstra:
    what :meth:`Voice.of` reads; statistics of several stretches of one voice add up."""
    x = np.asarray(cep, np.float64)
    return np.concatenate([[len(x)], x.sum(axis=0), (x * x).sum(axis=0)]).astype(np.float32)


@dataclass
class ChangeEvidence:
    """What the second read keeps of one change's neighbourhood."""

    first_s: float  # time of the first kept frame relative to the change (they follow every FRAME_S)
    cepstra_int8: np.ndarray  # (kept frames, N_CEPSTRA) cepstra / scale, rounded: 1.2 kB a change
    scale: float
    active: np.ndarray  # bool per kept frame: loud enough to be a voice
    before: np.ndarray  # sufficient statistics [n, sum..., sum of squares...] of the far frames before the change
    after: np.ndarray  # the same after it

    @property
    def cepstra(self) -> np.ndarray:
        """(kept frames, N_CEPSTRA) float64 (within half a step of :attr:`scale` of the filterbank's)."""
        return self.cepstra_int8.astype(np.float64) * self.scale


MAX_KEPT = (1 + 2 * int(REACH_S * SAMPLE_RATE) // HOP + KEEP_EVERY - 1) // KEEP_EVERY  # kept frames of a change


class ChangesHeard:
    """The :class:`ChangeEvidence` of up to ``n`` changes, each kept (by its first turn's index) in rows of arrays
    made once: ~1.5 kB a change (10 h of conversation, ~10,000 changes: 15 MB), where as many objects took ~2.5 kB
    and scattered the heap while the audio was read."""

    def __init__(self, n: int) -> None:
        self.turn = np.full(n, -1, np.int64)  # the first turn's index, -1 where nothing was kept
        self.first_s = np.zeros(n, np.float32)
        self.scale = np.zeros(n, np.float32)
        self.frames = np.zeros(n, np.int16)  # kept frames (fewer near the audio's ends)
        self.cepstra = np.zeros((n, MAX_KEPT, N_CEPSTRA), np.int8)
        self.active = np.zeros((n, MAX_KEPT), bool)
        self.stats = np.zeros((n, 2, N_STATS), np.float32)  # before, after

    def keep(self, row: int, turn: int, evidence: ChangeEvidence) -> None:
        """Keep ``evidence`` of the change after turn ``turn`` in row ``row``."""
        k = len(evidence.cepstra_int8)
        self.turn[row], self.first_s[row], self.scale[row], self.frames[row] = turn, evidence.first_s, \
            evidence.scale, k
        self.cepstra[row, :k], self.active[row, :k] = evidence.cepstra_int8, evidence.active
        self.stats[row] = evidence.before, evidence.after

    def __len__(self) -> int:
        return int(np.count_nonzero(self.turn >= 0))

    def items(self) -> Iterator[tuple[int, ChangeEvidence]]:
        """(turn index, evidence) of every change kept, in turn order."""
        for row in np.argsort(self.turn, kind="stable"):
            if self.turn[row] >= 0:
                k = int(self.frames[row])
                yield int(self.turn[row]), ChangeEvidence(float(self.first_s[row]), self.cepstra[row, :k],
                                                          float(self.scale[row]), self.active[row, :k],
                                                          self.stats[row, 0], self.stats[row, 1])


def neighbourhood(change: int, rate: int) -> tuple[int, int]:
    """The sample span read around a change at sample ``change``."""
    reach = int(REACH_S * rate)
    return max(0, change - reach), change + reach


def change_evidence(samples: np.ndarray, start: int, change: int, rate: int,
                    within: tuple[int, int] | None = None, speech: np.ndarray | None = None) -> ChangeEvidence | None:
    """The evidence of a change at sample ``change`` from the samples (16 kHz, the filterbank's rate) of its
    :func:`neighbourhood`, which begins at sample ``start``; None when it is too short to say anything.

    Only frames inside ``within`` (the sample span of the two turns the change divides) and, given ``speech`` (a
    boolean per sample of ``samples``), in speech describe the voices: a short turn's far frames would otherwise be
    another speaker's, or silence.
    """
    if rate != SAMPLE_RATE:
        raise ValueError(f"change evidence is read at {SAMPLE_RATE} Hz, not {rate}")
    if len(samples) < 4 * HOP:
        return None
    cep, active = cepstra(samples)
    centre = start + np.arange(len(cep)) * HOP
    offset = (centre - change) / rate
    describes = active.copy()
    describes[[0, -1]] = False  # half of the first and last frame is the filterbank's zero padding
    if within is not None:
        describes &= (centre >= within[0]) & (centre < within[1])
    if speech is not None and len(speech):
        describes &= speech[np.minimum(centre - start, len(speech) - 1)]

    keep = slice(0, None, KEEP_EVERY)
    kept = cep[keep]
    scale = max(float(np.abs(kept).max()) / 127.0, 1e-6)
    return ChangeEvidence(float(offset[0]), np.round(kept / scale).astype(np.int8), scale, active[keep],
                          cepstral_statistics(cep[describes & (offset <= -FAR_S)]),
                          cepstral_statistics(cep[describes & (offset >= FAR_S)]))


@dataclass(frozen=True)
class Voice:
    """A voice as a diagonal Gaussian over cepstra."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, stats: np.ndarray) -> Voice | None:
        n = stats[0]
        if n < MIN_FRAMES:
            return None
        mean = stats[1:1 + N_CEPSTRA] / n
        var = np.maximum(stats[1 + N_CEPSTRA:] / n - mean * mean, 0.0)
        return cls(mean, np.sqrt(var) + STD_FLOOR)

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        return (-0.5 * ((x - self.mean) / self.std) ** 2 - np.log(self.std)).sum(axis=1)


def best_split(evidence: ChangeEvidence, first: Voice, second: Voice, lo_s: float, hi_s: float) -> float | None:
    """Where (seconds relative to the change, within [lo_s, hi_s]) the frames before are most ``first``'s and
    those after most ``second``'s: the best split, or the middle of the unbroken run of splits within :data:`TIE`
    of it (a silence between the voices) when that run is shorter than :data:`TIE_MAX_S`. None when no split
    lies in the range."""
    x = evidence.cepstra
    llr = np.clip(first.log_likelihood(x) - second.log_likelihood(x), -LLR_CLIP, LLR_CLIP)
    score = LLR_WEIGHT * np.where(evidence.active, llr, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(score)])
    gain = 2 * cum - cum[-1]  # before the split counted for ``first``, after it against
    at = evidence.first_s + FRAME_S * (np.arange(len(score) + 1) - 0.5)  # splitting before frame k
    allowed = np.flatnonzero((at >= lo_s) & (at <= hi_s))
    if not len(allowed):
        return None
    k = int(np.argmax(gain[allowed]))
    near = gain[allowed] >= gain[allowed][k] - TIE
    a = b = k  # the unbroken run of ties around the best
    while a > 0 and near[a - 1]:
        a -= 1
    while b < len(near) - 1 and near[b + 1]:
        b += 1
    lo_tie, hi_tie = at[allowed[a]], at[allowed[b]]
    if hi_tie - lo_tie < TIE_MAX_S:
        return float((lo_tie + hi_tie) / 2)
    return float(at[allowed[k]])


def place_changes(turns: Sequence, heard: ChangesHeard) -> int:
    """Move each change between turns ``i`` and ``i + 1`` (consecutive turns of different speakers that touch,
    its evidence kept in ``heard`` under ``i``) to its :func:`best_split`. Turns are the diarization's (``start_s``,
    ``end_s``, ``speaker``), moved in place. Returns how many changes were placed (the others stay where they
    were)."""
    sums: dict[int, np.ndarray] = {}
    for i, ev in heard.items():
        for speaker, stats in ((turns[i].speaker, ev.before), (turns[i + 1].speaker, ev.after)):
            sums[speaker] = sums.get(speaker, 0) + stats.astype(np.float64)
    voices = {s: Voice.of(v) for s, v in sums.items()}
    placed = 0
    for i, ev in heard.items():
        left, right = turns[i], turns[i + 1]
        first, second = voices.get(left.speaker), voices.get(right.speaker)
        if left.speaker == right.speaker or first is None or second is None:
            continue
        change = left.end_s
        lo = max(-REACH_S, left.start_s + MIN_TURN_S - change)
        hi = min(REACH_S, right.end_s - MIN_TURN_S - change)
        if lo >= hi:
            continue
        split = best_split(ev, first, second, lo, hi)
        if split is None:
            continue
        left.end_s = right.start_s = change + split
        placed += 1
    return placed
