"""Narrow-band detection (telephone lines, 8 kHz recordings) for the speakers' clustering threshold."""

import numpy as np
import pytest

from voicegender.audio.augment import telephone
from voicegender.audio.bandwidth import NARROWBAND_DB, BandwidthMeter
from voicegender.audio.synth import synth_voice

SR = 16_000


def _measure(samples: np.ndarray, block: int | None = None) -> BandwidthMeter:
    meter = BandwidthMeter(SR)
    for i in range(0, len(samples), block or max(1, len(samples))):
        meter.feed(samples[i:i + (block or len(samples))])
    return meter


@pytest.mark.parametrize("make", [
    lambda rng: rng.standard_normal(SR * 4).astype(np.float32) * 0.1,  # white noise
    lambda rng: synth_voice(180.0, 4.0, SR, seed=3),  # a voice with its harmonics up to 8 kHz
])
def test_wide_band_sound_is_wide_and_the_telephone_line_makes_it_narrow(make):
    wide = make(np.random.default_rng(0))
    meter = _measure(wide)
    assert not meter.narrowband and meter.ratio_db > NARROWBAND_DB + 10
    line = _measure(telephone(wide, SR))
    assert line.narrowband and line.ratio_db < NARROWBAND_DB - 20


def test_the_answer_does_not_depend_on_how_the_stream_is_cut():
    samples = telephone(np.random.default_rng(1).standard_normal(SR * 3).astype(np.float32) * 0.1, SR)
    whole = _measure(samples)
    for block in (1, 511, 4000, 16_001):
        cut = _measure(samples, block)
        assert cut.low_power == pytest.approx(whole.low_power, rel=1e-5)
        assert cut.high_power == pytest.approx(whole.high_power, rel=1e-3, abs=1e-12)


def test_silence_and_nothing_are_not_narrow_band():
    assert _measure(np.zeros(SR, np.float32)).ratio_db is None
    assert not _measure(np.zeros(SR, np.float32)).narrowband
    assert BandwidthMeter(SR).ratio_db is None
    assert _measure(np.zeros(100, np.float32)).ratio_db is None  # shorter than one look
