"""Shared fixtures: tiny synthetic voices written to tmp_path, and markers for optional resources."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice
from voicegender.listen.speakers import Windows

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
SEED_FIXTURE = SHARED / "fixtures" / "seed_mfc"

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"needs the project's training corpora in {SHARED_DATA} (not on this machine)"
)
ESPEAK = shutil.which("espeak-ng")
requires_espeak = pytest.mark.skipif(ESPEAK is None, reason="needs espeak-ng (apt install espeak-ng) for speech")
requires_seed_fixture = pytest.mark.skipif(
    not SEED_FIXTURE.is_dir(), reason=f"needs the golden seed fixture in {SEED_FIXTURE} (not on this machine)"
)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the exported GE2E encoder and feature caches of the test run out of the user's cache folder."""
    import os

    before = os.environ.get("VOICEGENDER_CACHE_DIR")
    os.environ["VOICEGENDER_CACHE_DIR"] = str(tmp_path_factory.mktemp("voicegender_cache"))
    yield
    if before is None:
        os.environ.pop("VOICEGENDER_CACHE_DIR", None)
    else:
        os.environ["VOICEGENDER_CACHE_DIR"] = before


def resident_mb() -> float:
    """This process's resident memory in MB (Linux: VmRSS from /proc/self/status)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def write_voice(path: Path, gender: str, seed: int = 0, seconds: float = 0.8, sr: int = 16_000) -> Path:
    """Write a synthetic male (120 Hz) or female (220 Hz) voice clip; returns the path."""
    f0 = FEMALE_F0 if gender == "female" else MALE_F0
    f0 *= 1 + 0.05 * ((seed % 5) - 2)  # a little speaker variety
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_voice(f0, seconds, sr, seed=seed), sr, subtype="PCM_16")
    return path


@pytest.fixture
def voice_pair(tmp_path: Path) -> dict[str, Path]:
    """One female and one male synthetic clip (16 kHz WAV)."""
    return {g: write_voice(tmp_path / f"{g}.wav", g) for g in ("female", "male")}


@pytest.fixture
def audiomnist_corpus(tmp_path: Path) -> Path:
    """A tiny AudioMNIST-layout corpus: 4 speakers (02 male, 07 male, 12 female, 26 female), 2 digits x 2 reps."""
    root = tmp_path / "amnist"
    meta = {}
    for speaker, gender in (("02", "male"), ("07", "male"), ("12", "female"), ("26", "female")):
        meta[speaker] = {"gender": gender, "age": "30", "accent": None}
        for digit in range(2):
            for rep in range(2):
                write_voice(root / "data" / speaker / f"{digit}_{speaker}_{rep}.wav", gender,
                            seed=int(speaker) * 10 + digit * 2 + rep, seconds=0.5)
    (root / "audioMNIST_meta.txt").write_text(json.dumps(meta))
    return root


@pytest.fixture
def manifest_corpus(tmp_path: Path) -> Path:
    """A CSV-manifest corpus of 8 speakers (4 F / 4 M), 3 clips each, with an age column; returns the CSV."""
    root = tmp_path / "manifest_corpus"
    rows = ["path,speaker,gender,age"]
    for s in range(8):
        gender = "female" if s % 2 == 0 else "male"
        for i in range(3):
            rel = f"clips/s{s}_{i}.flac"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            f0 = FEMALE_F0 if gender == "female" else MALE_F0
            sf.write(path, synth_voice(f0 * (1 + 0.03 * s), 0.5, 16_000, seed=s * 3 + i), 16_000)
            rows.append(f"{rel},spk{s},{'F' if gender == 'female' else 'M'},{20 + s}")
    csv_path = root / "manifest.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def espeak(text: str, voice: str = "en+m3", pitch: int = 30, trim: bool = False, sr: int = 16_000) -> np.ndarray:
    """espeak-ng speech as float32 mono at ``sr`` (silero does not take synth.py's voices for speech).

    trim : cut the leading/trailing silence, so clip edges are the truth for segmentation tests.
    """
    import librosa

    from voicegender.audio.decode import resample

    wav = subprocess.run([ESPEAK, "-v", voice, "-p", str(pitch), "--stdout", text], capture_output=True,
                         check=True).stdout
    data, rate = sf.read(io.BytesIO(wav), dtype="float32")
    speech = resample(data, rate, sr)
    return librosa.effects.trim(speech, top_db=40)[0] if trim else speech


def melody(seconds: float = 6.0, seed: int = 0, sr: int = 16_000) -> np.ndarray:
    """Plucked harmonic notes on a chromatic scale: music-like, not speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * sr)) / sr
    env = np.exp(-3 * t) * (1 - np.exp(-200 * t))
    notes = []
    for _ in range(int(seconds / 0.3)):
        f = 220 * 2 ** (rng.integers(0, 12) / 12)
        notes.append(sum(0.5**k * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(6)) * env)
    return (0.2 * np.concatenate(notes)).astype(np.float32)


