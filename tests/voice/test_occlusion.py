"""Per-band occlusion over the ONNX encoder (the web page's map without torch): its grid, the answer it explains,
where it finds evidence, and the models it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voicegender.errors import ModelError
from voicegender.voice import embeddings
from voicegender.voice.default_model import VoiceModel, load_default_model
from voicegender.voice.model import ScorerModel
from voicegender.voice.occlusion import occlusion_map, unmapped_below_s

SR = 16_000


def _low_voice(seconds: float = 3.0, lead_s: float = 0.5) -> np.ndarray:
    """Harmonics of a 120 Hz voice up to 840 Hz in syllables, after ``lead_s`` of digital silence: nothing above
    1 kHz but leakage."""
    t = np.arange(int(seconds * SR)) / SR
    phase = np.cumsum(120 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    voice = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 8)) * (np.sin(2 * np.pi * 2 * t) > -0.5)
    return np.concatenate([np.zeros(int(lead_s * SR)), 0.2 * voice]).astype(np.float32)


def test_grid_and_the_answer_it_explains():
    model = load_default_model()
    wave = _low_voice()
    found = occlusion_map(model, wave)
    frames = len(embeddings.mel_frames(embeddings.prepare(wave)))
    assert found.log_mel.shape == found.relevance.shape == (embeddings.MEL_BANDS, frames)
    assert found.frame_s == pytest.approx(0.01) and np.all(np.diff(found.band_hz) > 0)
    # the main layer's answer on the clip's pooled embedding, as predict computes it (before calibration)
    emb, hidden = embeddings.ge2e_features([wave])
    logit = model.head.gender.logit(model.head.inputs(emb, None, hidden))[0]
    assert found.p_female == pytest.approx(1 / (1 + np.exp(logit)), abs=1e-5)
    assert found.answer == ("female" if found.p_female >= 0.5 else "male")


def test_evidence_lies_where_the_sound_is():
    found = occlusion_map(load_default_model(), _low_voice())
    strongest = np.abs(found.relevance).max()
    assert strongest > 0
    assert np.abs(found.relevance[found.band_hz > 3000]).max() < 0.1 * strongest  # masking leakage changes little
    assert np.all(found.relevance[:, :40] == 0)  # the leading silence carries no colour


def test_short_clips_are_tiled_to_one_window():
    found = occlusion_map(load_default_model(), _low_voice(0.5, 0.0))
    assert found.relevance.shape[1] == embeddings.PARTIAL_FRAMES


def test_models_it_cannot_explain_are_one_line_errors():
    with pytest.raises(ModelError, match="shipped kind of model"):
        occlusion_map(ScorerModel(lambda waves: np.full(len(waves), 0.5)), _low_voice())
    head = load_default_model().head
    with_pitch = VoiceModel(dataclasses.replace(head, feature_names=[*head.feature_names, "f0_median_st"]))
    with pytest.raises(ModelError, match="pitch or formant"):
        occlusion_map(with_pitch, _low_voice())


def test_unmapped_below_is_the_short_speech_layers_limit():
    assert unmapped_below_s(load_default_model()) == load_default_model().head.short_max_s > 0
    assert unmapped_below_s(ScorerModel(lambda waves: np.zeros(len(waves)))) == 0.0
