"""record: countdown, recording through a fake sounddevice, WAV saved, prediction printed; clear device errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import soundfile as sf

import voicegender.listen.predict as predict
import voicegender.listen.record as record
import voicegender.voice.loading as voice_loading
import voicegender.voice.model as voice_model
from voicegender.audio.synth import synth_voice
from voicegender.cli import main
from voicegender.errors import VoiceGenderError


class PortAudioError(Exception):
    pass


class DeviceList(tuple):
    """sounddevice.DeviceList: a tuple of device dicts whose text is PortAudio's table (empty without devices)."""

    def __str__(self) -> str:
        return "\n".join(f"{'>' if i == 1 else ' '} {i} {d['name']}, ALSA ({d['max_input_channels']} in, "
                         f"{d['max_output_channels']} out)" for i, d in enumerate(self))


MICROPHONE = {"name": "Fake USB Microphone", "max_input_channels": 2, "max_output_channels": 0}
SPEAKERS = {"name": "HDMI speakers", "max_input_channels": 0, "max_output_channels": 8}


def fake_sounddevice(signal: np.ndarray | None = None, has_device: bool = True,
                     devices: tuple = (MICROPHONE, SPEAKERS)) -> types.ModuleType:
    """A stand-in for the sounddevice module: rec() returns ``signal`` (looped) as (frames, 1) float32."""
    sd = types.ModuleType("sounddevice")
    sd.PortAudioError = PortAudioError
    sd.calls = []

    def check_input_settings(device=None, channels=None, samplerate=None, dtype=None):
        sd.calls.append(("check", device, channels, samplerate, dtype))
        if not has_device:
            raise PortAudioError("Error querying device -1")

    def rec(frames, samplerate=None, channels=None, dtype=None, device=None):
        sd.calls.append(("rec", frames, samplerate, channels, dtype, device))
        base = signal if signal is not None else np.zeros(frames, np.float32)
        return np.resize(base, frames).astype(np.float32).reshape(-1, 1)

    sd.check_input_settings = check_input_settings
    sd.rec = rec
    sd.wait = lambda: sd.calls.append(("wait",))
    sd.query_devices = lambda: DeviceList(devices)
    return sd


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(record.time, "sleep", lambda s: None)


def test_record_flow_saves_wav_and_prints_prediction(tmp_path, monkeypatch, capsys, no_sleep):
    voice = synth_voice(220, 1.0, sr=48_000, seed=4)
    sd = fake_sounddevice(voice)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    seen = []

    def scorer(waves):
        seen.extend(len(w) for w in waves)
        return np.full(len(waves), 0.8)

    _use_scorer(monkeypatch, scorer)
    monkeypatch.setattr(predict.PredictOptions, "__init__", _no_vad_init(predict.PredictOptions.__init__))
    out = tmp_path / "me.wav"
    assert main(["record", "--seconds", "1.5", "--device", "0", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.index("3...") < captured.err.index("2...") < captured.err.index("1...") \
        < captured.err.index("Speak now!")
    assert f"saved {out}" in captured.err
    assert captured.out.strip() == f"{out}: female (p_female 0.800, 1.50 s of speech)"
    data, rate = sf.read(out, dtype="float32")
    assert rate == 48_000 and len(data) == 72_000 and data.ndim == 1
    assert np.allclose(data[:48_000], voice, atol=1 / 32768)
    assert ("check", 0, 1, 48_000, "float32") in sd.calls and ("rec", 72_000, 48_000, 1, "float32", 0) in sd.calls
    assert seen == [24_000]  # the saved file, resampled to 16 kHz, went to the model


def _use_scorer(monkeypatch, scorer) -> None:
    """Every load_model on the way (record's, predict's) gives ``scorer`` instead of the shipped model."""
    model = voice_model.ScorerModel(scorer)
    monkeypatch.setattr(voice_loading, "load_model", lambda model_=None: model)
    monkeypatch.setattr(predict, "load_model", lambda model_=None: model)


def _no_vad_init(init):
    """PredictOptions with vad=False (synthetic voices are not speech to silero)."""

    def wrapped(self, *args, **kwargs):
        kwargs["vad"] = False
        init(self, *args, **kwargs)

    return wrapped


def test_silence_says_no_speech(tmp_path, monkeypatch, capsys, no_sleep):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(None))
    _use_scorer(monkeypatch, lambda waves: np.full(len(waves), 0.5))
    assert main(["record", "--out", str(tmp_path / "x.wav"), "--rate", "16000"]) == 0
    assert "no speech detected" in capsys.readouterr().out
    assert sf.info(str(tmp_path / "x.wav")).samplerate == 16_000


def test_no_device_is_a_one_line_error(tmp_path, monkeypatch, capsys, no_sleep):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(has_device=False))
    _use_scorer(monkeypatch, lambda waves: np.full(len(waves), 0.5))
    assert main(["record", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot record from the default input device at 48000 Hz")
    assert "--list-devices" in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()


def test_missing_sounddevice_or_portaudio(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    assert main(["record", "--list-devices"]) == 2
    assert "pip install 'voicegender[record]'" in capsys.readouterr().err

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__
    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr("builtins.__import__", no_portaudio)
    with pytest.raises(VoiceGenderError, match="PortAudio library is missing.*libportaudio2"):
        record.record(countdown=0)


def test_list_devices(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice())
    assert main(["record", "--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "Fake USB Microphone" in out and "no input device" not in out


@pytest.mark.parametrize(("devices", "seen"), [((), "no audio device at all"),
                                               ((SPEAKERS,), "1 device(s), none with an input")])
def test_without_a_microphone_both_list_and_record_say_so(devices, seen, tmp_path, monkeypatch, capsys, no_sleep):
    """Issue 22: --list-devices printed nothing, and record said PortAudio's "Error querying device -1"."""
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(has_device=False, devices=devices))
    assert main(["record", "--list-devices"]) == 0
    out = capsys.readouterr().out
    assert f"no input device (microphone) found: PortAudio sees {seen}; plug one in" in out
    _use_scorer(monkeypatch, lambda waves: np.full(len(waves), 0.5))
    assert main(["record", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot record: no input device (microphone) found: PortAudio sees {seen}")
    assert "device -1" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()


def test_bad_arguments(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice())
    with pytest.raises(VoiceGenderError, match="--seconds must be positive"):
        record.record(seconds=0, countdown=0)
    with pytest.raises(VoiceGenderError, match="--rate"):
        record.record(rate=100, countdown=0)
    assert record.default_output().name.startswith("recording-")
