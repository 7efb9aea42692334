"""Speech detection: silero finds espeak-ng speech, not silence/noise/tones/music; streaming equals one pass."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import espeak, requires_espeak

from voicegender import vad
from voicegender.synth import synth_noise, synth_tone, synth_voice

SR = 16_000




def melody(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Plucked harmonic notes on a chromatic scale: music-like, not speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SR)) / SR
    env = np.exp(-3 * t) * (1 - np.exp(-200 * t))
    notes = []
    for _ in range(int(seconds / 0.3)):
        f = 220 * 2 ** (rng.integers(0, 12) / 12)
        notes.append(sum(0.5**k * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(6)) * env)
    return (0.2 * np.concatenate(notes)).astype(np.float32)


@requires_espeak
def test_finds_speech_and_matches_silero():
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    speech = espeak("The quick brown fox jumps over the lazy dog. How are you today?")
    x = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    segments = vad.speech_segments(x)
    assert segments and segments[0][0] == pytest.approx(1.0, abs=0.2)
    assert vad.speech_seconds(segments) > 0.6 * len(speech) / SR
    # our state machine over our frame probabilities gives silero's own answer
    ref = get_speech_timestamps(torch.from_numpy(x), load_silero_vad(onnx=True), return_seconds=True,
                                time_resolution=3)  # silero's own per-frame ONNX model and state machine
    assert np.ravel(segments) == pytest.approx(np.ravel([(d["start"], d["end"]) for d in ref]), abs=0.04)
    only = vad.speech_only(x, segments)
    assert len(only) == pytest.approx(vad.speech_seconds(segments) * SR, abs=len(segments) * 2)


@pytest.mark.parametrize("name, signal", [
    ("silence", np.zeros(3 * SR, np.float32)),
    ("quiet noise", synth_noise(3.0, level=1e-4)),
    ("loud noise", synth_noise(3.0, level=0.5)),
    ("440 Hz tone", synth_tone(440, 3.0)),
    ("150 Hz tone", synth_tone(150, 3.0)),
    ("melody", melody()),
])
def test_no_speech_in_non_speech(name, signal):
    assert vad.speech_segments(signal) == [], name


def test_streaming_equals_one_pass():
    x = np.concatenate([synth_voice(120, 2.0, seed=1), synth_noise(1.0, level=0.01), synth_voice(220, 2.0, seed=2)])
    whole = vad.frame_probabilities(x)
    stream = vad.StreamingVad()
    parts = [stream.feed(x[i:i + 7001]) for i in range(0, len(x), 7001)] + [stream.finish()]
    assert np.array_equal(np.concatenate(parts), whole)
    assert stream.frames == len(whole) == -(-len(x) // vad.FRAME_SAMPLES)
    assert len(vad.frame_probabilities(np.zeros(0, np.float32))) == 0


def test_torchscript_fallback_agrees():
    if vad.backend_name() != "onnx-sequence":
        pytest.skip("onnxruntime missing: the TorchScript model is already the back end")
    x = synth_voice(150, 1.0, seed=3)
    jit = vad._JitBackend()
    probs, _ = jit.run(vad._frames(x), jit.initial_state())
    assert np.abs(probs - vad.frame_probabilities(x)).max() < 1e-3


def _probs(*runs: tuple[float, float]) -> np.ndarray:
    """Frame probabilities from (value, seconds) runs."""
    return np.concatenate([np.full(int(round(s / vad.FRAME_S)), v, np.float32) for v, s in runs])


def test_state_machine_thresholds_and_durations():
    cfg = vad.VadConfig(pad_s=0.0)
    # too short (0.16 s < 0.25 s): dropped
    assert vad.segments_from_probs(_probs((0, 1), (0.9, 0.16), (0, 1)), cfg) == []
    # 0.064 s pause < min_silence 0.1 s: bridged; 0.32 s pause: split
    bridged = vad.segments_from_probs(_probs((0, 0.32), (0.9, 0.64), (0.1, 0.064), (0.9, 0.64), (0, 0.64)), cfg)
    assert bridged == [(pytest.approx(0.32), pytest.approx(1.664))]
    split = vad.segments_from_probs(_probs((0.9, 0.64), (0.1, 0.32), (0.9, 0.64)), cfg)
    assert len(split) == 2
    # between the two thresholds (0.35..0.5): speech continues but does not start
    assert vad.segments_from_probs(_probs((0.4, 2.0)), cfg) == []
    assert vad.segments_from_probs(_probs((0.9, 0.32), (0.4, 1.0)), cfg) == [(0.0, pytest.approx(1.312))]
    # padding is clipped to the audio and merges close regions
    padded = vad.segments_from_probs(_probs((0.9, 0.32), (0.0, 0.128), (0.9, 0.32)),
                                     vad.VadConfig(pad_s=0.1, min_silence_s=0.1), duration_s=0.7)
    assert padded == [(0.0, 0.7)]


@pytest.mark.parametrize("cfg", [vad.VadConfig(), vad.VadConfig(min_speech_s=0.1, pad_s=0.1),
                                 vad.VadConfig(threshold=0.3, min_silence_s=0.5, pad_s=0.3)])
def test_stream_speech_equals_whole_file(cfg):
    rng = np.random.default_rng(0)
    parts = []
    for i in range(8):  # voice-like bursts (silero takes their starts for speech) between noise and silence
        parts += [synth_voice(float(rng.choice([110, 230])), float(rng.uniform(0.4, 2.5)), seed=i),
                  synth_noise(float(rng.uniform(0.05, 1.5)), seed=i, level=0.003)]
    x = np.concatenate(parts)
    regions = vad.speech_segments(x, cfg)
    assert regions, "the test signal should hold some speech"
    for block in (1000, 16_000, len(x)):
        speech, streamed, duration = vad.stream_speech((x[i:i + block] for i in range(0, len(x), block)), cfg)
        assert streamed == regions and duration == len(x) / SR
        assert np.array_equal(speech, vad.speech_only(x, regions))
    empty, none, _ = vad.stream_speech([np.zeros(5000, np.float32)], cfg)
    assert none == [] and len(empty) == 0
