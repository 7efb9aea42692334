"""Would inaSpeechSegmenter's speech / music / noise CNN stop music alone getting a gender? (issue 19; the answer
was no: docs/CONVERSATIONS.md, "Tried and dropped").

On the music-condition mixes a ``benchmarks/conversations.py --save-mixes`` run kept (use development mixes, e.g.
``--seed 1000``, not the reported ones), each mix is segmented as ``voicegender segment`` does, with the head fitted
without the mix's corpus (``--heads``), and run through the numpy port of ina's network
(``benchmarks/peers/ina_smn.py``: a 0.68 s patch every ``--hop`` seconds). Printed:

1. where music-alone frames get a gender: their share by distance from the nearest edge of the music stretch;
2. the trade-off of a veto: frames of gendered segments are dropped where the nearest patch gives music a
   probability of at least a threshold — everywhere, or only within ``edge`` seconds of a segment's edge (where a
   speech region's hangover reaches into the music): music-alone frames still given a gender, and speech frames
   (of the reference turns) that lose their gender;
3. the same with silero joined in: dropped only where ina says music *and* silero's speech probability, averaged
   over ±0.25 s, is below a second threshold (and silero's alone).

Usage (from the repository root; ina's network: ``bash benchmarks/peers/setup.sh``)::

    python benchmarks/conversations.py --seed 1000 --n 1 --no-voicegender --save-mixes .cache/dev_mixes
    python benchmarks/music_veto.py --mixes .cache/dev_mixes --heads .cache/heads
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import ina_smn  # noqa: E402  (benchmarks/peers/)

FRAME_S = 0.01  # scoring frame


def _listed(value):
    """The mixes' JSON stores some lists as their Python text."""
    return value if isinstance(value, list) else ast.literal_eval(value)


