"""Explanations on a task whose answer is known, map shapes, pictures, and the explain command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_evaluate import image_alts

from voicegender.audio.synth import FEMALE_F0, synth_voice
from voicegender.cli import main
from voicegender.errors import ModelError, VoiceGenderError
from voicegender.research import explain
from voicegender.research.features import LogMelConfig, SeedMfccConfig, feature_config_dict
from voicegender.research.models import ModelConfig, SeedResNet, SmallCNN, build_model, load_checkpoint, save_checkpoint

ROWS, FRAMES = 32, 32
FEMALE_BAND, MALE_BAND = slice(22, 26), slice(4, 8)  # "female" = energy high up, "male" = low down
N_BANDS = 8  # occlusion groups of 4 rows: the female band is group 5-6, the male band group 1


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny batches and the GE2E LSTM's 160 sequential steps: one thread is faster, and on a busy CPU two threads
    that must meet at every step are up to 100x slower (measured: 13 ms vs 1-4 s per LSTM forward)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _band_task(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Log-mel-like noise; each clip lights its class band in ~70 % of frames plus a shared distractor band."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-5, 1, (n, 1, ROWS, FRAMES)).astype(np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        x[i, 0, FEMALE_BAND if y[i] == 0 else MALE_BAND, rng.random(FRAMES) < 0.7] += 4
        d = rng.integers(12, 17)
        x[i, 0, d:d + 3, rng.random(FRAMES) < 0.5] += 4
    return torch.from_numpy(x), y


@pytest.fixture(scope="module")
def band_model() -> tuple[SmallCNN, torch.Tensor, np.ndarray]:
    """A SmallCNN trained (a few seconds, CPU) until it separates the band task; plus held-out clips."""
    torch.manual_seed(0)
    x, y = _band_task(128, 0)
    net = SmallCNN(in_rows=ROWS, width=8)
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    rng = np.random.default_rng(0)
    for step in range(200):
        idx = rng.choice(len(y), 32)
        net.train()
        loss = F.cross_entropy(net(x[idx]), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            net.eval()
            with torch.no_grad():
                if (net(x).argmax(1).numpy() == y).mean() == 1.0:
                    break
    net.eval()
    xv, yv = _band_task(24, 1)
    with torch.no_grad():
        assert (net(xv).argmax(1).numpy() == yv).mean() >= 0.9
    return net, xv, yv


@pytest.fixture(scope="module")
def band_drops(band_model) -> np.ndarray:
    net, x, y = band_model
    return explain.band_occlusion(net, x, y, N_BANDS)


def test_occlusion_finds_each_class_band(band_model, band_drops):
    net, x, y = band_model
    drops = band_drops
    assert drops.shape == (len(y), N_BANDS)
    female, male = drops[y == 0].mean(0), drops[y == 1].mean(0)
    assert female.argmax() in (5, 6)  # rows 20-27 hold the female band 22-25
    assert male.argmax() == 1  # rows 4-7
    assert female[5:7].max() > 0.1 and male[1] > 0.05


@pytest.mark.parametrize("method", ["hirescam", "layercam", "layercam@stage1"])
def test_fine_maps_put_mass_in_the_class_band(band_model, band_drops, method):
    net, x, y = band_model
    name, layer = explain.parse_method(method)
    maps = explain.cam(net, x, y, layer, name)
    assert maps.shape == (len(y), ROWS, FRAMES)
    assert maps.min() >= 0 and np.allclose(maps.reshape(len(y), -1).max(1), 1, atol=1e-5)
    means = explain.class_mean_maps(maps, y)
    female, male = explain.row_profile(means["female"]), explain.row_profile(means["male"])
    assert 20 <= female.argmax() <= 27 and 2 <= male.argmax() <= 9
    assert female[FEMALE_BAND].mean() > female[MALE_BAND].mean()
    assert male[MALE_BAND].mean() > male[FEMALE_BAND].mean()
    slices = explain.band_slices(ROWS, N_BANDS)
    for k, profile in enumerate((female, male)):
        rho = explain.profile_agreement(explain.band_profile(profile, slices), band_drops[y == k].mean(0))
        assert rho > 0


def test_gradcam_shapes_on_smallcnn_stages():
    net = SmallCNN(in_rows=12, width=4).eval()
    x = torch.randn(2, 1, 12, 98)
    for layer in (None, "stage1", "stage3"):
        assert explain.cam(net, x, [0, 1], layer, "gradcam").shape == (2, 12, 98)
    with pytest.raises(VoiceGenderError):
        explain.cam(net, x, 0, "nope")
    with pytest.raises(VoiceGenderError):
        explain.parse_method("smoothgrad")


def test_seed_resnet_maps_back_to_mfcc_grid():
    torch.manual_seed(0)
    net = SeedResNet("resnet34").eval()
    x = torch.rand(1, 3, 224, 224)
    maps = explain.cam(net, x, 0)  # Grad-CAM on layer4 (7x7), upsampled
    assert maps.shape == (1, 224, 224)
    assert explain.to_grid(maps).shape == (1, 12, 98)
    assert explain.band_occlusion(net, x, [0], 2).shape == (1, 2)  # image rows 0-111 and 112-223


def test_band_slices_and_agreement():
    assert explain.band_slices(64, 16)[3] == slice(12, 16)
    assert [s.stop - s.start for s in explain.band_slices(12, 5)] == [2, 3, 2, 3, 2]
    assert explain.profile_agreement([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert explain.profile_agreement([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_clip_overlay_png_is_a_png():
    spec = np.random.default_rng(0).normal(size=(64, 120)).astype(np.float32)
    from voicegender.research.plots import clip_overlay_png

    png = clip_overlay_png(spec, np.abs(spec), 0.01, LogMelConfig().band_centres_hz(), "test")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0
    assert Image.open(io.BytesIO(clip_overlay_png(spec[:12, :98], spec[:12, :98] ** 2))).format == "PNG"
    with pytest.raises(ValueError):
        clip_overlay_png(spec, spec[:10])


def _checkpoint(path: Path, kind: str) -> Path:
    cfg = LogMelConfig() if kind == "log_mel" else SeedMfccConfig()
    rows = cfg.n_mels if kind == "log_mel" else cfg.n_mfcc
    mcfg = ModelConfig(arch="small_cnn", in_rows=rows, width=4)
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(mcfg), mcfg, feature_config_dict(kind, cfg), ["female", "male"])


@pytest.mark.parametrize("kind", ["log_mel", "seed_mfcc"])
def test_explain_waveform_uses_the_checkpoint_features(tmp_path, kind):
    loaded = load_checkpoint(_checkpoint(tmp_path / "m.pt", kind))
    wave = synth_voice(FEMALE_F0, 0.7, 16_000)
    spec, map_, p_female = explain.explain_waveform(wave, 16_000, loaded)
    assert spec.shape == map_.shape == ((64, 71) if kind == "log_mel" else (12, 98))
    assert 0 <= p_female <= 1
    png = explain.explain_clip_png(wave, 16_000, loaded)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_a_clip_picture_explains_the_label_asked_for_and_names_its_method_in_words(tmp_path, monkeypatch):
    """Issue 22: "ig: why 'female' (p_female = 0.79)" over the loudest stretch while the file's answer was 0.548."""
    from voicegender.research import plots

    loaded = load_checkpoint(_checkpoint(tmp_path / "m.pt", "log_mel"))
    wave = synth_voice(FEMALE_F0, 0.7, 16_000)
    titles = []
    monkeypatch.setattr(plots, "clip_overlay_png", lambda spec, map_, frame_s, hz, title: titles.append(title) or b"")
    explain.explain_clip_png(wave, 16_000, loaded)
    assert titles[-1].startswith("Why '") and titles[-1].endswith("; LayerCAM)")
    assert "p_female of this audio" in titles[-1]
    for label in ("female", "male"):
        explain.explain_clip_png(wave, 16_000, loaded, target=label)
        assert titles[-1].startswith(f"Why '{label}'")
    maps = [explain.explain_waveform(wave, 16_000, loaded, target=k)[1] for k in (0, 1)]
    assert not np.allclose(maps[0], maps[1])  # the target decides what is explained


