"""Record your voice from a microphone and classify it (the original system's record-your-voice flow).

sounddevice (and the PortAudio library under it) is imported only here and only when recording, so the rest of
the package works on machines without audio hardware. Every failure to record — sounddevice not installed,
PortAudio missing, no input device, a bad device name — becomes one :class:`VoiceGenderError` line that says
what to do.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import VoiceGenderError
from ..extras import MissingExtraError

log = logging.getLogger(__name__)

RECORD_SECONDS = 1.0  # the seed recorded about one second
RECORD_RATE = 48_000  # Hz, the seed's (and AudioMNIST's) rate
COUNTDOWN = 3  # seconds counted down before recording starts


def _sounddevice():
    """Import sounddevice, turning "not installed" and "no PortAudio" into one readable error."""
    try:
        import sounddevice
    except ImportError as e:
        raise MissingExtraError("recording", "record", ("sounddevice",)) from e
    except OSError as e:  # sounddevice raises OSError when the PortAudio shared library is missing
        raise VoiceGenderError(f"cannot record: the PortAudio library is missing ({e}); install it "
                               "(Debian/Ubuntu: apt install libportaudio2, macOS: brew install portaudio)") from e
    return sounddevice


def _device(value: str | int | None) -> str | int | None:
    """A device given on the command line: its index when it is a number, else (part of) its name."""
    if value is None or isinstance(value, int):
        return value
    return int(value) if str(value).strip().isdigit() else value


def _devices(sd) -> tuple[str, list[dict]]:
    """(PortAudio's listing as text, its input devices: those with input channels)."""
    try:
        listing = sd.query_devices()
    except Exception as e:  # PortAudioError and friends: the host has no audio system
        raise VoiceGenderError(f"cannot list audio devices: {e}") from e
    devices = [d for d in listing if isinstance(d, dict)] if not isinstance(listing, (str, dict)) else []
    return str(listing).rstrip(), [d for d in devices if d.get("max_input_channels", 0) > 0]


def _no_input(listing: str) -> str:
    seen = f"{len(listing.splitlines())} device(s), none with an input" if listing else "no audio device at all"
    return (f"no input device (microphone) found: PortAudio sees {seen}; plug one in, or check that this user may "
            "use the audio system (in a container or over SSH: pass the sound device in)")


def list_devices() -> str:
    """A text listing of the audio devices (inputs are the ones with input channels); when none is an input, a
    sentence saying so (PortAudio's own listing is then empty, or outputs only)."""
    listing, inputs = _devices(_sounddevice())
    if inputs:
        return listing
    return f"{listing}\n{_no_input(listing)}" if listing else _no_input(listing)


def record(seconds: float = RECORD_SECONDS, rate: int = RECORD_RATE, device: str | int | None = None,
           countdown: int = COUNTDOWN, say: Callable[[str], None] = print,
           sleep: Callable[[float], None] | None = None) -> np.ndarray:
    """Count down, say "Speak now!", and record ``seconds`` of mono audio: float32 samples at ``rate`` Hz.

    Parameters
    ----------
    seconds : recording length in seconds (default 1).
    rate : sample rate in Hz (default 48,000, the seed's).
    device : input device index or (part of) its name; None: the system default.
    countdown : seconds counted down before recording (3-2-1).
    say : where the prompts go (the CLI passes a stderr printer).
    sleep : the countdown's clock (default :func:`time.sleep`).

    Raises
    ------
    VoiceGenderError when sounddevice/PortAudio is missing, there is no input device, or recording fails.
    """
    if seconds <= 0:
        raise VoiceGenderError(f"--seconds must be positive, got {seconds}")
    if rate < 8_000:
        raise VoiceGenderError(f"--rate must be at least 8000 Hz, got {rate}")
    sd = _sounddevice()
    dev = _device(device)
    listing, inputs = _devices(sd)
    if not inputs:  # else PortAudio's "Error querying device -1" (its default input is device -1: none)
        raise VoiceGenderError(f"cannot record: {_no_input(listing)}")
    try:
        sd.check_input_settings(device=dev, channels=1, samplerate=rate, dtype="float32")
    except Exception as e:  # PortAudioError (no device), ValueError (unknown name): say which
        where = "the default input device" if dev is None else f"input device {dev!r}"
        raise VoiceGenderError(f"cannot record from {where} at {rate} Hz: {e} "
                               "(see `voicegender record --list-devices`)") from e
    for n in range(countdown, 0, -1):
        say(f"{n}...")
        (sleep or time.sleep)(1.0)
    say("Speak now!")
    try:
        data = sd.rec(int(round(seconds * rate)), samplerate=rate, channels=1, dtype="float32", device=dev)
        sd.wait()
    except Exception as e:  # the device vanished or refused mid-way
        raise VoiceGenderError(f"recording failed: {e}") from e
    say("Done.")
    samples = np.asarray(data, np.float32).reshape(-1)
    if not np.isfinite(samples).all():
        raise VoiceGenderError("recording failed: the device returned invalid samples")
    return samples


def default_output(now: datetime | None = None) -> Path:
    """``recording-YYYYmmdd-HHMMSS.wav`` in the current folder."""
    return Path(f"recording-{(now or datetime.now()):%Y%m%d-%H%M%S}.wav")


def save_wav(samples: np.ndarray, rate: int, out: str | os.PathLike) -> Path:
    """Write 16-bit PCM WAV (what the seed saved); creates the folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    return out


def record_and_predict(seconds: float = RECORD_SECONDS, rate: int = RECORD_RATE, device: str | int | None = None,
                       out: str | os.PathLike | None = None, model=None, options=None,
                       countdown: int = COUNTDOWN, say: Callable[[str], None] = print):
    """Record, save the WAV and predict from the saved file; returns (path, Prediction).

    The prediction reads the WAV back, so it sees exactly what was saved (as the seed's deployment did).
    """
    from ..voice.loading import load_model
    from .predict import PredictOptions, predict_file

    _sounddevice()  # fail fast (before loading the model) when recording is impossible
    loaded = load_model(model)  # before the countdown: loading must not eat into the recording
    samples = record(seconds, rate, device, countdown, say)
    path = save_wav(samples, rate, out if out is not None else default_output())
    return path, predict_file(path, loaded, options or PredictOptions())
