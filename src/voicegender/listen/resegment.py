"""Speaker turns redrawn frame by frame once the speakers are known (Viterbi resegmentation).

The turns the speakers are found from are cut at changes at least 1 s apart (:func:`voicegender.listen.speakers.
change_points`), so a shorter turn, a quick reply or an interjection, is heard as part of its neighbour's; in a
murmur of voices, where turns are short, that is most of the gender errors. Once the speakers are known, a third
read of the audio decodes the speech again, frame by frame:

1. Each speaker's voice is a diagonal Gaussian (:class:`Voice`) over the cepstra (c1-c19 of the speaker encoder's
   80-band log-mel) of the audio its turns' embeddings were made from (their middle 2 s of speech), heard in the
   encoder's read (:class:`TurnVoices`).
2. The turns are taken in pieces of touching turns (at most :data:`PIECE_MAX_S`); a piece holding two or more
   speakers is read again, and every 20 ms frame scored by each of the piece's voices (log-likelihoods, damped by
   :data:`LLR_WEIGHT` and clipped at :data:`LLR_CLIP` below the best, silent frames no evidence), plus
   :data:`PRIOR` for the speaker the frame's turn already had.
3. A hidden Markov model whose states are those speakers finds the best path: a change costs
   :data:`SWITCH_PENALTY` (less where the overlap detector's local speakers change, nothing where they surely do:
   :data:`LOCAL_CHANGE_DISCOUNT`) and every turn lasts at least :data:`MIN_TURN_S` (:func:`viterbi_min_duration`).
   Its runs are the new turns.

Development conversations (100 mixes, seed 1000, `benchmarks/conversations.py --from-mixes`; gender accuracy on
speech frames / female share error in points / DER on 2-4 speakers, the turns as they were → decoded again): clean
0.935 / 5.0 / 5.7 % → 0.938 / 4.6 / 5.4 %, cross-talk 0.939 / 5.0 / 7.6 % → 0.947 / 4.3 / 5.8 %, babble 0.871 /
9.0 / 15.1 % → 0.903 / 8.6 / 9.8 %, telephone 0.906 / 6.6 / 10.7 % → 0.907 / 6.7 / 9.1 %, music 0.931 / 5.7 / 9.7 %
→ 0.932 / 6.0 / 9.6 %; speaker counts unchanged. Held out (seed 0, 300 mixes): DER 12.6 → 10.6 %, babble 0.861 →
0.895 (docs/CONVERSATIONS.md). Chosen on a replay of the finished timelines of the development mixes: the voices
from all of each speaker's frames instead of its embeddings' audio were within a point (and need the audio twice);
from the frames 0.3-0.6 s from its changes, clean -0.8 and music -1.8 points; without the prior, clean -0.7 and
music -1.0; a change costing 5, babble -0.8; costing 2, music -0.5; 40 ms frames, the same within 0.1. It replaced
moving each change to the frame by the two voices' cepstra around it, which added nothing beside it (held out:
DER 10.7 % with it, 10.6 % without).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..speech.overlap import LocalChange
from ..voice.fbank import HOP, N_MELS, SAMPLE_RATE, log_mel

N_CEPSTRA = 19  # c1..c19 of the 80-band log-mel
N_STATS = 1 + 2 * N_CEPSTRA  # sufficient statistics of cepstra: [n, sums, sums of squares]
ACTIVE_DB = 25.0  # frames this far below the loud ones (90th percentile) are silence: no evidence
SILENCE_DB = -50.0  # nor frames whose loudest band is below this (log-mel dB; digital silence is -100)
MIN_FRAMES = 30  # a speaker needs this many loud frames to be described
STD_FLOOR = 1e-3
LLR_CLIP = 20.0  # one frame's log-likelihood below the best voice's counts at most this
LLR_WEIGHT = 0.1  # the frames of a voice are not independent: their summed evidence is damped by this
KEEP_EVERY = 2  # frames decoded: every 20 ms
FRAME_S = KEEP_EVERY * HOP / SAMPLE_RATE
SWITCH_PENALTY = 3.0  # a change of speaker costs this (in damped log-likelihood)
# ... times (1 - this x the local speaker change at the frame: pyannote's local speakers, voicegender.speech.overlap.
# LocalChange, 0-1): where they surely change, a change costs nothing. Development conversations (gender accuracy
# clean / cross-talk / babble / telephone / music): 0.936 / 0.946 / 0.917 / 0.906 / 0.932 without -> 0.939 / 0.946
# / 0.921 / 0.909 / 0.934; taking off half the penalty, +0.1 to +0.3; with the penalty 5 (4 and turns of 0.2 s) and
# all but 0.5 taken off, the same within 0.1; the changes themselves as cuts of the turns: docs/CONVERSATIONS.md
LOCAL_CHANGE_DISCOUNT = 1.0
MIN_TURN_S = 0.3  # a turn lasts at least this
PRIOR = 0.05  # per frame, for the speaker the frame's turn already had
PIECE_MAX_S = 60.0  # touching turns are decoded together up to this long (a turn is at most 20 s)
CHUNK_S = 10.0  # a piece's filterbank is computed this much at a time (bounded memory)

SpanReader = Callable[[Sequence[tuple[int, int]]], Iterator[tuple[int, np.ndarray]]]  # see audio.decode.spans_of


@functools.cache
def _dct() -> np.ndarray:
    """(80, N_CEPSTRA) orthonormal DCT-II rows 1..N_CEPSTRA (c0, the loudness, left out)."""
    n = np.arange(N_MELS)
    k = np.arange(1, N_CEPSTRA + 1)
    return (np.sqrt(2.0 / N_MELS) * np.cos(np.pi * k[None, :] * (2 * n[:, None] + 1) / (2 * N_MELS))).astype(np.float32)


def cepstra(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, N_CEPSTRA) cepstra of 16 kHz ``samples``, one every 10 ms (the speaker encoder's log-mel,
    :mod:`voicegender.voice.fbank`, through a DCT), and which frames are loud enough to be a voice (within
    :data:`ACTIVE_DB` of the loud ones and above :data:`SILENCE_DB`)."""
    mel = log_mel(samples)
    loudest = mel.max(axis=1)
    active = (loudest >= np.percentile(loudest, 90) - ACTIVE_DB) & (loudest >= SILENCE_DB)
    return mel @ _dct(), active


