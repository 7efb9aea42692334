"""Where do speakers change? The GE2E windows' changes (the turns' cuts) against pyannote's local speaker changes
(issue 19; docs/CONVERSATIONS.md: "Tried and dropped", the local changes as cuts).

On the mixes a ``benchmarks/conversations.py --save-mixes`` run kept (use development mixes, e.g. ``--seed 1000``),
each mix is read as ``voicegender segment`` reads it, up to the turns: its speech regions, the GE2E windows'
change points (:func:`voicegender.listen.speakers.change_points`) and the overlap detector's local speaker change
per frame (:func:`voicegender.speech.overlap.local_speaker_change`). Printed per condition: of the reference
changes inside a speech region (consecutive turns of two speakers less than 1 s apart; the change at the middle of
their gap or overlap), the share a cut finds within ``--tolerance`` seconds (one cut per change), and the share of
cuts that find one, for GE2E's changes, the local changes above each threshold (the surest within +-0.5 s, at
least 0.5 s from a region's edge and from each other), and both (GE2E's more than 1 s from any local one).

Usage (from the repository root; the shipped model: the windows' embeddings are the same GE2E for every head)::

    python benchmarks/conversations.py --seed 1000 --n 1 --no-voicegender --save-mixes .cache/dev_mixes
    python benchmarks/change_points.py --mixes .cache/dev_mixes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

RATE = 16_000
CONDITIONS = ("clean", "crosstalk_noise", "babble", "telephone", "music")
MIN_TURN_S = 0.5  # no cut closer than this to a region's edge or to another cut (SpeakerOptions.min_turn_s)
LOCAL_SPACING_S = 0.5  # a local change is the surest within +- this
BOTH_APART_S = 1.0  # with both: GE2E's changes this far from every local one


def read_mix(wav: Path, model) -> dict:
    """The mix's speech regions (samples), GE2E change points (samples) and local change scores, as segment finds
    them (the recording diarize would be given; the speakers are not looked for)."""
    import voicegender.listen.segment as seg
    from voicegender.listen.speakers import Diarization, change_points

    seen: dict = {}
    real = seg.diarize

    def record(windows, regions, speech_mask, options, rate, *args, **kwargs):
        local = kwargs.get("local_change", args[-1] if args else None)
        seen["regions"] = [(int(a), int(b)) for a, b in regions]
        seen["ge2e"] = [p for r in regions for p in change_points(windows, r, options)]
        seen["local"] = local
        return Diarization()

    seg.diarize = record
    try:
        seg.timeline_file(wav, model, seg.SegmentOptions(), show_progress=False)
    finally:
        seg.diarize = real
    return seen


def local_points(change, region: tuple[int, int], threshold: float) -> list[int]:
    """Sample positions of local changes inside ``region``, picked as the turns' cuts are
    (:func:`voicegender.listen.speakers.surest_changes`): the surest within +- LOCAL_SPACING_S above ``threshold``,
    at least MIN_TURN_S from the region's edges and from each other."""
    from voicegender.listen.speakers import surest_changes

    a, b = region
    first = max(0, int(np.ceil((a / RATE - change.first_s) / change.step_s)))
    last = min(len(change.scores), int(np.floor((b / RATE - change.first_s) / change.step_s)) + 1)
    if last <= first:
        return []
    times = change.first_s + np.arange(first, last) * change.step_s
    points = np.round(times * RATE).astype(np.int64)
    return surest_changes(points, change.at(times), region, threshold, LOCAL_SPACING_S * RATE, MIN_TURN_S * RATE)


def reference_changes(rttm: Path) -> list[float]:
    """Seconds of each change between consecutive turns of two speakers less than 1 s apart."""
    turns = sorted((float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in (line.split() for line in open(rttm)))
    pairs = zip(turns[:-1], turns[1:], strict=True)
    return [(e0 + s1) / 2 for (_, e0, k0), (s1, _, k1) in pairs if k0 != k1 and s1 - e0 < 1.0]


def found(cuts: list[float], changes: list[float], tolerance: float) -> int:
    """Reference changes with a cut within ``tolerance`` (each cut finds one change at most, the nearest first)."""
    used: set[int] = set()
    hits = 0
    for c in changes:
        near = [(abs(x - c), i) for i, x in enumerate(cuts) if i not in used and abs(x - c) <= tolerance]
        if near:
            used.add(min(near)[1])
            hits += 1
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixes", required=True, help="folder a conversations.py --save-mixes run wrote")
    ap.add_argument("--tolerance", type=float, default=0.25, help="seconds between a cut and the change it finds")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    args = ap.parse_args()
    from voicegender import load_model

    model = load_model(None)
    wavs = sorted(Path(args.mixes).glob("*.wav"))
    if not wavs:
        sys.exit(f"{args.mixes}: no mixes (run conversations.py --save-mixes first)")
    variants = ["ge2e"] + [f"local {t}" for t in args.thresholds] + [f"both {t}" for t in args.thresholds]
    counts = {(c, v): [0, 0, 0] for c in CONDITIONS for v in variants}  # changes, cuts, found
    for i, wav in enumerate(wavs, 1):
        condition = next(c for c in CONDITIONS if f"_{c}_" in wav.name)
        seen = read_mix(wav, model)
        regions = seen["regions"]
        changes = [c for c in reference_changes(wav.with_suffix(".rttm"))
                   if any(a / RATE <= c <= b / RATE for a, b in regions)]
        for v in variants:
            if v == "ge2e":
                cuts = list(seen["ge2e"])
            else:
                threshold = float(v.split()[1])
                cuts = [p for r in regions for p in local_points(seen["local"], r, threshold)]
                if v.startswith("both"):
                    cuts += [p for p in seen["ge2e"] if all(abs(p - q) >= BOTH_APART_S * RATE for q in cuts)]
            seconds = [p / RATE for p in cuts]
            row = counts[condition, v]
            row[0] += len(changes)
            row[1] += len(seconds)
            row[2] += found(seconds, changes, args.tolerance)
        print(f"  {i}/{len(wavs)} {wav.stem}", file=sys.stderr)
    print(f"\nReference changes found within ±{args.tolerance} s (recall) and cuts that find one (precision)\n")
    print("| condition | cuts | changes | cuts made | recall | precision |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for c in CONDITIONS:
        for v in variants:
            n, made, hit = counts[c, v]
            if n:
                print(f"| {c} | {v} | {n} | {made} | {hit / n:.3f} | {hit / max(made, 1):.3f} |")


if __name__ == "__main__":
    main()
