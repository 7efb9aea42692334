"""Conversations: who spoke when and with which gender, on simulated conversations; voicegender beside
inaSpeechSegmenter (issue 19, item 4).

**Mixes.** Conversations simulated by :mod:`voicegender.voice.conversations` from the ``../shared/data`` corpora,
leave-one-corpus-out: for each test corpus (audiomnist_az, baved, speechocean762_train, common_voice = the four
``cv_*`` folders as one) only that corpus's speakers, children (age <= 12) left out; every condition of
:data:`~voicegender.voice.conversations.CONDITIONS` (clean, crosstalk_noise, babble, telephone, music); each speaker
count of ``--speakers`` (default 2-6; genders balanced, an odd one random); ``--n`` mixes of each. The seed of a mix
depends on (``--seed``, corpus, speaker count, index) but not on the condition, so the conditions of one corpus and
speaker count are the same conversations under different conditions (paired). Music comes from the background
folder, its artists split into 4 fixed groups by a stable hash of the name
(:func:`~voicegender.voice.conversations.music_artist_group`), and the noise scenes likewise by file name: test
corpus k hears only group k (``benchmarks/make_fold_heads.py`` fits each fold's window check on the other groups).

**Models held out.** ``--heads DIR`` gives, per test corpus, ``DIR/without_<corpus>.npz`` (``voicegender fit``
without that corpus). Without it the shipped model is used, which was fitted on all these corpora: the output then
says the numbers are NOT held out.

**Systems.** ``voicegender``: :func:`voicegender.segment_file` on each mix written as a 16 kHz WAV (what a user
gives), in this process, the model loaded and warmed up before timing; DER/JER when its segments carry ``speaker``.
``--known-speakers``: each mix's number of speakers is given (what ``segment --num-speakers`` does).
``inaSpeechSegmenter`` 0.8.0 (its own venv: ``bash benchmarks/peers/setup.sh``, then ``--ina-python``), run once over
all the mixes of a run (its start-up costs ~3 s); female / male are speech, music / noise / noEnergy are not; it
gives no speakers.

**Figures** per mix (definitions in ``benchmarks/conversation_scoring.py``): gender accuracy on reference speech
frames (10 ms; a cross-talk frame of two speakers is right when the label is either speaker's gender; missed speech
is wrong), female speaking-time share error in points, music-alone frames given a gender (%), DER and JER
(pyannote.metrics, collar 0.5 s = ±0.25 s, overlap scored; only where a system gives speakers; DER remaps labels,
so it never measures gender), speaker count error (hypothesis minus reference; exact share), × real time (whole
run: audio seconds over processing seconds). Tables print mean and min-max over the mixes of each condition x corpus;
``--out`` keeps every mix's figures and segments as JSON; ``--save-mixes DIR`` keeps each mix (WAV, RTTM, JSON
reference, and ``mixes.json``, the index ``--from-mixes DIR`` reads to score the same mixes again).

Needs pyannote.metrics for DER/JER: ``pip install -e '.[bench]'`` (or ``pip install 'pyannote.metrics>=3.2'``).

Usage (from the repository root)::

    python benchmarks/conversations.py [--data ../shared/data] [--heads DIR]
        [--corpora audiomnist_az baved speechocean762_train common_voice]
        [--conditions clean crosstalk_noise babble telephone music] [--speakers 2 3 4 5 6] [--n 3] [--seed 0]
        [--ina-python .cache/peers/ina/venv/bin/python] [--ina-threads 0]
        [--out results.json] [--save-mixes DIR | --from-mixes DIR] [--no-voicegender] [--known-speakers]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conversation_scoring as scoring  # noqa: E402  (beside this file)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("..") / "shared" / "data"
INA_SCRIPT = Path(__file__).resolve().parent / "peers" / "ina_segment.py"
INA_DIR = Path(os.environ.get("VOICEGENDER_INA_DIR") or ROOT / ".cache" / "peers" / "ina")  # setup.sh's venv, models
DEFAULT_INA_PYTHON = INA_DIR / "venv" / "bin" / "python"
SR = 16_000
# test corpus -> its folders in the data folder (the small Common Voice languages join English: one corpus)
TEST_CORPORA = {"audiomnist_az": ["audiomnist_az"], "baved": ["baved"],
                "speechocean762_train": ["speechocean762_train"],
                "common_voice": ["cv_en_delta13", "cv_fa", "cv_uz", "cv_vi"]}
MUSIC_GROUPS = len(TEST_CORPORA)  # test corpus k hears the music of artist group k
SYSTEMS = ("voicegender", "inaSpeechSegmenter")
INA_SPEECH = ("female", "male")


@dataclasses.dataclass
class Mix:
    """One simulated conversation on disk, its reference, and each system's answer."""

    name: str
    corpus: str  # the test corpus (TEST_CORPORA key)
    condition: str
    n_speakers: int
    path: Path  # the 16 kHz WAV the systems read
    reference: dict  # Conversation.reference()
    results: dict[str, dict] = dataclasses.field(default_factory=dict)  # system -> segments, seconds, scores