def cepstral_statistics(cep: np.ndarray) -> np.ndarray:
    """Sufficient statistics [n, sums..., sums of squares...] (float32, :data:`N_STATS`) of some frames' cepstra:
    what :meth:`Voice.of` reads; statistics of several stretches of one voice add up."""
    x = np.asarray(cep, np.float64)
    return np.concatenate([[len(x)], x.sum(axis=0), (x * x).sum(axis=0)]).astype(np.float32)


@dataclass(frozen=True)
class Voice:
    """A voice as a diagonal Gaussian over cepstra."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, stats: np.ndarray) -> Voice | None:
        """The voice of :func:`cepstral_statistics` (None below :data:`MIN_FRAMES` frames)."""
        n = stats[0]
        if n < MIN_FRAMES:
            return None
        mean = stats[1:1 + N_CEPSTRA] / n
        var = np.maximum(stats[1 + N_CEPSTRA:] / n - mean * mean, 0.0)
        return cls(mean, np.sqrt(var) + STD_FLOOR)

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """Per frame of ``x`` (frames, N_CEPSTRA), up to a constant."""
        return (-0.5 * ((x - self.mean) / self.std) ** 2 - np.log(self.std)).sum(axis=1)


class TurnVoices:
    """The cepstral statistics of the audio each turn's embedding was made from (:data:`N_STATS` float32 a turn:
    20,000 turns, 10 h of conversation, 3 MB), summed per speaker into voices."""

    def __init__(self, n: int) -> None:
        self.stats = np.zeros((n, N_STATS), np.float32)

    def hear(self, turn: int, wave: np.ndarray) -> None:
        """Keep the statistics of turn ``turn``'s loud frames in ``wave`` (16 kHz)."""
        if len(wave) < 4 * HOP:
            return
        cep, active = cepstra(wave)
        active[[0, -1]] = False  # half of the first and last frame is the filterbank's zero padding
        self.stats[turn] = cepstral_statistics(cep[active])

    def voices(self, speakers: Sequence[int]) -> dict[int, Voice]:
        """Each speaker's voice from its turns' statistics (``speakers``: the speaker of each turn); speakers with
        too few frames (:data:`MIN_FRAMES`) are left out."""
        speakers = np.asarray(speakers)
        out = {}
        for s in np.unique(speakers):
            voice = Voice.of(self.stats[speakers == s].sum(axis=0, dtype=np.float64))
            if voice is not None:
                out[int(s)] = voice
        return out


