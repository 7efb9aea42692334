"""Each augmentation's measurable effect, on synthetic audio (no corpus needed)."""

from __future__ import annotations

import numpy as np
import pytest

from voicegender.audio import augment
from voicegender.audio.synth import synth_voice

SR = 16_000


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spectrum[(f >= lo) & (f < hi)].sum() / spectrum.sum())


@pytest.fixture
def broadband() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (synth_voice(150, 1.0, SR) + 0.05 * rng.standard_normal(SR)).astype(np.float32)


def test_band_limit_kills_energy_outside_telephone_band(broadband):
    y = augment.band_limit(broadband, SR)
    assert _band_energy(broadband, 3600, 8000) > 0.05
    assert _band_energy(y, 3600, 8000) < 1e-3
    assert _band_energy(y, 0, 200) < 1e-3


def test_telephone_keeps_length_and_removes_high_band(broadband):
    y = augment.telephone(broadband, SR)
    assert y.shape == broadband.shape and y.dtype == np.float32
    assert _band_energy(y, 3800, 8000) < 1e-3
    # the speech band survives: strongly correlated with the band-limited input
    ref = augment.band_limit(broadband, SR)
    assert np.corrcoef(ref, y)[0, 1] > 0.9


def test_mu_law_quantises_to_256_levels_and_round_trips():
    x = np.linspace(-1, 1, 10_001)
    y = augment.mu_law(x)
    assert len(np.unique(y)) <= 257
    assert np.max(np.abs(y - x)) < 0.04  # coarse near full scale
    small = np.linspace(-0.01, 0.01, 101)
    assert np.max(np.abs(augment.mu_law(small) - small)) < 5e-4  # fine near zero: that is the point of µ-law


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_add_noise_hits_the_asked_snr(kind, snr):
    rng = np.random.default_rng(0)
    x = synth_voice(200, 1.0, SR, seed=3)
    others = [synth_voice(130, 0.7, SR, seed=s) for s in range(3)]
    y = augment.add_noise(x, snr, rng, kind, others)
    noise = y.astype(np.float64) - x
    measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise**2))
    assert abs(measured - snr) < 1.0


def test_pink_noise_has_falling_spectrum():
    n = augment.pink_noise(1 << 16, np.random.default_rng(0))
    assert _band_energy(n, 20, 200) > 5 * _band_energy(n, 4000, 4180)


def test_reverberation_decays_at_rt60_and_smears_an_impulse():
    rng = np.random.default_rng(0)
    rir = augment.room_impulse_response(SR, 0.5, rng, direct_ratio=0.3)
    assert len(rir) == SR // 2
    early = np.sum(rir[1:800] ** 2) / 799
    late = np.sum(rir[7200:8000] ** 2) / 800  # 0.45–0.5 s: ~54–60 dB below the start
    assert 10 * np.log10(early / late) > 40
    x = np.zeros(SR, np.float32)
    x[100] = 1.0
    y = augment.reverberate(x, SR, rng, rt60=0.5)
    assert np.count_nonzero(np.abs(y) > 1e-4) > 1000
    assert abs(augment.rms(y) - augment.rms(x)) < 1e-6


def test_gain_in_decibels():
    x = synth_voice(150, 0.5, SR)
    assert 20 * np.log10(augment.rms(augment.gain(x, 6.0)) / augment.rms(x)) == pytest.approx(6.0, abs=1e-4)


def test_speed_changes_length_but_not_pitch():
    x = synth_voice(150, 1.0, SR, seed=0)
    y = augment.speed(x, 1.25)
    assert abs(len(y) - len(x) / 1.25) < 0.02 * len(x)

    def spectral_peak(z):
        s = np.abs(np.fft.rfft(z * np.hanning(len(z))))
        f = np.fft.rfftfreq(len(z), 1 / SR)
        band = (f > 80) & (f < 400)
        return f[band][np.argmax(s[band])]

    assert abs(spectral_peak(y) - spectral_peak(x)) < 15  # the fundamental stays put


