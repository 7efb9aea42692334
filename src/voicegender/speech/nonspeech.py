"""Synthetic sounds that are not speech: the negatives of the model's speech check, and test material.

Silero's speech detector answers the onset of *any* sound after silence with 0.3-0.6 for a few frames, the range
of a single word through a telephone line; the lenient second pass of :func:`voicegender.speech.vad.find_speech`, which
single words need, therefore also accepts the start of quiet hiss, a buzz or a chord. The speech check
(:mod:`voicegender.voice.fit`, ``speech`` layer of the voice head) tells such sounds from speech by their GE2E
embedding; it learns them from these signals: noises (white, pink, brown, band-limited), tones, hums, buzzes,
sweeps, clicks, chords and drum-like hits, alone or mixed, at any level, with or without a silent lead, through
the channels predict meets (clean, telephone, low-bit-rate codec). :func:`bursts` makes trains of beeps and clicks
(test material for :func:`voicegender.speech.vad.too_brief`; the shipped check did not learn them).
"""

from __future__ import annotations

import numpy as np

SR = 16_000  # Hz
KINDS = ("white", "pink", "brown", "band", "tone", "hum", "buzz", "sweep", "clicks", "chords", "drums", "mix")


def _brown(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.cumsum(rng.standard_normal(n))
    k = min(400, n)
    return x - np.convolve(x, np.ones(k) / k, "same")  # no drift


def _band(n: int, rng: np.random.Generator) -> np.ndarray:
    lo = rng.uniform(100, 3000)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > lo * rng.uniform(1.3, 3.0))] = 0
    return np.fft.irfft(spec, n)


def _notes(n: int, rng: np.random.Generator, hit: bool) -> np.ndarray:
    x = np.zeros(n)
    step = int(SR * rng.uniform(0.12, 0.5))
    for s in range(0, n, step):
        m = min(step, n - s)
        t = np.arange(m) / SR
        if hit:
            x[s:s + m] = rng.standard_normal(m) * np.exp(-t * rng.uniform(20, 80))
        else:
            f0 = rng.uniform(110, 880)
            x[s:s + m] = sum(np.sin(2 * np.pi * f0 * r * t) / (1 + k) for k, r in enumerate((1, 1.26, 1.5, 2))) * \
                np.exp(-t * rng.uniform(1, 8))
    return x


def signal(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One non-speech sound of ``kind`` (:data:`KINDS`), ``seconds`` long, peak 1 (float64, 16 kHz)."""
    n = max(1, int(seconds * SR))
    t = np.arange(n) / SR
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        from ..audio.augment import pink_noise

        x = pink_noise(n, rng)
    elif kind == "brown":
        x = _brown(n, rng)
    elif kind == "band":
        x = _band(n, rng)
    elif kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(60, 4000) * t + rng.uniform(0, 6.3))
    elif kind == "hum":
        f = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * f * k * t) * rng.uniform(0.2, 1) / k for k in range(1, 9))
    elif kind == "buzz":
        x = np.sign(np.sin(2 * np.pi * rng.uniform(80, 400) * t)) + 0.05 * rng.standard_normal(n)
    elif kind == "sweep":
        f0, f1 = rng.uniform(80, 2000, 2)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * max(seconds, 1e-3))))
    elif kind == "clicks":
        x = np.zeros(n)
        k = int(rng.integers(1, 20))
        x[rng.integers(0, n, k)] = rng.uniform(-1, 1, k)
    elif kind in ("chords", "drums"):
        x = _notes(n, rng, hit=kind == "drums")
    elif kind == "mix":
        a, b = rng.choice([k for k in KINDS if k != "mix"], 2, replace=False)
        x = signal(str(a), seconds, rng) + rng.uniform(0.1, 1) * signal(str(b), seconds, rng)
    else:
        raise ValueError(f"unknown non-speech kind {kind!r}; choose from {', '.join(KINDS)}")
    peak = float(np.max(np.abs(x))) if n else 0.0
    return x / peak if peak > 0 else x


BURST_KINDS = ("beeps", "clicks")  # :func:`bursts`: not among KINDS (the shipped speech check never learned them)


def burst_train(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Beeps or clicks repeated at a random rate and phase, ``seconds`` long, peak 1 (float64, 16 kHz).

    beeps: tone bursts of 10-60 ms (sine or square, 300-3000 Hz; sometimes with the low thump a recorder's filters
    add, as Chromium's fake microphone: 20 ms at 400 Hz every 0.5 s), 1-10 per second; clicks: single samples or
    1-10 ms decaying noise, 1-20 per second, evenly spaced or at random times.
    """
    n = max(1, int(seconds * SR))
    x = np.zeros(n)
    rate = float(np.exp(rng.uniform(np.log(1.0), np.log(10.0 if kind == "beeps" else 20.0))))
    count = max(1, int(round(rate * seconds)))
    if kind == "clicks" and rng.random() < 0.5:
        starts = np.sort(rng.integers(0, n, count))
    else:
        starts = (rng.uniform(0, 1 / rate) + np.arange(count) / rate) * SR
    for start in starts.astype(int)[starts < n]:
        if kind == "beeps":
            t = np.arange(int(rng.uniform(0.01, 0.06) * SR)) / SR
            tone = np.sin(2 * np.pi * rng.uniform(300, 3000) * t)
            burst = np.sign(tone) if rng.random() < 0.5 else tone
            if rng.random() < 0.3:  # the thump of a recorder's high-pass filter and level control after the edge
                tail = np.arange(int(0.15 * SR)) / SR
                burst = np.concatenate([burst, np.zeros(len(tail) - len(burst))]) + 0.5 * np.exp(-tail * 25) * \
                    np.sin(2 * np.pi * 60 * tail)
        elif rng.random() < 0.5:
            burst = np.array([rng.uniform(-1, 1)])
        else:
            m = int(rng.uniform(0.001, 0.01) * SR)
            burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 4))
        end = min(n, start + len(burst))
        x[start:end] += burst[:end - start]
    peak = float(np.max(np.abs(x)))
    return x / peak if peak > 0 else x