def viterbi_min_duration(scores: np.ndarray, penalty: float | np.ndarray, min_frames: int) -> np.ndarray:
    """The best state per frame of a hidden Markov model whose states are the columns of ``scores`` (frames, k)
    (each frame's log-likelihood of each state): changing state costs ``penalty`` (or ``penalty[t]`` to enter a
    state at frame t), and a state once entered is kept
    at least ``min_frames`` frames, the first and the last run too (fewer frames than that: one state throughout).
    Each state is a chain of ``min_frames`` sub-states; memory: 3 bytes per frame and state."""
    n, k = scores.shape
    d = max(1, min(int(min_frames), n))
    best = np.full((k, d), -np.inf)
    best[:, 0] = scores[0]  # every path enters its first state at the first frame
    held = np.zeros((n, k), bool)  # in the chain's last sub-state: stayed there (else came from the one before)
    came = np.zeros((n, k), np.int16)  # entering a state: the state it came from
    states = np.arange(k)
    cost = np.broadcast_to(np.asarray(penalty, np.float64), (n,))
    for t in range(1, n):
        settled = best[:, d - 1]
        top = np.argsort(settled)[::-1]
        other = np.where(states == top[0], top[1] if k > 1 else top[0], top[0])  # the best other state
        switch = settled[other] - cost[t]
        new = np.empty_like(best)
        if d > 1:
            held[t] = settled >= best[:, d - 2]
            new[:, d - 1] = np.maximum(best[:, d - 2], settled)
            new[:, 1:d - 1] = best[:, :d - 2]
            new[:, 0] = switch
        else:
            held[t] = settled >= switch
            new[:, 0] = np.maximum(settled, switch)
        came[t] = other
        new += scores[t][:, None]
        best = new
    path = np.empty(n, np.int64)
    s, j = int(np.argmax(best[:, d - 1])), d - 1
    for t in range(n - 1, -1, -1):
        path[t] = s
        if t == 0:
            break
        if d == 1:
            s = s if held[t, s] else came[t, s]
        elif j == 0:
            s, j = came[t, s], d - 1
        elif j == d - 1:
            j = d - 1 if held[t, s] else d - 2
        else:
            j -= 1
    return path


def pieces(turns: Sequence, voices: dict[int, Voice]) -> list[list[int]]:
    """Runs of touching turns (indices) of speakers with a voice, at most :data:`PIECE_MAX_S` long, that hold
    two or more speakers: what is decoded again. A turn of a speaker without a voice (too little audio to describe
    it) stays as it is and ends a run: decoding could only give its time to someone else."""
    out: list[list[int]] = []
    run: list[int] = []

    def close() -> None:
        if len({turns[i].speaker for i in run}) >= 2:
            out.append(list(run))

    for i, t in enumerate(turns):
        touching = run and abs(turns[run[-1]].end_s - t.start_s) < 1e-9
        if run and (not touching or t.end_s - turns[run[0]].start_s > PIECE_MAX_S or t.speaker not in voices):
            close()
            run = []
        if t.speaker in voices:
            run.append(i)
    if run:
        close()
    return out


