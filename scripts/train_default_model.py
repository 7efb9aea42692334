"""Reproduce the shipped default model (src/voicegender/assets/default_model.pt) from ../shared/data.

Three steps, each a sub-command (run from the repository root with the venv active):

    python scripts/train_default_model.py cache   --data /work/shared/data --cache /work/cache/vg_default
    python scripts/train_default_model.py compare --cache /work/cache/vg_default --out docs/DEFAULT_MODEL.md
    python scripts/train_default_model.py ship    --cache /work/cache/vg_default

``cache`` decodes every clip of the three audio corpora once, makes its augmented copies (telephone, noise,
reverberation) with fixed seeds, and stores per copy: the GE2E embedding (256-d), a 3 s log-mel (for the
SmallCNN candidate) and the median f0 (pitch baseline), as .npy under --cache. ``compare`` runs the
leave-one-corpus-out and speaker k-fold comparisons from those arrays and writes the tables. ``ship`` trains the
chosen recipe on all corpora, fits the calibration temperature and writes the package asset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger("train_default_model")

CORPORA = ("audiomnist_az", "baved", "speechocean762_train")  # audio corpora in ../shared/data (not the images)
VARIANTS = ("clean", "tel", "noise", "reverb")  # copies of every clip; "tel" also serves as the robustness test
LOGMEL_FRAMES = 300  # 3 s of log-mel per clip for the SmallCNN candidate (short clips tiled, long ones centred)
SR = 16_000
CHILD_MAX_AGE = 12  # age <= 12 counts as a child


# ------------------------------------------------------------------------------------------------------------------
# step 1: cache
# ------------------------------------------------------------------------------------------------------------------


def load_clips(data: Path):
    from voicegender.corpora import load_corpus

    clips = []
    for name in CORPORA:
        clips += load_corpus(data / name, name=name).clips
    return clips


def clean_wave(path: Path) -> np.ndarray:
    """Decode at 16 kHz, remove DC (AudioMNIST-AZ's -0.085 offset), trim leading/trailing silence (as a VAD would)."""
    import librosa

    from voicegender.audio import load_audio

    x = load_audio(path, SR).samples.astype(np.float32)
    x = x - x.mean()
    trimmed, _ = librosa.effects.trim(x, top_db=35, frame_length=400, hop_length=160)
    return trimmed if len(trimmed) >= int(0.3 * SR) else x


def make_variant(wave: np.ndarray, variant: str, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    from voicegender import augment

    if variant == "clean":
        return wave
    if variant == "tel":
        return augment.telephone(wave, SR, codec=True)
    if variant == "noise":
        kind = str(rng.choice(["white", "pink", "babble"]))
        return augment.add_noise(wave, float(rng.uniform(5, 20)), rng, kind, pool)
    if variant == "reverb":
        return augment.reverberate(wave, SR, rng, rt60=float(rng.uniform(0.3, 0.9)),
                                   direct_ratio=float(rng.uniform(0.2, 0.7)))
    raise ValueError(variant)


def fixed_logmel(wave: np.ndarray) -> np.ndarray:
    from voicegender.features import log_mel

    m = log_mel(wave)
    if m.shape[1] < LOGMEL_FRAMES:
        m = np.tile(m, (1, int(np.ceil(LOGMEL_FRAMES / m.shape[1]))))
    start = (m.shape[1] - LOGMEL_FRAMES) // 2
    return m[:, start:start + LOGMEL_FRAMES].astype(np.float16)


def median_f0(wave: np.ndarray) -> float:
    """Median f0 (Hz) over voiced, loud frames (librosa.yin; 60–400 Hz); NaN when nothing is voiced."""
    import librosa

    if len(wave) < 2048:
        wave = np.tile(wave, int(np.ceil(2048 / max(1, len(wave)))) + 1)
    f0 = librosa.yin(wave, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
    energy = librosa.feature.rms(y=wave, frame_length=1024, hop_length=160)[0][: len(f0)]
    f0 = f0[: len(energy)]
    loud = energy > 0.3 * np.median(energy[energy > 0]) if np.any(energy > 0) else np.zeros_like(f0, bool)
    ok = loud & (f0 > 62) & (f0 < 395)
    return float(np.median(f0[ok])) if ok.any() else float("nan")


def cmd_cache(args: argparse.Namespace) -> None:
    import torch

    from voicegender.embeddings import ge2e_embeddings

    torch.set_num_threads(1)
    out = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_clips(Path(args.data))
    meta = [{"path": str(c.path), "speaker": c.speaker_key, "gender": c.gender, "corpus": c.corpus,
             "age": c.age} for c in clips]
    (out / "clips.json").write_text(json.dumps(meta))
    log.info("%d clips", len(clips))
    # babble pool: 40 clean clips per corpus
    pool_rng = np.random.default_rng(123)
    pool = [clean_wave(clips[i].path) for i in pool_rng.choice(len(clips), 120, replace=False)]
    for variant in args.variants:
        if (out / f"ge2e_{variant}.npy").exists():
            log.info("%s cached already", variant)
            continue
        t0 = time.time()
        emb, mels, f0s, batch = [], [], [], []
        vid = VARIANTS.index(variant)
        for i, c in enumerate(clips):
            rng = np.random.default_rng([vid, i])
            w = make_variant(clean_wave(c.path), variant, rng, pool)
            batch.append(w)
            mels.append(fixed_logmel(w))
            f0s.append(median_f0(w) if variant in ("clean", "tel") else np.nan)
            if len(batch) == 64 or i == len(clips) - 1:
                emb.append(ge2e_embeddings(batch))
                batch = []
                rate = (i + 1) / (time.time() - t0)
                log.info("%s %d/%d  %.1f clips/s", variant, i + 1, len(clips), rate)
        np.save(out / f"logmel_{variant}.npy", np.stack(mels))
        np.save(out / f"f0_{variant}.npy", np.asarray(f0s))
        np.save(out / f"ge2e_{variant}.npy", np.concatenate(emb))  # last: its presence marks the variant done
        log.info("%s done in %.0f s (%.1f clips/s incl. decode, augmentation, log-mel, f0)", variant,
                 time.time() - t0, len(clips) / (time.time() - t0))


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="decode, augment, embed; arrays to --cache")
    c.add_argument("--data", default="/work/shared/data")
    c.add_argument("--cache", default="/work/cache/vg_default")
    c.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = p.parse_args()
    {"cache": cmd_cache}[args.cmd](args)


if __name__ == "__main__":
    main()
