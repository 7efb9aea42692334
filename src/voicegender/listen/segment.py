"""Long recordings → a timeline of female / male / no_speech segments, in bounded memory.

The file is streamed (:func:`voicegender.audio.decode.stream_audio`, 30 s blocks at 16 kHz) through the speech
detector; overlapping windows (1.5 s every 0.5 s) are classified on their speech frames only, as soon as the
audio for a window has arrived, and the audio before the next window is dropped. Only small per-frame arrays
(32 ms frames, a probability and a level each: 900 kB per hour) outlive the stream. At the end:

1. speech regions come from the frame probabilities (:func:`voicegender.speech.vad.segments_from_probs`, with a
   longer minimum pause than for single clips so that breaths do not split turns); a region followed by a loud
   pause (music, a crowd) ends at its last confident frame (:func:`voicegender.speech.vad.trim_loud_tails`);
2. every speech frame gets the evidence of the windows that cover it (weighted by each window's speech
   fraction), and the gender of each speech region is decoded from it:

   * ``smoothing="viterbi"`` (default): a 2-state (female/male) HMM, as inaSpeechSegmenter smooths its gender
     posteriors: the frame evidence is the mean window logit, capped at ``evidence_cap``, and every change of
     gender inside a region costs ``switch_penalty`` (:func:`viterbi_2state`). One speaker's turn is then not
     split by a few confident wrong windows, while a change backed by a turn's worth of windows is kept, at
     the point where the evidence changes sign (not at a window edge);
   * ``smoothing="median"`` (the earlier method): per frame the vote of the covering windows, then a median
     filter over ``smooth_s``;

3. gender runs shorter than ``min_segment_s`` inside a speech region are merged into their longer neighbour
   (no 100 ms flicker), and adjacent segments with the same label are joined.

The result covers the whole file without gaps: no_speech segments fill everything that is not speech.
:func:`speaking_time` sums a timeline into female / male / no_speech seconds and shares.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..audio.bandwidth import BandwidthMeter
from ..audio.decode import soundfile_name, spans_of, stream_audio
from ..speech.overlap import OverlapDetector, overlap_regions
from ..speech.vad import (
    FRAME_S,
    FRAME_SAMPLES,
    VAD_SAMPLE_RATE,
    StreamingVad,
    VadConfig,
    segments_from_probs,
)
from ..threads import blas_single_thread, torch_threads
from ..voice.loading import load_model
from ..voice.model import SCORE_PART_MIN, Model, Scores, joined_scores, logit, score_parts, score_speech, sigmoid
from .smoothing import fill_nearest, frame_scores, median_filter, merge_short_runs, runs_of, viterbi_2state
from .speakers import Diarization, SpanReader, Speaker, SpeakerEmbedder, SpeakerOptions, Windows, diarize

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """One stretch of the timeline."""

    start_s: float  # seconds from the start of the file
    end_s: float  # seconds
    label: str  # "female" | "male" | "no_speech"
    p_female: float | None = None  # mean calibrated probability over the segment; None for no_speech
    speaker: str | None = None  # "S1", "S2", ... (see Timeline.speakers); None for no_speech or without speakers

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "label": self.label,
                "p_female": None if self.p_female is None else round(float(self.p_female), 4),
                "speaker": self.speaker}


@dataclass
class Overlap:
    """A stretch where two voices speak at once (:mod:`voicegender.speech.overlap`), with the speakers heard: the
    two whose speech lies nearest it (within :data:`OVERLAP_NEAR_S`), or one when no other speaker is near (the
    second voice was not told apart)."""

    start_s: float
    end_s: float
    speakers: tuple[str, ...]  # "S1", "S2": one or two
    labels: tuple[str, ...]  # their genders, in the same order

    def as_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "speakers": list(self.speakers),
                "labels": list(self.labels)}


OVERLAP_NEAR_S = 0.5  # an overlap's voices: the speakers with speech within this of it, most speech first


def overlaps_with_speakers(regions: Iterable[tuple[float, float]], segments: list[Segment]) -> list[Overlap]:
    """Each overlapped stretch with the (at most two) speakers whose segments lie within :data:`OVERLAP_NEAR_S`
    of it, the one with the most speech there first; stretches with no speaker near (no speech found) are
    dropped."""
    speech = [s for s in segments if s.speaker is not None]
    starts = np.array([s.start_s for s in speech])
    out = []
    for a, b in regions:
        near: dict[str, float] = {}
        label: dict[str, str] = {}
        lo, hi = a - OVERLAP_NEAR_S, b + OVERLAP_NEAR_S
        for s in speech[max(0, int(np.searchsorted(starts, lo)) - 1):int(np.searchsorted(starts, hi))]:
            shared = min(s.end_s, hi) - max(s.start_s, lo)
            if shared > 0:
                near[s.speaker] = near.get(s.speaker, 0.0) + shared
                label[s.speaker] = s.label
        heard = sorted(near, key=lambda k: -near[k])[:2]
        if heard:
            out.append(Overlap(float(a), float(b), tuple(heard), tuple(label[k] for k in heard)))
    return out


SMOOTHINGS = ("viterbi", "median")


@dataclass(frozen=True)
class SegmentOptions:
    """Windows, smoothing and thresholds of the timeline (seconds unless said otherwise)."""

    window_s: float = 1.5  # length of each classified window
    hop_s: float = 0.5  # step between windows
    min_window_speech_s: float = 0.5  # windows with less speech than this are not classified
    # Defaults. Window logits capped at 2 make a run of 1.5 s windows every 0.5 s worth ~1.7 log-odds x s when
    # three confident windows disagree and ~2.7 when four do, which is also what a true 2 s turn inside a speech
    # region gives: penalty 1 (two changes: 2) smooths three wrong windows and keeps 2 s turns (the shortest the
    # benchmark builds); 1.5 loses them. Measured with benchmarks/segment_accuracy.py --sweep on conversations
    # not in the reported table (unseen speakers; clean / telephone): 20 x 2 min with pauses of 0.2-1.5 s, median
    # filter -> Viterbi 1.0: gender accuracy 0.957 / 0.910 -> 0.960 / 0.925, change F1 at 0.5 s 0.77 / 0.68 ->
    # 0.89 / 0.81 (penalty 1.5: 0.91 / 0.84, 2: 0.93 / 0.86); 10 x 2 min of back-to-back turns (pauses 0-0.25 s,
    # changes inside regions): change recall 0.70 / 0.71 as the median filter (1.5: 0.70 / 0.70, 2: 0.65 / 0.67),
    # F1 0.60 / 0.66 -> 0.71 / 0.72. Accuracy differences between these settings are within the noise (bootstrap
    # 95 % intervals over conversations span about +-2 points). Uncapped logits let a few confident windows
    # outvote a turn again (penalty 2: 0.962 vs 0.971 clean).
    smoothing: str = "viterbi"  # "viterbi" (2-state HMM with a switch penalty) or "median" (the earlier filter)
    switch_penalty: float = 1.0  # viterbi: log-odds x seconds of evidence a change of gender inside a region costs
    evidence_cap: float = 2.0  # viterbi: window logits are clipped to +-this (2: p 0.12 / 0.88)
    smooth_s: float = 0.5  # median: filter length over the frame votes
    min_segment_s: float = 1.0  # shorter female/male runs inside speech are merged into a neighbour
    threshold: float = 0.5  # p_female >= threshold -> "female"
    # speech regions: start at 0.4, end after 0.5 s below 0.35, padded by 0.15 s. On 100 simulated conversations
    # (benchmarks/conversations.py --seed 1000, held-out models), against silero's 0.5 / 0.35, 0.3 s, 0.03 s: missed
    # speech frames 3.9 -> 2.1 % (clean), 12 -> 9.7 % (telephone), gender accuracy with speakers 0.907 -> 0.922 (clean),
    # 0.875 -> 0.890 (telephone); the cost: music-alone frames given a gender 12 -> 19 % (the padding reaches into
    # the music after speech). A region followed by a loud pause (at least 1 s, its median level less than 15 dB
    # below the region's speech: music, a jingle, a crowd) ends at its last frame >= 0.9 before the padding
    # (voicegender.speech.vad.trim_loud_tails): on the development conversations (seeds 1000 and 2000, 300 mixes)
    # music-alone frames given a gender 17.3 / 17.4 -> 8.8 / 8.4 %, gender accuracy -0.000 to -0.004 per condition,
    # DER on 2-4 speakers 8.5 / 9.4 -> 8.7 / 9.0 %; 0.8: 11.8 % and DER 9.0 % on the first. Such a region is not
    # padded at its end (tail_pad_s): on the development conversations (seed 1000, drawn again with the heads
    # fitted again) music-alone frames given a gender 8.8 -> 7.7 % (0.05 s: 8.0 %), gender accuracy within 0.001
    # in every condition
    vad_config: VadConfig = field(default_factory=lambda: VadConfig(threshold=0.4, neg_threshold=0.35, pad_s=0.15,
                                                                    min_silence_s=0.5, tail_threshold=0.9,
                                                                    tail_pad_s=0.0))
    block_s: float = 30.0  # seconds of audio decoded at a time (memory bound)
    batch_windows: int = 64  # windows per model call
    # threads each batch of windows is scored on, in parts for models that score each clip on its own (the shipped
    # kind), while the reading thread decodes and detects speech in the next block: the GE2E encoder is most of the
    # timeline's work. 1: scored in the reading thread. predict's speaking time keeps 1 (its worker threads
    # already fill the cores)
    score_threads: int = 2
    torch_threads: int = 1  # torch threads for the model (see voicegender.threads.torch_threads); 0: unchanged
    # speaker turns and speakers (voicegender.listen.speakers): each speech stretch gets the gender of its speaker,
    # decided from all of that speaker's speech; False: the gender of each stretch from its own windows (Viterbi)
    speakers: bool = True
    speaker_options: SpeakerOptions = field(default_factory=SpeakerOptions)
    # with speakers: mark where two voices overlap (pyannote/segmentation-3.0, voicegender.speech.overlap) and
    # name the two speakers heard there. Its network runs in a thread of its own: on 2 cores 10 h took 58.8x real
    # time with it (59.3x without it, the session before)
    overlaps: bool = True

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}, got {self.smoothing!r}")
        if self.switch_penalty < 0 or self.evidence_cap <= 0:
            raise ValueError(f"switch_penalty must be >= 0 and evidence_cap > 0, got {self.switch_penalty}, "
                             f"{self.evidence_cap}")


def _window_speech(window: np.ndarray, start: int, frame_mask: np.ndarray) -> np.ndarray:
    """The samples of a window (starting at sample ``start``) whose 32 ms frames are marked as speech.

    ``frame_mask`` holds the frames from ``start // FRAME_SAMPLES`` on.
    """
    frame_of_sample = (start + np.arange(len(window))) // FRAME_SAMPLES - start // FRAME_SAMPLES
    return window[frame_mask[frame_of_sample]]


MAX_BATCHES_AHEAD = 1  # batches of windows being scored on the pool while the reading thread fills the next


class _WindowScorer:
    """Collects windows as audio streams in and scores them in batches; keeps, per window, (start_frame, n_frames,
    weight, logit) in ``scored`` and, for the speaker turns, its first sample, its child log-odds and the cosine
    distance of its voice embedding to the window that ends where it starts (:class:`speakers.Windows`). All of it
    in numpy arrays, one per model call (10 h: 72,000 windows, 3.5 MB; as Python tuples and floats it was ~20 MB).
    The embeddings themselves are kept only when turns are to be described by them (no speaker encoder): 10 h of
    0.5 s hops x 256 values is 37 MB in float16."""

    def __init__(self, model: Model, options: SegmentOptions, hop: int, window: int, keep_embeddings: bool) -> None:
        self.model, self.options = model, options
        self.hop, self.lag = hop, max(1, int(round(window / hop)))  # the window ending at a start began lag hops before
        self.pending: list[tuple[int, int, float, np.ndarray, int]] = []
        self._scored: list[np.ndarray] = []  # (batch, 4) float64: start_frame, n_frames, weight, logit
        self._starts: list[np.ndarray] = []  # int64 first samples
        self._child: list[np.ndarray] = []  # float32 child log-odds
        self._change: list[np.ndarray] = []  # float32; NaN where no window ends where this one starts
        self.recent: dict[int, np.ndarray] = {}  # hop index -> embedding, of the last lag windows
        self.embeddings: list[np.ndarray] = []  # float16 blocks, when keep_embeddings
        self.keep_embeddings = keep_embeddings
        self.has_child = self.has_embeddings = True
        self.threads = options.score_threads if model.scores_clips_apart else 1
        # batches being scored on the pool, oldest first, each with its parts' futures; kept in order
        self._running: collections.deque[tuple[list, list[Future]]] = collections.deque()
        self._pool = ThreadPoolExecutor(self.threads, "voicegender-score") if self.threads > 1 else None

    def add(self, start_frame: int, n_frames: int, weight: float, speech: np.ndarray, start: int) -> None:
        self.pending.append((start_frame, n_frames, weight, speech, start))
        if len(self.pending) >= self.options.batch_windows:
            self.flush()

    def flush(self) -> None:
        """Score the pending windows: at once on this thread, or (with :attr:`threads` > 1) in parts on the pool
        while this thread reads on; results are kept in the windows' order as their batches finish."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        waves = [x[3] for x in batch]
        if self._pool is None:
            self._keep(batch, score_speech(self.model, waves))
            return
        parts = score_parts(waves, max(1, min(self.threads, len(waves) // SCORE_PART_MIN)))
        self._running.append((batch, [self._pool.submit(score_speech, self.model, waves[a:b]) for a, b in parts]))
        while len(self._running) > MAX_BATCHES_AHEAD:
            self._keep_oldest()

    def finish(self) -> None:
        """Score what is pending and wait for every batch (before :attr:`scored` or :meth:`windows` are read)."""
        self.flush()
        while self._running:
            self._keep_oldest()

    def _keep_oldest(self) -> None:
        batch, futures = self._running.popleft()
        self._keep(batch, joined_scores([f.result() for f in futures]))

    def _keep(self, batch: list, scores: Scores) -> None:
        z = logit(scores.p_female)
        self._scored.append(np.column_stack([np.array([(f, n, w) for f, n, w, *_ in batch], np.float64), z]))
        self._starts.append(np.array([x[4] for x in batch], np.int64))
        self.has_child = self.has_child and scores.p_child is not None
        if self.has_child:
            self._child.append(logit(scores.p_child).astype(np.float32))
        self.has_embeddings = self.has_embeddings and scores.embeddings is not None and self.options.speakers
        if self.has_embeddings:
            emb = np.asarray(scores.embeddings, np.float32)
            self._change.append(np.array([self._distance(x[4], e) for x, e in zip(batch, emb, strict=True)],
                                         np.float32))
            if self.keep_embeddings:
                self.embeddings.append(emb.astype(np.float16))

    def close(self) -> None:
        """Let the scoring threads go (after :meth:`finish`, or when the reading failed: batches still waiting are
        dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._running.clear()

    def _distance(self, start: int, e: np.ndarray) -> float:
        """1 - cosine to the window ``lag`` hops before this one (NaN when it was not scored or not on the grid)."""
        if start % self.hop:  # the last window of a file ends at its end, off the grid
            return float("nan")
        j = start // self.hop
        before = self.recent.get(j - self.lag)
        self.recent[j] = e
        for k in [k for k in self.recent if k <= j - self.lag]:
            del self.recent[k]
        if before is None:
            return float("nan")
        return 1.0 - float(before @ e) / max(float(np.linalg.norm(before) * np.linalg.norm(e)), 1e-12)

    @property
    def scored(self) -> np.ndarray:
        """(windows, 4) float64: start frame, frames covered, weight (speech share), female log-odds."""
        return np.concatenate(self._scored) if self._scored else np.zeros((0, 4))

    def windows(self, window_samples: int, hop_samples: int) -> Windows:
        """What was scored, as arrays for :func:`voicegender.listen.speakers.diarize`."""
        embeddings = np.concatenate(self.embeddings) if self.keep_embeddings and self.embeddings else None
        self.embeddings = []
        scored = self.scored
        return Windows(start=np.concatenate(self._starts) if self._starts else np.zeros(0, np.int64),
                       n_samples=window_samples, hop=hop_samples, weight=scored[:, 2], logit=scored[:, 3],
                       child_logit=np.concatenate(self._child).astype(np.float64)
                       if self.has_child and self._child else None,
                       change=np.concatenate(self._change).astype(np.float64)
                       if self.has_embeddings and self._change else None,
                       embedding=embeddings if self.has_embeddings else None)


def build_timeline(probs: np.ndarray, scored, duration_s: float,
                   options: SegmentOptions = SegmentOptions(), levels_db: np.ndarray | None = None) -> list[Segment]:
    """Timeline from frame speech probabilities and scored windows (rows of start_frame, n_frames, weight, logit:
    a (windows, 4) array or a list of 4-tuples); ``levels_db``: each frame's level (speech regions followed by loud
    sound end earlier, :func:`voicegender.speech.vad.trim_loud_tails`)."""
    n = len(probs)
    regions = segments_from_probs(probs, options.vad_config, duration_s, levels_db=levels_db)
    threshold_logit = float(np.log(options.threshold / (1 - options.threshold)))
    votes, logits, evidence = frame_scores(scored, n, threshold_logit, options.evidence_cap)
    smooth = max(1, int(round(options.smooth_s / FRAME_S)) | 1)  # odd length
    segments: list[Segment] = []
    cursor = 0.0
    scored_frames = None

    def gap(until: float) -> None:
        if until - cursor > 1e-6:
            segments.append(Segment(cursor, until, "no_speech", None))

    for start_s, end_s in regions:
        f0, f1 = int(start_s / FRAME_S), max(int(start_s / FRAME_S) + 1, min(n, int(np.ceil(end_s / FRAME_S))))
        region = fill_nearest(votes[f0:f1].copy())
        region_logits = fill_nearest(logits[f0:f1].copy())
        region_evidence = fill_nearest(evidence[f0:f1].copy())  # as the votes: a change at mid-gap, not its start
        if not np.isfinite(region).any():  # no window held enough speech: borrow from the nearest scored frame
            if scored_frames is None:
                scored_frames = np.flatnonzero(np.isfinite(votes))  # the same frames for all three
            region, region_logits, region_evidence = (fill_nearest(x, scored_frames, (f0, f1))
                                                      for x in (votes, logits, evidence))
        if not np.isfinite(region).any():  # nothing in the whole file could be classified
            continue
        if options.smoothing == "viterbi":
            # each region on its own. Decoding across pauses too, a change there costing 0.5 log-odds x s, lost
            # 0.1-1.1 points of gender accuracy and 2-6 points of change recall (benchmarks/segment_accuracy.py)
            male = viterbi_2state(region_evidence * FRAME_S, options.switch_penalty)
        else:
            if len(region) >= smooth:
                region = median_filter(region, smooth)
            male = (region < 0).astype(int)
        runs = merge_short_runs(runs_of(male), int(options.min_segment_s / FRAME_S))
        gap(start_s)
        for k, (s, e, male) in enumerate(runs):
            seg_start = start_s if k == 0 else (f0 + s) * FRAME_S
            seg_end = end_s if k == len(runs) - 1 else (f0 + e) * FRAME_S
            p = float(sigmoid(np.mean(region_logits[s:e])))
            label = "male" if male else "female"
            if segments and segments[-1].label == label and abs(segments[-1].end_s - seg_start) < 1e-6:
                prev = segments[-1]  # same label across a region edge: join, duration-weighted probability
                w0, w1 = prev.duration_s, seg_end - seg_start
                prev.p_female = (prev.p_female * w0 + p * w1) / (w0 + w1)
                prev.end_s = seg_end
            else:
                segments.append(Segment(seg_start, seg_end, label, p))
        cursor = end_s
    gap(duration_s)
    return _absorb_edge_slivers(segments, duration_s)


LABELS = ("female", "male", "no_speech")


@dataclass(frozen=True)
class SpeakingTime:
    """Seconds of each label of a timeline; shares are of the speech (female + male)."""

    female_s: float
    male_s: float
    no_speech_s: float

    @property
    def speech_s(self) -> float:
        return self.female_s + self.male_s

    @property
    def female_share(self) -> float | None:
        """female_s / speech_s, None without speech."""
        return self.female_s / self.speech_s if self.speech_s > 0 else None

    @property
    def male_share(self) -> float | None:
        return self.male_s / self.speech_s if self.speech_s > 0 else None

    def as_dict(self) -> dict:
        def share(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"female_s": round(self.female_s, 3), "male_s": round(self.male_s, 3),
                "no_speech_s": round(self.no_speech_s, 3), "speech_s": round(self.speech_s, 3),
                "female_share": share(self.female_share), "male_share": share(self.male_share)}

    def __str__(self) -> str:
        """One line: ``female 62.1 s (41 %), male 88.0 s (59 %) of 150.1 s speech; no_speech 30.2 s``."""
        if self.female_share is None:
            return f"female 0.0 s, male 0.0 s of 0.0 s speech; no_speech {self.no_speech_s:.1f} s"
        female_pct = round(100 * self.female_share)
        return (f"female {self.female_s:.1f} s ({female_pct} %), male {self.male_s:.1f} s ({100 - female_pct} %) "
                f"of {self.speech_s:.1f} s speech; no_speech {self.no_speech_s:.1f} s")


def speaking_time(segments: Iterable[Segment]) -> SpeakingTime:
    """Sum a timeline into female / male / no_speech seconds (and, through the result, the shares of speech).

    Raises ValueError on a label other than female, male and no_speech.
    """
    total = dict.fromkeys(LABELS, 0.0)
    for s in segments:
        if s.label not in total:
            raise ValueError(f"unknown segment label {s.label!r} at {s.start_s:.2f} s; expected one of "
                             f"{', '.join(LABELS)}")
        total[s.label] += max(0.0, s.duration_s)
    return SpeakingTime(total["female"], total["male"], total["no_speech"])


@dataclass
class Timeline:
    """A recording's timeline: segments covering it without gaps, its speakers and its length."""

    segments: list[Segment]
    speakers: list[Speaker]  # empty when speakers were not told apart
    duration_s: float
    embedder: str = ""  # what told the speakers apart: "ecapa" (the speaker encoder), "ge2e", "" (no speakers)
    overlaps: list[Overlap] = field(default_factory=list)  # where two voices speak at once (with speakers only)

    def speaking_time(self) -> SpeakingTime:
        return speaking_time(self.segments)

    @property
    def overlap_s(self) -> float:
        """Seconds where two voices speak at once."""
        return sum(o.end_s - o.start_s for o in self.overlaps)

    def summary(self) -> dict:
        """Speakers by gender, the female share of speaking time and of speakers, each speaker's time and turns."""
        st = self.speaking_time()
        women = sum(1 for s in self.speakers if s.label == "female")
        men = sum(1 for s in self.speakers if s.label == "male")
        return {"duration_s": round(self.duration_s, 3), **st.as_dict(),
                "speakers": len(self.speakers), "female_speakers": women, "male_speakers": men,
                "female_speaker_share": round(women / (women + men), 4) if women + men else None,
                "speaker_embedding": self.embedder or None,
                "overlap_s": round(self.overlap_s, 3) if self.speakers else None,
                "by_speaker": [s.as_dict() for s in self.speakers]}


def speaker_segments(diarization: Diarization, duration_s: float) -> list[Segment]:
    """The timeline of speaker turns (which cut the speech regions), each labelled with its speaker's gender."""
    speakers = diarization.speakers
    turns = sorted(diarization.turns, key=lambda t: t.start_s)
    segments: list[Segment] = []
    cursor = 0.0
    for t in turns:
        if t.start_s - cursor > 1e-6:
            segments.append(Segment(cursor, t.start_s, "no_speech", None))
        spk = speakers[t.speaker]
        last = segments[-1] if segments else None
        if last is not None and last.speaker == spk.id and abs(last.end_s - t.start_s) < 1e-6:
            last.end_s = t.end_s
        else:
            segments.append(Segment(t.start_s, t.end_s, spk.label, spk.p_female, spk.id))
        cursor = t.end_s
    if duration_s - cursor > 1e-6:
        segments.append(Segment(cursor, duration_s, "no_speech", None))
    return _absorb_edge_slivers(segments, duration_s)


EDGE_SLIVER_S = 0.1  # no_speech at the very start/end shorter than this joins the neighbouring speech segment


def _absorb_edge_slivers(segments: list[Segment], duration_s: float) -> list[Segment]:
    """Drop the few-ms no_speech slivers that 32 ms VAD frames leave at the file's edges (and clamp to its end).

    The timeline still covers [0, duration] without gaps; a speech segment simply starts at 0 or ends at the end.
    """
    if len(segments) > 1 and segments[0].label == "no_speech" and segments[0].duration_s < EDGE_SLIVER_S:
        segments = segments[1:]
        segments[0].start_s = 0.0
    if len(segments) > 1 and segments[-1].label == "no_speech" and segments[-1].duration_s < EDGE_SLIVER_S:
        segments = segments[:-1]
        segments[-1].end_s = duration_s
    if segments:
        segments[-1].end_s = min(segments[-1].end_s, duration_s)
    return segments


def segment_stream(blocks: Iterable[np.ndarray], model=None, options: SegmentOptions = SegmentOptions(),
                   show_progress: bool = False, total_s: float | None = None) -> tuple[list[Segment], float]:
    """Timeline of 16 kHz float audio given as blocks; returns (segments, duration in seconds).

    Memory: the current block plus one window of audio, and a few numbers per 32 ms frame. Blocks cannot be read
    twice, so speakers are told apart by the model's window embeddings (see :func:`timeline_file`).
    """
    model = load_model(model)
    with blas_single_thread(), torch_threads(options.torch_threads):
        timeline = _timeline_of(blocks, model, options, show_progress, total_s)
    return timeline.segments, timeline.duration_s


class _Growing:
    """A float32 array appended to block by block (its storage grown by doubling)."""

    def __init__(self) -> None:
        self._data = np.zeros(0, np.float32)
        self._n = 0

    def add(self, values: np.ndarray) -> None:
        n = self._n + len(values)
        if n > len(self._data):
            grown = np.zeros(max(n, 2 * len(self._data)), np.float32)
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:n] = values
        self._n = n

    def __len__(self) -> int:
        return self._n

    @property
    def values(self) -> np.ndarray:
        return self._data[:self._n]


class TimelineBuilder:
    """The streaming part of :func:`segment_stream` as an object: feed 16 kHz blocks, then :meth:`finish`.

    Windows are classified as soon as their audio has arrived; held are the current block, one window of audio,
    the windows waiting for a model call (``options.batch_windows``) and a few numbers per 32 ms frame. Other
    streaming readers of a file (``predict``'s speaking time) feed the same blocks to one of these.
    """

    def __init__(self, model: Model, options: SegmentOptions = SegmentOptions(), read_spans: SpanReader | None = None,
                 encoder: SpeakerEmbedder | None = None) -> None:
        self.options = options
        self._read_spans, self._encoder = read_spans, encoder  # the speakers' second pass (see speakers.diarize)
        self._win = int(options.window_s * VAD_SAMPLE_RATE)
        self._hop = int(options.hop_s * VAD_SAMPLE_RATE)
        self._min_speech = int(options.min_window_speech_s * VAD_SAMPLE_RATE)
        self._thr = options.vad_config.off_threshold  # lenient frame mask inside windows; regions use the hysteresis
        self._vad = StreamingVad()
        self._bandwidth = BandwidthMeter(VAD_SAMPLE_RATE)  # telephone speakers are clustered apart more readily
        self._overlap = OverlapDetector() if options.speakers and options.overlaps else None
        self._scorer = _WindowScorer(model, options, self._hop, self._win, keep_embeddings=encoder is None)
        self._probs = _Growing()  # frame probabilities
        self._levels = _Growing()  # each frame's level in dB (the frames silero scores)
        self._buf = np.zeros(0, np.float32)  # audio from sample self._buf_start on
        self._buf_start = 0
        self._next_win = 0  # start sample of the next window
        self._last_end = 0  # end sample of the last window
        self._total = 0

    def _emit(self, start: int, end: int) -> None:
        frames = self._probs.values[start // FRAME_SAMPLES:-(-end // FRAME_SAMPLES)]
        window = self._buf[start - self._buf_start:end - self._buf_start]
        speech = _window_speech(window, start, frames >= self._thr)
        if len(speech) >= self._min_speech:
            self._scorer.add(start // FRAME_SAMPLES, len(frames), len(speech) / max(1, len(window)), speech, start)

    def feed(self, block: np.ndarray) -> None:
        """The next block of 16 kHz float audio."""
        block = np.asarray(block, np.float32).reshape(-1)
        self._total += len(block)
        probs, levels = self._vad.feed_with_levels(block)
        self._probs.add(probs)
        self._levels.add(levels)
        if self.options.speakers:
            self._bandwidth.feed(block)
        if self._overlap is not None:
            self._overlap.feed(block)
        self._buf = np.concatenate([self._buf, block])
        ready = min(self._total, len(self._probs) * FRAME_SAMPLES)  # audio whose frames have probabilities
        while self._next_win + self._win <= ready:
            self._emit(self._next_win, self._next_win + self._win)
            self._last_end = self._next_win + self._win
            self._next_win += self._hop
        keep_from = max(0, self._next_win - self._win)  # one window back: the last window may end at the end
        if keep_from > self._buf_start:
            self._buf, self._buf_start = self._buf[keep_from - self._buf_start:], keep_from

    def close(self) -> None:
        """Give up the timeline (a reading that failed): the overlap detector's and the scoring threads end now."""
        self._scorer.close()
        if self._overlap is not None:
            self._overlap.close()

    def finish(self) -> tuple[list[Segment], float]:
        """The timeline's segments and the duration in seconds (the stream is done)."""
        timeline = self.finish_timeline()
        return timeline.segments, timeline.duration_s

    def finish_timeline(self) -> Timeline:
        """The timeline: segments, speakers and duration (the stream is done)."""
        self._probs.add(self._vad.finish())
        while self._next_win + self._win <= self._total:
            self._emit(self._next_win, self._next_win + self._win)
            self._last_end = self._next_win + self._win
            self._next_win += self._hop
        if self._last_end < self._total:  # a last window ending at the end of the file (the whole file if shorter)
            self._emit(max(0, self._total - self._win), self._total)
        try:
            self._scorer.finish()  # the model's own errors surface here, from its threads
        except BaseException:
            self.close()
            raise
        self._scorer.close()
        self._buf = np.zeros(0, np.float32)
        duration_s = self._total / VAD_SAMPLE_RATE
        probs = self._probs.values
        p_overlap = None if self._overlap is None else self._overlap.finish()  # its thread joined on every path
        if self.options.speakers:
            diarization = self._diarize(probs, duration_s)
            if diarization.turns:
                segments = speaker_segments(diarization, duration_s)
                overlaps = [] if p_overlap is None else overlaps_with_speakers(overlap_regions(p_overlap), segments)
                return Timeline(segments, diarization.speakers, duration_s, diarization.embedder, overlaps)
        return Timeline(build_timeline(probs, self._scorer.scored, duration_s, self.options, self._levels.values),
                        [], duration_s)

    def _diarize(self, probs: np.ndarray, duration_s: float) -> Diarization:
        windows = self._scorer.windows(self._win, self._hop)
        regions = [(int(round(a * VAD_SAMPLE_RATE)), int(round(b * VAD_SAMPLE_RATE)))
                   for a, b in segments_from_probs(probs, self.options.vad_config, duration_s,
                                                   levels_db=self._levels.values)]
        speech = probs >= self._thr

        def speech_mask(a: int, b: int) -> np.ndarray:
            frames = np.arange(a, b) // FRAME_SAMPLES
            return speech[np.minimum(frames, len(speech) - 1)] if len(speech) else np.zeros(b - a, bool)

        local = None if self._overlap is None else self._overlap.speaker_change
        return diarize(windows, regions, speech_mask, self.options.speaker_options, VAD_SAMPLE_RATE,
                       self._read_spans, self._encoder, self.options.threshold, self._bandwidth.narrowband, local)


def _timeline_of(blocks: Iterable[np.ndarray], model: Model, options: SegmentOptions, show_progress: bool,
                 total_s: float | None, read_spans: SpanReader | None = None,
                 encoder: SpeakerEmbedder | None = None) -> Timeline:
    from ..progress import progress

    builder = TimelineBuilder(model, options, read_spans, encoder)
    it = progress(blocks, desc="segment", unit="block", total=None if total_s is None else
                  int(np.ceil(total_s / options.block_s))) if show_progress else blocks
    try:
        for block in it:
            builder.feed(block)
    except BaseException:
        builder.close()
        raise
    return builder.finish_timeline()


def speaker_encoder() -> SpeakerEmbedder | None:
    """The speaker-verification encoder when its checkpoint is in the user cache (``voicegender models fetch``),
    else None (speakers are then told apart by the model's own window embeddings; said once per process)."""
    from ..errors import ModelError

    try:
        from ..voice.speaker_encoder import load_speaker_encoder

        return load_speaker_encoder()
    except (ImportError, ModelError) as e:
        global _SAID_NO_ENCODER
        if not _SAID_NO_ENCODER:
            log.info("speakers told apart by the gender model's own embeddings (%s)", e)
            _SAID_NO_ENCODER = True
        return None


_SAID_NO_ENCODER = False


def timeline_file(path: str | os.PathLike, model=None, options: SegmentOptions = SegmentOptions(),
                  show_progress: bool = True, encoder: SpeakerEmbedder | None | str = "auto") -> Timeline:
    """Timeline of an audio file of any length: female / male / no_speech segments, speakers, duration.

    Parameters
    ----------
    path : any file :func:`voicegender.audio.decode.stream_audio` reads; decoded in ``options.block_s`` blocks
        (twice when speakers are told apart with a speaker encoder: the second pass reads a few seconds per turn).
    model : None (the shipped default), a model file, or a loaded model (see :func:`voicegender.load_model`).
    options : window, hop, smoothing, speaker settings (seconds).
    encoder : "auto" (:func:`speaker_encoder`), a speaker encoder, or None (the model's window embeddings).

    Raises
    ------
    AudioDecodeError naming the file.
    """
    import soundfile as sf

    try:  # only for the progress bar; never decode the file for it (audio_duration would, for m4a/webm)
        info = sf.info(soundfile_name(path))
        total_s = info.frames / info.samplerate if info.frames > 0 else None
    except (sf.LibsndfileError, RuntimeError, OSError):
        total_s = None
    model = load_model(model)
    if isinstance(encoder, str):
        encoder = speaker_encoder() if options.speakers else None

    def read_spans(spans):
        return spans_of(stream_audio(path, VAD_SAMPLE_RATE, options.block_s), spans)

    with blas_single_thread(), torch_threads(options.torch_threads):
        return _timeline_of(stream_audio(path, VAD_SAMPLE_RATE, options.block_s), model, options, show_progress,
                            total_s, read_spans if encoder is not None else None, encoder)


def segment_file(path: str | os.PathLike, model=None, options: SegmentOptions = SegmentOptions(),
                 show_progress: bool = True) -> tuple[list[Segment], float]:
    """Timeline of female / male / no_speech segments of an audio file of any length: (segments covering
    [0, duration] without gaps, duration in seconds). :func:`timeline_file` also gives the speakers.

    Raises AudioDecodeError naming the file.
    """
    timeline = timeline_file(path, model, options, show_progress)
    return timeline.segments, timeline.duration_s
