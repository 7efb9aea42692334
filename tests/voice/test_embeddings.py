"""GE2E embeddings: shape, normalisation, gain/DC invariance, short clips, agreement with resemblyzer itself.

The ONNX back end's own tests (equality with torch, no torch imported, the shipped file) are in test_encoder_onnx.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pytest

from voicegender.audio.synth import synth_voice
from voicegender.research.features import feature_config_dict, featurize
from voicegender.voice import embeddings

pytestmark = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                reason="needs the resemblyzer wheel (it holds the GE2E encoder weights)")


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEGENDER_ENCODER", raising=False)


def test_embedding_shape_and_norm():
    e = embeddings.ge2e_embedding(synth_voice(120, 2.0, seed=1))
    assert e.shape == (256,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert e.min() >= 0


def test_featurize_dispatches_ge2e_at_any_rate():
    wave = synth_voice(200, 1.0, sr=8_000, seed=2)
    e = featurize(wave, 8_000, feature_config_dict("ge2e"))
    assert e.shape == (256,)


def test_gain_and_dc_do_not_change_the_embedding():
    x = synth_voice(150, 1.5, seed=3)
    a = embeddings.ge2e_embedding(x)
    b = embeddings.ge2e_embedding(0.1 * x - 0.085)
    assert float(a @ b) > 0.999


def test_short_clips_are_tiled_not_padded():
    x = synth_voice(220, 0.5, seed=4)
    prepared = embeddings.prepare(x)
    assert len(prepared) == embeddings.PARTIAL_SAMPLES
    assert np.abs(prepared[-1600:]).max() > 0  # no trailing silence
    e = embeddings.ge2e_embedding(x)
    assert e.shape == (256,) and np.isfinite(e).all()


def test_too_short_or_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least"):
        embeddings.ge2e_embedding(np.zeros(50, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        embeddings.ge2e_embedding(np.full(16_000, np.nan, np.float32))


def test_batched_equals_single():
    waves = [synth_voice(f0, s, seed=i) for i, (f0, s) in enumerate([(120, 0.7), (210, 3.3), (160, 1.6)])]
    batch = embeddings.ge2e_embeddings(waves)
    for w, row in zip(waves, batch, strict=True):
        assert float(row @ embeddings.ge2e_embedding(w)) > 0.9999
    assert embeddings.ge2e_embeddings([]).shape == (0, 256)


def test_same_speaker_closer_than_different_voice():
    a1 = embeddings.ge2e_embedding(synth_voice(110, 2.0, seed=10))
    a2 = embeddings.ge2e_embedding(synth_voice(110, 2.0, seed=11))
    b = embeddings.ge2e_embedding(synth_voice(240, 2.0, seed=12))
    assert float(a1 @ a2) > float(a1 @ b)


def test_matches_resemblyzer_encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder
    x = synth_voice(140, 3.2, seed=5)
    ours = embeddings.ge2e_embedding(x)
    theirs = VoiceEncoder("cpu", verbose=False).embed_utterance(embeddings.prepare(x))
    assert float(ours @ theirs) > 0.98  # same network and mel; only the window placement differs


def test_mel_frames_equal_librosa_melspectrogram():
    import librosa

    from voicegender.audio.synth import synth_voice
    from voicegender.voice.embeddings import mel_frames, prepare

    for seconds in (0.7, 2.3):
        wave = prepare(synth_voice(180, seconds, 16_000, seed=3))
        reference = librosa.feature.melspectrogram(y=wave, sr=16_000, n_fft=400, hop_length=160, n_mels=40).T
        ours = mel_frames(wave)
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_mel_basis_and_window_equal_librosa_bit_for_bit():
    import librosa

    basis, window = embeddings._mel_basis_and_window()
    np.testing.assert_array_equal(basis, librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40).T.astype(np.float64))
    np.testing.assert_array_equal(window, librosa.filters.get_window("hann", 400, fftbins=True))


def test_mel_band_centres_equal_librosa():
    import librosa

    want = librosa.mel_frequencies(embeddings.MEL_BANDS + 2, fmin=0.0, fmax=embeddings.SAMPLE_RATE / 2)[1:-1]
    np.testing.assert_allclose(embeddings.mel_band_centres_hz(), want, rtol=1e-12)


def test_import_needs_neither_torch_nor_librosa():
    code = ("import sys; import voicegender.voice.embeddings; "
            "print(','.join(m for m in ('torch', 'librosa', 'resemblyzer', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("backend, cosine_min", [("torch", 0.99), ("torch-fp32", 0.9999)])
def test_torch_back_ends_agree_with_the_default(backend: str, cosine_min: float):
    waves = [synth_voice(f0, s, seed=i) for i, (f0, s) in enumerate([(120, 0.7), (210, 3.3)])]
    default = embeddings.ge2e_embeddings(waves)
    other = embeddings.ge2e_embeddings(waves, backend=backend)
    assert np.sum(default * other, axis=1).min() >= cosine_min  # bf16 where the CPU has it: cosine >= 0.996


def test_torch_encoder_is_still_available_for_explain():
    encoder = embeddings.load_encoder()
    assert isinstance(encoder, embeddings.GE2EEncoder) and not encoder.training
    assert embeddings.load_encoder() is encoder


def test_short_clips_cost_one_window_and_tails_need_real_coverage():
    mel = embeddings.mel_frames(embeddings.prepare(np.random.default_rng(0).standard_normal(8_000)))
    assert len(mel) == embeddings.PARTIAL_FRAMES  # 0.5 s tiled to exactly one window
    assert len(embeddings.partial_windows(len(mel))) == 1
    assert len(embeddings.partial_windows(161)) == 1  # 10 ms uncovered: not worth a second window
    assert [w.start for w in embeddings.partial_windows(200)] == [0, 40]  # 0.4 s uncovered: covered
    assert [w.start for w in embeddings.partial_windows(430)] == [0, 77, 154, 231]  # 39 frames left over
    assert [w.start for w in embeddings.partial_windows(431)] == [0, 77, 154, 231, 271]
