"""The shipped default model: loads from package resources, scores speech, explains; torch checkpoint scoring."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data

from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice
from voicegender.research import scoring
from voicegender.research.features import feature_config_dict
from voicegender.research.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
from voicegender.voice import default_model as dm

needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="the default model's encoder weights ship in the resemblyzer wheel")


def test_asset_is_inside_the_package_and_small():
    path = dm.default_model_path()
    assert path.parent.name == "assets" and path.parent.parent.name == "voicegender"
    assert path.suffix == ".npz" and path.stat().st_size < 5_000_000


def test_default_model_metadata():
    model = dm.load_default_model()
    assert model.name == dm.DEFAULT_MODEL_NAME and model.metadata["training_corpora"]
    assert model.scores_clips_apart and model.speech_check is not None
    assert len(model.head.temperatures) == 5 and all(t > 0 for t in model.head.temperatures)
    assert model.head.child is not None
    assert dm.load_default_model() is model  # cached


def test_the_shipped_file_says_its_own_version_and_a_fitted_file_falls_back(tmp_path):
    """The file, not the package, carries the model's version (what the page, /api/health and --version show)."""
    from voicegender import __version__

    model = dm.load_default_model()
    assert model.metadata["version"] == dm.DEFAULT_MODEL_VERSION == model.version
    head = model.head
    for given, shown in (({"version": "3.1.4"}, "3.1.4"), ({}, __version__)):
        meta = {k: v for k, v in head.metadata.items() if k != "version"} | {"voicegender_version": __version__}
        head.__class__(**{**head.__dict__, "metadata": meta | given}).save(tmp_path / "m.npz")
        assert dm.load_voice_model(tmp_path / "m.npz").version == shown


@needs_resemblyzer
def test_score_contract_on_synthetic_voices():
    model = dm.load_default_model()
    waves = [synth_voice(MALE_F0, 1.0, seed=1), synth_voice(FEMALE_F0, 1.0, seed=2),
             synth_voice(FEMALE_F0, 0.25, seed=3)]
    scores = model.score(waves)
    assert scores.p_female.shape == (3,) and np.all((scores.p_female >= 0) & (scores.p_female <= 1))
    assert scores.p_child.shape == (3,) and np.all((scores.p_child >= 0) & (scores.p_child <= 1))
    # the documented contract: embedding -> head -> floor + (1 - 2 floor) sigmoid(-logit / T[band of the speech
    # duration]) (speech shorter than short_max_s is answered by the short-speech layer over the hidden means)
    from voicegender.voice.embeddings import ge2e_features

    ge2e, hidden = (a.astype(np.float64) for a in ge2e_features(waves))
    assert model.head.short is not None and model.head.short_max_s == 1.0
    z = np.array([-model.head.gender.logit(ge2e[:2])[0], -model.head.gender.logit(ge2e[:2])[1],
                  -model.head.short.logit(hidden[2:])[0]])
    t = np.asarray(model.head.temperatures)[[3, 3, 0]]  # 1.0 s -> 1-3 s band, 0.25 s -> 0-0.3 s band
    floor = model.head.confidence_floor
    assert 0 < floor < 0.05  # no answer surer than 1 - floor (2.3.0: 0.03)
    np.testing.assert_allclose(scores.p_female, floor + (1 - 2 * floor) / (1 + np.exp(-z / t)), atol=1e-6)
    assert model.score([]).p_female.shape == (0,)


@needs_resemblyzer
def test_explaining_the_default_model_uses_the_same_head():
    from voicegender.research.explain import as_checkpoint

    model = dm.load_default_model()
    ckpt = as_checkpoint(model)
    assert ckpt.feature_config == {"kind": "ge2e"}
    from voicegender.voice.embeddings import ge2e_embeddings

    x = ge2e_embeddings([synth_voice(MALE_F0, 1.0, seed=4), synth_voice(FEMALE_F0, 1.0, seed=5)])
    with torch.inference_mode():
        logits = ckpt.model(torch.from_numpy(x)).numpy()
    # class 1 minus class 0 is the log-odds of "male": the numpy head's logit
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], model.head.gender.logit(x.astype(np.float64)),
                               atol=1e-4)


