"""The GE2E encoder through onnxruntime: equal to torch float32, no torch imported, cache naming and rebuilds."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_shared_data

from voicegender.audio.synth import synth_voice
from voicegender.errors import ModelError
from voicegender.voice import embeddings, encoder_onnx

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None or importlib.util.find_spec("onnx") is None,
    reason="needs the resemblyzer wheel (the encoder weights) and the onnx package (torch.onnx.export imports it)",
)
COSINE_MIN = 0.9999  # ONNX float32 vs torch float32, per clip
AUDIOMNIST = SHARED_DATA / "audiomnist_az"


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test session (shared with test_embeddings.py), with the encoder exported into it."""
    path = tmp_path_factory.getbasetemp() / "voicegender-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEGENDER_CACHE_DIR", str(path))
        embeddings.onnx_encoder()
    return path


@pytest.fixture(autouse=True)
def _cache(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(onnx_cache))
    monkeypatch.delenv("VOICEGENDER_ENCODER", raising=False)
    return onnx_cache


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a.astype(np.float64) * b, axis=1)


def test_onnx_equals_torch_fp32_on_synthetic_audio():
    waves = [synth_voice(f0, s, seed=i) for i, (f0, s) in enumerate([(110, 0.5), (130, 1.6), (180, 2.4), (230, 5.0),
                                                                       (260, 0.9), (95, 3.3)])]
    onnx = embeddings.ge2e_embeddings(waves, backend="onnx")
    torch_fp32 = embeddings.ge2e_embeddings(waves, backend="torch-fp32")
    assert onnx.shape == (6, 256) and onnx.dtype == np.float32
    assert _cosines(onnx, torch_fp32).min() >= COSINE_MIN
    assert embeddings.ge2e_embeddings(waves, backend="auto") == pytest.approx(onnx)
    # the hidden means (the short-speech layer's input) come from the same run
    emb, hidden = embeddings.ge2e_features(waves, backend="onnx")
    emb_torch, hidden_torch = embeddings.ge2e_features(waves, backend="torch-fp32")
    assert np.array_equal(emb, onnx) and hidden.shape == (6, 256)
    assert np.abs(hidden - hidden_torch).max() <= 1e-4 and np.abs(hidden).mean() > 0.01


def test_onnx_windows_equal_torch_at_every_batch_size():
    # the export warns that LSTMs with a dynamic batch can go wrong; 1, 3 and 70 windows (two runs of 64 + 6)
    wave = embeddings.prepare(synth_voice(150, 60.0, seed=7))
    mel = embeddings.mel_frames(wave)
    windows = np.stack([mel[s] for s in embeddings.partial_windows(len(mel))][:70])
    assert len(windows) == 70
    want = embeddings.encode_windows(windows, backend="torch-fp32")
    for n in (1, 3, 70):
        got = embeddings.encode_windows(windows[:n], backend="onnx")
        assert _cosines(got, want[:n]).min() >= COSINE_MIN
    two_threads = embeddings.encode_windows(windows, backend="onnx", threads=2)
    assert _cosines(two_threads, want).min() >= COSINE_MIN


NO_TORCH = textwrap.dedent("""
    import sys
    import numpy as np
    from voicegender.voice import embeddings
    t = np.arange(24_000) / 16_000
    wave = (np.sin(2 * np.pi * 150 * t) + 0.3 * np.sin(2 * np.pi * 450 * t)).astype(np.float32)
    e = embeddings.ge2e_embeddings([wave, wave[:8_000]])
    assert e.shape == (2, 256), e.shape
    print(",".join(sorted(m for m in ("torch", "resemblyzer", "librosa", "onnx") if m in sys.modules)))
""")


