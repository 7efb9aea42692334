"""Who spoke when: speaker turns, one speaker embedding per turn, speakers as clusters of turns, and each speaker's
gender decided from all of its speech.

The pipeline of the field's diarization systems (change detection → an embedding per turn → clustering), on what
:mod:`voicegender.listen.segment` already computes:

1. **Turns.** Inside each speech region, a speaker change is where the voice embeddings of the windows just before
   and just after a point differ most (the GE2E embedding the shipped model makes for every 1.5 s window: cosine
   distance between the window ending at a point and the one starting there, a local peak above
   ``change_threshold``). Turns longer than ``turn_max_s`` are cut, so a missed change cannot join two speakers
   for long: their pieces are clustered apart.
2. **An embedding per turn**, once: up to ``embed_max_s`` seconds of the turn's speech (its middle, the edges left
   out) through a speaker-verification encoder (:mod:`voicegender.voice.speaker_encoder`, ECAPA-TDNN), read in a
   second pass over the file. Without one (no checkpoint fetched, or audio that cannot be read twice) the turn's
   mean GE2E embedding stands in, with its own threshold.
3. **Speakers**: average-linkage clustering of the turns by cosine distance (:mod:`voicegender.listen.clustering`),
   each turn weighted by its speech, with a distance added between turns whose genders surely differ; clusters with
   less than ``min_speaker_s`` of speech join their nearest speaker.
4. **The turns decoded again frame by frame** with the speakers' voices (:mod:`voicegender.listen.resegment`, a
   third read): each change to the 20 ms frame, and short turns the changes missed.
5. **Gender per speaker** from the windows that lie wholly inside its turns (the windows' log-odds averaged,
   weighted by their speech): a speaker's many windows are right far more often than any one of them, and a window
   across a change hears two voices. When those windows hold too little speech (a speaker of short turns only),
   every window whose centre lies in one of its turns counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..memory import give_back_free_memory
from ..speech.overlap import LocalChange
from ..voice.model import sigmoid, weighted_log_odds
from .clustering import cluster, cosine_distances, in_order_of_appearance
from .resegment import SAMPLE_RATE as DECODE_RATE
from .resegment import SpanReader, TurnVoices, resegment

log = logging.getLogger(__name__)

SpeechMask = Callable[[int, int], np.ndarray]  # (start, end) samples -> boolean per sample: speech frames


class SpeakerEmbedder(Protocol):
    """A speaker-verification encoder (:class:`voicegender.voice.speaker_encoder.SpeakerEncoder`)."""

    def embed(self, waves16k: Sequence[np.ndarray]) -> np.ndarray:
        """(n, d) embeddings of 16 kHz speech clips; the same voice gives close directions (cosine)."""
        ...


@dataclass(frozen=True)
class SpeakerOptions:
    """How turns and speakers are found (seconds unless said otherwise)."""

    change_threshold: float = 0.25  # cosine distance of the GE2E windows either side of a point that marks a change
    change_spacing_s: float = 1.0  # a change is the highest distance within +- this
    min_turn_s: float = 0.5  # no change closer than this to a region's edge or to another change
    turn_max_s: float = 20.0  # longer turns are cut into pieces of at most this (clustered on their own)
    # seconds of a turn's speech given to the speaker encoder (its middle). On the dev conversations 3 -> 2 s left
    # DER (14.9 -> 14.4 %) and the exact speaker counts (0.61 -> 0.58) within the noise and cut the encoder's work
    # by a third (1.5 s: DER 15.6 %)
    embed_max_s: float = 2.0
    edge_s: float = 0.2  # left out at both ends of a turn before it is embedded (a change may be a little off)
    cluster_threshold: float = 0.75  # average-linkage cosine distance at which speakers stop merging (ECAPA)
    # the same for narrow-band recordings (telephone; voicegender.audio.bandwidth): through 300-3400 Hz the ECAPA
    # distances between different people shrink and speakers merged at 0.75. Development telephone conversations
    # (20 mixes of seed 1000, 40 of seed 2000; DER and exact counts on the 2-4-speaker ones), 0.75 -> 0.65: speakers
    # per mix -1.25 / -1.45 -> -0.50 / -0.38, DER 17.8 / 24.6 -> 14.9 / 17.0 %, gender accuracy 0.892 / 0.888 ->
    # 0.892 / 0.907 (0.70: DER 20.0 % on the first; 0.60: DER 19.3 / 16.5 %, counts +0.25 / +0.17, exact 25 / 42 %)
    cluster_threshold_narrowband: float = 0.65
    cluster_threshold_ge2e: float = 0.35  # the same when turns are described by their GE2E embeddings
    gender_penalty: float = 0.15  # distance added per log-odds by which two turns' genders surely differ
    # a cluster with less speech joins its nearest speaker. On the dev conversations (2-6 speakers, ~100 s), 2 -> 4 s:
    # speaker count exact on 2-4-speaker mixes 0.47 -> 0.59 (BAVED's emotional words split a speaker less), DER 15.6
    # -> 15.0 %; 8 s lost real speakers (Common Voice)
    min_speaker_s: float = 4.0
    # the speaker encoder's turns are clustered spectrally, the number of speakers found from the eigengap
    # (voicegender.listen.clustering.spectral_labels), unless the threshold finds one voice. Development
    # conversations (100 mixes, turn-level error on 2-4 speakers without cross-talk): 11.2 -> 5.8 %, speaker count
    # exact 52 -> 79 %, babble +0.85 -> -0.30 speakers per mix
    spectral: bool = True
    # decode the turns again frame by frame once the speakers are known, in a third read of the audio: changes to
    # the 20 ms frame, and short turns the changes missed (voicegender.listen.resegment)
    resegment: bool = True
    # how many speakers there are, when the user knows (pyannote's min_speakers / max_speakers; both the same number
    # for num_speakers): the clustering decides only between these, and small clusters join others only while
    # there are more than min_speakers
    min_speakers: int = 1
    max_speakers: int | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(n, int) for n in (self.min_speakers, self.max_speakers or 1)):
            raise ValueError(f"numbers of speakers are whole numbers, not {self.min_speakers!r} / "
                             f"{self.max_speakers!r}")
        if self.min_speakers < 1:
            raise ValueError(f"the fewest speakers must be 1 or more, not {self.min_speakers}")
        if self.max_speakers is not None and self.max_speakers < self.min_speakers:
            raise ValueError(f"the most speakers ({self.max_speakers}) must not be fewer than the fewest "
                             f"({self.min_speakers})")


@dataclass
class Turn:
    """A stretch of one speaker's talk inside a speech region."""

    start_s: float
    end_s: float
    windows: np.ndarray  # indices of the scored windows whose centre lies in the turn
    speech_s: float = 0.0  # seconds of speech frames in it
    speaker: int = -1