def _piece_cepstra(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cepstra and loud frames of a piece, every :data:`KEEP_EVERY`-th 10 ms frame, :data:`CHUNK_S` at a time."""
    chunk = int(CHUNK_S * SAMPLE_RATE)
    ceps, loud = [], []
    for a in range(0, len(samples), chunk):
        part = samples[a:a + chunk]
        if len(part) < 4 * HOP:  # a last scrap: no evidence
            n = (len(part) + HOP - 1) // HOP
            ceps.append(np.zeros((n, N_CEPSTRA), np.float32))
            loud.append(np.zeros(n, bool))
            continue
        cep, active = cepstra(part)
        n = (len(part) + HOP - 1) // HOP  # frames centred inside this chunk
        active[[0, n - 1]] = False  # half of a chunk's first and last frame is the filterbank's zero padding
        ceps.append(cep[:n])
        loud.append(active[:n])
    return np.concatenate(ceps)[::KEEP_EVERY], np.concatenate(loud)[::KEEP_EVERY]


def decode_piece(samples: np.ndarray, start: int, turns: Sequence, voices: dict[int, Voice],
                 rate: int, local_change: LocalChange | None = None) -> list[tuple[float, float, int]]:
    """The new turns (start_s, end_s, speaker) of one piece: ``turns`` (touching, with ``start_s``, ``end_s`` and
    ``speaker``) whose audio ``samples`` begins at sample ``start``; the turns as they were when the audio is too
    short to say anything. ``local_change``: a change of speaker at a frame costs :data:`SWITCH_PENALTY` x (1 -
    :data:`LOCAL_CHANGE_DISCOUNT` x the local speaker change there)."""
    if len(samples) < 4 * HOP:
        return [(t.start_s, t.end_s, t.speaker) for t in turns]
    cep, loud = _piece_cepstra(samples)
    times = (start + np.arange(len(cep)) * KEEP_EVERY * HOP) / rate  # frame centres
    speakers = sorted({t.speaker for t in turns if t.speaker in voices})
    x = cep.astype(np.float64)
    ll = np.stack([voices[s].log_likelihood(x) for s in speakers], axis=1)
    ll -= ll.max(axis=1, keepdims=True)
    scores = LLR_WEIGHT * np.maximum(ll, -LLR_CLIP)
    scores[~loud] = 0.0
    ends = np.array([t.end_s for t in turns])
    had = np.array([t.speaker for t in turns])[np.minimum(np.searchsorted(ends, times, side="right"), len(turns) - 1)]
    for j, s in enumerate(speakers):
        scores[had == s, j] += PRIOR
    penalty = SWITCH_PENALTY if local_change is None else SWITCH_PENALTY * (1.0 - LOCAL_CHANGE_DISCOUNT
                                                                            * local_change.at(times))
    path = np.asarray(speakers)[viterbi_min_duration(scores, penalty, round(MIN_TURN_S / FRAME_S))]
    cuts = np.flatnonzero(np.diff(path)) + 1
    bounds = [turns[0].start_s, *((times[cuts - 1] + times[cuts]) / 2), turns[-1].end_s]
    firsts = [0, *cuts]
    return [(float(a), float(b), int(path[f])) for a, b, f in zip(bounds[:-1], bounds[1:], firsts, strict=True)]


def resegment(turns: list, voices: TurnVoices, read_spans: SpanReader, rate: int,
              make_turn: Callable[[float, float, int], object], local_change: LocalChange | None = None) -> list:
    """The turns decoded again (see the module): ``turns`` with their speakers, ``voices`` heard from their
    embeddings' audio, ``read_spans`` a third read of the audio, ``make_turn(start_s, end_s, speaker)`` a new turn.
    Turns outside any decoded piece, or of a piece the reader did not give back, are kept as they are."""
    if rate != SAMPLE_RATE:
        raise ValueError(f"turns are decoded at {SAMPLE_RATE} Hz, not {rate}")
    heard = voices.voices([t.speaker for t in turns])
    todo = pieces(turns, heard)
    if not todo:
        return turns
    spans = [(int(round(turns[p[0]].start_s * rate)), int(round(turns[p[-1]].end_s * rate))) for p in todo]
    decoded: dict[int, list] = {}
    for j, samples in read_spans(spans):
        mine = [turns[i] for i in todo[j]]
        decoded[todo[j][0]] = [make_turn(a, b, s)
                               for a, b, s in decode_piece(samples, spans[j][0], mine, heard, rate, local_change)]
    out = []
    skip = {i for p in todo if p[0] in decoded for i in p[1:]}
    for i, t in enumerate(turns):
        if i in decoded:
            out.extend(decoded[i])
        elif i not in skip:
            out.append(t)
    return out
