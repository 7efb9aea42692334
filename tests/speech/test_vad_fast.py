"""The rewritten silero VAD (convolutions as MatMul), shipped in the package: silero's probabilities and regions, the
file is the rebuild of silero's own, fallbacks."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, espeak, requires_espeak, requires_shared_data

from voicegender.audio.synth import synth_noise, synth_tone, synth_voice
from voicegender.cache import sha256_file
from voicegender.errors import ModelError
from voicegender.speech import vad, vad_fast, vad_model

SR = 16_000
SILERO = vad_fast.silero_model_path()
pytestmark = pytest.mark.skipif(
    SILERO is None or sha256_file(SILERO) != vad_fast.SOURCE["source_sha256"],
    reason="compares with silero's own sequence model: needs silero-vad 6.2.3 (research extras)",
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VOICEGENDER_VAD_MODEL", raising=False)
    return tmp_path / "cache"


def _backends(cache: Path) -> tuple[vad_model._SequenceBackend, vad_model._SequenceBackend]:
    """(the shipped rewritten model, silero's own)."""
    return vad_model._SequenceBackend(str(vad_fast.model_path())), vad_model._SequenceBackend(str(SILERO))


def _signals() -> list[np.ndarray]:
    t = np.arange(3 * SR) / SR
    return [synth_voice(120, 3.0, seed=1), synth_voice(230, 2.0, seed=2), synth_noise(2.0, level=0.05),
            synth_tone(150, 2.0), np.zeros(SR, np.float32),
            np.concatenate([np.zeros(SR // 2, np.float32), synth_tone(110, 1.5)]),
            (0.3 * np.sin(2 * np.pi * (100 * t + 300 * t**2))).astype(np.float32)]


def test_probabilities_equal_silero_within_rounding(cache: Path):
    fast, stock = _backends(cache)
    for x in _signals():
        for warmup in (0, 8):
            a, _ = fast.run(vad_model._frames(x), vad_model._start(fast, warmup))
            b, _ = stock.run(vad_model._frames(x), vad_model._start(stock, warmup))
            assert np.abs(a - b).max() < 1e-5


def test_the_shipped_file_is_the_rebuild_of_silero_file(cache: Path):
    pytest.importorskip("onnx", reason="rebuilding needs the onnx package (research extras)")
    shipped = vad_fast.model_path()
    data, diff = vad_fast.build_checked(SILERO, {**vad_fast.SOURCE, "recipe": vad_fast.RECIPE})
    assert hashlib.sha256(data).hexdigest() == sha256_file(shipped) and diff < 1e-5
    meta = vad_model._SequenceBackend(str(shipped)).session.get_modelmeta().custom_metadata_map
    assert meta["source_sha256"] == sha256_file(SILERO) and "MIT" in meta["licence"] and meta["recipe"] == "matmul-v1"
    assert not cache.exists()  # nothing is made per machine


def test_stock_model_on_request_and_silero_file_when_the_shipped_one_cannot_load(
        cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert Path(vad_model._make_backend().path) == vad_fast.model_path()
    with monkeypatch.context() as m:
        m.setenv("VOICEGENDER_VAD_MODEL", "stock")
        assert Path(vad_model._make_backend().path) == SILERO
    broken = tmp_path / vad_fast.MODEL_FILE
    broken.write_bytes(b"not an onnx model")
    monkeypatch.setattr(vad_fast, "model_path", lambda: broken)
    assert Path(vad_model._make_backend().path) == SILERO
    monkeypatch.setattr(vad_fast, "silero_model_path", lambda: None)  # the light install: no silero-vad
    with pytest.raises(ModelError, match="cannot load the speech detector.*reinstall voicegender"):
        vad_model._make_backend()


def test_streaming_in_any_blocks_equals_one_pass(cache: Path):
    fast, _ = _backends(cache)
    x = np.concatenate([synth_voice(120, 2.0, seed=1), synth_noise(1.0, level=0.01), synth_voice(220, 2.0, seed=2)])
    whole, _ = fast.run(vad_model._frames(x), fast.initial_state())
    frames = vad_model._frames(x)
    state, parts = fast.initial_state(), []
    for a, b in ((0, 1), (1, 38), (38, 39), (39, len(frames))):
        probs, state = fast.run(frames[a:b], state)
        parts.append(probs)
    assert np.array_equal(np.concatenate(parts), whole)


@requires_espeak
def test_same_speech_regions_as_silero_on_speech(cache: Path, monkeypatch: pytest.MonkeyPatch):
    fast, stock = _backends(cache)
    speech = espeak("The quick brown fox jumps over the lazy dog. How are you today?")
    x = np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR // 3, np.float32), speech[: SR // 2]])
    regions = []
    for backend in (fast, stock):
        monkeypatch.setattr(vad_model, "_backend_instance", backend)
        regions.append(vad.find_speech(x, vad.VadConfig(min_speech_s=0.1, pad_s=0.1, warmup_s=vad.WARMUP_S)))
    assert regions[0] and regions[0] == regions[1]


@requires_shared_data
@pytest.mark.shared_data
def test_same_speech_regions_as_silero_on_real_clips(cache: Path, monkeypatch: pytest.MonkeyPatch):
    from voicegender.audio.decode import load_audio
    from voicegender.speech.classified import PREDICT_VAD

    fast, stock = _backends(cache)
    clips = []
    for corpus, n in (("audiomnist_az", 120), ("baved", 100), ("speechocean762_train", 80), ("cv_fa", 20)):
        with open(SHARED_DATA / corpus / "manifest.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
        clips += [SHARED_DATA / corpus / r["path"] for r in rows[:: max(1, len(rows) // n)][:n]]
    worst = 0.0
    for path in clips:
        x = load_audio(path).samples
        found = []
        for backend in (fast, stock):
            monkeypatch.setattr(vad_model, "_backend_instance", backend)
            found.append((vad.frame_probabilities(x, 8), vad.find_speech(x, PREDICT_VAD)))
        worst = max(worst, float(np.abs(found[0][0] - found[1][0]).max()))
        assert found[0][1] == found[1][1], path
    assert len(clips) >= 300 and worst < 1e-4


def test_energy_prepass_answers_digital_silence_without_the_model(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(0)
    quiet = [np.zeros(SR, np.float32), rng.integers(-2, 3, 2 * SR).astype(np.float32) / 32768,
             synth_voice(150, 1.5, seed=4) / np.abs(synth_voice(150, 1.5, seed=4)).max() * 2 / 32768]
    louder = rng.integers(-3, 4, 2 * SR).astype(np.float32) / 32768
    calls = []
    real = vad.frame_probabilities
    monkeypatch.setattr(vad, "frame_probabilities", lambda *a, **k: calls.append(1) or real(*a, **k))
    for x in quiet:
        assert vad.find_speech(x) == [] and calls == []
    assert vad.find_speech(louder) == [] and calls == [1]  # 3 LSB: the model decides
    vad.find_speech(quiet[1], vad.VadConfig(threshold=0.05))  # thresholds near silero's floor: the model decides
    assert calls == [1, 1]
