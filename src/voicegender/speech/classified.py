"""The speech a prediction classifies: the settings ``predict`` detects speech with in a whole recording, and that
speech concatenated. ``voicegender fit`` builds its training copies with the same function, so a head learns from
what it is shown at prediction time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .vad import VAD_SAMPLE_RATE, WARMUP_S, VadConfig, find_speech, speech_only, speech_seconds

MIN_SPEECH_S = 0.15  # less speech than this (seconds) -> no_speech (a short word; see PREDICT_VAD)

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
# Clicks and short beeps (Chromium's fake microphone) are dropped by vad.too_brief: no sound in them lasts a syllable.
PREDICT_VAD = VadConfig(min_speech_s=0.1, pad_s=0.1, warmup_s=WARMUP_S)


def classified_speech(samples16k: np.ndarray, vad_config: VadConfig = PREDICT_VAD, min_speech_s: float = MIN_SPEECH_S,
                      check: Callable[[np.ndarray], bool] | None = None, vad: bool = True) -> tuple[np.ndarray, float]:
    """What ``predict`` classifies in a 16 kHz recording: its detected speech (concatenated) and its seconds.

    ``check``: a model's speech check (:attr:`voicegender.voice.model.Model.speech_check`), which confirms speech
    that only the lenient passes of :func:`voicegender.speech.vad.find_speech` found; ``voicegender fit`` calls this
    without one (a head being fitted has none yet). ``vad=False``: the whole recording is the speech.
    """
    samples16k = np.asarray(samples16k, np.float32)
    if not vad:
        return samples16k, len(samples16k) / VAD_SAMPLE_RATE
    segments = find_speech(samples16k, vad_config, min_speech_s, check=check)
    return speech_only(samples16k, segments), speech_seconds(segments)
