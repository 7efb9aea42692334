"""Pitch in numpy (voicegender.voice.pitch): known F0 of synthetic voices, none for noise and silence, and close to
Praat's on speech."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import espeak, requires_espeak

from voicegender.audio.synth import synth_noise, synth_tone, synth_voice
from voicegender.voice.pitch import frame_f0, median_pitch


@pytest.mark.parametrize("f0", [85.0, 120.0, 180.0, 220.0, 320.0, 450.0])
def test_median_pitch_of_voices_with_known_f0(f0):
    assert median_pitch(synth_voice(f0, 1.0, seed=3)) == pytest.approx(f0, rel=0.03)
    assert median_pitch(synth_voice(f0, 1.0, seed=3) - 0.085) == pytest.approx(f0, rel=0.03)  # a DC offset


def test_no_pitch_without_a_voice():
    assert median_pitch(synth_noise(1.0)) is None
    assert median_pitch(np.zeros(16_000, np.float32)) is None
    assert median_pitch(np.zeros(100, np.float32)) is None
    assert len(frame_f0(np.zeros(100))) == 0
    assert median_pitch(synth_tone(200.0, 1.0)) == pytest.approx(200.0, rel=0.01)


@requires_espeak
def test_close_to_praat_on_speech():
    parselmouth = pytest.importorskip("parselmouth")
    for voice, pitch in (("en+m3", 30), ("en+f3", 70)):
        speech = espeak("The weather would be fine tomorrow, she said.", voice, pitch)
        praat = parselmouth.Sound(speech.astype(np.float64), 16_000).to_pitch_ac(
            time_step=0.01, pitch_floor=60, pitch_ceiling=500).selected_array["frequency"]
        assert median_pitch(speech) == pytest.approx(float(np.median(praat[praat > 0])), rel=0.05)