def stable_seed(*parts) -> int:
    """A 32-bit seed from the parts' text (the same on every machine and Python run)."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest(), 16) % 2**32


def heard_background(background, corpus: str):
    """What test corpus k hears: music of artist group k, noise scenes of file-name group k."""
    from voicegender.voice.conversations import music_artist_group

    k = list(TEST_CORPORA).index(corpus)
    key = {"music": lambda r: r.artist, "noise": lambda r: r.path.name}
    return background.select(lambda r: music_artist_group(key[r.kind](r), MUSIC_GROUPS) == k)


# --- mixes --------------------------------------------------------------------------------------------------------

def make_mixes(args, folder: Path) -> list[Mix]:
    """Simulate every cell's mixes and write each as a 16 kHz WAV (with RTTM and JSON when --save-mixes)."""
    from voicegender.corpora import load_corpus
    from voicegender.voice.conversations import ClipCache, conversation_set, load_background

    data = Path(args.data)
    background = load_background(data / "background")
    mixes = []
    for corpus in args.corpora:
        corpora = [load_corpus(data / f) for f in TEST_CORPORA[corpus]]
        heard = heard_background(background, corpus)
        cache = ClipCache()  # clips decoded once per corpus
        for k in args.speakers:
            seed = stable_seed(args.seed, corpus, k)
            for condition in args.conditions:
                t0 = time.perf_counter()
                convs = conversation_set(corpora, condition, args.n, seed, heard, n_speakers=k, cache=cache,
                                         name_prefix=f"{corpus}_{k}spk_{condition}")
                for conv in convs:
                    if args.save_mixes:
                        path = conv.save(folder)
                    else:
                        path = folder / f"{conv.name}.wav"
                        sf.write(path, conv.samples, SR, subtype="PCM_16")
                    mixes.append(Mix(conv.name, corpus, condition, k, path, conv.reference()))
                print(f"  simulated {corpus}, {k} speakers, {condition}: {len(convs)} mixes, "
                      f"{sum(m.reference['duration_s'] for m in mixes[-len(convs):]):.0f} s of audio "
                      f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.save_mixes:
        index = [{"name": m.name, "corpus": m.corpus, "condition": m.condition, "n_speakers": m.n_speakers}
                 for m in mixes]
        (folder / "mixes.json").write_text(json.dumps(index, indent=1))
    return mixes


def read_mixes(folder: Path) -> list[Mix]:
    """The mixes a run saved with --save-mixes (its mixes.json index, each mix's JSON reference and WAV)."""
    index = json.loads((folder / "mixes.json").read_text())
    return [Mix(m["name"], m["corpus"], m["condition"], m["n_speakers"], folder / f"{m['name']}.wav",
                json.loads((folder / f"{m['name']}.json").read_text())) for m in index]


# --- systems ------------------------------------------------------------------------------------------------------

def model_files(args) -> dict[str, Path | None]:
    """Test corpus -> the voice head fitted without it (--heads), or None (the shipped model)."""
    if not args.heads:
        return dict.fromkeys(args.corpora)
    files = {c: Path(args.heads) / f"without_{c}.npz" for c in args.corpora}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"--heads: missing {', '.join(missing)} (voicegender fit without that corpus writes it)")
    return files


