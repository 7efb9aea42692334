"""How often `voicegender predict` answers no_speech on real speech, and how well it answers, by speech duration.

Clips are AudioMNIST-AZ spoken digits (``manifest.csv``: path, speaker, gender; FLAC at 16 kHz that carry a DC
offset of about -0.085) **trimmed to the spoken word**: the DC offset (the clip's mean) is removed, then
``librosa.effects.trim(top_db=--top-db, frame_length=512, hop_length=128)`` cuts the leading and trailing frames
whose RMS is more than ``--top-db`` dB below the clip's loudest frame (the recordings' noise floor sits 30-40 dB
below the word). Each clip therefore is speech from its first to its last sample, and its length is its speech
duration. Longer clips are 2-8 trimmed digits of one speaker joined by 0.1-0.3 s pauses of digital silence; their
speech duration is the sum of the words (pauses not counted). Bands: 0.1-0.3, 0.3-0.6, 0.6-1, 1-3, > 3 s; per
speaker, single words are drawn from each band in turn (so the short bands are filled) and a further half as
many concatenations are made.

Every clip is written as a 16-bit WAV at each tested rate (8, 16, 48 kHz; resampled from 16 kHz with soxr),
clean and through a telephone channel (:func:`voicegender.audio.augment.telephone`: 300-3400 Hz, 8 kHz µ-law,
applied at 16 kHz before the rate change), and the files go through the real
:func:`voicegender.listen.predict.predict_files` with default options (decode, resample to 16 kHz, VAD, model).

Reported per band and condition: the share answered ``no_speech`` and the balanced accuracy (mean of the female
and male recalls) over the clips that got an answer. ``--vad-only`` replaces the model by a constant scorer: only
the no_speech share is measured, and no model is loaded.

Usage (from the repository root)::

    python benchmarks/short_speech.py [--data ../shared/data/audiomnist_az] [--model PATH] [--max-clips 10]
                                      [--seed 0] [--top-db 20] [--vad-only] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SOURCE_RATE = 16_000  # Hz, AudioMNIST-AZ's FLAC rate
RATES = (8_000, 16_000, 48_000)
CHANNELS = ("clean", "telephone")
BANDS = ((0.1, 0.3), (0.3, 0.6), (0.6, 1.0), (1.0, 3.0), (3.0, float("inf")))  # seconds of speech
PAUSE_S = (0.1, 0.3)  # silence between the words of a concatenated clip
WORDS_PER_CONCAT = (2, 8)


@dataclass
class Clip:
    name: str
    speaker: str
    gender: str
    wave: np.ndarray  # float32 at 16 kHz, trimmed speech (and pauses, for concatenations)
    speech_s: float  # seconds of speech (words only)


def band_of(seconds: float) -> int | None:
    for i, (lo, hi) in enumerate(BANDS):
        if lo <= seconds < hi:
            return i
    return None


def band_name(i: int) -> str:
    lo, hi = BANDS[i]
    return f"> {lo:g} s" if hi == float("inf") else f"{lo:g}–{hi:g} s"


def trimmed_word(path: Path, top_db: float) -> np.ndarray:
    """The spoken word of a clip: DC offset removed, leading/trailing frames below ``top_db`` cut."""
    import librosa

    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != SOURCE_RATE:
        from voicegender.audio.decode import resample

        x = resample(x, rate, SOURCE_RATE)
    x = x - x.mean()
    return librosa.effects.trim(x, top_db=top_db, frame_length=512, hop_length=128)[0].astype(np.float32)


def make_clips(data: Path, max_clips: int, seed: int, top_db: float) -> list[Clip]:
    """Per speaker: ``max_clips`` trimmed words, drawn from the bands in turn, and ``max_clips // 2`` concatenations."""
    rng = np.random.default_rng(seed)
    with open(data / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["gender"] in ("female", "male")]
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_speaker[r["speaker"]].append(r)
    clips: list[Clip] = []
    for speaker in sorted(by_speaker):
        mine = by_speaker[speaker]
        gender = mine[0]["gender"]
        # trim a pool of this speaker's words (3x what is needed keeps it quick), then pick across bands
        pool = [mine[i] for i in rng.permutation(len(mine))[:3 * max_clips]]
        words = [(r, trimmed_word(data / r["path"], top_db)) for r in pool]
        per_band: dict[int, list[int]] = defaultdict(list)
        for k, (_, w) in enumerate(words):
            b = band_of(len(w) / SOURCE_RATE)
            if b is not None:
                per_band[b].append(k)
        chosen: list[int] = []
        while len(chosen) < max_clips and any(per_band.values()):
            for b in sorted(per_band):
                if per_band[b] and len(chosen) < max_clips:
                    chosen.append(per_band[b].pop(0))
        for k in chosen:
            r, w = words[k]
            clips.append(Clip(Path(r["path"]).stem, speaker, gender, w, len(w) / SOURCE_RATE))
        for j in range(max_clips // 2):
            n = int(rng.integers(WORDS_PER_CONCAT[0], WORDS_PER_CONCAT[1] + 1))
            picks = rng.choice(len(words), size=min(n, len(words)), replace=False)
            parts = []
            for i, k in enumerate(picks):
                if i:
                    parts.append(np.zeros(int(rng.uniform(*PAUSE_S) * SOURCE_RATE), np.float32))
                parts.append(words[k][1])
            speech_s = sum(len(words[k][1]) for k in picks) / SOURCE_RATE
            clips.append(Clip(f"cat{j}_{speaker}_{len(picks)}w", speaker, gender, np.concatenate(parts), speech_s))
    return clips


def render(clip: Clip, rate: int, channel: str) -> np.ndarray:
    from voicegender.audio.augment import telephone
    from voicegender.audio.decode import resample

    x = telephone(clip.wave, SOURCE_RATE) if channel == "telephone" else clip.wave
    x = resample(x, SOURCE_RATE, rate) if rate != SOURCE_RATE else x
    return np.clip(x, -1.0, 1.0)


def balanced_accuracy(truth: list[str], labels: list[str]) -> float | None:
    recalls = []
    for g in ("female", "male"):
        answered = [lab for t, lab in zip(truth, labels, strict=True) if t == g and lab in ("female", "male")]
        if not answered:
            return None
        recalls.append(np.mean([lab == g for lab in answered]))
    return float(np.mean(recalls))


def cell(truth: list[str], labels: list[str], vad_only: bool) -> str:
    if not labels:
        return "–"
    no_speech = 100 * np.mean([lab == "no_speech" for lab in labels])
    if vad_only:
        return f"{no_speech:.1f} %"
    acc = balanced_accuracy(truth, labels)
    return f"{no_speech:.1f} % · " + ("–" if acc is None else f"{100 * acc:.1f} %")


def constant_scorer(waves: list[np.ndarray]) -> np.ndarray:
    """A stand-in model for ``--vad-only``: every clip p_female 0.5."""
    return np.full(len(waves), 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default="../shared/data/audiomnist_az",
                    help="AudioMNIST-AZ folder with manifest.csv (relative to the repository root)")
    ap.add_argument("--model", default=None,
                    help="a model file (.pt checkpoint or .npz voice head); default: the shipped model")
    ap.add_argument("--max-clips", type=int, default=10,
                    help="single words per speaker (+ half as many concatenations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top-db", type=float, default=20.0, help="trim: frames this far below the loudest are cut")
    ap.add_argument("--vad-only", action="store_true", help="only the no_speech share (no model)")
    ap.add_argument("--keep", default=None, help="write the WAVs into this folder and keep them (e.g. runs/short)")
    args = ap.parse_args()

    from voicegender.listen.predict import load_model, predict_files

    t0 = time.perf_counter()
    data = Path(args.data) if Path(args.data).is_absolute() else REPO / args.data
    clips = make_clips(data, args.max_clips, args.seed, args.top_db)
    model = constant_scorer if args.vad_only else load_model(args.model)
    t_made = time.perf_counter()
    bands = [band_of(c.speech_s) for c in clips]
    truth = [c.gender for c in clips]
    results: dict[tuple[int, str], list[str]] = {}
    errors = 0
    predict_s = 0.0
    for rate in RATES:
        for channel in CHANNELS:
            folder = Path(args.keep) / f"{rate // 1000}k_{channel}" if args.keep else Path(tempfile.mkdtemp())
            folder.mkdir(parents=True, exist_ok=True)
            try:
                paths = []
                for i, c in enumerate(clips):
                    path = folder / f"{i:05d}_{c.name}.wav"
                    sf.write(path, render(c, rate, channel), rate, subtype="PCM_16")
                    paths.append(path)
                t = time.perf_counter()
                preds = predict_files(paths, model=model, show_progress=False)
                predict_s += time.perf_counter() - t
            finally:
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
            errors += sum(p.label == "error" for p in preds)
            results[(rate, channel)] = [p.label for p in preds]

    n_band = [sum(b == i for b in bands) for i in range(len(BANDS))]
    what = "no_speech share" if args.vad_only else "no_speech share · balanced accuracy of the answered clips"
    model_name = "none (--vad-only)" if args.vad_only else (args.model or "shipped default")
    print(f"\n{what}; model: {model_name}; trim top_db {args.top_db:g}; seed {args.seed}\n")
    header = ["input"] + [f"{band_name(i)} (n={n_band[i]})" for i in range(len(BANDS))] + [f"all (n={len(clips)})"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for rate in RATES:
        for channel in CHANNELS:
            labels = results[(rate, channel)]
            row = [f"{rate // 1000} kHz {channel}"]
            for i in range(len(BANDS)):
                idx = [k for k, b in enumerate(bands) if b == i]
                row.append(cell([truth[k] for k in idx], [labels[k] for k in idx], args.vad_only))
            row.append(cell(truth, labels, args.vad_only))
            print("| " + " | ".join(row) + " |")
    n_f = sum(g == "female" for g in truth)
    print(f"\n{len(clips)} clips ({n_f} female, {len(clips) - n_f} male, {len(set(c.speaker for c in clips))} speakers)"
          f" x {len(RATES) * len(CHANNELS)} conditions = {len(clips) * len(RATES) * len(CHANNELS)} files; "
          f"{errors} error rows; clips made in {t_made - t0:.0f} s, predict {predict_s:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
