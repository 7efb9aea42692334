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
from collections import Counter

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
        paths, names = [], {}
        for i, (name, x) in enumerate(sounds):
            path = os.path.join(tmp, f"{i:05d}.wav")
            sf.write(path, np.clip(x, -1, 1), nonspeech.SR, subtype="PCM_16")
            paths.append(path)
            names[path] = name
        answered = {}
        for label, m in (("with the check", model), ("without", without)):
            answered[label] = {r.path for r in predict_files(paths, model=m) if r.label in ("female", "male")}
    groups = Counter()
    wrong = {label: Counter() for label in answered}
    for path, name in names.items():
        kind, _, channel = name.split(" ")
        groups[(kind, channel)] += 1
        for label, paths_answered in answered.items():
            wrong[label][(kind, channel)] += path in paths_answered
    print(f"{len(sounds)} non-speech sounds (seed {args.seed}); model {model.name}; answered female/male "
          f"(should be no_speech), with the speech check / without it; {time.time() - started:.0f} s\n")
    channels = ("clean", "telephone", "codec")
    print("| kind | " + " | ".join(channels) + " |")
    print("|---" * (len(channels) + 1) + "|")
    for kind in nonspeech.KINDS:
        cells = []
        for channel in channels:
            n = groups[(kind, channel)]
            a, b = wrong["with the check"][(kind, channel)], wrong["without"][(kind, channel)]
            cells.append(f"{a} / {b} of {n}" if n else "–")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    total_a, total_b = len(answered["with the check"]), len(answered["without"])
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
        paths = []
        for i, (_, x) in enumerate(sounds):
            paths.append(os.path.join(tmp, f"{i:05d}.wav"))
            sf.write(paths[-1], np.clip(x, -1, 1), nonspeech.SR, subtype="PCM_16")
        for label, brief in (("with", vad.too_brief), ("without", lambda samples, segments: False)):
            with mock.patch.object(vad, "too_brief", brief):
                wrong[label] = [r.label in ("female", "male") for r in predict_files(paths, model=model)]
    print(f"\n{n} trains of beeps and clicks (seed {seed}); answered female/male, with the brevity check / "
          "without it\n")
    channels = ("clean", "telephone", "codec")
    print("| kind | " + " | ".join(channels) + " |")
    print("|---" * (len(channels) + 1) + "|")
    for kind in nonspeech.BURST_KINDS:
        cells = []
        for channel in channels:
            rows = [i for i, (name, _) in enumerate(sounds) if name.split(" ")[0] == kind and name.endswith(channel)]
            a, b = sum(wrong["with"][i] for i in rows), sum(wrong["without"][i] for i in rows)
            cells.append(f"{a} / {b} of {len(rows)}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print(f"\nall: {sum(wrong['with'])} with the brevity check, {sum(wrong['without'])} without")


if __name__ == "__main__":
    main()