def test_onnx_path_imports_no_torch(onnx_cache: Path):
    env = {**os.environ, "VOICEGENDER_CACHE_DIR": str(onnx_cache)}
    env.pop("VOICEGENDER_ENCODER", None)
    out = subprocess.run([sys.executable, "-c", NO_TORCH], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported on the ONNX path: {out.stdout.strip()}"
    assert "falls back to torch" not in out.stderr


def test_cache_file_is_named_by_the_weights_hash_and_records_provenance(onnx_cache: Path):
    weights = embeddings.weights_path()
    digest = encoder_onnx.sha256_file(weights)
    path = onnx_cache / f"{encoder_onnx.FILE_PREFIX}{digest[:16]}.onnx"
    assert path.is_file() and embeddings.onnx_encoder().path == path
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["source_sha256"] == digest
    assert "Apache-2.0" in sidecar["licence"] and "resemblyzer" in sidecar["source"]
    meta = embeddings.onnx_encoder().metadata  # the same record inside the model file
    assert meta["source_sha256"] == digest and json.loads(meta["versions"])["resemblyzer"] == version("resemblyzer")


def test_weights_digest_reads_the_sidecar_only_for_the_same_file(onnx_cache: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    weights = embeddings.weights_path()
    hashed = []
    real = encoder_onnx.sha256_file
    monkeypatch.setattr(encoder_onnx, "sha256_file", lambda p: hashed.append(p) or real(p))
    digest = encoder_onnx.weights_digest(weights, onnx_cache)
    assert hashed == [] and digest == real(weights)  # stat matched the sidecar: no 17 MB re-read
    copy = tmp_path / "pretrained.pt"
    copy.write_bytes(weights.read_bytes())
    assert encoder_onnx.weights_digest(copy, onnx_cache) == digest and hashed == [copy]


def _perturbed_weights(tmp_path: Path) -> Path:
    import torch

    state = torch.load(embeddings.weights_path(), map_location="cpu", weights_only=True)
    state["model_state"]["linear.bias"] = state["model_state"]["linear.bias"] + 0.05
    path = tmp_path / "pretrained.pt"
    torch.save({"model_state": state["model_state"]}, path)
    return path


def test_new_weights_get_their_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(cache))
    wave = synth_voice(170, 2.0, seed=3)
    before = embeddings.ge2e_embeddings([wave], backend="onnx")
    original, weights = embeddings.weights_path(), _perturbed_weights(tmp_path)
    monkeypatch.setattr(embeddings, "weights_path", lambda: weights)
    monkeypatch.setattr(embeddings, "_encoder", None)  # the torch side reads the new file too
    after = embeddings.ge2e_embeddings([wave], backend="onnx")
    names = {f"{encoder_onnx.FILE_PREFIX}{encoder_onnx.sha256_file(p)[:16]}.onnx" for p in (original, weights)}
    assert len(names) == 2 and {p.name for p in cache.glob("*.onnx")} == names
    assert float(before[0] @ after[0]) < 0.9999  # new weights, new answers ...
    torch_fp32 = embeddings.ge2e_embeddings([wave], backend="torch-fp32")
    assert float(after[0] @ torch_fp32[0]) >= COSINE_MIN  # ... and the ONNX file follows them


def test_unloadable_cached_file_is_exported_again(onnx_cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    good = embeddings.onnx_encoder().path
    (cache / good.name).write_bytes(b"not an onnx model")
    (cache / good.with_suffix(".json").name).write_bytes(good.with_suffix(".json").read_bytes())
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(cache))
    with pytest.raises(ModelError, match="cannot load"):
        embeddings.onnx_encoder(create=False)
    session = embeddings.onnx_encoder()
    assert session.path == cache / good.name and (cache / good.name).stat().st_size == good.stat().st_size


def test_auto_falls_back_to_torch_when_no_onnx_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(blocker / "cache"))  # mkdir under a file fails, even as root
    wave = synth_voice(140, 1.0, seed=5)
    with pytest.raises(ModelError, match="VOICEGENDER_CACHE_DIR"):
        embeddings.ge2e_embeddings([wave], backend="onnx")
    with pytest.warns(RuntimeWarning, match="falls back to torch"):
        auto = embeddings.ge2e_embeddings([wave])
    np.testing.assert_array_equal(auto, embeddings.ge2e_embeddings([wave], backend="torch"))
    with warnings.catch_warnings():  # the failure is remembered: no second warning, no second attempt
        warnings.simplefilter("error")
        assert embeddings.ge2e_embeddings([wave]).shape == (1, 256)


def test_backend_choice_and_validation(monkeypatch: pytest.MonkeyPatch):
    assert embeddings.resolve_backend() == "auto"
    monkeypatch.setenv("VOICEGENDER_ENCODER", "torch")
    assert embeddings.resolve_backend() == "torch"
    with embeddings.use_backend("onnx"):
        assert embeddings.resolve_backend() == "onnx"
        assert embeddings.resolve_backend("torch-fp32") == "torch-fp32"
    assert embeddings.resolve_backend() == "torch"
    with pytest.raises(ValueError, match="back end"):
        embeddings.resolve_backend("tensorflow")
    with pytest.raises(ValueError, match=r"\(n, 160, 40\)"):
        embeddings.encode_windows(np.zeros((2, 100, 40), np.float32))


