"""The window check of a timeline: does a window hold speech, or music or noise alone?

silero-vad passes music (singing, a melody, drums) and noise scenes (a crowd, a café) for speech often enough that,
in broadcasts, a timeline would give music-alone stretches a gender. ``segment`` scores every 1.5 s window on the
frames speech detection passed; this layer (log-odds of speech, a logistic regression over the GE2E embedding the
window gets anyway, so it costs nothing at run time) tells it which windows hold music or noise alone, and their
frames leave the speech.

It learns from windows made as ``segment`` makes them (:func:`timeline_windows`): speech from labelled corpora,
clean or mixed with music, noise scenes or other voices at 3-20 dB and some through a telephone line (speech over
music is still speech), against music and noise recordings alone (:mod:`voicegender.voice.conversations`'s
background folder) at random levels. Fitted without a corpus and a group of artists, it is measured on them
(:func:`check_report`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..audio.augment import rms, telephone
from ..speech.vad_model import FRAME_SAMPLES, VAD_SAMPLE_RATE, frame_probabilities
from .head import LinearLayer

log = logging.getLogger(__name__)

# the windows segment scores (listen.segment.SegmentOptions' defaults): 1.5 s every 0.5 s, on the frames at or above
# its detector's off threshold (0.5 - 0.15), windows with at least 0.5 s of such frames
WINDOW_S = 1.5
HOP_S = 0.5
MIN_WINDOW_SPEECH_S = 0.5
FRAME_THRESHOLD = 0.35
SNR_DB = (3.0, 20.0)  # speech over a background: SNR drawn uniformly from this range
LEVEL_DBFS = (-40.0, -12.0)  # background alone: RMS level drawn from this range
TELEPHONE_SHARE = 0.25  # share of training recordings sent through the telephone channel
RECORDING_S = 6.0  # a speech recording is one speaker's clips joined up to about this long


def timeline_windows(samples16k: np.ndarray) -> list[np.ndarray]:
    """The speech samples of each window ``segment`` would score in a recording (see the constants above)."""
    x = np.asarray(samples16k, np.float32)
    probs = frame_probabilities(x)
    win, hop = int(WINDOW_S * VAD_SAMPLE_RATE), int(HOP_S * VAD_SAMPLE_RATE)
    starts = list(range(0, max(1, len(x) - win + 1), hop))
    out = []
    for s in starts:
        window = x[s:s + win]
        frames = (s + np.arange(len(window))) // FRAME_SAMPLES
        keep = probs[np.minimum(frames, len(probs) - 1)] >= FRAME_THRESHOLD if len(probs) else np.zeros(0, bool)
        speech = window[keep]
        if len(speech) >= MIN_WINDOW_SPEECH_S * VAD_SAMPLE_RATE:
            out.append(speech)
    return out


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / max(rms(x), 1e-9))).astype(np.float32)


def _piece(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x`` from a random place (tiled when shorter)."""
    if len(x) < n:
        x = np.tile(x, -(-n // max(1, len(x))))
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start:start + n]


def speech_recordings(clips_by_speaker: dict[str, list[np.ndarray]], backgrounds: Sequence[np.ndarray],
                      rng: np.random.Generator) -> list[np.ndarray]:
    """One recording per speaker (clips joined with short pauses, up to :data:`RECORDING_S`), a third clean, a third
    over a background recording, a third over two other speakers (babble), at :data:`SNR_DB`; some through a
    telephone line."""
    speakers = sorted(clips_by_speaker)
    out = []
    for k in speakers:
        parts, total = [], 0
        for clip in clips_by_speaker[k]:
            parts += [clip, np.zeros(int(rng.uniform(0.05, 0.3) * VAD_SAMPLE_RATE), np.float32)]
            total += len(clip)
            if total >= RECORDING_S * VAD_SAMPLE_RATE:
                break
        speech = _at_level(np.concatenate(parts), rng.uniform(-30, -18))
        kind = rng.integers(3)
        snr = rng.uniform(*SNR_DB)
        if kind == 1 and len(backgrounds):
            under = _piece(backgrounds[int(rng.integers(len(backgrounds)))], len(speech), rng)
        elif kind == 2 and len(speakers) > 2:
            others = [k2 for k2 in rng.choice(speakers, 3, replace=False) if k2 != k][:2]
            under = sum(_piece(np.concatenate(clips_by_speaker[o]), len(speech), rng) for o in others)
        else:
            under = None
        if under is not None:
            speech = speech + _at_level(under, 20 * np.log10(max(rms(speech), 1e-9)) - snr)
        if rng.random() < TELEPHONE_SHARE:
            speech = telephone(speech, VAD_SAMPLE_RATE)
        out.append(np.asarray(speech, np.float32))
    return out


def background_recordings(backgrounds: Sequence[np.ndarray], rng: np.random.Generator, piece_s: float = 30.0
                          ) -> list[np.ndarray]:
    """Pieces of up to ``piece_s`` of every background recording alone, at random levels (:data:`LEVEL_DBFS`), some
    through a telephone line."""
    out = []
    n = int(piece_s * VAD_SAMPLE_RATE)
    for x in backgrounds:
        for start in range(0, max(1, len(x) - n // 2), n):
            piece = x[start:start + n]
            if len(piece) < VAD_SAMPLE_RATE:
                continue
            piece = _at_level(piece, rng.uniform(*LEVEL_DBFS))
            if rng.random() < TELEPHONE_SHARE:
                piece = telephone(piece, VAD_SAMPLE_RATE)
            out.append(np.asarray(piece, np.float32))
    return out


def window_embeddings(recordings: Sequence[np.ndarray]) -> np.ndarray:
    """GE2E embeddings (n, 256) of every window :func:`timeline_windows` finds in the recordings."""
    from .embeddings import EMBEDDING_DIM, ge2e_embeddings

    windows = [w for x in recordings for w in timeline_windows(x)]
    return ge2e_embeddings(windows, threads=2) if windows else np.zeros((0, EMBEDDING_DIM), np.float32)


def fit_window_check(speech: np.ndarray, background: np.ndarray, c: float = 1e-2) -> LinearLayer:
    """The layer (log-odds of speech) from speech windows' and background windows' embeddings, each side weighing
    half."""
    from .layers import fit_linear

    x = np.concatenate([speech, background]).astype(np.float64)
    y = np.r_[np.ones(len(speech), int), np.zeros(len(background), int)]
    w = np.where(y == 1, 0.5 / max(1, len(speech)), 0.5 / max(1, len(background))) * len(y)
    return fit_linear(x, y, w, c)


def check_report(layer: LinearLayer, speech: np.ndarray, background: np.ndarray) -> dict:
    """Speech windows the layer rejects and background windows it accepts (log-odds below / at least 0)."""
    return {"speech_windows": int(len(speech)), "background_windows": int(len(background)),
            "speech_rejected": float(np.mean(layer.logit(speech) < 0)) if len(speech) else None,
            "background_accepted": float(np.mean(layer.logit(background) >= 0)) if len(background) else None}


def clips_by_speaker(corpora: Sequence, rng: np.random.Generator, speakers_per_corpus: int = 60,
                     clips_per_speaker: int = 6) -> dict[str, list[np.ndarray]]:
    """Decoded clips (16 kHz, DC removed) of up to ``speakers_per_corpus`` speakers of each corpus (ages 12 and
    under included: speech is speech), up to ``clips_per_speaker`` each."""
    from ..audio.decode import load_audio
    from ..errors import AudioDecodeError

    out: dict[str, list[np.ndarray]] = {}
    for corpus in corpora:
        by: dict[str, list] = {}
        for c in corpus.clips:
            by.setdefault(c.speaker, []).append(c)
        chosen = rng.permutation(sorted(by))[:speakers_per_corpus]
        for spk in chosen:
            waves = []
            for c in rng.permutation(len(by[spk]))[:clips_per_speaker]:
                try:
                    x = load_audio(by[spk][int(c)].path, VAD_SAMPLE_RATE).samples
                except AudioDecodeError as e:
                    log.warning("%s", e)
                    continue
                waves.append((x - x.mean()).astype(np.float32))
            if waves:
                out[f"{corpus.name}/{spk}"] = waves
    return out


def fit_from(corpora: Sequence, background_paths: Sequence, seed: int = 0) -> tuple[LinearLayer, dict]:
    """The window check fitted on ``corpora``'s speech and the background recordings at ``background_paths``
    (music and noise alone, and under the speech); returns the layer and its in-sample error rates."""
    from ..audio.decode import load_audio

    rng = np.random.default_rng(seed)
    backgrounds = [load_audio(p, VAD_SAMPLE_RATE).samples for p in background_paths]
    backgrounds = [(x - x.mean()).astype(np.float32) for x in backgrounds]
    speech = window_embeddings(speech_recordings(clips_by_speaker(corpora, rng), backgrounds, rng))
    alone = window_embeddings(background_recordings(backgrounds, rng))
    layer = fit_window_check(speech, alone)
    log.info("window check: %d speech and %d background windows", len(speech), len(alone))
    return layer, check_report(layer, speech, alone)