def pitch_scorer(waves: list[np.ndarray], sr: int = 16_000) -> np.ndarray:
    """A deterministic stand-in for a trained model: p_female from the median pitch of the loud frames
    (above 165 Hz: female)."""
    import librosa

    out = []
    for w in waves:
        f0 = librosa.yin(w, fmin=60, fmax=400, sr=sr, frame_length=1024)
        rms = librosa.feature.rms(y=w, frame_length=1024, hop_length=256)[0]
        n = min(len(f0), len(rms))
        median = float(np.median(f0[:n][rms[:n] >= 0.3 * rms.max()]))
        out.append(1 / (1 + np.exp(-(median - 165) / 20)))
    return np.array(out)


# speaker -> (pitch of the synthetic voice in Hz, the label its manifest gives): m2 is a man labelled female
SPEAKER_CORPUS = {"f1": (220.0, "female"), "f2": (240.0, "female"), "m1": (110.0, "male"), "m2": (120.0, "female")}


def write_speaker_corpus(root: Path, speakers: dict[str, tuple[float, str]] = SPEAKER_CORPUS, clips: int = 3,
                         seconds: float = 1.5) -> Path:
    """A CSV-manifest corpus of synthetic voices, ``clips`` per speaker in ``root/<speaker>/``; returns the CSV."""
    rows = ["path,speaker,gender"]
    for k, (speaker, (f0, label)) in enumerate(speakers.items()):
        for i in range(clips):
            path = root / speaker / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, synth_voice(f0 * (1 + 0.02 * i), seconds, seed=10 * k + i), 16_000, subtype="PCM_16")
            rows.append(f"{speaker}/{i}.wav,{speaker},{label}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


WINDOW_HOP, WINDOW_SAMPLES = 8_000, 24_000  # segment's windows: 0.5 s hops, 1.5 s long (16 kHz)


def voice_vector(k: int, dim: int = 32) -> np.ndarray:
    """A unit voice embedding for voice ``k`` (voices share a little: cosine 0.2 between two)."""
    v = np.zeros(dim)
    v[k] = 1.0
    v[dim - 1] = 0.5  # every voice shares a little (cosine between voices 0.2)
    return v / np.linalg.norm(v)


def windows_of(turns: list[tuple[float, float, int]], genders: dict[int, float], seed: int = 0) -> Windows:
    """Windows every 0.5 s over back-to-back turns (start_s, end_s, voice); a window's embedding mixes the voices
    it covers by their share of it, plus a little noise; its log-odds of female is its voices' (``genders``)."""
    rng = np.random.default_rng(seed)
    end = max(e for _, e, _ in turns)
    starts = np.arange(0, int(end * 16_000) - WINDOW_SAMPLES + 1, WINDOW_HOP)
    emb, logit = [], []
    for s in starts:
        a, b = s / 16_000, (s + WINDOW_SAMPLES) / 16_000
        share: dict[int, float] = {}
        for t0, e, k in turns:
            share[k] = share.get(k, 0.0) + max(0.0, min(b, e) - max(a, t0))
        v = sum(w * voice_vector(k) for k, w in share.items() if w > 0) + 0.05 * rng.normal(size=32)
        emb.append(v / np.linalg.norm(v))
        logit.append(sum(w * genders[k] for k, w in share.items()) / WINDOW_SAMPLES * 16_000)
    n = len(starts)
    emb = np.array(emb)
    lag = WINDOW_SAMPLES // WINDOW_HOP  # segment's window scorer stores the distance to the window ending at a start
    change = np.full(n, np.nan)
    change[lag:] = 1.0 - np.sum(emb[lag:] * emb[:-lag], axis=1)
    return Windows(start=starts.astype(np.int64), n_samples=WINDOW_SAMPLES, hop=WINDOW_HOP, weight=np.ones(n),
                   logit=np.array(logit), child_logit=np.full(n, -3.0), change=change,
                   embedding=emb.astype(np.float16))


def _example_voices() -> tuple[np.ndarray, np.ndarray, int, int]:
    """The two Common Voice examples (CC0): a woman's and a man's sentence, the man at the woman's loudness; and
    where each one's speech starts and ends (silero, s) as (female end, male start)."""
    from voicegender.audio.decode import load_audio
    from voicegender.examples import EXAMPLES_DIR
    from voicegender.speech.vad_model import frame_probabilities

    female = load_audio(str(EXAMPLES_DIR / "commonvoice_female_en.ogg"), 16_000).samples
    male = load_audio(str(EXAMPLES_DIR / "commonvoice_male_en.ogg"), 16_000).samples
    male = male * np.sqrt(np.mean(female ** 2) / np.mean(male ** 2))
    female_end = (np.flatnonzero(frame_probabilities(female) > 0.5)[-1] + 1) * 512
    male_start = np.flatnonzero(frame_probabilities(male) > 0.5)[0] * 512
    return female, male, female_end, male_start


def overlapping_voices(overlap_s: float) -> tuple[np.ndarray, float, float]:
    """The two Common Voice examples (CC0), the man starting ``overlap_s`` before the woman stops (negative: a
    pause between them); the audio and the reference overlap (start_s, end_s)."""
    female, male, female_end, male_start = _example_voices()
    start = int(female_end - overlap_s * 16_000 - male_start)
    x = np.zeros(max(len(female), start + len(male)) + 16_000, np.float32)
    x[:len(female)] += female
    x[start:start + len(male)] += male
    return x, (start + male_start) / 16_000, female_end / 16_000
