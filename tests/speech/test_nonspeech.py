"""Synthetic non-speech sounds (the speech check's negatives) and what the shipped model's check does with them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voicegender.speech import nonspeech


def test_sounds_are_deterministic_and_cover_every_kind_and_channel():
    a, b = nonspeech.sounds(72, seed=3), nonspeech.sounds(72, seed=3)
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))
    kinds = {n.split(" ")[0] for n, _ in a}
    channels = {n.split(" ")[2] for n, _ in a}
    assert kinds == set(nonspeech.KINDS) and channels == {"clean", "telephone", "codec"}
    for name, x in a:
        assert x.dtype == np.float32 and np.isfinite(x).all() and 0.05 * nonspeech.SR <= len(x) <= 3.6 * nonspeech.SR
        assert np.abs(x).max() <= 1.5, name  # peak <= 0 dBFS before the channel (a codec may overshoot a little)
    with pytest.raises(ValueError, match="unknown non-speech kind"):
        nonspeech.signal("speech", 1.0, np.random.default_rng(0))


def test_quiet_hiss_from_the_first_sample_is_not_speech():
    """Hiss starting at sample 0 makes silero's onset response pass the lenient second pass; the shipped model's
    speech check turns it back into no_speech (without the check most of these were answered "female")."""
    from voicegender.listen.predict import predict_waveform
    from voicegender.voice.default_model import VoiceModel, load_default_model

    model = load_default_model()
    assert model.speech_check is not None
    without = VoiceModel(dataclasses.replace(model.head, speech=None))
    hiss = [(np.random.default_rng(seed).standard_normal(16_000) * 0.0025).astype(np.float32) for seed in range(1, 13)]
    with_check = [predict_waveform(x, 16_000, model=model).label for x in hiss]
    no_check = [predict_waveform(x, 16_000, model=without).label for x in hiss]
    assert with_check.count("no_speech") >= 11, with_check
    assert no_check.count("no_speech") <= 6, no_check  # the check is what does it