def test_ge2e_head_is_explained_over_the_encoder_log_mel(tmp_path, monkeypatch):
    pytest.importorskip("resemblyzer")
    monkeypatch.setattr(explain, "IG_STEPS", 2)  # the LSTM is slow on CPU; 2 path points check the plumbing
    mcfg = ModelConfig(arch="ge2e_head", in_rows=256, hidden=16)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "g.pt", build_model(mcfg), mcfg, feature_config_dict("ge2e"), ["female", "male"])
    loaded = load_checkpoint(path)
    spec, map_, p_female = explain.explain_waveform(synth_voice(FEMALE_F0, 0.5, 16_000), 16_000, loaded)
    assert spec.shape == map_.shape and spec.shape[0] == 40 and spec.shape[1] >= 160  # tiled to 1.6 s
    assert 0 <= p_female <= 1 and map_.max() <= 1
    x = torch.from_numpy(spec)[None, None]
    assert explain.band_occlusion(explain.explainable_model(loaded), x, [0], 2).shape == (1, 2)


def test_unknown_feature_kinds_are_refused():
    class Fake:
        feature_config = {"kind": "wav2vec"}

    with pytest.raises(ModelError, match="cannot be explained"):
        explain.explain_waveform(np.zeros(16_000, np.float32), 16_000, Fake())


def test_explain_cli_writes_pictures_html_and_summary(tmp_path, manifest_corpus):
    ckpt = _checkpoint(tmp_path / "run" / "best.pt", "log_mel")
    out = tmp_path / "out"
    code = main(["--quiet", "explain", str(ckpt.parent), "--corpus", str(manifest_corpus), "--out", str(out),
                 "--max-clips", "6", "--methods", "gradcam,layercam@stage3"])
    assert code == 0
    for name in ("gradcam_class_maps.png", "layercam_stage3_row_profile.png", "occlusion.png",
                 "profiles_female.png", "explain.html", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 6 and len(summary["bands"]) == 16
    assert set(summary["methods"]) == {"gradcam", "layercam@stage3"}
    page = (out / "explain.html").read_text()
    assert "<section id='explain'>" in page
    alts = image_alts(page)
    assert len(alts) >= 7 and all(alts), alts  # per method: class maps, row profile, examples; occlusion, profiles
    assert any(a.startswith("Bars of the drop in the true class's probability when each of 16 bands") for a in alts)