def second_voices(timeline) -> list[tuple[float, float, str, str]]:
    """The lines an overlap-aware RTTM would add: in each overlapped stretch named with two speakers, each of the
    two over the part where the segments give the other one ``(start, end, label, speaker)``. ``segment`` does
    not write them (they raised DER here: docs/CONVERSATIONS.md); they are scored beside to keep that measured."""
    labels = {s.id: s.label for s in timeline.speakers}
    out = []
    for o in timeline.overlaps:
        if len(o.speakers) < 2:
            continue
        for seg in timeline.segments:
            if seg.end_s <= o.start_s or seg.start_s >= o.end_s or seg.speaker not in o.speakers:
                continue
            other = o.speakers[1] if seg.speaker == o.speakers[0] else o.speakers[0]
            start, end = round(max(seg.start_s, o.start_s), 3), round(min(seg.end_s, o.end_s), 3)
            if end > start:
                out.append((start, end, labels[other], other))
    return out


def run_voicegender(mixes: list[Mix], heads: dict[str, Path | None], known_speakers: bool = False) -> dict:
    """segment_file on each mix's WAV, in this process; the model of each test corpus loaded and warmed up first.
    ``known_speakers``: each mix's number of speakers is given (``--num-speakers``)."""
    from voicegender import load_model
    from voicegender.audio.decode import read_first_seconds
    from voicegender.listen.segment import SegmentOptions, segment_stream, timeline_file
    from voicegender.listen.speakers import SpeakerOptions

    models = {}
    for corpus in sorted({m.corpus for m in mixes}):
        models[corpus] = load_model(heads[corpus])
        first = next(m for m in mixes if m.corpus == corpus)
        segment_stream([read_first_seconds(first.path, 10.0)], models[corpus], show_progress=False)  # warm-up
    for i, mix in enumerate(mixes, 1):
        t0, c0 = time.perf_counter(), time.process_time()
        options = SegmentOptions(speaker_options=SpeakerOptions(min_speakers=mix.n_speakers,
                                                                max_speakers=mix.n_speakers)) \
            if known_speakers else SegmentOptions()
        timeline = timeline_file(mix.path, models[mix.corpus], options, show_progress=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        mix.results["voicegender"] = {
            "seconds": seconds, "cpu_seconds": cpu,
            "segments": [(round(s.start_s, 3), round(s.end_s, 3), s.label, s.speaker) for s in timeline.segments],
            "overlaps": [(round(o.start_s, 3), round(o.end_s, 3), list(o.speakers)) for o in timeline.overlaps],
            "second_voices": second_voices(timeline)}
        print(f"  voicegender {i}/{len(mixes)} {mix.name}: {mix.reference['duration_s']:.0f} s in "
              f"{mix.results['voicegender']['seconds']:.1f} s", file=sys.stderr)
    return {"how": "in-process segment_file per WAV (decode, speech detection, model, smoothing), model loaded and "
                   "warmed up before timing; cpu = process CPU time over all threads"
                   + ("; each mix's number of speakers given (--num-speakers)" if known_speakers else "")}


def run_ina(mixes: list[Mix], python: Path, threads: int, models: Path | None, folder: Path) -> dict:
    """inaSpeechSegmenter over all mixes in one subprocess (benchmarks/peers/ina_segment.py)."""
    listing, out = folder / "ina_files.txt", folder / "ina.jsonl"
    listing.write_text("".join(f"{m.path}\n" for m in mixes))
    cmd = [str(python), str(INA_SCRIPT), "--threads", str(threads), "--out", str(out), "--list", str(listing)]
    if models:
        cmd += ["--models", str(models)]
    print(f"  inaSpeechSegmenter on {len(mixes)} mixes: {' '.join(cmd)}", file=sys.stderr)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = next((json.loads(line.split(":", 1)[1]) for line in reversed(done.stderr.splitlines())
                    if line.startswith("ina_segment:")), None)
    if summary is None:
        raise RuntimeError(f"inaSpeechSegmenter failed (exit {done.returncode}): {done.stderr[-2000:]}")
    rows = {Path(r["path"]): r for r in map(json.loads, out.read_text().splitlines())}
    for mix in mixes:
        row = rows.get(mix.path)
        if row is None or row.get("segments") is None:
            print(f"  inaSpeechSegmenter failed on {mix.path}: {row and row.get('error')}", file=sys.stderr)
            continue
        mix.results["inaSpeechSegmenter"] = {
            "seconds": row["seconds"], "cpu_seconds": row["cpu_seconds"],
            "segments": [(s, e, lab if lab in INA_SPEECH else "no_speech", None) for lab, s, e in row["segments"]],
            "labels": sorted({lab for lab, _, _ in row["segments"]})}
    return {"how": f"one subprocess over all files (--threads {threads}); seconds = ina's per-file wall time, its "
                   "~3 s start-up not counted", "process_wall_s": round(wall, 2), "summary": summary}


# --- scoring and output -------------------------------------------------------------------------------------------

def score_all(mixes: list[Mix], frame_s: float, diarization: bool) -> None:
    for mix in mixes:
        for result in mix.results.values():
            overlaps = result.get("overlaps")
            result["scores"] = scoring.score_mix(mix.reference, result["segments"], frame_s, diarization,
                                                 None if overlaps is None else [(a, b) for a, b, _ in overlaps],
                                                 result.get("second_voices"))


def _cell(spread: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    if spread is None:
        return "-"
    mean, lo, hi = (spread[k] * scale for k in ("mean", "min", "max"))
    return f"{mean:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def cell_figures(mixes: list[Mix], system: str) -> dict | None:
    """The table's figures for one system over some mixes (None when it ran on none of them)."""
    scores = [m.results[system]["scores"] for m in mixes if system in m.results]
    if not scores:
        return None
    crosstalk = [s["frames"] for s in scores if s["frames"]["crosstalk_frames"]]
    share_errors = [None if s["female_share_error"] is None else abs(s["female_share_error"]) for s in scores]
    counted = [s["speaker_count_error"] for s in scores if s["speaker_count_error"] is not None]
    return {
        "mixes": len(scores),
        "gender_accuracy": scoring.spread(s["gender_accuracy"] for s in scores),
        "crosstalk_accuracy": (sum(f["crosstalk_right"] for f in crosstalk)
                               / sum(f["crosstalk_frames"] for f in crosstalk) if crosstalk else None),
        "female_share_abs_error": scoring.spread(share_errors),
        "no_gendered_speech": sum(s["female_share_error"] is None for s in scores),
        "music_alone_given_gender": scoring.spread(s["music_alone_given_gender"] for s in scores),
        "der": scoring.spread(s["der"] for s in scores), "jer": scoring.spread(s["jer"] for s in scores),
        "speaker_count_error": scoring.spread(counted),
        "speaker_count_exact": sum(c == 0 for c in counted) / len(counted) if counted else None,
    }


def table_row(label: str, system: str, f: dict | None) -> str:
    if f is None:
        return f"| {label} | {system} | 0 | not run | | | | | | |"
    count = ("-" if f["speaker_count_error"] is None else
             f"{f['speaker_count_error']['mean']:+.2f} ({100 * f['speaker_count_exact']:.0f} %)")
    share = _cell(f["female_share_abs_error"], digits=1) + (f" [{f['no_gendered_speech']} no speech]"
                                                           if f["no_gendered_speech"] else "")
    return (f"| {label} | {system} | {f['mixes']} | {_cell(f['gender_accuracy'])} | "
            f"{'-' if f['crosstalk_accuracy'] is None else format(f['crosstalk_accuracy'], '.3f')} | {share} | "
            f"{_cell(f['music_alone_given_gender'], digits=1)} | {_cell(f['der'], 100, 1)} | "
            f"{_cell(f['jer'], 100, 1)} | {count} |")


HEADER = ("| {what} | system | mixes | gender acc, mean (min–max) | cross-talk acc | female share error, pts "
          "abs. mean (min–max) | music-alone given a gender, % | DER % | JER % | speakers Δ mean (exact) |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def print_tables(mixes: list[Mix], systems: list[str], conditions: list[str]) -> dict:
    """A table per condition (rows: corpus x system), one by speaker count, and the issue's speaker goals."""
    from voicegender.voice.conversations import CONDITIONS

    summary: dict = {"cells": {}, "by_speakers": {}}
    for condition in conditions:
        spec = CONDITIONS[condition]
        print(f"\n### {condition}  (turns {spec.turn_s[0]:g}–{spec.turn_s[1]:g} s, gap {spec.gap_s:g} s, "
              f"cross-talk {spec.crosstalk_s:g} s, noise {spec.noise_snr_db} dB, babble {spec.babble_voices} voices "
              f"at {spec.babble_snr_db} dB, telephone {spec.telephone}, music {spec.music_snr_db} dB, "
              f"music-alone every {spec.music_break_every} turns)\n")
        print(HEADER.format(what="corpus"))
        for corpus in TEST_CORPORA:
            cell = [m for m in mixes if m.condition == condition and m.corpus == corpus]
            if not cell:
                continue
            for system in systems:
                f = cell_figures(cell, system)
                summary["cells"][f"{condition}/{corpus}/{system}"] = f
                print(table_row(corpus, system, f))
    print("\n### all conditions, by speaker count\n")
    print(HEADER.format(what="speakers"))
    for k in sorted({m.n_speakers for m in mixes}):
        for system in systems:
            f = cell_figures([m for m in mixes if m.n_speakers == k], system)
            summary["by_speakers"][f"{k}/{system}"] = f
            print(table_row(str(k), system, f))
    print_overlaps(mixes, systems, conditions, summary)
    goal = [m for m in mixes if 2 <= m.n_speakers <= 4 and CONDITIONS[m.condition].crosstalk_s == 0]
    print("\nIssue 19's speaker goals, on 2–4-speaker conversations without cross-talk "
          f"({len(goal)} mixes): DER <= 15 %, speaker count exact on >= 80 %")
    for system in systems:
        f = cell_figures(goal, system)
        summary[f"goal/{system}"] = f
        if f is None or f["der"] is None:
            print(f"  {system}: no speakers given (no DER, no count)")
        else:
            print(f"  {system}: DER {100 * f['der']['mean']:.1f} %, JER {100 * f['jer']['mean']:.1f} %, "
                  f"count exact {100 * f['speaker_count_exact']:.0f} %")
    return summary


def print_overlaps(mixes: list[Mix], systems: list[str], conditions: list[str], summary: dict) -> None:
    """Overlapped speech per condition, for the systems that mark it: frame precision and recall (pooled), and
    DER as written (without second-voice lines) and with them."""
    rows = []
    for system in systems:
        for condition in conditions:
            scores = [m.results[system]["scores"] for m in mixes if m.condition == condition and system in m.results]
            frames = [s["overlap_frames"] for s in scores if "overlap_frames" in s]
            if not frames:
                continue
            ref, marked, both = (sum(f[k] for f in frames) for k in ("reference", "marked", "both"))
            speech = sum(s["frames"]["frames"] for s in scores)
            without = [s["der"] for s in scores if s["der"] is not None]
            with_lines = [s.get("der_second_voices", s["der"]) for s in scores if s["der"] is not None]
            figures = {"reference_share": ref / speech if speech else None, "marked_share": marked / speech
                       if speech else None, "precision": both / marked if marked else None,
                       "recall": both / ref if ref else None,
                       "der": float(np.mean(without)) if without else None,
                       "der_with_second_voices": float(np.mean(with_lines)) if with_lines else None}
            summary.setdefault("overlaps", {})[f"{condition}/{system}"] = figures

            def pct(v):
                return "-" if v is None else f"{100 * v:.1f}"
            rows.append(f"| {condition} | {system} | {pct(figures['reference_share'])} | "
                        f"{pct(figures['marked_share'])} | {pct(figures['precision'])} | {pct(figures['recall'])} | "
                        f"{pct(figures['der'])} | {pct(figures['der_with_second_voices'])} |")
    if rows:
        print("\n### overlapped speech (frames of speech; DER over all mixes of the condition)\n")
        print("| condition | system | reference cross-talk % | marked % | precision % | recall % | DER % | DER "
              "with second-voice lines % |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        print("\n".join(rows))


def speed(mixes: list[Mix], system: str) -> dict | None:
    ran = [m for m in mixes if system in m.results]
    if not ran:
        return None
    audio = sum(m.reference["duration_s"] for m in ran)
    wall = sum(m.results[system]["seconds"] for m in ran)
    cpu = sum(m.results[system]["cpu_seconds"] for m in ran)
    return {"audio_s": round(audio, 1), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "x_real_time": round(audio / wall, 1) if wall else None,
            "x_real_time_per_cpu_second": round(audio / cpu, 1) if cpu else None}


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"node": platform.node(), "machine": platform.machine(), "cpu": cpu or platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the corpora and background/")
    ap.add_argument("--corpora", nargs="+", default=list(TEST_CORPORA), choices=list(TEST_CORPORA))
    ap.add_argument("--conditions", nargs="+", default=["clean", "crosstalk_noise", "babble", "telephone", "music"])
    ap.add_argument("--speakers", nargs="+", type=int, default=[2, 3, 4, 5, 6], help="speaker counts")
    ap.add_argument("--n", type=int, default=3, help="mixes per corpus x condition x speaker count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", default=None, help="folder with without_<corpus>.npz per test corpus (held out); "
                                                  "default: the shipped model (NOT held out)")
    ap.add_argument("--ina-python", default=None,
                    help=f"python of the inaSpeechSegmenter venv (bash benchmarks/peers/setup.sh makes "
                         f"{DEFAULT_INA_PYTHON}); without it the peer is skipped")
    ap.add_argument("--ina-models", default=None, help="folder with ina's .hdf5 models (default: ina_segment.py's)")
    ap.add_argument("--ina-threads", type=int, default=0,
                    help="TensorFlow threads for ina (0: TF's default, all cores)")
    ap.add_argument("--no-voicegender", action="store_true", help="run only the peer")
    ap.add_argument("--known-speakers", action="store_true",
                    help="give voicegender each mix's number of speakers (segment --num-speakers)")
    ap.add_argument("--frame-s", type=float, default=0.01, help="scoring frame")
    ap.add_argument("--out", default=None, help="JSON file for every mix's figures and segments")
    mixes_from = ap.add_mutually_exclusive_group()
    mixes_from.add_argument("--save-mixes", default=None, help="keep each mix (WAV, RTTM, JSON) and an index here")
    mixes_from.add_argument("--from-mixes", default=None, help="score the mixes a --save-mixes run kept")
    args = ap.parse_args()
    from voicegender.voice.conversations import CONDITIONS

    unknown = set(args.conditions) - set(CONDITIONS)
    if unknown:
        ap.error(f"unknown condition(s) {', '.join(sorted(unknown))}; choose from {', '.join(CONDITIONS)}")
    load_start = os.getloadavg()
    heads = model_files(args)
    has_pyannote = importlib.util.find_spec("pyannote") is not None and \
        importlib.util.find_spec("pyannote.metrics") is not None
    systems = [] if args.no_voicegender else ["voicegender"]
    ina_python = Path(args.ina_python) if args.ina_python else None
    notes = []
    if ina_python is None or not ina_python.exists():
        notes.append("inaSpeechSegmenter skipped: " + ("no --ina-python given" if ina_python is None else
                                                       f"{ina_python} does not exist")
                     + " (bash benchmarks/peers/setup.sh builds its venv)")
        ina_python = None
    else:
        systems.append("inaSpeechSegmenter")
    if not args.heads:
        notes.append("NOT HELD OUT: the shipped model was fitted on all of these corpora (docs/DEFAULT_MODEL.md); "
                     "give --heads DIR with without_<corpus>.npz for held-out numbers")
    if not systems:
        notes.append("no system run (--no-voicegender without the peer): mixes only")
    if not has_pyannote:
        notes.append(f"DER/JER not computed: {scoring.PYANNOTE_MISSING}")

    with tempfile.TemporaryDirectory(prefix="vg_conversations_") as tmp:
        folder = Path(args.save_mixes or args.from_mixes or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if args.from_mixes:
            mixes = [m for m in read_mixes(folder) if m.corpus in args.corpora and m.condition in args.conditions
                     and m.n_speakers in args.speakers]
        else:
            mixes = make_mixes(args, folder)
        simulate_s = time.perf_counter() - t0
        runs = {}
        if "voicegender" in systems:
            runs["voicegender"] = run_voicegender(mixes, heads, args.known_speakers)
        if ina_python is not None:
            runs["inaSpeechSegmenter"] = run_ina(mixes, ina_python, args.ina_threads, args.ina_models, Path(tmp))
        score_all(mixes, args.frame_s, has_pyannote)

    load_end = os.getloadavg()
    audio_s = sum(m.reference["duration_s"] for m in mixes)
    made = (f"read from {args.from_mixes}" if args.from_mixes else
            f"{args.n} per cell and speaker count, seed {args.seed}, simulated in {simulate_s:.0f} s")
    print(f"# Conversations benchmark: {len(mixes)} mixes, {audio_s / 60:.1f} min of audio "
          f"({', '.join(args.corpora)}; {', '.join(args.conditions)}; speakers {args.speakers}; {made})")
    info = machine()
    print(f"machine {info['node']} ({info['cpu']}, {info['cpus']} CPUs); load average {load_start[0]:.2f} at the "
          f"start, {load_end[0]:.2f} at the end (1 min)")
    print("model: " + ("; ".join(f"{c}: {p}" for c, p in heads.items()) if args.heads else "the shipped model"))
    for corpus in args.corpora:
        used = {(c["kind"], c["artist"] if c["kind"] == "music" else c["path"])
                for m in mixes if m.corpus == corpus for c in m.reference["background"]}
        if used:
            print(f"{corpus} heard: " + "; ".join(f"{kind} {', '.join(sorted(n for k, n in used if k == kind))}"
                                                  for kind in ("music", "noise") if any(k == kind for k, _ in used)))
    for note in notes:
        print(f"NOTE: {note}")
    summary = print_tables(mixes, systems, args.conditions)
    print("\n### speed (whole run)\n")
    speeds = {s: speed(mixes, s) for s in systems}
    for system, sp in speeds.items():
        if sp:
            print(f"  {system}: {sp['audio_s']:.0f} s of audio in {sp['wall_s']:.1f} s wall = {sp['x_real_time']}× "
                  f"real time ({sp['x_real_time_per_cpu_second']}× per CPU second); {runs[system]['how']}")
    if "inaSpeechSegmenter" in runs:
        print(f"  inaSpeechSegmenter process wall, start-up included: {runs['inaSpeechSegmenter']['process_wall_s']} s")
    if args.out:
        record = {"args": vars(args), "machine": info, "load_average": {"start": load_start, "end": load_end},
                  "notes": notes, "held_out": bool(args.heads), "systems": runs, "speed": speeds, "summary": summary,
                  "mixes": [{"name": m.name, "corpus": m.corpus, "condition": m.condition,
                             "n_speakers": m.n_speakers, "path": str(m.path) if args.save_mixes or args.from_mixes
                             else None, "reference": m.reference, "results": m.results} for m in mixes]}
        Path(args.out).write_text(json.dumps(record, indent=1, default=str))
        print(f"\nper-mix figures: {args.out}")


if __name__ == "__main__":
    main()