def bursts(n: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``n`` labelled recordings of beeps and clicks (:func:`burst_train`; float32, 16 kHz): 1-5 s, peak -40 to 0
    dBFS, over silence or a noise floor 30-60 dB below them; a third through a telephone line, a third through a
    low-bit-rate codec (Opus at 8 or 24 kbit/s, MP3). Not speech: every one must be answered no_speech."""
    from ..audio import augment

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = BURST_KINDS[i % len(BURST_KINDS)]
        seconds = float(rng.uniform(1.0, 5.0))
        level = 10 ** (rng.uniform(-40, 0) / 20)
        x = burst_train(kind, seconds, rng) * level
        if rng.random() < 0.5:
            x = x + rng.standard_normal(len(x)) * level * 10 ** (-rng.uniform(30, 60) / 20)
        x = x.astype(np.float32)
        channel = ("clean", "telephone", "codec")[(i // len(BURST_KINDS)) % 3]
        if channel == "telephone":
            x = augment.telephone(x, SR, codec=True)
        elif channel == "codec":
            name, rate = [("opus", 8_000), ("opus", 24_000), ("mp3", 16_000)][int(rng.integers(3))]
            x = augment.codec(x, SR, name, rate)
        out.append((f"{kind} {seconds:.2f}s {channel}", np.asarray(x, np.float32)))
    return out


def sounds(n: int, seed: int = 0, channels: bool = True) -> list[tuple[str, np.ndarray]]:
    """``n`` labelled non-speech recordings (float32, 16 kHz): kind, 0.1-3 s, peak -60 to 0 dBFS, half with a silent
    lead of up to 0.5 s; with ``channels`` a third go through a telephone line and a third through a codec."""
    from ..audio import augment

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        seconds = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0))))
        x = signal(kind, seconds, rng) * 10 ** (rng.uniform(-60, 0) / 20)
        if rng.random() < 0.5:
            x = np.concatenate([np.zeros(int(rng.uniform(0, 0.5) * SR)), x])
        x = x.astype(np.float32)
        channel = "clean" if not channels else ("clean", "telephone", "codec")[(i // len(KINDS)) % 3]
        if channel == "telephone":
            x = augment.telephone(x, SR, codec=True, law=str(rng.choice(["mu", "a"])))
        elif channel == "codec":
            name, rate = [("mp3", 16_000), ("opus", 8_000), ("aac", 16_000), ("amr_nb", 7_950)][int(rng.integers(4))]
            try:
                x = augment.codec(x, SR, name, rate)
            except Exception:  # noqa: BLE001 - a codec refusing a signal only leaves it clean
                channel = "clean"
        out.append((f"{kind} {seconds:.2f}s {channel}", np.asarray(x, np.float32)))
    return out