def test_p_female_works_for_a_small_cnn_checkpoint(tmp_path):
    from voicegender.research.features import LogMelConfig

    cfg = ModelConfig(arch="small_cnn", in_rows=64, width=4)
    path = save_checkpoint(tmp_path / "cnn.pt", build_model(cfg).eval(), cfg,
                           feature_config_dict("log_mel", LogMelConfig()), ["female", "male"],
                           {"calibration_temperature": 2.0})
    loaded = load_checkpoint(path)
    p = scoring.p_female(loaded, [synth_voice(150, 0.2), synth_voice(150, 1.3)])
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
    # temperature 2 pulls probabilities towards 0.5
    p1 = scoring.p_female(loaded, [synth_voice(150, 1.3)], temperature=1.0)
    assert abs(p[1] - 0.5) <= abs(p1[0] - 0.5) + 1e-9


def test_p_female_works_for_the_seed_resnet_on_mfcc_images(tmp_path):
    from voicegender.research.features import SeedMfccConfig

    cfg = ModelConfig(arch="resnet34", hidden=8)
    path = save_checkpoint(tmp_path / "seed.pt", build_model(cfg).eval(), cfg,
                           feature_config_dict("seed_image", SeedMfccConfig()), ["female", "male"])
    loaded = load_checkpoint(path)
    assert scoring.calibration_temperature(loaded) == 1.0
    p = scoring.p_female(loaded, [synth_voice(150, 1.0), synth_voice(220, 0.7)])
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))


@needs_resemblyzer
def test_shipped_model_tells_synthetic_low_from_high_voices():
    from voicegender.audio.augment import telephone

    model = dm.load_default_model()
    male = [synth_voice(f0, s, seed=i) for i, (f0, s) in enumerate([(MALE_F0, 1.0), (110, 2.0), (130, 0.5)])]
    female = [synth_voice(f0, s, seed=10 + i) for i, (f0, s) in enumerate([(FEMALE_F0, 1.0), (210, 2.0), (230, 0.5)])]
    p = model.score(male + female).p_female
    assert np.all(p[:3] < 0.5) and np.all(p[3:] > 0.5)
    # through the telephone band a 220 Hz fundamental is filtered out (< 300 Hz): ask for the majority and the
    # right ordering
    p_tel = model.score([telephone(w, 16_000) for w in male + female]).p_female
    assert (np.sum(p_tel[:3] < 0.5) + np.sum(p_tel[3:] > 0.5)) >= 5
    assert p_tel[3:].mean() > 0.5 > p_tel[:3].mean()


@requires_shared_data
@needs_resemblyzer
def test_default_model_on_real_clips_from_files():
    """End to end from files: decode -> scores. These speakers were in training: a sanity check, not a score.
    Children (6-12) should get a higher p_child than adults."""
    from voicegender.audio.decode import load_audio
    from voicegender.corpora import load_corpus

    corpus = load_corpus(SHARED_DATA / "speechocean762_train")
    adults, children = [], []
    for gender in ("female", "male"):
        grown = [c for c in corpus.clips if c.gender == gender and (c.age or 0) > 15]
        adults += grown[:: max(1, len(grown) // 6)][:6]
        young = [c for c in corpus.clips if c.gender == gender and (c.age or 99) <= 10]
        children += young[:: max(1, len(young) // 4)][:4]
    model = dm.load_default_model()
    scores = model.score([load_audio(c.path, 16_000).samples for c in adults + children])
    p = scores.p_female[: len(adults)]
    right = np.sum((p >= 0.5) == np.array([c.gender == "female" for c in adults]))
    assert right >= 10, f"only {right} of {len(adults)} right"
    assert np.median(scores.p_child[len(adults):]) > np.median(scores.p_child[: len(adults)])