def test_backend_agreement_helper_runs_the_scorer_under_each_backend():
    waves = [synth_voice(f0, 1.2, seed=i) for i, f0 in enumerate((120, 210, 160))]
    seen = []

    def score(ws: list[np.ndarray]) -> np.ndarray:
        seen.append(embeddings.resolve_backend())
        return embeddings.ge2e_embeddings(ws)[:, :4].sum(1)

    agreement = embeddings.backend_agreement(waves, score=score)
    assert seen == ["onnx", "torch-fp32"] and agreement.clips == 3
    assert agreement.max_cosine_distance <= 1 - COSINE_MIN
    assert agreement.max_abs_score_delta is not None and agreement.max_abs_score_delta < 1e-3


def _audiomnist_clips(n: int) -> list[Path]:
    with open(AUDIOMNIST / "manifest.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    step = max(1, len(rows) // n)  # every step-th clip: all speakers, digits and repetitions
    return [AUDIOMNIST / r["path"] for r in rows[::step][:n]]


@requires_shared_data
@pytest.mark.shared_data
def test_onnx_equals_torch_fp32_on_300_audiomnist_clips():
    from voicegender.audio.decode import load_audio

    waves = [load_audio(p).samples for p in _audiomnist_clips(300)]
    assert len(waves) == 300
    agreement = embeddings.backend_agreement(waves)
    print(f"ONNX vs torch fp32 on {agreement.clips} AudioMNIST-AZ clips: max cosine distance "
          f"{agreement.max_cosine_distance:.2e}")
    assert agreement.max_cosine_distance <= 1 - COSINE_MIN


# --- the shipped model's answers: ONNX path vs torch float32 ----------------------------------------------------
P_FEMALE_MAX_DELTA = 0.01  # the largest |p_female(ONNX) - p_female(torch fp32)| allowed on one clip


def test_shipped_model_answers_equal_torch_fp32_on_synthetic_audio():
    from voicegender.voice.default_model import load_default_model

    waves = [synth_voice(f0, s, seed=i) for i, (f0, s) in enumerate([(105, 0.3), (125, 1.1), (150, 1.6), (175, 2.2),
                                                                       (205, 3.9), (240, 0.7), (280, 6.5), (95, 17.0)])]
    model = load_default_model()
    agreement = embeddings.backend_agreement(waves, score=lambda w: model.score(w).p_female)
    assert agreement.clips == 8 and agreement.max_cosine_distance <= 1 - COSINE_MIN
    assert agreement.max_abs_score_delta <= P_FEMALE_MAX_DELTA


def _real_speech() -> list[np.ndarray]:
    """Speech as predict classifies it (its speech detection), from every k-th clip of four corpora (330 clips)."""
    from voicegender.audio.decode import load_audio
    from voicegender.speech.classified import classified_speech

    waves = []
    for corpus, n in (("audiomnist_az", 110), ("baved", 100), ("speechocean762_train", 80), ("cv_fa", 40)):
        with open(SHARED_DATA / corpus / "manifest.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
        for row in rows[::max(1, len(rows) // n)][:n]:
            speech, seconds = classified_speech(load_audio(SHARED_DATA / corpus / row["path"]).samples)
            if seconds >= 0.15:
                waves.append(speech)
    return waves


@requires_shared_data
@pytest.mark.shared_data
def test_shipped_model_labels_equal_torch_fp32_on_real_clips():
    from voicegender.voice.default_model import load_default_model

    waves = _real_speech()
    assert len(waves) >= 300, f"only {len(waves)} clips with speech"
    model = load_default_model()
    p = {}
    for backend in ("onnx", "torch-fp32"):
        with embeddings.use_backend(backend):
            p[backend] = model.score(waves).p_female
    delta = np.abs(p["onnx"] - p["torch-fp32"])
    print(f"shipped model, ONNX vs torch fp32 on {len(waves)} real clips: max |dp_female| {delta.max():.2e}, "
          f"mean {delta.mean():.2e}")
    assert delta.max() <= P_FEMALE_MAX_DELTA
    assert np.array_equal(p["onnx"] >= 0.5, p["torch-fp32"] >= 0.5), "a label differs"
    # the helper agrees with the above
    agreement = embeddings.backend_agreement(waves[:40], score=lambda w: model.score(w).p_female)
    assert agreement.max_abs_score_delta <= P_FEMALE_MAX_DELTA
