"""Speakers whose pitch *and* vocal-tract length both contradict their gender label, found without the model, and
the conversation benchmark's gender accuracy with and without their speech.

Every corpus holds a few speakers whose label is likely wrong (or who are boys filed as men). A model is then
"wrong" on all of that speaker's speech, and in a conversation of 2-6 people one such speaker moves a mix's gender
accuracy by 10-30 points. This script measures how much of the benchmark's error they explain, by a rule that does
not look at the model's answers, so it cannot flatter it:

* per speaker of each test corpus (adults, the speakers the conversations are drawn from: ``speaker_pool``), up to
  ``--clips`` clips (spread over the speaker's sorted clips) through Praat's pitch and formant trackers
  (:func:`voicegender.voice.acoustic.voice_features`): the speaker's median F0 and median formant spacing ΔF (the
  vocal-tract-length estimate);
* the corpus's boundaries: for each measure, the midpoint (geometric) between the median of the labelled women and
  the median of the labelled men (medians: robust to the few wrong labels);
* a speaker is **suspect** when F0 and ΔF are both on the other gender's side of the boundary.

Then, with ``--results`` (``benchmarks/conversations.py --out``), each system's gender accuracy on speech frames per
condition, once on every speech frame and once without the frames where a suspect speaker talks.

Usage (from the repository root; needs the fit extra for Praat: ``pip install -e '.[fit]'``)::

    python benchmarks/label_suspects.py [--data ../shared/data] [--clips 10] [--out suspects.json]
        [--results conversations.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conversation_scoring as scoring  # noqa: E402  (beside this file)
from conversations import DEFAULT_DATA, TEST_CORPORA  # noqa: E402

F0_MEDIAN, SPACING = 0, 8  # indices in voice_features' FEATURE_NAMES (semitones re 100 Hz; log Hz)


def speaker_measures(data: Path, corpus: str, clips_per_speaker: int) -> dict[str, dict]:
    """speaker key -> gender, median F0 (Hz), median formant spacing (Hz), clips measured."""
    from voicegender.audio.decode import load_audio
    from voicegender.corpora import load_corpus
    from voicegender.voice.acoustic import voice_features
    from voicegender.voice.conversations import speaker_pool

    pool = speaker_pool([load_corpus(data / f) for f in TEST_CORPORA[corpus]])
    out = {}
    for key, clips in pool.items():
        clips = sorted(clips, key=lambda c: str(c.path))
        pick = np.unique(np.linspace(0, len(clips) - 1, min(clips_per_speaker, len(clips))).round().astype(int))
        feats = np.array([voice_features(load_audio(clips[i].path).samples) for i in pick])
        f0 = 100 * 2 ** (_median(feats[:, F0_MEDIAN]) / 12)
        spacing = np.exp(_median(feats[:, SPACING]))
        out[key] = {"gender": clips[0].gender, "f0_hz": float(f0), "spacing_hz": float(spacing),
                    "clips": int(len(pick))}
        print(f"  {key}: {clips[0].gender}, F0 {f0:.0f} Hz, ΔF {spacing:.0f} Hz", file=sys.stderr)
    return out


def _median(values: np.ndarray) -> float:
    """Median of the finite values (NaN when there are none)."""
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def boundaries(speakers: dict[str, dict]) -> dict[str, float]:
    """Per measure, the geometric midpoint between the labelled women's median and the labelled men's."""
    out = {}
    for name in ("f0_hz", "spacing_hz"):
        med = {g: np.nanmedian([s[name] for s in speakers.values() if s["gender"] == g]) for g in ("female", "male")}
        out[name] = float(np.sqrt(med["female"] * med["male"]))
    return out


def suspects(speakers: dict[str, dict], bounds: dict[str, float]) -> list[str]:
    """Speakers whose F0 and formant spacing are both on the other gender's side of the corpus's boundaries."""
    found = []
    for key, s in speakers.items():
        high = [s[name] > bounds[name] for name in ("f0_hz", "spacing_hz")]  # NaN compares False: not suspect
        low = [s[name] < bounds[name] for name in ("f0_hz", "spacing_hz")]
        if (s["gender"] == "male" and all(high)) or (s["gender"] == "female" and all(low)):
            found.append(key)
    return found


def accuracy_without(mix: dict, segments: list, excluded: set[str], frame_s: float = 0.01) -> dict:
    """Gender accuracy on the mix's speech frames, every frame and without the frames of ``excluded`` speakers."""
    duration = mix["reference"]["duration_s"]
    turns = scoring.reference_turns(mix["reference"])
    hyp = scoring.hypothesis_frames(segments, duration, frame_s)
    from voicegender.voice.conversations import frame_genders, frame_speaker_counts

    out = {}
    for name, kept in (("all", turns), ("without", [t for t in turns if t.speaker not in excluded])):
        acc = scoring.gender_accuracy(frame_genders(kept, duration, frame_s), hyp,
                                      frame_speaker_counts(kept, duration, frame_s))
        out[name] = (acc["right"], acc["frames"])
    return out


