"""The rewritten silero VAD (convolutions as MatMul): silero's probabilities and regions, cached once, fallbacks."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, espeak, requires_espeak, requires_shared_data

from voicegender.audio.synth import synth_noise, synth_tone, synth_voice
from voicegender.speech import vad, vad_fast, vad_model

SR = 16_000
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or vad_model._sequence_model_path() is None,
    reason="needs the onnx package (to write the model) and silero-vad's sequence model",
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VOICEGENDER_VAD_MODEL", raising=False)
    return tmp_path / "cache"


def _backends(cache: Path) -> tuple[vad_model._SequenceBackend, vad_model._SequenceBackend]:
    source = vad_model._sequence_model_path()
    return vad_model._SequenceBackend(str(vad_fast.fast_model_path(source))), vad_model._SequenceBackend(str(source))


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


def test_made_once_into_the_cache_with_provenance(cache: Path, monkeypatch: pytest.MonkeyPatch):
    source = vad_model._sequence_model_path()
    path = vad_fast.fast_model_path(source)
    digest = vad_fast.sha256_file(source)
    assert path == cache / f"silero-vad-{vad_fast.RECIPE}-{digest[:16]}.onnx" and path.is_file()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["source_sha256"] == digest and "MIT" in meta["licence"] and meta["max_prob_diff"] < 1e-5
    monkeypatch.setattr(vad_fast, "build", lambda source: pytest.fail("built again"))
    assert vad_fast.fast_model_path(source) == path


def test_falls_back_to_silero_own_file(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    source = vad_model._sequence_model_path()
    with monkeypatch.context() as m:
        m.setenv("VOICEGENDER_VAD_MODEL", "stock")
        assert vad_fast.fast_model_path(source) is None  # asked for
    with monkeypatch.context() as m:
        m.setattr(vad_fast, "build", lambda source: (_ for _ in ()).throw(ImportError("No module named 'onnx'")))
        assert vad_fast.fast_model_path(source) is None  # no onnx package
    with monkeypatch.context() as m:
        m.setattr(vad_fast, "max_difference", lambda *args: 0.5)
        assert vad_fast.fast_model_path(source) is None  # a rewrite that does not reproduce silero
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(blocker / "cache"))  # mkdir under a file fails, even as root
    assert vad_fast.fast_model_path(source) is None
    assert not list(cache.glob("*.onnx"))


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
