"""Accuracy of `voicegender segment` on synthetic conversations of real speakers: median vs Viterbi smoothing.

Conversations are built from one corpus the model was not trained on (default: Common Voice English delta 13;
the shipped model v1 was trained on audiomnist_az, baved and speechocean762_train). Each conversation has two
female and two male speakers; turns alternate between the genders in random order, with a same-gender change
of speaker in ``SAME_GENDER_P`` of the turns. A turn is 2-15 s of one speaker: that speaker's clips, their
leading and trailing silence trimmed (librosa, 35 dB below the peak), joined and cut to length, at a common
level (-26 dBFS RMS). Turns are separated by pauses of 0.2-1.5 s (``--pause-s``; ``0 0.25`` puts most changes
inside speech regions, where the smoothing alone must find them), and a faint noise floor (-66 dBFS) covers the
whole file so that pauses are not digital silence. The truth is known to the sample: a turn is speech of its
speaker's gender, a pause is no_speech. The pauses inside a clip count as speech, so the speech detector's
score is a lower bound.

Every conversation is written to a WAV in a temporary folder and run through
:func:`voicegender.listen.segment.segment_file` once per smoothing, as recorded (``clean``) and through a telephone
channel (:func:`voicegender.audio.augment.telephone`: 300-3400 Hz, 8 kHz, µ-law). Columns:

* **gender acc**: frames (10 ms) that are speech in the truth and in the timeline whose gender is right;
* **speech acc**: frames whose speech / no_speech is right (the speech detector; the same for both smoothings);
* **segments / turns**: female and male segments of the timeline vs true turns; **runs**: the same after
  joining neighbours of the same gender across pauses (true runs: changes of gender + 1), i.e. flicker;
* **boundary Δ**: for every true change of gender (the pause between two turns), the distance to the nearest
  change of gender in the timeline (0 when it falls inside the pause); median and 90th percentile over those
  found within 2 s;
* **change recall / precision**: true and timeline changes of gender paired one to one within 0.5 s, over the
  true changes and over the timeline's changes (flicker lowers the precision);
* **× real time**: seconds of audio per wall-clock second of ``segment_file`` (decode, VAD, model, smoothing).

``--sweep`` runs the model once per conversation and re-decodes the recorded window scores
(:func:`voicegender.listen.segment.build_timeline`) over a grid of ``switch_penalty`` x ``evidence_cap``, to choose the
defaults; use a different ``--seed`` for that than for the reported table.

Usage (from the repository root)::

    python benchmarks/segment_accuracy.py [--corpus ../shared/data/cv_en_delta13] [--model PATH]
                                          [--n-conversations 8] [--minutes 2] [--seed 0] [--pause-s 0.2 1.5]
                                          [--sweep]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
FRAME = 0.01  # s: resolution of the frame scores
SAME_GENDER_P = 0.2  # share of turns where the speaker changes but the gender does not
TURN_S = (2.0, 15.0)
PAUSE_S = (0.2, 1.5)
LEVEL_DBFS = -26.0
NOISE_DBFS = -66.0
MATCH_S = 2.0  # s: the boundary median is over true changes with a timeline change at most this far
TOLERANCE_S = 0.5  # s: a true and a timeline change at most this far apart match (recall / precision)
DEFAULT_CORPUS = Path("..") / "shared" / "data" / "cv_en_delta13"


@dataclasses.dataclass
class Turn:
    start_s: float
    end_s: float
    gender: str
    speaker: str


def read_speakers(corpus: Path) -> dict[str, dict[str, list[Path]]]:
    """gender -> speaker -> clip paths, from the corpus's manifest.csv (path, speaker, gender)."""
    out: dict[str, dict[str, list[Path]]] = {"female": defaultdict(list), "male": defaultdict(list)}
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["gender"] in out:
                out[row["gender"]][row["speaker"]].append(corpus / row["path"])
    return out


class ClipCache:
    """Trimmed, level-normalised 16 kHz clips, decoded once."""

    def __init__(self) -> None:
        self.clips: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        if path not in self.clips:
            import librosa

            from voicegender.audio.decode import load_audio

            x = load_audio(path, SR).samples.astype(np.float32)
            x = x - np.mean(x)
            x, _ = librosa.effects.trim(x, top_db=35, frame_length=512, hop_length=128)
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
            self.clips[path] = (x * (10 ** (LEVEL_DBFS / 20) / rms) if rms > 1e-6 else x).astype(np.float32)
        return self.clips[path]