@dataclass
class Speaker:
    """One voice of a recording, decided from all of its speech."""

    id: str  # "S1", "S2", ... in order of first appearance
    label: str  # "female" | "male"
    p_female: float  # from its windows (gender_windows)
    p_child: float | None  # probability of a child's voice; None when the model does not estimate it
    speech_s: float  # seconds of the timeline given to this speaker (its segments; they add up to the speech time)
    turns: int  # turns (consecutive stretches of this speaker)

    def as_dict(self) -> dict:
        return {"speaker": self.id, "label": self.label, "p_female": round(float(self.p_female), 4),
                "p_child": None if self.p_child is None else round(float(self.p_child), 4),
                "speech_s": round(float(self.speech_s), 3), "turns": int(self.turns)}


@dataclass
class Windows:
    """The scored windows of a recording, in time order (what segment's window scorer kept)."""

    start: np.ndarray  # first sample of each window
    n_samples: int  # samples per window
    hop: int  # samples between window starts
    weight: np.ndarray  # speech fraction of each window
    logit: np.ndarray  # log-odds of female
    child_logit: np.ndarray | None  # log-odds of a child's voice, or None
    # cosine distance of each window's voice embedding to the window that ends where it starts (NaN where there is
    # none); None when the model makes no embeddings (then there are no speakers)
    change: np.ndarray | None
    embedding: np.ndarray | None = None  # (n, d) voice embeddings (float16), kept to describe turns without an encoder

    @property
    def centre(self) -> np.ndarray:
        return self.start + self.n_samples // 2


