from pathlib import Path

import librosa
import numpy as np
import pytest
from conftest import SEED_FIXTURE, requires_seed_fixture

from voicegender.audio.decode import INT16_SCALE, load_audio
from voicegender.audio.synth import synth_voice
from voicegender.research.features import (
    FeatureCache,
    LogMelConfig,
    SeedMfccConfig,
    config_key,
    log_mel,
    pad_or_crop,
    pre_emphasis,
    seed_features,
    seed_mfcc,
    seed_mfcc_image,
)


def test_seed_config_derives_the_original_parameters():
    cfg = SeedMfccConfig()
    assert (cfg.clip_samples, cfg.n_fft, cfg.hop_length) == (47_998, 1200, 480)
    cfg16 = SeedMfccConfig(sample_rate=16_000)
    assert (cfg16.clip_samples, cfg16.n_fft, cfg16.hop_length) == (15_999, 400, 160)


def test_pad_or_crop_offsets():
    x = np.arange(1, 5, dtype=float)
    np.testing.assert_array_equal(pad_or_crop(x, 8, offset=1), [0, 1, 2, 3, 4, 0, 0, 0])
    np.testing.assert_array_equal(pad_or_crop(x, 8), [0, 0, 1, 2, 3, 4, 0, 0])  # centred for inference
    np.testing.assert_array_equal(pad_or_crop(np.arange(10.0), 4), [3, 4, 5, 6])  # centred crop
    padded = {tuple(pad_or_crop(x, 8, rng=np.random.default_rng(s))) for s in range(20)}
    assert len(padded) > 1  # random offsets when training
    with pytest.raises(ValueError):
        pad_or_crop(x, 8, offset=5)


def test_seed_mfcc_equals_a_direct_librosa_call(rng):
    wave = rng.standard_normal(47_998) * 3000
    direct = librosa.feature.mfcc(
        y=np.append(wave[0], wave[1:] - 0.97 * wave[:-1]), sr=48_000, n_mfcc=12, dct_type=2, norm="ortho",
        lifter=22, n_fft=1200, hop_length=480, power=2, center=False, window="hann", n_mels=40)
    ours = seed_mfcc(wave)
    assert ours.shape == (12, 98)
    np.testing.assert_allclose(ours, direct, rtol=1e-10)
    np.testing.assert_array_equal(pre_emphasis(np.array([1.0, 2.0]), 0.5), [1.0, 1.5])


@requires_seed_fixture
def test_seed_pipeline_reproduces_the_golden_fixture():
    from PIL import Image

    audio = load_audio(SEED_FIXTURE / "clip_48k_int16.wav", sr=None)
    mfcc = seed_features(audio.samples, audio.sample_rate)
    golden = np.load(SEED_FIXTURE / "mfcc.npy")
    assert np.abs(mfcc - golden).max() <= 1e-4 * np.abs(golden).max()
    image = seed_mfcc_image(mfcc)
    golden_image = np.asarray(Image.open(SEED_FIXTURE / "image.png"))
    assert image.shape == golden_image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - golden_image).max() <= 1


def test_seed_features_scale_float_audio_to_int16_and_resample():
    wave16k = synth_voice(120, 0.7, 16_000)
    mfcc = seed_features(wave16k, 16_000)
    assert mfcc.shape == (12, 98)
    # the same clip given in int16 units at 48 kHz through the raw call gives the same matrix
    from voicegender.audio.decode import resample
    from voicegender.research.features import SEED_CLIP_SAMPLES
    raw = pad_or_crop(resample(wave16k, 16_000, 48_000).astype(np.float64) * INT16_SCALE, SEED_CLIP_SAMPLES)
    np.testing.assert_allclose(mfcc, seed_mfcc(raw), rtol=1e-6)
    # a float clip not scaled to int16 would give a very different first coefficient (the seed's deploy bug)
    assert seed_mfcc(raw / INT16_SCALE)[0].mean() < mfcc[0].mean() - 100


def test_seed_image_clips_without_rescaling():
    mfcc = np.full((12, 98), -50.0)
    mfcc[:3] = 400.0  # above 255 -> saturates white
    mfcc[5] = 100.0
    image = seed_mfcc_image(mfcc)
    assert image[0, :, 0].min() == 255 and image[-1, :, 0].max() == 0
    middle_row = image[int(5.5 / 12 * 224), 100]
    assert 90 <= middle_row[0] <= 101 and (middle_row == middle_row[0]).all()


def test_log_mel_is_frequency_ordered():
    cfg = LogMelConfig()
    sr = cfg.sample_rate
    t = np.arange(sr) / sr
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 3000 * t)
    centres = cfg.band_centres_hz()
    assert centres.shape == (64,) and np.all(np.diff(centres) > 0)
    for tone, hz in ((low, 300), (high, 3000)):
        spec = log_mel(tone.astype(np.float32), cfg)
        assert spec.shape == (64, 101) and spec.dtype == np.float32
        peak_band = spec.mean(axis=1).argmax()
        assert abs(centres[peak_band] - hz) < 0.15 * hz
    assert np.isfinite(log_mel(np.zeros(1600, np.float32))).all()


def test_feature_cache_round_trip_and_invalidation(tmp_path: Path):
    source = tmp_path / "clip.wav"
    source.write_bytes(b"x" * 10)
    cache = FeatureCache(tmp_path / "cache")
    key = config_key(LogMelConfig())
    assert key != config_key(LogMelConfig(n_mels=40)) and key != config_key(SeedMfccConfig())
    assert cache.get(source, key) is None
    cache.put(source, key, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(cache.get(source, key), np.arange(6.0).reshape(2, 3))
    source.write_bytes(b"y" * 11)  # the file changed: the old entry must not be returned
    assert cache.get(source, key) is None


def test_featurize_dispatches_on_the_checkpoint_description():
    from voicegender.research.features import feature_config_dict, feature_sample_rate, featurize

    wave = synth_voice(220, 0.6, 16_000)
    mel_cfg = feature_config_dict("log_mel", LogMelConfig())
    assert featurize(wave, 16_000, mel_cfg).shape == (64, 61)
    assert featurize(wave, 16_000, feature_config_dict("seed_mfcc", SeedMfccConfig())).shape == (12, 98)
    image = featurize(wave, 16_000, feature_config_dict("seed_image", SeedMfccConfig()))
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert feature_sample_rate(mel_cfg) == 16_000
    assert feature_sample_rate(feature_config_dict("seed_mfcc", SeedMfccConfig())) == 48_000
    with pytest.raises(ValueError):
        feature_config_dict("wavelets")


def test_models_trained_on_the_seed_pictures_get_clipped_coefficients():
    wave = synth_voice(120, 0.7, 16_000)
    raw = seed_features(wave, 16_000)
    clipped = seed_features(wave, 16_000, SeedMfccConfig(clip_to_image=True))
    assert raw.min() < 0 and clipped.min() == 0 and clipped.max() <= 255
    np.testing.assert_array_equal(clipped, np.clip(raw, 0, 255))
