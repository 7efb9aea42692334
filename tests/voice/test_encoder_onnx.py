"""The GE2E encoder through onnxruntime: the shipped file equals torch float32 and the export of resemblyzer's weights,
no torch imported, a damaged file is one line, and "auto" falls back to torch."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_shared_data

from voicegender.audio.synth import synth_voice
from voicegender.cache import sha256_file
from voicegender.errors import ModelError
from voicegender.voice import embeddings, encoder_onnx

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None or importlib.util.find_spec("onnx") is None,
    reason="needs the research extras: resemblyzer's weights (the torch encoder) and onnx (torch.onnx.export)",
)
COSINE_MIN = 0.9999  # ONNX float32 vs torch float32, per clip
AUDIOMNIST = SHARED_DATA / "audiomnist_az"


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEGENDER_ENCODER", raising=False)


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


def test_onnx_path_imports_no_torch(tmp_path: Path):
    env = {**os.environ, "VOICEGENDER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("VOICEGENDER_ENCODER", None)
    out = subprocess.run([sys.executable, "-c", NO_TORCH], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported on the ONNX path: {out.stdout.strip()}"
    assert "falls back to torch" not in out.stderr
    assert not (tmp_path / "cache").exists()  # the encoder ships in the package: nothing is made per machine


def test_the_shipped_file_is_the_export_of_resemblyzers_weights(tmp_path: Path):
    """The file in the package holds resemblyzer 0.1.4's network (its SHA-256 is in the metadata), and exporting
    those weights again gives the same bytes with the torch and onnx versions that made it (else the same answers)."""
    shipped = encoder_onnx.model_path()
    meta = embeddings.onnx_encoder().metadata
    weights = embeddings.weights_path()
    assert meta["source_sha256"] == encoder_onnx.SOURCE["source_sha256"] == sha256_file(weights)
    assert "Apache-2.0" in meta["licence"] and "resemblyzer" in meta["source"]
    versions = json.loads(meta["versions"])
    now = {d: importlib.metadata.version(d) for d in ("resemblyzer", "torch", "onnx")}
    exported = embeddings.export_encoder_onnx(weights, encoder_onnx.provenance(now))
    if versions == now:
        assert hashlib.sha256(exported).hexdigest() == hashlib.sha256(shipped.read_bytes()).hexdigest()
    (tmp_path / "again.onnx").write_bytes(exported)
    again = encoder_onnx.OnnxEncoder(tmp_path / "again.onnx")
    probe = np.random.default_rng(1).gamma(0.5, 1.0, (5, 160, 40)).astype(np.float32)
    for got, want in zip(again.with_hidden(probe), embeddings.onnx_encoder().with_hidden(probe), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_damaged_or_missing_file_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    broken = tmp_path / encoder_onnx.MODEL_FILE
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load this encoder.*reinstall voicegender"):
        encoder_onnx.OnnxEncoder(broken)
    monkeypatch.setattr(encoder_onnx.importlib.resources, "files", lambda package: tmp_path / "nowhere")
    with pytest.raises(ModelError, match="missing from the installed package; reinstall voicegender"):
        encoder_onnx.model_path()


def test_auto_falls_back_to_torch_when_the_onnx_file_cannot_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    broken = tmp_path / encoder_onnx.MODEL_FILE
    broken.write_bytes(b"not an onnx model")
    monkeypatch.setattr(encoder_onnx, "model_path", lambda: broken)
    monkeypatch.setattr(embeddings, "_onnx_failed", [])
    wave = synth_voice(140, 1.0, seed=5)
    with pytest.raises(ModelError, match="cannot load"):
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