def change_points(windows: Windows, region: tuple[int, int], options: SpeakerOptions) -> list[int]:
    """Sample positions of speaker changes inside ``region`` (start, end samples): where the windows' voice
    embeddings either side of a point differ most (:attr:`Windows.change`, a local peak above the threshold)."""
    if windows.change is None:
        return []
    a, b = region
    inside = np.flatnonzero((windows.start >= a - windows.hop) & (windows.start + windows.n_samples <= b + windows.hop)
                            & np.isfinite(windows.change))
    return surest_changes(windows.start[inside], windows.change[inside], region, options.change_threshold,
                          options.change_spacing_s * _rate(windows), options.min_turn_s * _rate(windows))


def surest_changes(points: np.ndarray, scores: np.ndarray, region: tuple[int, int], threshold: float,
                   spacing: float, edge: float) -> list[int]:
    """The positions among ``points`` (samples, each with its change score) kept as changes inside ``region``:
    greedily, highest score first, those at or above ``threshold`` that are the highest within +- ``spacing``, at
    least ``edge`` from the region's ends and ``max(spacing, edge)`` from a change already kept; in order."""
    a, b = region
    changes: list[int] = []
    for k in np.argsort(-scores):
        p, s = int(points[k]), scores[k]
        if s < threshold:
            break
        if p - a < edge or b - p < edge:
            continue
        if any(abs(p - c) < max(spacing, edge) for c in changes):
            continue
        if _is_local_peak(points, scores, k, spacing):
            changes.append(p)
    return sorted(changes)


def _rate(windows: Windows) -> float:
    """Samples per second (the windows' hop is 0.5 s of them)."""
    return windows.hop / 0.5 if windows.hop else 16_000.0


def _is_local_peak(points: np.ndarray, scores: np.ndarray, k: int, spacing: float) -> bool:
    near = np.abs(points - points[k]) <= spacing
    return bool(scores[k] >= scores[near].max())


