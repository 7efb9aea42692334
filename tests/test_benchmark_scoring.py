"""The conversation benchmark's scoring (benchmarks/conversation_scoring.py) and its plumbing
(benchmarks/conversations.py: seeds, music groups, the inaSpeechSegmenter output, tables) on hand-made timelines."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from voicegender.voice.conversations import (
    Background,
    BackgroundRecording,
    Turn,
    frame_genders,
    music_artist_group,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str, as_name: str):
    """A benchmark script as a module (``as_name`` keeps it apart from voicegender's own modules)."""
    if as_name in sys.modules:
        return sys.modules[as_name]
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # conversations.py imports conversation_scoring beside it
    spec = importlib.util.spec_from_file_location(as_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


scoring = load("conversation_scoring", "conversation_scoring")
bench = load("conversations", "conversations_benchmark")

# a woman 0-4 s, a man 3.5-8 s (0.5 s of cross-talk), a woman 9-10 s; 10.5 s in all, music alone 8.2-8.8 s
TURNS = [Turn("c/f1", "female", 0.0, 4.0, "c"), Turn("c/m1", "male", 3.5, 8.0, "c"),
         Turn("c/f2", "female", 9.0, 10.0, "c")]
REFERENCE = {"duration_s": 10.5, "turns": [t.__dict__ for t in TURNS], "music": [[8.2, 8.8]]}


def test_hypothesis_frames_count_at_the_frame_centre():
    hyp = [(0.0, 0.25, "female", None), (0.25, 0.4, "music", None), (0.4, 1.0, "male", "S1")]
    assert scoring.hypothesis_frames(hyp, 1.0, 0.1).tolist() == [1, 1, 0, 0, 2, 2, 2, 2, 2, 2]


def test_gender_accuracy_takes_either_voice_on_crosstalk_and_counts_missed_speech_wrong():
    ref = frame_genders(TURNS, 10.5, 0.5)  # 21 frames: 0-6 female, 7 both, 8-15 male, 16-17 none, 18-19 female
    hyp = scoring.hypothesis_frames([(0.0, 3.0, "female", None), (3.0, 3.5, "no_speech", None),
                                     (3.5, 4.0, "male", None), (4.0, 9.5, "female", None)], 10.5, 0.5)
    acc = scoring.gender_accuracy(ref, hyp)
    # right: female 0-5 (6), frame 6 missed, frame 7 (cross-talk, male) right, male 8-15 wrong, 18 right, 19 missed
    assert (acc["right"], acc["frames"]) == (8, 18)
    assert (acc["crosstalk_right"], acc["crosstalk_frames"]) == (1, 1)
    assert acc["accuracy"] == pytest.approx(8 / 18)


def test_female_share_error_music_alone_and_speakers():
    assert scoring.female_share_error(0.5, [(0, 30, "female", None), (30, 40, "male", None)]) == pytest.approx(25.0)
    assert scoring.female_share_error(0.5, [(0, 30, "no_speech", None)]) is None
    music = np.array([False, True, True, True, False])
    assert scoring.music_alone_given_gender(music, np.array([1, 0, 2, 0, 1])) == pytest.approx(100 / 3)
    assert scoring.music_alone_given_gender(np.zeros(5, bool), np.zeros(5)) is None
    assert scoring.hypothesis_speakers([(0, 1, "female", None)]) is None
    assert scoring.hypothesis_speakers([(0, 1, "female", "S1"), (1, 2, "no_speech", "S9")]) == {"S1"}


def test_score_mix_without_speakers():
    hyp = [(0.0, 4.0, "female", None), (4.0, 8.0, "male", None), (8.0, 9.0, "male", None),
           (9.0, 10.0, "female", None), (10.0, 10.5, "no_speech", None)]
    s = scoring.score_mix(REFERENCE, hyp)
    assert s["gender_accuracy"] == pytest.approx(1.0)
    assert s["female_share_ref"] == pytest.approx(5 / 9.5)
    assert s["female_share_error"] == pytest.approx(100 * (5 / 10 - 5 / 9.5))
    assert s["music_alone_given_gender"] == pytest.approx(100.0)
    assert s["speakers_ref"] == 3 and s["speaker_count_error"] is None and s["der"] is None


def test_der_and_jer_with_pyannote():
    pytest.importorskip("pyannote.metrics", reason="pyannote.metrics not installed (pip install -e '.[bench]')")
    ref = [Turn("A", "female", 0, 10), Turn("B", "male", 10, 20)]
    same = [(0.0, 10.0, "female", "S2"), (10.0, 20.0, "male", "S1")]
    assert scoring.diarization_errors(ref, same, 20.0) == pytest.approx({"der": 0.0, "jer": 0.0})
    late = [(0.0, 11.0, "female", "x"), (11.0, 20.0, "male", "y")]
    assert scoring.diarization_errors(ref, late, 20.0, collar=0.0)["der"] == pytest.approx(1 / 20)
    # collar 0.5 = +-0.25 s around 0, 10 and 20: 19 s scored, 0.75 s of confusion
    assert scoring.diarization_errors(ref, late, 20.0)["der"] == pytest.approx(0.75 / 19)
    s = scoring.score_mix({"duration_s": 20.0, "turns": [t.__dict__ for t in ref], "music": []}, late + [
        (19.0, 19.5, "male", "z")])
    assert s["speakers_hyp"] == 3 and s["speaker_count_error"] == 1 and s["der"] > 0


def test_overlaps_are_scored_on_the_cross_talk_frames_and_second_voices_beside_der():
    hyp = [(0.0, 3.8, "female", "S1"), (3.8, 8.0, "male", "S2"), (9.0, 10.0, "female", "S1")]
    # marked 3.6-4.2 s: 0.4 s of it on the reference's 0.5 s of cross-talk (3.5-4.0), 0.2 s beside it
    s = scoring.score_mix(REFERENCE, hyp, 0.01, diarization=False, overlaps=[(3.6, 4.2)])
    assert s["overlap_frames"] == {"reference": 50, "marked": 60, "both": 40}
    assert "overlap_frames" not in scoring.score_mix(REFERENCE, hyp, 0.01, diarization=False)
    pytest.importorskip("pyannote.metrics", reason="pyannote.metrics not installed (pip install -e '.[bench]')")
    ref = [Turn("A", "female", 0, 10), Turn("B", "male", 8, 20)]  # 2 s of cross-talk, 8-10 s
    hyp = [(0.0, 9.0, "female", "S1"), (9.0, 20.0, "male", "S2")]
    mix = {"duration_s": 20.0, "turns": [t.__dict__ for t in ref], "music": []}
    right = scoring.score_mix(mix, hyp, second_voices=[(8.0, 9.0, "male", "S2"), (9.0, 10.0, "female", "S1")])
    wrong = scoring.score_mix(mix, hyp, second_voices=[(2.0, 4.0, "male", "S2")])
    assert right["der"] == wrong["der"] > 0  # DER as written: the segments alone
    assert right["der_second_voices"] < right["der"] < wrong["der_second_voices"]


def test_spread():
    assert scoring.spread([1.0, None, 3.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0, "n": 2}
    assert scoring.spread([None]) is None


def test_seeds_and_music_groups_are_stable():
    assert bench.stable_seed(0, "baved", 3) == bench.stable_seed(0, "baved", 3) != bench.stable_seed(1, "baved", 3)
    recordings = [BackgroundRecording(Path(f"music/{i}.opus"), "music", artist=f"artist {i}") for i in range(30)]
    recordings += [BackgroundRecording(Path(f"noise/{i}.opus"), "noise") for i in range(30)]
    heard = [bench.heard_background(Background(recordings), corpus) for corpus in bench.TEST_CORPORA]
    assert all(h.music and h.noise for h in heard)
    assert sorted(r.artist for h in heard for r in h.music) == sorted(r.artist for r in recordings[:30])
    assert sorted(r.path for h in heard for r in h.noise) == sorted(r.path for r in recordings[30:])
    assert {r.artist for r in heard[1].music} == {r.artist for r in recordings[:30]
                                                  if music_artist_group(r.artist) == 1}


def test_ina_output_is_read_and_its_non_speech_labels_dropped(tmp_path: Path):
    fake = tmp_path / "python"  # stands in for the ina venv's python: answers every listed file
    fake.write_text(f"#!{sys.executable}\n" + """import json, sys
args = sys.argv[2:]
out, listing = args[args.index("--out") + 1], args[args.index("--list") + 1]
with open(out, "w") as f:
    for path in open(listing).read().split():
        f.write(json.dumps({"path": path, "segments": [["noEnergy", 0.0, 1.0], ["female", 1.0, 3.0],
                            ["music", 3.0, 4.0], ["male", 4.0, 5.0]], "seconds": 0.5, "duration_s": 5.0,
                            "cpu_seconds": 0.4}) + "\\n")
print("ina_segment: " + json.dumps({"files": 1, "x_real_time": 10.0}), file=sys.stderr)
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    mix = bench.Mix("m", "baved", "clean", 2, tmp_path / "m.wav",
                    {"duration_s": 5.0, "turns": [Turn("b/1", "female", 1.0, 3.0, "b").__dict__], "music": []})
    run = bench.run_ina([mix], fake, 1, None, tmp_path)
    assert run["summary"]["x_real_time"] == 10.0
    got = mix.results["inaSpeechSegmenter"]
    assert [s[2] for s in got["segments"]] == ["no_speech", "female", "no_speech", "male"]
    assert got["labels"] == ["female", "male", "music", "noEnergy"]
    bench.score_all([mix], 0.01, diarization=False)
    assert got["scores"]["gender_accuracy"] == pytest.approx(1.0)
    summary = bench.print_tables([mix], ["voicegender", "inaSpeechSegmenter"], ["clean"])
    assert summary["cells"]["clean/baved/voicegender"] is None
    assert summary["cells"]["clean/baved/inaSpeechSegmenter"]["mixes"] == 1
    json.dumps(summary)