def reference(truth: dict, n: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Speech frames, music-alone frames and the music stretches of a mix."""
    t = (np.arange(n) + 0.5) * FRAME_S
    speech = np.zeros(n, bool)
    for turn in _listed(truth["turns"]):
        speech |= (t >= float(turn["start_s"])) & (t < float(turn["end_s"]))
    stretches = [(float(a), float(b)) for a, b in _listed(truth.get("music") or [])]
    music = np.zeros(n, bool)
    for a, b in stretches:
        music |= (t >= a) & (t < b)
    return speech, music & ~speech, stretches


def frames_of(truth: dict, segments, duration: float, posteriors: np.ndarray, hop: float) -> dict:
    """One mix, frame by frame (10 ms), computed once: the reference's speech and music-alone frames and music
    stretches; the frames ``segment`` gave a gender and their distance (s) to the nearest edge of their segment
    (inf elsewhere); and ina's probability of music of the patch nearest each frame."""
    n = int(duration / FRAME_S)
    t = (np.arange(n) + 0.5) * FRAME_S
    gendered, edge_s = np.zeros(n, bool), np.full(n, np.inf)
    for s in segments:
        if s.label in ("female", "male"):
            m = (t >= s.start_s) & (t < s.end_s)
            gendered |= m
            edge_s[m] = np.minimum(t[m] - s.start_s, s.end_s - t[m])
    speech, alone, stretches = reference(truth, n)
    centres = np.arange(len(posteriors)) * hop + ina_smn.PATCH_SAMPLES / 2 / ina_smn.SAMPLE_RATE
    nearest = np.clip(np.round((t - centres[0]) / hop).astype(int), 0, len(posteriors) - 1)
    return {"t": t, "gendered": gendered, "edge_s": edge_s, "speech": speech, "alone": alone,
            "stretches": stretches, "p_music": posteriors[nearest, 1]}


def silero_smoothed(wave: np.ndarray, t: np.ndarray, half_s: float = 0.25) -> np.ndarray:
    """silero's speech probability at each time of ``t``, averaged over ±``half_s`` seconds."""
    from voicegender.speech.vad_model import FRAME_S as SILERO_FRAME_S
    from voicegender.speech.vad_model import frame_probabilities

    probs = frame_probabilities(wave)
    at = probs[np.clip((t / SILERO_FRAME_S).astype(int), 0, len(probs) - 1)]
    k = int(round(half_s / FRAME_S))
    return np.convolve(at, np.ones(2 * k + 1) / (2 * k + 1), mode="same")


def veto_row(runs: list[dict], veto) -> tuple[float, float]:
    """(% of music-alone frames still given a gender, % of gendered speech frames losing it) under ``veto(run)``."""
    kept_music = music_total = lost = speech_total = 0
    for run in runs:
        v = veto(run)
        kept_music += (run["gendered"] & ~v & run["alone"]).sum()
        music_total += run["alone"].sum()
        lost += (run["gendered"] & v & run["speech"]).sum()
        speech_total += (run["gendered"] & run["speech"]).sum()
    return 100 * kept_music / music_total, 100 * lost / speech_total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--mixes", type=Path, required=True, help="a conversations.py --save-mixes folder")
    ap.add_argument("--heads", type=Path, required=True, help="folder with without_<corpus>.npz")
    ap.add_argument("--hop", type=float, default=0.5, help="seconds between ina patches")
    args = ap.parse_args(argv)
    import soundfile

    import voicegender
    from voicegender.voice.default_model import load_voice_model

    mixes = [m for m in json.loads((args.mixes / "mixes.json").read_text()) if m["condition"] == "music"]
    if not mixes:
        print(f"{args.mixes}: no music-condition mixes", file=sys.stderr)
        return 2
    runs, t0 = [], time.time()
    for m in mixes:
        truth = json.loads((args.mixes / f"{m['name']}.json").read_text())
        model = load_voice_model(args.heads / f"without_{m['corpus']}.npz")
        wav = args.mixes / f"{m['name']}.wav"
        segments, duration = voicegender.segment_file(wav, model, show_progress=False)
        wave, rate = soundfile.read(wav, dtype="float32")  # the mixes are 16 kHz mono WAV
        if rate != ina_smn.SAMPLE_RATE:
            print(f"{wav}: {rate} Hz, expected {ina_smn.SAMPLE_RATE}", file=sys.stderr)
            return 2
        runs.append(frames_of(truth, segments, duration, ina_smn.sparse_posteriors(wave, args.hop), args.hop))
        runs[-1]["silero"] = silero_smoothed(wave, runs[-1]["t"])
    print(f"# Music alone and ina's speech / music / noise CNN: {len(mixes)} music mixes of {args.mixes} "
          f"({time.time() - t0:.0f} s)\n")
    bins = np.zeros((2, 8))
    for run in runs:
        for a, b in run["stretches"]:
            inside = run["alone"] & (run["t"] >= a) & (run["t"] < b)
            k = np.clip((np.minimum(run["t"] - a, b - run["t"]) / 0.25).astype(int), 0, 7)
            for i in range(8):
                bins[0, i] += (inside & run["gendered"] & (k == i)).sum()
                bins[1, i] += (inside & (k == i)).sum()
    print("| distance from the music stretch's nearest edge | music-alone frames given a gender |\n|---|---|")
    for i in range(8):
        if bins[1, i]:
            last = "+" if i == 7 else f"–{(i + 1) * 0.25:.2f}"
            print(f"| {i * 0.25:.2f}{last} s | {100 * bins[0, i] / bins[1, i]:.1f} % of {int(bins[1, i])} |")
    print(f"| all | {100 * bins[0].sum() / bins[1].sum():.1f} % |\n")
    print("| veto: p_music >= | where | music-alone frames given a gender | speech frames losing their gender |")
    print("|---|---|---|---|")
    for threshold in (0.5, 0.7, 0.9):
        for edge in (0.5, 1.0, None):
            music, lost = veto_row(runs, lambda r, a=threshold, e=edge: (r["p_music"] >= a)
                                   & (r["edge_s"] < (e or np.inf)))
            where = "everywhere" if edge is None else f"within {edge:g} s of a segment's edge"
            print(f"| {threshold:g} | {where} | {music:.1f} % | {lost:.2f} % |")
    print("\n| veto: p_music >= | and silero (±0.25 s) < | music-alone frames given a gender | speech frames losing "
          "their gender |\n|---|---|---|---|")
    for threshold in (0.5, 0.9, None):
        for weak in (0.3, 0.5, 0.7, 0.9):
            music, lost = veto_row(runs, lambda r, a=threshold, w=weak: (r["p_music"] >= (a or 0)) & (r["silero"] < w))
            print(f"| {'-' if threshold is None else f'{threshold:g}'} | {weak:g} | {music:.1f} % | {lost:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