def split_turns(windows: Windows, regions: Sequence[tuple[int, int]], speech_mask: SpeechMask,
                options: SpeakerOptions, rate: int) -> list[Turn]:
    """Turns of every region (sample spans): cut at the changes, then into pieces of at most ``turn_max_s``."""
    turns = []
    centre = windows.centre
    max_len = int(options.turn_max_s * rate)
    for region in regions:
        cuts = [region[0], *change_points(windows, region, options), region[1]]
        for s, e in zip(cuts[:-1], cuts[1:], strict=True):
            pieces = max(1, int(np.ceil((e - s) / max_len)))
            edges = np.linspace(s, e, pieces + 1).astype(int)
            for ps, pe in zip(edges[:-1], edges[1:], strict=True):
                inside = np.flatnonzero((centre >= ps) & (centre < pe))
                if len(inside) == 0 and len(centre):  # shorter than a window's reach: the nearest window
                    inside = np.array([int(np.argmin(np.abs(centre - (ps + pe) // 2)))])
                turns.append(Turn(ps / rate, pe / rate, inside, float(np.count_nonzero(speech_mask(ps, pe))) / rate))
    return turns


def embedding_spans(turns: Sequence[Turn], options: SpeakerOptions, rate: int) -> list[tuple[int, int]]:
    """The sample span of each turn that its speaker embedding is made from: the turn without ``edge_s`` at each
    end (when it is long enough), at most 2 x ``embed_max_s`` around its middle (speech is picked from it)."""
    spans = []
    for t in turns:
        a, b = int(t.start_s * rate), int(t.end_s * rate)
        edge = int(options.edge_s * rate)
        if b - a > 4 * edge:
            a, b = a + edge, b - edge
        half = int(options.embed_max_s * rate)
        mid = (a + b) // 2
        spans.append((max(a, mid - half), min(b, mid + half)))
    return spans


def middle(samples: np.ndarray, n: int) -> np.ndarray:
    """The middle ``n`` samples (all when shorter)."""
    if len(samples) <= n:
        return samples
    start = (len(samples) - n) // 2
    return samples[start:start + n]


def turn_vectors_from_windows(turns: Sequence[Turn], windows: Windows) -> np.ndarray:
    """Each turn as the normalised, speech-weighted mean of its windows' embeddings (the fallback description)."""
    emb = windows.embedding.astype(np.float32)
    out = np.zeros((len(turns), emb.shape[1]), np.float32)
    for i, t in enumerate(turns):
        if len(t.windows):
            out[i] = (emb[t.windows] * windows.weight[t.windows, None]).sum(0)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


def _turn_logits(turns: Sequence[Turn], windows: Windows) -> np.ndarray:
    z = np.zeros(len(turns))
    for i, t in enumerate(turns):
        if len(t.windows):
            z[i] = np.average(windows.logit[t.windows], weights=windows.weight[t.windows])
    return z


def assign_speakers(turns: list[Turn], vectors: np.ndarray, windows: Windows, options: SpeakerOptions,
                    threshold: float, spectral: bool = False) -> None:
    """Set each turn's ``speaker`` (0..k-1 in order of first appearance) by clustering ``vectors`` (``spectral``:
    see :func:`voicegender.listen.clustering.cluster`)."""
    if not turns:
        return
    weights = np.array([max(t.speech_s, 0.1) for t in turns])
    labels = cluster(vectors, weights, threshold, _turn_logits(turns, windows), options.gender_penalty,
                     spectral=spectral, min_clusters=options.min_speakers, max_clusters=options.max_speakers)
    labels = _absorb_small(labels, vectors, weights, options.min_speaker_s, options.min_speakers)
    for t, k in zip(turns, labels, strict=True):
        t.speaker = int(k)


def _absorb_small(labels: np.ndarray, vectors: np.ndarray, weights: np.ndarray, min_s: float,
                  keep_at_least: int = 1) -> np.ndarray:
    """Clusters with less than ``min_s`` of speech join the nearest cluster that has enough (by centroid cosine),
    the smallest first, while more than ``keep_at_least`` clusters are left; labels renumbered in order of first
    appearance."""
    labels = labels.copy()
    k = labels.max() + 1
    mass = np.bincount(labels, weights, minlength=k)
    big = np.flatnonzero(mass >= min_s)
    small = [c for c in np.argsort(mass, kind="stable") if mass[c] < min_s][:max(0, k - max(keep_at_least, len(big)))]
    if len(big) and small:
        cent = np.array([(vectors[labels == c] * weights[labels == c, None]).sum(0) for c in range(k)])
        d = cosine_distances(cent)
        for c in small:
            labels[labels == c] = big[np.argmin(d[c, big])]
    return in_order_of_appearance(labels)


def _time_and_runs(turns: Sequence[Turn], speaker: int) -> tuple[float, int]:
    """A speaker's seconds in ``turns`` and its turns counted as consecutive stretches."""
    speech = float(sum(t.end_s - t.start_s for t in turns if t.speaker == speaker))
    runs = sum(1 for i, t in enumerate(turns) if t.speaker == speaker and (i == 0 or turns[i - 1].speaker != speaker))
    return speech, runs


# A speaker's gender is decided from its windows that lie wholly inside its turns when these hold at least this much
# speech (the windows' speech shares added up), else from every window whose centre lies in one of its turns. In a
# murmur of 0.5-3 s turns most 1.5 s windows cross a change and hear two voices. Replayed on the development
# conversations' timelines (300 mixes, seeds 1000 and 2000; docs/CONVERSATIONS.md): 9 speakers answered the other
# way, 8 of them now right, babble gender accuracy 0.903 / 0.920 -> 0.911 / 0.936; 0.5-4 the same
GENDER_INSIDE_MIN_SPEECH = 1.0


def gender_windows(turns: Sequence[Turn], windows: Windows, rate: int) -> np.ndarray:
    """Indices of the windows one speaker's gender is decided from (``turns``: that speaker's): those wholly inside
    its turns (touching turns joined) when they hold at least :data:`GENDER_INSIDE_MIN_SPEECH` of speech, else
    every window whose centre lies in one of its turns."""
    spans: list[list[int]] = []
    for t in sorted(turns, key=lambda t: t.start_s):
        a, b = int(round(t.start_s * rate)), int(round(t.end_s * rate))
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    inside = [np.arange(np.searchsorted(windows.start, a),
                        np.searchsorted(windows.start, b - windows.n_samples, side="right")) for a, b in spans]
    idx = np.concatenate(inside).astype(np.int64) if inside else np.zeros(0, np.int64)
    if windows.weight[idx].sum() >= GENDER_INSIDE_MIN_SPEECH:
        return idx
    return np.unique(np.concatenate([t.windows for t in turns]).astype(np.int64)) if turns else idx


def speakers_of(turns: Sequence[Turn], windows: Windows, rate: int, threshold: float = 0.5) -> list[Speaker]:
    """Each speaker's gender and child-voice probability from its windows (:func:`gender_windows`), its speech and
    turns; a speaker index without turns gets even odds."""
    if not turns:
        return []
    k = max(t.speaker for t in turns) + 1
    out = []
    for s in range(k):
        mine = [t for t in turns if t.speaker == s]
        idx = gender_windows(mine, windows, rate)
        w = windows.weight[idx] if len(idx) else np.zeros(0)
        p = sigmoid(weighted_log_odds(windows.logit[idx], w))
        pc = None
        if windows.child_logit is not None and len(idx) and w.sum() > 0:
            pc = float(sigmoid(weighted_log_odds(windows.child_logit[idx], w)))
        speech, runs = _time_and_runs(turns, s)
        out.append(Speaker(f"S{s + 1}", "female" if p >= threshold else "male", float(p), pc, speech, runs))
    return out


def speakers_in(turns: Sequence[Turn], voices: Sequence[Speaker]) -> list[Speaker]:
    """The speakers of ``turns`` redrawn after their speakers were found (``voices``: each speaker's answer, by the
    turns' ``speaker`` index): speech and turns counted again, speakers left without turns dropped, and the rest
    numbered again in order of first appearance (the turns' ``speaker`` indices too)."""
    order: dict[int, int] = {}
    for t in turns:
        order.setdefault(t.speaker, len(order))
    out = []
    for old, new in order.items():
        speech, runs = _time_and_runs(turns, old)
        out.append(replace(voices[old], id=f"S{new + 1}", speech_s=speech, turns=runs))
    for t in turns:
        t.speaker = order[t.speaker]
    return out


@dataclass
class Diarization:
    """Turns with their speakers, and the speakers."""

    turns: list[Turn] = field(default_factory=list)
    speakers: list[Speaker] = field(default_factory=list)
    embedder: str = ""  # what described the turns: "ecapa" or "ge2e" ("" when there were none)


EMBED_BATCH = 8  # turns per encoder task
EMBED_THREADS = 2  # encoder tasks side by side (onnxruntime releases the GIL: both cores embed)
# the encoder threads' freed activations go back to the system after every this many batches (voicegender.memory)
GIVE_BACK_EVERY = 50


def embed_turns(turns: Sequence[Turn], read_spans: SpanReader, encoder: SpeakerEmbedder, speech_mask: SpeechMask,
                options: SpeakerOptions, rate: int, hear: Callable[[int, np.ndarray], None] | None = None
                ) -> np.ndarray:
    """Each turn's speaker embedding: the speech frames of its :func:`embedding_spans` (their middle
    ``embed_max_s``; all of the span when it holds less than 0.25 s of speech frames), read in one pass over the
    audio and embedded in batches on :data:`EMBED_THREADS` threads while the reading goes on. ``hear(turn, wave)``,
    if given, is called with each turn's index and the audio its embedding is made from, in the reading thread (on
    the encoder's threads its filterbank's buffers raised a 10 h recording's peak by ~57 MB: their arenas keep
    what they free)."""
    from concurrent.futures import ThreadPoolExecutor

    spans = embedding_spans(turns, options, rate)
    n_max = int(options.embed_max_s * rate)
    out: np.ndarray | None = None  # (turns, d) float32, made when the first batch is back (d: the encoder's)
    futures = []

    def embed(batch: list[tuple[int, np.ndarray]]) -> tuple[list[int], np.ndarray]:
        return [i for i, _ in batch], encoder.embed([x for _, x in batch])

    filled = np.zeros(len(turns), bool)
    kept = 0

    def keep(result: tuple[list[int], np.ndarray]) -> None:
        nonlocal out, kept
        rows, vectors = result
        if out is None:
            out = np.zeros((len(turns), vectors.shape[1]), np.float32)
        out[rows] = vectors
        filled[rows] = True
        kept += 1
        if kept % GIVE_BACK_EVERY == 0:
            give_back_free_memory()

    with ThreadPoolExecutor(EMBED_THREADS, thread_name_prefix="voicegender-speakers") as pool:
        batch: list[tuple[int, np.ndarray]] = []
        for i, samples in read_spans(spans):
            a = spans[i][0]
            speech = samples[speech_mask(a, a + len(samples))]
            wave = middle(speech if len(speech) >= rate // 4 else samples, n_max)
            if hear is not None:
                hear(i, wave)
            batch.append((i, wave))
            if len(batch) >= EMBED_BATCH:
                futures.append(pool.submit(embed, batch))
                batch = []
            while futures and (futures[0].done() or len(futures) > 2 * EMBED_THREADS):  # bounded memory:
                keep(futures.pop(0).result())  # reading never runs more than a few batches ahead
        if batch:
            futures.append(pool.submit(embed, batch))
        for f in futures:
            keep(f.result())
    give_back_free_memory()  # before the clustering allocates its own
    if out is None or not filled.all():
        raise RuntimeError(f"the audio of {int((~filled).sum())} of {len(turns)} turns was not read")
    return out


def diarize(windows: Windows, regions: Sequence[tuple[int, int]], speech_mask: SpeechMask, options: SpeakerOptions,
            rate: int, read_spans: SpanReader | None = None, encoder: SpeakerEmbedder | None = None,
            threshold: float = 0.5, narrowband: bool = False, local_change: LocalChange | None = None
            ) -> Diarization:
    """Turns and speakers of a recording from its scored windows and speech regions (sample spans).

    ``read_spans`` and ``encoder`` (a speaker encoder with ``embed(waves) -> (n, d)``): when both are given, each
    turn is embedded by the encoder from a second read of the audio; else turns are described by their windows'
    GE2E embeddings (with :attr:`SpeakerOptions.cluster_threshold_ge2e`). ``speech_mask(a, b)``: which samples of
    [a, b) lie in speech frames. ``narrowband`` (a telephone recording): the encoder's turns are clustered with
    :attr:`SpeakerOptions.cluster_threshold_narrowband`. ``local_change``: where pyannote's local speakers change
    (the overlap detector's, :class:`voicegender.speech.overlap.LocalChange`), which makes a change of speaker
    cheaper there when the turns are decoded again. Returns empty when the model gives no window embeddings.
    """
    if windows.change is None or not len(windows.start):
        return Diarization()
    turns = split_turns(windows, regions, speech_mask, options, rate)
    if not turns:
        return Diarization()
    voices = None  # the speakers' cepstral voices, heard in the encoder's read
    if read_spans is not None and encoder is not None or windows.embedding is None:
        if read_spans is None or encoder is None:
            return Diarization()  # neither a speaker encoder nor the window embeddings to describe turns with
        give_back_free_memory()  # what the first pass freed, before the encoder's threads allocate
        voices = TurnVoices(len(turns)) if options.resegment and rate == DECODE_RATE else None
        vectors = embed_turns(turns, read_spans, encoder, speech_mask, options, rate, voices and voices.hear)
        threshold_c = options.cluster_threshold_narrowband if narrowband else options.cluster_threshold
        embedder = "ecapa"
    else:
        vectors = turn_vectors_from_windows(turns, windows)
        threshold_c, embedder = options.cluster_threshold_ge2e, "ge2e"
    assign_speakers(turns, vectors, windows, options, threshold_c, options.spectral and embedder == "ecapa")
    if voices is not None:  # the encoder's read heard them: read_spans is given and the rate is the decoder's
        found = max(t.speaker for t in turns) + 1  # the speakers the clustering found
        centre = windows.centre

        def make_turn(start_s: float, end_s: float, speaker: int) -> Turn:
            a, b = int(round(start_s * rate)), int(round(end_s * rate))
            inside = np.arange(np.searchsorted(centre, a), np.searchsorted(centre, b))
            return Turn(start_s, end_s, inside, float(np.count_nonzero(speech_mask(a, b))) / rate, speaker)

        decoded = resegment(turns, voices, read_spans, rate, make_turn, local_change)
        if len({t.speaker for t in decoded}) >= min(options.min_speakers, found):  # a number given still holds
            return Diarization(decoded, speakers_in(decoded, speakers_of(decoded, windows, rate, threshold)), embedder)
    return Diarization(turns, speakers_of(turns, windows, rate, threshold), embedder)