def make_conversation(speakers: dict[str, dict[str, list[Path]]], cache: ClipCache, minutes: float,
                      rng: np.random.Generator,
                      pause_s: tuple[float, float] = PAUSE_S) -> tuple[np.ndarray, list[Turn]]:
    """(16 kHz samples, true turns) of one synthetic conversation of at least ``minutes``."""
    cast = {g: [str(s) for s in rng.choice(sorted(speakers[g]), 2, replace=False)] for g in ("female", "male")}
    pieces = [np.zeros(int(rng.uniform(*PAUSE_S) * SR), np.float32)]  # the file starts with a pause
    t = len(pieces[0]) / SR
    turns: list[Turn] = []
    gender, speaker = str(rng.choice(["female", "male"])), None
    while t < minutes * 60:
        if speaker is not None:
            if rng.random() >= SAME_GENDER_P:
                gender = "male" if gender == "female" else "female"
            speaker = next(s for s in rng.permutation(cast[gender]) if s != speaker)
        else:
            speaker = str(rng.choice(cast[gender]))
        n = int(rng.uniform(*TURN_S) * SR)
        clips = speakers[gender][speaker]
        parts, have = [], 0
        while have < n:
            x = cache.get(clips[int(rng.integers(len(clips)))])
            parts.append(x)
            have += len(x)
        turn = np.concatenate(parts)[:n].copy()
        fade = int(0.01 * SR)
        turn[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        pause = np.zeros(int(rng.uniform(*pause_s) * SR), np.float32)
        turns.append(Turn(t, t + n / SR, gender, speaker))
        pieces += [turn, pause]
        t += (n + len(pause)) / SR
    audio = np.concatenate(pieces)
    audio += rng.standard_normal(len(audio)).astype(np.float32) * 10 ** (NOISE_DBFS / 20)
    return np.clip(audio, -1, 1), turns


def frame_labels(spans: list[tuple[float, float, str]], n: int) -> np.ndarray:
    """0 no_speech, 1 female, 2 male, per FRAME."""
    code = {"no_speech": 0, "female": 1, "male": 2}
    out = np.zeros(n, np.int8)
    for a, b, label in spans:
        out[int(round(a / FRAME)):int(round(b / FRAME))] = code[label]
    return out


def _changes(spans: list[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """(end of one, start of the next) between consecutive speech spans of different gender."""
    speech = [s for s in spans if s[2] != "no_speech"]
    return [(a[1], b[0]) for a, b in zip(speech, speech[1:], strict=False) if a[2] != b[2]]


def _gap(x: tuple[float, float], y: tuple[float, float]) -> float:
    return max(0.0, max(x[0], y[0]) - min(x[1], y[1]))


def _matched(true_changes: list[tuple[float, float]], pred_changes: list[tuple[float, float]], tol: float) -> int:
    """Pairs of a true and a timeline change at most ``tol`` apart, each used once (closest pairs first)."""
    pairs = sorted((_gap(c, p), i, j) for i, c in enumerate(true_changes) for j, p in enumerate(pred_changes))
    used_true, used_pred = set(), set()
    for d, i, j in pairs:
        if d > tol:
            break
        if i not in used_true and j not in used_pred:
            used_true.add(i)
            used_pred.add(j)
    return len(used_true)


def score(segments, turns: list[Turn], duration_s: float) -> dict:
    """Frame counts, segment counts and boundary distances of one timeline against the truth."""
    truth_spans = [(t.start_s, t.end_s, t.gender) for t in turns]
    pred_spans = [(s.start_s, s.end_s, s.label) for s in segments]
    n = int(round(duration_s / FRAME))
    truth, pred = frame_labels(truth_spans, n), frame_labels(pred_spans, n)
    both = (truth > 0) & (pred > 0)
    true_changes, pred_changes = _changes(truth_spans), _changes(pred_spans)
    runs = [lab for _, _, lab in pred_spans if lab != "no_speech"]
    return {"gender_ok": int(np.sum(both & (truth == pred))), "gender_n": int(np.sum(both)),
            "speech_ok": int(np.sum((truth > 0) == (pred > 0))), "frames": n,
            "segments": len(runs), "turns": len(turns),
            "runs": 1 + sum(a != b for a, b in zip(runs, runs[1:], strict=False)) if runs else 0,
            "true_runs": len(true_changes) + 1,
            "dist": [min((_gap(c, p) for p in pred_changes), default=np.inf) for c in true_changes],
            "matched": _matched(true_changes, pred_changes, TOLERANCE_S), "true_changes": len(true_changes),
            "pred_changes": len(pred_changes)}


def merge(rows: list[dict]) -> dict:
    out = {k: sum(r[k] for r in rows) for k in rows[0] if k != "dist"}
    out["dist"] = [d for r in rows for d in r["dist"]]
    return out


def table_row(name: str, m: dict, speed: float | None = None) -> str:
    dist = np.array(m["dist"])
    found = dist[dist <= MATCH_S]
    med = f"{np.median(found):.2f} / {np.percentile(found, 90):.2f}" if len(found) else "-"
    return (f"| {name} | {m['gender_ok'] / max(1, m['gender_n']):.4f} | {m['speech_ok'] / m['frames']:.4f} | "
            f"{m['segments']} / {m['turns']} | {m['runs']} / {m['true_runs']} | {med} | "
            f"{m['matched'] / max(1, m['true_changes']):.3f} | {m['matched'] / max(1, m['pred_changes']):.3f} | "
            + ("-" if speed is None else f"{speed:.0f}") + " |")


HEADER = ("| smoothing | gender acc | speech acc | segments / turns | runs / true | boundary Δ s median / p90 | "
          "change recall | change precision | × real time |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def conversations(args) -> list[tuple[str, np.ndarray, list[Turn]]]:
    from voicegender.audio.augment import telephone

    speakers = read_speakers(Path(args.corpus))
    cache = ClipCache()
    rng = np.random.default_rng(args.seed)
    out = []
    for _ in range(args.n_conversations):
        audio, turns = make_conversation(speakers, cache, args.minutes, rng, tuple(args.pause_s))
        out.append(("clean", audio, turns))
        out.append(("telephone", telephone(audio, SR), turns))
    return out


def run_table(args, loaded, convs) -> None:
    from voicegender.listen.segment import SegmentOptions, segment_file

    variants = {"median (before)": SegmentOptions(smoothing="median"), "viterbi": SegmentOptions()}
    results: dict[tuple[str, str], list[dict]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (channel, audio, turns) in enumerate(convs):
            path = Path(tmp) / f"conversation{i}.wav"
            sf.write(path, audio, SR, subtype="PCM_16")
            for name, options in variants.items():
                t0 = time.perf_counter()
                segments, duration = segment_file(path, loaded, options, show_progress=False)
                seconds[channel, name].append(time.perf_counter() - t0)
                results[channel, name].append(score(segments, turns, duration))
    audio_s = {ch: sum(len(a) for c, a, _ in convs if c == ch) / SR for ch in ("clean", "telephone")}
    print(HEADER)
    for channel in ("clean", "telephone"):
        for name in variants:
            speed = audio_s[channel] / sum(seconds[channel, name])
            print(table_row(f"{channel}: {name}", merge(results[channel, name]), speed))


def run_sweep(args, loaded, convs) -> None:
    import voicegender.listen.segment as seg

    recorded = []
    real_build = seg.build_timeline

    def record(probs, scored, duration_s, options=None):
        recorded.append((probs.copy(), list(scored), duration_s))
        return real_build(probs, scored, duration_s, options or seg.SegmentOptions())

    seg.build_timeline = record
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (_, audio, _) in enumerate(convs):
                path = Path(tmp) / f"conversation{i}.wav"
                sf.write(path, audio, SR, subtype="PCM_16")
                seg.segment_file(path, loaded, seg.SegmentOptions(), show_progress=False)
    finally:
        seg.build_timeline = real_build
    grid = [("median", seg.SegmentOptions(smoothing="median"))]
    grid += [(f"median, min_segment {m}", seg.SegmentOptions(smoothing="median", min_segment_s=m)) for m in (0.5, 2.0)]
    for cap in (0.5, 1.0, 2.0, 3.0, 14.0):  # 14: no cap (P_CLIP's logit is 13.8)
        for pen in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0):
            options = seg.SegmentOptions(evidence_cap=cap, switch_penalty=pen)
            grid.append((f"viterbi, cap {cap}, penalty {pen}", options))
    for m in (0.0, 2.0):
        o = seg.SegmentOptions(min_segment_s=m)
        grid.append((f"viterbi, cap {o.evidence_cap}, penalty {o.switch_penalty}, min_segment {m}", o))
    print(HEADER)
    for channel in ("clean", "telephone"):
        for name, options in grid:
            rows = [score(real_build(p, s, d, options), turns, d)
                    for (p, s, d), (ch, _, turns) in zip(recorded, convs, strict=True) if ch == channel]
            print(table_row(f"{channel}: {name}", merge(rows)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="folder with manifest.csv (path, speaker, gender)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--n-conversations", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=2.0, help="length of each conversation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pause-s", type=float, nargs=2, default=PAUSE_S, metavar=("MIN", "MAX"),
                    help="pauses between turns (0 0.25: back-to-back turns, changes inside speech regions)")
    ap.add_argument("--sweep", action="store_true", help="grid of switch_penalty x evidence_cap instead of the table")
    args = ap.parse_args()

    from voicegender.listen.predict import load_model
    from voicegender.listen.segment import segment_stream

    loaded = load_model(args.model)
    segment_stream([np.zeros(2 * SR, np.float32)], loaded)  # load the speech detector outside the timing
    convs = conversations(args)
    true_s = sum(t.end_s - t.start_s for c, _, turns in convs if c == "clean" for t in turns)
    n_turns = sum(len(turns) for c, _, turns in convs if c == "clean")
    print(f"{args.n_conversations} conversations x {args.minutes} min from {args.corpus}, seed {args.seed}, "
          f"pauses {args.pause_s[0]}-{args.pause_s[1]} s: "
          f"{n_turns} turns, {true_s / 60:.1f} min of speech; model {args.model or 'default'}; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    (run_sweep if args.sweep else run_table)(args, loaded, convs)


if __name__ == "__main__":
    main()