def test_random_crop_lengths():
    x = np.zeros(10 * SR, np.float32)
    rng = np.random.default_rng(0)
    lengths = [len(augment.random_crop(x, SR, rng)) / SR for _ in range(50)]
    assert 0.5 <= min(lengths) and max(lengths) <= 4.0
    assert len(augment.random_crop(np.zeros(SR // 4, np.float32), SR, rng)) == SR // 4


def test_random_augment_is_seeded():
    x = synth_voice(180, 1.0, SR)
    a = augment.random_augment(x, SR, np.random.default_rng(5), [x])
    b = augment.random_augment(x, SR, np.random.default_rng(5), [x])
    c = augment.random_augment(x, SR, np.random.default_rng(6), [x])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.isfinite(a))


@pytest.mark.parametrize("name", list(augment.CODECS))
def test_codec_round_trip_keeps_length_and_the_voice(name):
    wave = synth_voice(150.0, 1.0, SR, seed=4)
    # the dev install takes the fit extras' PyAV pin, whose wheels carry every encoder; a failure here is a broken pin
    out = augment.codec(wave, SR, name)
    assert out.shape == wave.shape and out.dtype == np.float32
    # the codec delays the signal a little: compare at the best lag within 60 ms
    lags = range(0, int(0.06 * SR), 8)
    corr = max(np.corrcoef(wave[: len(wave) - lag - 960], out[lag: len(wave) - 960])[0, 1] for lag in lags)
    assert corr > (0.5 if name in ("amr_nb", "g723_1") else 0.8)  # narrow-band speech codecs: band-limited
    assert not np.allclose(out, wave)


def test_codec_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown codec"):
        augment.codec(np.zeros(SR, np.float32), SR, "flac")


def test_a_law_round_trip_is_close_and_quantised():
    x = np.linspace(-1, 1, 10_001).astype(np.float32)
    y = augment.a_law(x)
    assert np.abs(y - x).max() < 0.04
    assert len(np.unique(y)) <= 256


def test_clip_peaks_distorts_but_keeps_level():
    wave = synth_voice(150.0, 0.5, SR, seed=1)
    out = augment.clip_peaks(wave, 12.0)
    assert np.abs(out).max() < np.abs(wave).max()  # peaks flattened
    assert augment.rms(out) > 0.5 * augment.rms(wave)


def test_tilt_changes_the_spectral_slope():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)

    def high_share(x):
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        return spec[f > 2000].sum() / spec.sum()

    assert high_share(augment.tilt(noise, SR, 4.0)) > high_share(noise) > high_share(augment.tilt(noise, SR, -4.0))


def test_random_channel_is_seeded_and_keeps_length():
    wave = synth_voice(150.0, 0.7, SR, seed=2)
    a = augment.random_channel(wave, SR, np.random.default_rng(5))
    b = augment.random_channel(wave, SR, np.random.default_rng(5))
    assert a.shape == wave.shape and np.array_equal(a, b)


def test_telephone_companding_law():
    wave = synth_voice(150.0, 0.5, SR, seed=3)
    mu, a = augment.telephone(wave, SR, law="mu"), augment.telephone(wave, SR, law="a")
    assert mu.shape == a.shape == wave.shape and not np.allclose(mu, a)
    assert np.corrcoef(mu, a)[0, 1] > 0.99  # two quantisations of the same band-limited signal
    with pytest.raises(ValueError, match="companding law"):
        augment.telephone(wave, SR, law="gsm")


def test_a_codec_missing_from_pyav_names_the_extra_that_brings_it(monkeypatch):
    from voicegender.extras import MissingExtraError

    monkeypatch.setitem(augment.CODECS, "amr_nb", ("no_such_encoder", 8_000, (4_750,)))
    with pytest.raises(MissingExtraError, match=r"amr_nb channel .*no_such_encoder.*pip install 'voicegender\[fit\]'"):
        augment.codec(synth_voice(150.0, 0.2, SR), SR, "amr_nb")