def rescore(results: dict, excluded: set[str]) -> None:
    systems = sorted({s for m in results["mixes"] for s in m["results"]})
    conditions = list(dict.fromkeys(m["condition"] for m in results["mixes"]))
    hit = sum(1 for m in results["mixes"] if excluded & {t["speaker"] for t in m["reference"]["turns"]})
    print(f"\n{hit} of {len(results['mixes'])} mixes have a suspect speaker\n")
    print("| condition | system | gender acc, every speech frame | without suspect speakers' frames |")
    print("| --- | --- | ---: | ---: |")
    for condition in conditions:
        for system in systems:
            tot = {"all": [0, 0], "without": [0, 0]}
            for m in results["mixes"]:
                if m["condition"] != condition or system not in m["results"]:
                    continue
                for name, (right, frames) in accuracy_without(m, m["results"][system]["segments"], excluded).items():
                    tot[name][0] += right
                    tot[name][1] += frames
            cells = [f"{r / f:.3f}" if f else "-" for r, f in (tot["all"], tot["without"])]
            print(f"| {condition} | {system} | {cells[0]} | {cells[1]} |")
    print("\n(frame-weighted over the condition's mixes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the corpora")
    ap.add_argument("--corpora", nargs="+", default=list(TEST_CORPORA), choices=list(TEST_CORPORA))
    ap.add_argument("--clips", type=int, default=10, help="clips measured per speaker")
    ap.add_argument("--out", default=None, help="JSON file for every speaker's measures and the suspects")
    ap.add_argument("--measures", default=None, help="read the measures a previous --out wrote instead of measuring")
    ap.add_argument("--results", default=None, help="benchmarks/conversations.py --out file to rescore")
    args = ap.parse_args()

    if args.measures:
        record = json.loads(Path(args.measures).read_text())
    else:
        record = {}
        for corpus in args.corpora:
            speakers = speaker_measures(Path(args.data), corpus, args.clips)
            bounds = boundaries(speakers)
            record[corpus] = {"boundaries": bounds, "speakers": speakers, "suspects": suspects(speakers, bounds)}
    print("| corpus | speakers | boundary F0 / ΔF (Hz) | suspect speakers (label: F0, ΔF) |")
    print("| --- | ---: | --- | --- |")
    for corpus, r in record.items():
        listed = "; ".join(f"{k} ({r['speakers'][k]['gender']}: {r['speakers'][k]['f0_hz']:.0f}, "
                           f"{r['speakers'][k]['spacing_hz']:.0f})" for k in r["suspects"]) or "none"
        print(f"| {corpus} | {len(r['speakers'])} | {r['boundaries']['f0_hz']:.0f} / "
              f"{r['boundaries']['spacing_hz']:.0f} | {listed} |")
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1))
    if args.results:
        excluded = {k for r in record.values() for k in r["suspects"]}
        rescore(json.loads(Path(args.results).read_text()), excluded)


if __name__ == "__main__":
    main()
