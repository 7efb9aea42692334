from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SEED_FIXTURE, requires_seed_fixture, write_voice
from PIL import Image

from voicegender.corpora import Clip, load_manifest
from voicegender.errors import AudioDecodeError
from voicegender.research.dataset import (
    Augment,
    ClipDataset,
    crop_or_pad_frames,
    feature_key,
    image_feature,
    pad_collate,
    precompute,
)
from voicegender.research.features import (
    LogMelConfig,
    SeedMfccConfig,
    feature_config_dict,
    seed_features,
    seed_mfcc_image,
)

LOG_MEL = feature_config_dict("log_mel", LogMelConfig())
SEED_MFCC = feature_config_dict("seed_mfcc", SeedMfccConfig())
SEED_IMAGE = feature_config_dict("seed_image", SeedMfccConfig())


def test_audio_items_have_model_shapes(voice_pair, tmp_path: Path):
    clips = [Clip(voice_pair["female"], "f1", "female"), Clip(voice_pair["male"], "m1", "male")]
    for fc, shape in ((LOG_MEL, (1, 64, 81)), (SEED_MFCC, (1, 12, 98)), (SEED_IMAGE, (3, 224, 224))):
        ds = ClipDataset(clips, fc, cache_dir=tmp_path / "cache")
        x, y = ds[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == shape and y == 0 and ds[1][1] == 1
    x, _ = ClipDataset(clips, SEED_IMAGE, cache_dir=None)[0]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_cache_makes_second_pass_identical_and_keys_differ(voice_pair, tmp_path: Path):
    clips = [Clip(voice_pair["female"], "f1", "female")]
    first = precompute(clips, LOG_MEL, tmp_path / "c")
    assert any((tmp_path / "c").rglob("*.npy"))
    second = precompute(clips, LOG_MEL, tmp_path / "c")
    np.testing.assert_array_equal(first[0], second[0])
    assert feature_key(LOG_MEL, "audio") != feature_key(SEED_MFCC, "audio") != feature_key(SEED_MFCC, "image")


def test_unreadable_clip_is_reported_or_raised(tmp_path: Path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    clips = [Clip(bad, "s", "male")]
    feats, failed = precompute(clips, LOG_MEL, None, skip_errors=True)
    assert feats == [None] and len(failed) == 1 and str(bad) in failed[0]
    with pytest.raises(AudioDecodeError):
        precompute(clips, LOG_MEL, None)


def test_training_crops_are_random_per_epoch_and_deterministic(tmp_path: Path):
    path = write_voice(tmp_path / "long.wav", "male", seconds=1.5)
    clips = [Clip(path, "m", "male")]
    ds = ClipDataset(clips, LOG_MEL, train=True, crop_frames=50, cache_dir=None, seed=3)
    a = ds[0][0]
    assert tuple(a.shape) == (1, 64, 50)
    torch.testing.assert_close(ds[0][0], a)  # same epoch, same draw
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], a)
    evaluation = ClipDataset(clips, LOG_MEL, train=False, cache_dir=None)
    assert evaluation[0][0].shape[-1] == 151  # whole clip at 100 frames/s (centred STFT)


def test_audio_augmentation_changes_audio_but_keeps_shape(voice_pair, rng):
    from voicegender.audio.decode import load_audio

    x = load_audio(voice_pair["female"]).samples
    aug = Augment(noise_p=1.0, band_p=1.0).apply(x, 16_000, rng)
    assert aug.shape == x.shape and aug.dtype == np.float32 and not np.allclose(aug, x)
    ds = ClipDataset([Clip(voice_pair["female"], "f", "female")], SEED_MFCC, train=True, augment=Augment(),
                     cache_dir=None)
    assert tuple(ds[0][0].shape) == (1, 12, 98)


def test_crop_pad_and_collate():
    x = np.arange(10, dtype=np.float32)[None]
    assert crop_or_pad_frames(x, 4).tolist() == [[3, 4, 5, 6]]
    padded = crop_or_pad_frames(x, 14)
    assert padded.shape == (1, 14) and padded[0, 0] == 0 and padded[0, 2:12].tolist() == list(range(10))
    xb, yb = pad_collate([(torch.ones(1, 2, 3), 0), (torch.zeros(1, 2, 5), 1)])
    assert tuple(xb.shape) == (2, 1, 2, 5) and yb.tolist() == [0, 1] and float(xb[0, 0, 0, 4]) == 1.0


def _image_corpus(tmp_path: Path) -> Path:
    rows = ["path,speaker,gender"]
    for i, gender in enumerate(("female", "male")):
        wav = write_voice(tmp_path / f"{gender}.wav", gender)
        from voicegender.audio.decode import load_audio

        audio = load_audio(wav, None)
        image = seed_mfcc_image(seed_features(audio.samples, audio.sample_rate))
        Image.fromarray(image).save(tmp_path / f"{gender}.jpg", quality=95)
        rows.append(f"{gender}.jpg,s{i},{gender}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"


def test_image_corpus_features(tmp_path: Path):
    corpus = load_manifest(_image_corpus(tmp_path))
    assert corpus.kind == "image"
    image = ClipDataset(corpus.clips, SEED_IMAGE, cache_dir=None)
    x, y = image[0]
    assert tuple(x.shape) == (3, 224, 224) and 0 <= float(x.min()) and float(x.max()) <= 1 and y == 0
    mfcc = ClipDataset(corpus.clips, SEED_MFCC, cache_dir=tmp_path / "cache")
    x, _ = mfcc[1]
    assert tuple(x.shape) == (1, 12, 98) and 0 <= float(x.min()) and float(x.max()) <= 255


@requires_seed_fixture
def test_seed_mfcc_from_golden_image_is_the_clipped_mfcc():
    """The documented meaning of seed_mfcc for images: clip(MFCC, 0, 255) up to JPEG error."""
    feature = image_feature(SEED_FIXTURE / "image.jpg", "seed_mfcc")
    clipped = np.clip(np.load(SEED_FIXTURE / "mfcc.npy"), 0, 255)
    assert feature.shape == (12, 98)
    assert np.corrcoef(feature.ravel(), clipped.ravel())[0, 1] > 0.99
    assert np.abs(feature - clipped).mean() < 4
