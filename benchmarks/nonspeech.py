"""How often `voicegender predict` answers female/male to sounds that are not speech, with and without the speech check.

The sounds come from :func:`voicegender.speech.nonspeech.sounds` with a seed the shipped model's check did not learn
from (noises, tones, hums, buzzes, sweeps, clicks, chords, drum-like hits and mixtures; 0.1-3 s; peak -60 to 0
dBFS; half after a silent lead; clean, telephone or low-bit-rate codec), written as 16-bit WAVs at 16 kHz and run
through the real :func:`voicegender.listen.predict.predict_files`. Every answer other than ``no_speech`` is wrong.
"Without the check" is the same model file with its speech layer removed (speech detection then keeps its
second pass as before the check existed). Printed: per sound kind and channel, the share answered female/male.

``--bursts N`` adds N trains of beeps and clicks (:func:`voicegender.speech.nonspeech.bursts`: 10-60 ms tone bursts
or clicks, 1-20 per second, any phase, with or without a noise floor, clean / telephone / codec), answered with and
without speech detection's brevity check (:func:`voicegender.speech.vad.too_brief`).

Usage (from the repository root)::

    python benchmarks/nonspeech.py [--sounds 2000] [--seed 7] [--model PATH] [--bursts 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np
import soundfile as sf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sounds", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7, help="not 1 (the shipped check's training sounds) nor 2 (its report)")
    p.add_argument("--model", default=None, help="voice head .npz (default: the shipped model)")
    p.add_argument("--bursts", type=int, default=0, help="also this many trains of beeps and clicks")
    args = p.parse_args()

    from voicegender.listen.predict import predict_files
    from voicegender.speech import nonspeech
    from voicegender.voice.default_model import VoiceModel, load_default_model, load_voice_model

    model = load_voice_model(args.model) if args.model else load_default_model()
    if model.head.speech is None:
        raise SystemExit(f"{model.name}: this model has no speech check to compare")
    without = VoiceModel(dataclasses.replace(model.head, speech=None), model.path)
    sounds = nonspeech.sounds(args.sounds, args.seed)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_sounds(sounds, tmp, nonspeech.SR)
        answered = {label: [r.label in GENDERS for r in predict_files(paths, model=m)]
                    for label, m in (("with the check", model), ("without", without))}
    print(f"{len(sounds)} non-speech sounds (seed {args.seed}); model {model.name}; answered female/male "
          f"(should be no_speech), with the speech check / without it; {time.time() - started:.0f} s\n")
    print_table(sounds, nonspeech.KINDS, answered["with the check"], answered["without"])
    total_a, total_b = sum(answered["with the check"]), sum(answered["without"])
    print(f"\nall: {total_a} ({100 * total_a / len(sounds):.1f} %) with the check, {total_b} "
          f"({100 * total_b / len(sounds):.1f} %) without")
    if args.bursts:
        bursts(model, args.bursts, args.seed)


def bursts(model, n: int, seed: int) -> None:
    """Trains of beeps and clicks answered female/male, with and without the brevity check (a table)."""
    from unittest import mock

    from voicegender.listen.predict import predict_files
    from voicegender.speech import nonspeech, vad

    sounds = nonspeech.bursts(n, seed)
    wrong = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_sounds(sounds, tmp, nonspeech.SR)
        for label, brief in (("with", vad.too_brief), ("without", lambda samples, segments: False)):
            with mock.patch.object(vad, "too_brief", brief):
                wrong[label] = [r.label in GENDERS for r in predict_files(paths, model=model)]
    print(f"\n{n} trains of beeps and clicks (seed {seed}); answered female/male, with the brevity check / "
          "without it\n")
    print_table(sounds, nonspeech.BURST_KINDS, wrong["with"], wrong["without"])
    print(f"\nall: {sum(wrong['with'])} with the brevity check, {sum(wrong['without'])} without")


GENDERS = ("female", "male")
CHANNELS = ("clean", "telephone", "codec")  # the last word of every sound's name


def write_sounds(sounds: list[tuple[str, np.ndarray]], folder: str, rate: int) -> list[str]:
    """Each (name, samples) as a 16-bit WAV in ``folder``; their paths, in order."""
    paths = []
    for i, (_, x) in enumerate(sounds):
        paths.append(os.path.join(folder, f"{i:05d}.wav"))
        sf.write(paths[-1], np.clip(x, -1, 1), rate, subtype="PCM_16")
    return paths


def print_table(sounds: list[tuple[str, np.ndarray]], kinds, with_: list[bool], without: list[bool]) -> None:
    """Per kind (a name's first word) and channel (its last): answered female/male with / without, of how many."""
    print("| kind | " + " | ".join(CHANNELS) + " |")
    print("|---" * (len(CHANNELS) + 1) + "|")
    for kind in kinds:
        cells = []
        for channel in CHANNELS:
            rows = [i for i, (name, _) in enumerate(sounds) if name.split(" ")[0] == kind and name.endswith(channel)]
            a, b = sum(with_[i] for i in rows), sum(without[i] for i in rows)
            cells.append(f"{a} / {b} of {len(rows)}" if rows else "–")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
