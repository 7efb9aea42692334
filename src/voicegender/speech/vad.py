"""Speech detection with silero-vad: which parts of a recording are speech.

silero's model gives the speech probability of each 32 ms frame (:mod:`voicegender.speech.vad_model`: its back ends,
streaming); a hysteresis state machine (:func:`segments_from_probs`) turns those frame probabilities into speech
regions, on audio in memory (:func:`speech_segments`) or fed block by block (:class:`SpeechStream`).

Silence, white noise and pure tones that start at the first sample give no speech with silero's default
threshold. A low tone or hum (100-220 Hz) that starts after silence does not: silero answers its onset with
0.3-0.8 s of "speech" (depending on where the onset falls within a frame), so :func:`find_speech` checks the
detected speech with :func:`looks_tonal`, a cheap stationarity test (see tests/test_vad.py). Clicks and short beeps
(Chromium's fake microphone: a 20 ms beep every 0.5 s) get a frame or two of 0.35-0.6 after silence, like a single
word through a telephone line: :func:`too_brief` drops speech in which no sound lasts a syllable.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .vad_model import (  # the model's side, importable from here too (where users look for it)
    FRAME_S,
    FRAME_SAMPLES,
    VAD_SAMPLE_RATE,
    StreamingVad,
    frame_levels_db,  # noqa: F401  (the levels segments_from_probs reads)
    frame_probabilities,
    stream_probabilities,  # noqa: F401
)

log = logging.getLogger(__name__)

# silero's LSTM starts from a zero state; a recording that starts right on speech (a word cut to its edges, a
# telephone clip) then gets low probabilities, sometimes for seconds: through the telephone channel (300-3400 Hz,
# 8 kHz µ-law) a third of 1-3 s AudioMNIST-AZ digit strings got no 0.15 s at threshold 0.5. Running 8 frames of
# digital silence first puts the state where a leading silence would have. Measured on 531 trimmed words and
# strings (benchmarks/short_speech.py clips, seed 1; threshold 0.5, 0.15 s needed), share with no speech per
# band 0.1-0.3 / 0.3-0.6 / 0.6-1 / 1-3 / > 3 s, before -> after: telephone 69/60/45/29/25 % -> 18/10/2/5/1 %;
# 8 kHz 31/12/8/7/1 % -> 13/2/0/0/0 %; 16 kHz 13/2/0/0/0 % -> 4/1/0/0/0 %. 0.5 s or 1 s of silence gave the
# same, silence after the audio nothing, quiet noise (1e-4) instead of silence half the gain. Removing a DC
# offset (AudioMNIST-AZ's -0.085) changed nothing (silero's first layer ignores it), so it is not done. A
# recording that starts with silence already has the warm-up: its probabilities barely change.
WARMUP_S = 0.256  # 8 frames
LENIENT_THRESHOLD = 0.35  # second pass of find_speech (see there)
# Shortest region the second and third passes keep when a speech check confirms it (see find_speech). A single
# word through a telephone line often holds 2-3 frames of 0.35-0.7 (0.064-0.096 s): with 0.1 s they were dropped.
# Without a check the second pass keeps cfg.min_speech_s: the onset of any sound after silence scores 0.3-0.6 for a
# few frames.
LENIENT_MIN_SPEECH_S = 0.06
# Third pass of find_speech, only with a speech check: most single words through a telephone line that the second
# pass misses never reach 0.35 in any frame. On 885 held-out AudioMNIST-AZ words and strings (check fitted without
# them) no_speech through the telephone fell 2.4 -> 1.0 %; 2,000 synthetic non-speech sounds answered female/male
# rose 3.9 -> 5.1 % (7.2 % with neither check nor third pass). 0.25: 1.2 % / 4.7 %; 0.15: 0.9 % / 5.3 %. (With the
# check refitted on what this pass finds too, as shipped, on a new draw of the sounds: 1.2 % / 5.1 % against 2.6 % /
# 7.4 % with neither; docs/DEFAULT_MODEL.md.)
QUIET_THRESHOLD = 0.2


@dataclass(frozen=True)
class VadConfig:
    """How frame probabilities become speech regions (silero's defaults, in seconds)."""

    threshold: float = 0.5  # a frame with speech probability >= this starts (or continues) speech
    neg_threshold: float | None = None  # speech ends after frames below this; None: threshold - 0.15
    min_speech_s: float = 0.25  # speech regions shorter than this are dropped (clicks, coughs)
    min_silence_s: float = 0.1  # pauses shorter than this do not split a region
    pad_s: float = 0.03  # added before and after each region (clipped to the audio, overlaps merged)
    warmup_s: float = 0.0  # digital silence run through the model before the audio (see WARMUP_S); 0: silero's own
    # A region followed by a loud pause (see trim_loud_tails) ends at its last frame >= this; None: not trimmed
    tail_threshold: float | None = None
    loud_pause_db: float = 15.0  # a pause is loud when its median frame level is less than this below the speech's
    loud_pause_s: float = 1.0  # ... and it lasts at least this long (shorter pauses are the talk's own)
    tail_pad_s: float | None = None  # padding after the end of a region trimmed so (None: pad_s)

    @property
    def off_threshold(self) -> float:
        return max(self.threshold - 0.15, 0.01) if self.neg_threshold is None else self.neg_threshold

    @property
    def warmup_frames(self) -> int:
        return int(round(self.warmup_s / FRAME_S))


# --- probabilities -> regions -----------------------------------------------------------------------------------
def trim_loud_tails(regions: list[list[int]], probs: np.ndarray, levels_db: np.ndarray, cfg: VadConfig,
                    frame_s: float = FRAME_S) -> tuple[list[list[int]], list[bool]]:
    """Regions (frame indices [start, end)) whose following pause is loud end at their last frame whose
    probability is at least ``cfg.tail_threshold``; returned with which regions were so trimmed.

    silero's probabilities fall slowly when speech stops but sound goes on (music, a jingle, a crowd): the hysteresis
    carries the region on into it. A pause is loud when it lasts at least ``cfg.loud_pause_s`` and its median frame
    level (its first 2 s) is less than ``cfg.loud_pause_db`` below the region's speech (its frames >= 0.5); a pause
    of silence or of quiet noise leaves the region as it is."""
    pause_max = int(round(2.0 / frame_s))
    out, trimmed = [], []
    for j, (a, b) in enumerate(regions):
        cut = False
        following = regions[j + 1][0] if j + 1 < len(regions) else len(probs)
        pause = levels_db[b:min(following, b + pause_max)]
        speech = levels_db[a:b][probs[a:min(b, len(levels_db))] >= 0.5]
        if ((following - b) * frame_s >= cfg.loud_pause_s and len(pause) and len(speech)
                and np.median(pause) > np.median(speech) - cfg.loud_pause_db):
            confident = np.flatnonzero(probs[a:b] >= cfg.tail_threshold)
            cut = len(confident) > 0
            if cut:
                b = a + int(confident[-1]) + 1
        out.append([a, b])
        trimmed.append(cut)
    return out, trimmed


def segments_from_probs(probs: np.ndarray, cfg: VadConfig = VadConfig(), duration_s: float | None = None,
                        frame_s: float = FRAME_S, levels_db: np.ndarray | None = None) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s), ...]`` from frame probabilities (silero's state machine).

    Speech starts at the first frame >= ``cfg.threshold`` and ends where probabilities stay below
    ``cfg.off_threshold`` for at least ``cfg.min_silence_s``; with ``levels_db`` (:func:`frame_levels_db`) and a
    ``cfg.tail_threshold``, regions followed by a loud pause end earlier (:func:`trim_loud_tails`); regions shorter
    than ``cfg.min_speech_s`` are dropped; each region is padded by ``cfg.pad_s`` (overlaps merged; the end of a
    region trimmed so by ``cfg.tail_pad_s`` when it is set) and clipped to ``duration_s`` (default: the frames'
    extent).
    """
    probs = np.asarray(probs, np.float32)
    total = len(probs) * frame_s if duration_s is None else duration_s
    regions: list[list[int]] = []  # frame indices [start, end)
    start = None  # frame index where the current region started
    silent_since = None  # frame index where the current pause started
    min_silence = cfg.min_silence_s / frame_s
    for i, p in enumerate(probs):
        if start is None:
            if p >= cfg.threshold:
                start, silent_since = i, None
            continue
        if p >= cfg.threshold:
            silent_since = None
        elif p < cfg.off_threshold:
            if silent_since is None:
                silent_since = i
            if i - silent_since >= min_silence:
                regions.append([start, silent_since])
                start = silent_since = None
    if start is not None:
        regions.append([start, len(probs)])
    trimmed = [False] * len(regions)
    if cfg.tail_threshold is not None and levels_db is not None:
        regions, trimmed = trim_loud_tails(regions, probs, levels_db, cfg, frame_s)
    tail_pad = cfg.pad_s if cfg.tail_pad_s is None else cfg.tail_pad_s
    out: list[list[float]] = []
    for (a, b), cut in zip(regions, trimmed, strict=True):
        s, e = a * frame_s, b * frame_s
        if e - s < cfg.min_speech_s:
            continue
        s, e = max(0.0, s - cfg.pad_s), min(total, e + (tail_pad if cut else cfg.pad_s))
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(round(s, 4), round(e, 4)) for s, e in out if e > s]


def speech_segments(samples16k: np.ndarray, cfg: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s), ...]`` of float mono audio at 16 kHz (see :class:`VadConfig`).

    Parameters
    ----------
    samples16k : float32 mono samples at 16 kHz, in [-1, 1].
    cfg : thresholds (probability) and durations (seconds): min speech 0.25 s, min silence 0.1 s, pad 0.03 s.

    Returns
    -------
    Sorted, non-overlapping (start, end) pairs in seconds; empty for silence, noise, tones.
    """
    return segments_from_probs(frame_probabilities(samples16k, cfg.warmup_frames), cfg,
                               len(samples16k) / VAD_SAMPLE_RATE)


class SpeechStream:
    """Speech of 16 kHz audio fed block by block, handed out as soon as it is certain: memory does not grow with
    the recording's length (or with the length of its speech).

    >>> stream = SpeechStream(cfg)
    >>> for block in stream_audio(path):              # doctest: +SKIP
    ...     for piece in stream.feed(block):           # speech samples, in order
    ...         use(piece)
    >>> pieces, regions = stream.finish(), stream.regions   # doctest: +SKIP

    The pieces concatenated equal ``speech_only(x, speech_segments(x, cfg))`` on the whole audio ``x``, and
    :attr:`regions` equals ``speech_segments(x, cfg)``: frame probabilities go through the state machine of
    :func:`segments_from_probs` one frame at a time, and a region's samples are handed out once they surely belong
    to it (the region is ``cfg.min_speech_s`` long, so it will be kept). Held back: the audio since the start of a
    region not yet that long, the last pause (``min_silence_s + pad_s``), and frames whose probability hovers
    between ``off_threshold`` and ``threshold`` after a dip inside speech: the next frame above or below decides
    whether they are speech. In speech that is a few seconds (at most 4.4 s in two minutes of espeak-ng talk); a
    stretch that hovers for minutes would be held for minutes.
    """

    def __init__(self, cfg: VadConfig = VadConfig()) -> None:
        self.cfg = cfg
        self._vad = StreamingVad(cfg.warmup_frames)
        # thresholds as float32, as segments_from_probs compares its float32 probabilities with them
        self._on = float(np.float32(cfg.threshold))
        self._off = float(np.float32(cfg.off_threshold))
        self._min_silence = cfg.min_silence_s / FRAME_S  # frames
        self._frames = 0  # frames through the state machine
        self._start: int | None = None  # first frame of the open region
        self._silent_since: int | None = None  # first frame of the pause inside it
        self._audio = np.zeros(0, np.float32)  # samples from sample self._audio_start on
        self._audio_start = 0
        self._received = 0  # samples fed so far
        self._cur: list[float] | None = None  # the last padded region [start_s, end_s]; its end may still grow
        self._next = 0  # the next sample of self._cur to hand out
        self._out: list[np.ndarray] = []
        self._regions: list[tuple[float, float]] = []

    @property
    def regions(self) -> list[tuple[float, float]]:
        """The speech regions finished so far (all of them after :meth:`finish`), as :func:`speech_segments`."""
        return list(self._regions)

    @property
    def duration_s(self) -> float:
        """Seconds of audio fed so far."""
        return self._received / VAD_SAMPLE_RATE

    def feed(self, block: np.ndarray) -> list[np.ndarray]:
        """Speech samples of the audio fed so far that were not handed out yet (a list of float32 arrays)."""
        block = np.asarray(block, np.float32).reshape(-1)
        self._received += len(block)
        self._audio = np.concatenate([self._audio, block])
        self._run(self._vad.feed(block))
        if self._start is not None:  # the open region: from its start to its last frame above the pause
            end = self._silent_since if self._silent_since is not None else self._frames
            self._close(self._start, end)  # its end can only grow: handing out up to here is safe
        self._release(final=False)
        return self._take()

    def finish(self) -> list[np.ndarray]:
        """The rest of the speech (the stream is done: :attr:`regions` is complete)."""
        self._run(self._vad.finish())
        if self._start is not None:
            self._close(self._start, self._frames)
            self._start = self._silent_since = None
        self._release(final=True)
        self._audio = np.zeros(0, np.float32)
        return self._take()

    def _take(self) -> list[np.ndarray]:
        out, self._out = self._out, []
        return out

    def _run(self, probs: np.ndarray) -> None:
        """The state machine of :func:`segments_from_probs` over the next frames."""
        probs = np.asarray(probs, np.float32)
        first, k = self._frames, 0
        values = None
        while k < len(probs):
            if self._start is None:  # outside speech: jump to the next frame above the threshold
                above = np.flatnonzero(probs[k:] >= self.cfg.threshold)
                if len(above) == 0:
                    break
                k += int(above[0])
                self._start, self._silent_since = first + k, None
                k += 1
                continue
            if values is None:
                values = probs.tolist()  # Python floats: a faster loop, the same comparisons (see _on)
            p, i = values[k], first + k
            if p >= self._on:
                self._silent_since = None
            elif p < self._off:
                if self._silent_since is None:
                    self._silent_since = i
                if i - self._silent_since >= self._min_silence:
                    self._close(self._start, self._silent_since)
                    self._start = self._silent_since = None
            k += 1
        self._frames = first + len(probs)

    def _close(self, start: int, end: int) -> None:
        """Region frames [start, end) -> padded and merged into the last region, as segments_from_probs does."""
        s, e = start * FRAME_S, end * FRAME_S
        if e - s < self.cfg.min_speech_s:
            return
        s, e = max(0.0, s - self.cfg.pad_s), e + self.cfg.pad_s  # clipped to the duration at the end (no effect
        if self._cur is not None and s <= self._cur[1]:  # on merging: every region starts before the end)
            self._cur[1] = max(self._cur[1], e)
            return
        if self._cur is not None:
            self._release(final=True)
        self._cur = [s, e]
        self._next = int(round(s, 4) * VAD_SAMPLE_RATE)

    def _release(self, final: bool) -> None:
        """Hand out the current region's certain samples; ``final``: all of it (the region is complete)."""
        if self._cur is not None:
            s, e = self._cur
            end = min(e, self._received / VAD_SAMPLE_RATE)  # the region's end, or as far as audio has arrived
            upto = min(int(round(end, 4) * VAD_SAMPLE_RATE), self._received)
            if upto > self._next:
                self._out.append(self._audio[self._next - self._audio_start:upto - self._audio_start].copy())
                self._next = upto
            if final:
                if end > s:
                    self._regions.append((round(s, 4), round(end, 4)))
                self._cur = None
        # keep the audio a region may still claim: the current one's rest, or a new region's padded start
        frame = self._start if self._start is not None else self._frames
        keep = int((frame * FRAME_S - self.cfg.pad_s) * VAD_SAMPLE_RATE) - FRAME_SAMPLES
        if self._cur is not None:
            keep = min(keep, self._next)
        if keep > self._audio_start:
            self._audio = self._audio[keep - self._audio_start:]
            self._audio_start = keep


def stream_speech(blocks: Iterable[np.ndarray], cfg: VadConfig = VadConfig()
                  ) -> tuple[np.ndarray, list[tuple[float, float]], float]:
    """Speech of 16 kHz audio given block by block (:class:`SpeechStream`, concatenated).

    Equal to ``speech_only(x, speech_segments(x, cfg))`` on the whole audio ``x``; only the speech is held.

    Returns
    -------
    (speech samples concatenated, speech regions [(start_s, end_s), ...], duration in seconds)
    """
    stream = SpeechStream(cfg)
    pieces = [piece for block in blocks for piece in stream.feed(block)]
    pieces += stream.finish()
    speech = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return speech, stream.regions, stream.duration_s


def speech_seconds(segments: Iterable[tuple[float, float]]) -> float:
    """Total duration in seconds of speech regions."""
    return float(sum(e - s for s, e in segments))


def speech_only(samples16k: np.ndarray, segments: Iterable[tuple[float, float]]) -> np.ndarray:
    """The speech regions of ``samples16k`` concatenated (float32; empty when there are none)."""
    parts = [samples16k[int(s * VAD_SAMPLE_RATE):int(e * VAD_SAMPLE_RATE)] for s, e in segments]
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


# --- whole-recording decisions ------------------------------------------------------------------------------------
TONAL_MAX_S = 30.0  # seconds of speech that looks_tonal reads at most (the median needs no more)
TONAL_FLUX_DB = 1.0  # median spectral change below this (dB over 30 ms): a steady tone, hum or buzz
TONAL_PEAK_SHARE = 0.99  # median share of the power within 156 Hz (5 bins) above this: one sinusoid (tone, sweep)
_N_FFT, _HOP, _LAG = 512, 160, 3  # 32 ms Hann frames every 10 ms; change measured over 3 hops (30 ms)
_LOW_BIN = 3  # power below 94 Hz (rumble, a DC offset) is ignored


@functools.cache
def _hann() -> np.ndarray:
    return np.hanning(_N_FFT).astype(np.float32)


def _tonal_measures(x: np.ndarray) -> tuple[float, float]:
    """(median spectral change in dB, median peak share) of float32 audio of at least 992 samples (see
    :func:`looks_tonal`).

    numpy's float64 FFT, not scipy.fft's float32 one: importing scipy.fft took 0.1 s of a 0.5 s ``predict one.wav``
    (through scipy._lib's array API layer). The FFT itself is 15 µs slower per 0.8 s of speech, won back by a
    cached window and running sums without padding (245-250 vs 250-255 µs per AudioMNIST-AZ word). The measures
    differ by rounding only (float32 power either way): over the speech and the whole audio of 4,581 clips of seven
    corpora and 25 tones, noises, sweeps and buzzes, by at most 4.3e-6 dB and 2.4e-7, and no decision changed.
    """
    frames = np.lib.stride_tricks.sliding_window_view(x, _N_FFT)[::_HOP]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * _hann()
    spectrum = np.fft.rfft(frames.astype(np.float64), axis=1)  # numpy's float32 FFT: 5x slower for most row counts
    power = (np.abs(spectrum) ** 2).astype(np.float32)[:, _LOW_BIN:] + np.float32(1e-20)
    total = power.sum(axis=1)
    level = 10 * np.log10(total)
    loud = level >= level.max() - 30
    bands = 10 * np.log10(np.add.reduceat(power, _band_edges(), axis=1))
    bands = np.maximum(bands, bands.max() - 50)  # near-empty bands (a noise floor) would only add random change
    change = np.sqrt(np.mean((bands[_LAG:] - bands[:-_LAG]) ** 2, axis=1))
    pairs = loud[_LAG:] & loud[:-_LAG]
    flux = float(np.median(change[pairs])) if pairs.any() else 0.0
    cum = np.cumsum(power, axis=1)  # power in each run of 5 bins: differences of the running sum
    window = np.empty((len(cum), cum.shape[1] - 4), np.float32)
    window[:, 0] = cum[:, 4]
    np.subtract(cum[:, 5:], cum[:, :-5], out=window[:, 1:])
    share = window.max(axis=1) / total
    return flux, float(np.median(share[loud]))


@functools.cache
def _band_edges() -> np.ndarray:
    """First FFT bin (counted from _LOW_BIN) of each of up to 32 mel-spaced bands, 94 Hz to 7.6 kHz."""
    mel = np.linspace(2595 * np.log10(1 + 94 / 700), 2595 * np.log10(1 + 7600 / 700), 33)[:-1]
    hz = 700 * (10 ** (mel / 2595) - 1)
    return np.unique(np.round(hz / (VAD_SAMPLE_RATE / _N_FFT)).astype(int) - _LOW_BIN)


def looks_tonal(samples16k: np.ndarray) -> bool:
    """True when audio (the speech silero found, 16 kHz) is a steady tone, hum, buzz or sweep rather than speech.

    Speech changes its spectrum every few tens of milliseconds; a tone or a hum does not, and a sweep, though it
    changes, is one sinusoid. Over the frames within 30 dB of the loudest:

    * spectral change: the RMS difference (dB) of 32 mel-spaced band levels (floored 50 dB below the loudest)
      between frames 30 ms apart; median below :data:`TONAL_FLUX_DB` -> tonal;
    * peak share: the share of a frame's power in its strongest 156 Hz (5 FFT bins); median above
      :data:`TONAL_PEAK_SHARE` -> tonal.

    Measured on what :func:`find_speech` passes for speech before this check: 3,271 trimmed AudioMNIST-AZ words
    and digit strings and BAVED words at 8/16/48 kHz, clean and through the telephone channel, had a median
    change of at least 1.87 dB (0.1 % below 2.1) and a peak share of at most 0.98; the tones (100-220 Hz) and
    110 Hz buzzes it passed, 0.0-0.2 dB, and 100-1100 Hz sweeps a peak share of 1.00 (with a change of 2.8 dB).
    Speech from Common Voice (en, fa, uz, vi), speechocean762 and BAVED: 2.7 dB or more. Only the first
    :data:`TONAL_MAX_S` seconds are read (about 1 ms of CPU per second of speech).
    """
    x = np.asarray(samples16k, np.float32).reshape(-1)[:int(TONAL_MAX_S * VAD_SAMPLE_RATE)]
    if len(x) < _N_FFT + _LAG * _HOP:  # under 62 ms: too short to tell (and far below any minimum of speech)
        return False
    flux, peak = _tonal_measures(x)
    log.debug("looks_tonal: spectral change %.2f dB, peak share %.3f", flux, peak)
    return flux < TONAL_FLUX_DB or peak > TONAL_PEAK_SHARE


# The brevity check of find_speech (too_brief): silero answers the onset of a click or a short beep after silence as it
# answers a single word through a telephone line (0.35-0.6 for a frame or two), and the speech check confirms some of
# them: Chromium's fake microphone (a 20 ms, 400 Hz beep every 0.5 s, through the page's recorder) was answered
# "male" once in 20 runs, and 137 of 400 trains of its beeps as the page recorded them (re-placed at random offsets,
# levels -30-0 dB, periods 0.25-1 s, 1-5 s long, over a noise floor) got a gender before this check. Speech holds
# a sound as long as a syllable; a click or a beep does not. The measure: the longest run of 16 ms frames, 10 ms
# apart, whose 200-4000 Hz level is within 30 dB of the loudest frame of their speech region (each region on its own,
# so a loud click does not hide quiet speech elsewhere; noise only lengthens runs, so the check can only fail to drop
# a burst in noise, never drop speech for it). On what find_speech passed before this check: 1,411 trimmed
# AudioMNIST-AZ words and digit strings at 8/16 kHz, clean and through the telephone channel (benchmarks/
# short_speech.py's clips), at least 0.110 s (1 % below 0.120); the same with pink or white noise at 0-20 dB SNR,
# 0.130 s; 819 clips of BAVED, Common Voice (en, fa, uz, vi) and speechocean762 (clean or telephone, 8/16 kHz),
# 0.150 s; the 137 answered beep trains at most 0.050 s. It costs 0.3-0.45 ms per AudioMNIST-AZ word (whole clips;
# it stops at the first region that holds such a sound): predict on 1,024 of them 8 % slower (216 vs 234 clips/s).
MIN_SOUND_S = 0.08  # seconds: speech regions none of which holds a continuous sound this long are no speech
SOUND_FLOOR_DB = 30.0  # a frame is sound when within this many dB of its region's loudest frame
SOUND_BAND_HZ = (200.0, 4000.0)  # the band levels are measured in (a click's or a beep's low thump is below it)
_SOUND_N, _SOUND_HOP = 256, 160  # 16 ms Hann frames every 10 ms


@functools.cache
def _sound_window() -> tuple[np.ndarray, np.ndarray]:
    bins = np.fft.rfftfreq(_SOUND_N, 1 / VAD_SAMPLE_RATE)
    return np.hanning(_SOUND_N), (bins >= SOUND_BAND_HZ[0]) & (bins <= SOUND_BAND_HZ[1])


def longest_sound_s(samples16k: np.ndarray) -> float:
    """Seconds of the longest continuous sound in 16 kHz audio: the longest run of 16 ms frames (10 ms apart) whose
    200-4000 Hz level is within :data:`SOUND_FLOOR_DB` of the loudest frame's (see :func:`too_brief`)."""
    x = np.asarray(samples16k, np.float64).reshape(-1)
    if len(x) < _SOUND_N:
        return 0.0
    window, band = _sound_window()
    frames = np.lib.stride_tricks.sliding_window_view(x, _SOUND_N)[::_SOUND_HOP]
    power = np.abs(np.fft.rfft((frames - frames.mean(axis=1, keepdims=True)) * window, axis=1)[:, band]) ** 2
    level = 10 * np.log10(power.sum(axis=1) + 1e-20)
    sound = np.concatenate([[False], level >= level.max() - SOUND_FLOOR_DB, [False]])
    edges = np.flatnonzero(np.diff(sound.astype(np.int8)))  # starts and ends of the runs, alternating
    return float((edges[1::2] - edges[::2]).max(initial=0) * _SOUND_HOP / VAD_SAMPLE_RATE)


def holds_a_syllable(samples16k: np.ndarray) -> bool:
    """Whether 16 kHz audio holds a continuous sound of at least :data:`MIN_SOUND_S` (:func:`longest_sound_s`): what
    speech does and a click or a beep does not."""
    return longest_sound_s(samples16k) >= MIN_SOUND_S


def too_brief(samples16k: np.ndarray, segments: Iterable[tuple[float, float]]) -> bool:
    """True when no speech region of ``samples16k`` (16 kHz) holds a syllable-long sound (:func:`holds_a_syllable`,
    each region on its own): clicks and beeps, alone or repeated at any rate, rather than speech, whose syllables
    last longer. Stops at the first region that holds one (speech: the first, as a rule)."""
    return not any(holds_a_syllable(samples16k[int(start * VAD_SAMPLE_RATE):int(end * VAD_SAMPLE_RATE)])
                   for start, end in segments)


# The energy pre-pass of find_speech: silero cannot hear audio this quiet. Speech from 350 real clips of four
# corpora (AudioMNIST-AZ, BAVED, speechocean762, Common Voice fa), scaled so that its loudest sample is 1 / 2 / 4 / 8 /
# 16 LSB of 16-bit audio, got frame probabilities of at most 0.010 / 0.016 / 0.060 / 0.318 / 0.795 (speech found in
# 0 / 0 / 0 / 0 / 11 clips). At 2 LSB (-84 dBFS) that is 12 dB below where silero's probabilities near the lenient
# threshold, and the peak is taken as it is (a DC offset larger than this runs the model).
SILENCE_PEAK = 2 / 32768
SILENCE_MAX_P = 0.1  # the pre-pass applies only when speech starts above this probability (0.016 measured)


def find_speech(samples16k: np.ndarray, cfg: VadConfig = VadConfig(), min_speech_s: float = 0.15,
                lenient_threshold: float | None = LENIENT_THRESHOLD,
                check: Callable[[np.ndarray], bool] | None = None,
                lenient_min_speech_s: float = LENIENT_MIN_SPEECH_S,
                quiet_threshold: float | None = QUIET_THRESHOLD) -> list[tuple[float, float]]:
    """Speech regions for a yes/no decision on a whole recording: is there ``min_speech_s`` of speech?

    1. :func:`speech_segments` with ``cfg``;
    2. when that finds less than ``min_speech_s``, the same frame probabilities again with speech starting at
       ``lenient_threshold`` (and ending below it - 0.15). A short word gives silero little context: through the
       telephone channel most of its frames score 0.2-0.5. No new model run is needed;
    3. no regions at all when the speech found :func:`looks_tonal` (a tone or hum after silence passes silero) or
       is :func:`too_brief` (clicks and beeps: no sound in it lasts a syllable);
    4. with a ``check`` (speech samples -> is it speech?, e.g. the shipped model's speech check), speech found
       only by the second pass is kept only when ``check`` confirms it; then the second pass keeps regions from
       ``lenient_min_speech_s`` on (two frames), which single words through a telephone line need, and when it
       finds too little a third pass starts speech at ``quiet_threshold`` (also confirmed by ``check``).

    A recording whose every sample lies within :data:`SILENCE_PEAK` of zero has no speech without running the model
    (when the thresholds are above :data:`SILENCE_MAX_P`).

    Returns sorted, non-overlapping (start, end) pairs in seconds, as :func:`speech_segments`.
    """
    x = np.asarray(samples16k, np.float32).reshape(-1)
    further = sorted({t for t in (lenient_threshold, quiet_threshold if check is not None else None)
                      if t is not None and t < cfg.threshold}, reverse=True)  # the passes after the first
    lowest = min([cfg.threshold, *further])
    if len(x) and lowest > SILENCE_MAX_P and max(float(x.max()), -float(x.min())) <= SILENCE_PEAK:
        return []  # (near) digital silence: the energy pre-pass
    probs = frame_probabilities(samples16k, cfg.warmup_frames)
    duration = len(samples16k) / VAD_SAMPLE_RATE
    segments = segments_from_probs(probs, cfg, duration)
    shortest = cfg.min_speech_s if check is None else min(cfg.min_speech_s, lenient_min_speech_s)
    for threshold in further:
        if speech_seconds(segments) >= min_speech_s:
            break
        lenient = dataclasses.replace(cfg, threshold=threshold, neg_threshold=None, min_speech_s=shortest)
        segments = segments_from_probs(probs, lenient, duration)
        if check is not None and speech_seconds(segments) >= min_speech_s and not check(
                speech_only(samples16k, segments)):
            return []
    if segments and (too_brief(x, segments) or looks_tonal(speech_only(samples16k, segments))):
        return []
    return segments
