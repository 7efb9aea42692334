"""segment: boundaries of a concatenation of known clips, smoothing (Viterbi and median), bounded memory, timeline
writers, speaking time."""

from __future__ import annotations

import dataclasses
import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import espeak as _espeak
from conftest import melody, pitch_scorer, requires_espeak

from voicegender.cli import main
from voicegender.listen.segment import (
    Segment,
    SegmentOptions,
    SpeakingTime,
    build_timeline,
    segment_file,
    segment_stream,
    speaking_time,
)
from voicegender.listen.smoothing import viterbi_2state
from voicegender.listen.writers import read_timeline, write_timeline
from voicegender.speech.vad import FRAME_S, VadConfig

SR = 16_000


def espeak(text: str, voice: str, pitch: int) -> np.ndarray:
    return _espeak(text, voice, pitch, trim=True)


def constant_scorer(waves: list[np.ndarray]) -> np.ndarray:
    return np.full(len(waves), 0.25)


@requires_espeak
def test_boundaries_of_known_clips_within_half_a_second(tmp_path):
    male = espeak("Every morning I walk to the station and buy a newspaper before the train.", "en+m3", 30)
    female = espeak("She said the weather would be fine tomorrow, so we planned a picnic.", "en+f3", 70)
    male2 = espeak("The committee will meet again next week to discuss the budget.", "en+m1", 25)
    silence = np.zeros(2 * SR, np.float32)
    parts = [("no_speech", silence), ("male", male), ("no_speech", silence[: int(1.5 * SR)]),
             ("female", female), ("male", male2), ("no_speech", silence)]
    path = tmp_path / "mix.wav"
    sf.write(path, np.concatenate([p for _, p in parts]), SR)
    truth, t = [], 0.0
    for label, samples in parts:
        truth.append((t, t + len(samples) / SR, label))
        t += len(samples) / SR

    segments, duration = segment_file(path, pitch_scorer, show_progress=False)
    assert duration == pytest.approx(t, abs=1e-3)
    assert [s.label for s in segments] == [lab for _, _, lab in truth]
    for seg, (start, end, _) in zip(segments, truth, strict=True):
        assert abs(seg.start_s - start) < 0.5 and abs(seg.end_s - end) < 0.5, (seg, start, end)
    assert segments[1].p_female < 0.1 and segments[3].p_female > 0.9 and segments[4].p_female < 0.1


def _windows(labels: list[tuple[float, float]], hop_s: float = 0.5, window_s: float = 1.5):
    """Scored windows (start_frame, n_frames, weight, logit) for a piecewise-constant logit track."""
    out = []
    total = labels[-1][0]
    start = 0.0
    while start + window_s <= total + 1e-9:
        centre = start + window_s / 2
        logit = next(v for end, v in labels if centre < end)
        out.append((int(start / FRAME_S), int(window_s / FRAME_S), 1.0, logit))
        start += hop_s
    return out


def test_timeline_smoothing_no_flicker():
    n = int(20 / FRAME_S)
    probs = np.full(n, 0.9, np.float32)  # 20 s of uninterrupted speech
    # female 0-10 s with a 0.6 s "male" glitch at 5 s, then male
    scored = _windows([(5.0, 3.0), (5.6, -3.0), (10.0, 3.0), (20.0, -3.0)], hop_s=0.2)
    segments = build_timeline(probs, scored, 20.0, SegmentOptions())
    assert [s.label for s in segments] == ["female", "male"]
    assert segments[0].end_s == pytest.approx(10.0, abs=0.5)
    assert segments[0].start_s == 0.0 and segments[-1].end_s == 20.0
    assert all(s.duration_s >= SegmentOptions().min_segment_s for s in segments)


def test_timeline_covers_file_and_marks_pauses():
    frames = int(10 / FRAME_S)
    probs = np.zeros(frames, np.float32)
    probs[int(2 / FRAME_S):int(4 / FRAME_S)] = 0.95
    probs[int(4.1 / FRAME_S):int(6 / FRAME_S)] = 0.95  # a 0.1 s breath: not a pause (min_silence 0.3 s)
    scored = [(int(2 / FRAME_S), int(1.5 / FRAME_S), 1.0, -2.0), (int(4 / FRAME_S), int(1.5 / FRAME_S), 1.0, -2.0)]
    segments = build_timeline(probs, scored, 10.0)
    assert [s.label for s in segments] == ["no_speech", "male", "no_speech"]
    assert segments[1].p_female == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-6)
    assert segments[0].p_female is None and segments[-1].end_s == 10.0
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(segments))
    assert build_timeline(np.zeros(10, np.float32), [], 0.32) == [Segment(0.0, 0.32, "no_speech", None)]


def test_speech_that_stops_into_music_ends_where_the_voice_does():
    """A voice (0.5-3.5 s) followed by 4 s of music 6 dB below it, then quiet noise: silero's probabilities fall
    slowly into the music, and the region ends at the voice's last confident frame instead, unpadded, the same
    however the audio is cut into blocks."""
    from voicegender.audio.synth import synth_noise, synth_voice

    voice = synth_voice(180, 3.0, seed=0)
    music = melody(4.0, seed=0)
    music *= 0.5 * np.sqrt(np.mean(voice**2) / np.mean(music**2))
    x = np.concatenate([np.zeros(SR // 2, np.float32), voice, music, synth_noise(2.0, seed=0, level=0.001)])
    options = SegmentOptions(speakers=False)

    def speech_end(opts: SegmentOptions, block: int) -> float:
        segments, _ = segment_stream([x[i:i + block] for i in range(0, len(x), block)], constant_scorer, opts)
        return max(s.end_s for s in segments if s.label != "no_speech")

    untrimmed = SegmentOptions(speakers=False, vad_config=VadConfig(threshold=0.4, neg_threshold=0.35, pad_s=0.15,
                                                                    min_silence_s=0.5))
    carried = speech_end(untrimmed, len(x))
    trimmed = speech_end(options, len(x))
    assert carried > 3.5 + 0.15 + 0.15  # the hysteresis carries the region on into the music, past the padding
    assert 3.5 - 0.25 <= trimmed <= 3.5  # the voice's last confident frame, not padded into the music
    assert carried - trimmed >= 0.4
    padded = dataclasses.replace(options, vad_config=dataclasses.replace(options.vad_config, tail_pad_s=None))
    assert speech_end(padded, len(x)) == pytest.approx(trimmed + 0.15, abs=1e-6)  # with the usual padding
    assert speech_end(options, 7_777) == pytest.approx(trimmed, abs=1e-6)


def test_long_file_in_bounded_memory(tmp_path):
    """10 minutes at 16 kHz: 38 MB as float32, 77 MB as float64; the stream keeps a block and a window (and the
    overlap detector its chunk being filled and at most three 640 kB chunks queued or in the network: 9.6 MB without
    it, 12.3 MB with it, measured)."""
    from voicegender.audio.synth import synth_noise, synth_voice

    path = tmp_path / "long.wav"
    minutes = 10
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for i in range(minutes * 2):  # every 30 s: a voice-like burst (silero takes its start for speech), noise
            f.write(np.concatenate([synth_voice(120, 2.0, seed=i), synth_noise(28.0, seed=i, level=0.003)]))
    segment_stream([np.zeros(SR, np.float32)], constant_scorer)  # load the VAD model outside the measurement
    tracemalloc.start()
    try:
        segments, duration = segment_file(path, constant_scorer, SegmentOptions(block_s=10.0), show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert duration == pytest.approx(minutes * 60)
    assert segments[0].start_s == 0.0 and segments[-1].end_s == pytest.approx(minutes * 60)
    assert {s.label for s in segments} == {"male", "no_speech"}  # the constant scorer says male (0.25)
    assert peak < 13e6, f"peak {peak / 1e6:.1f} MB"


def test_short_speechless_and_tiny_inputs():
    segments, duration = segment_stream([np.zeros(100, np.float32)], constant_scorer)
    assert duration == pytest.approx(100 / SR) and [s.label for s in segments] == ["no_speech"]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".TextGrid"])
def test_writers_round_trip(tmp_path, suffix):
    segments = [Segment(0.0, 1.25, "no_speech", None), Segment(1.25, 4.5, "female", 0.8765),
                Segment(4.5, 9.0, "male", 0.0123), Segment(9.0, 10.0, "no_speech", None)]
    out = write_timeline(segments, tmp_path / f"t{suffix}", path="x.wav", duration_s=10.0)
    back = read_timeline(out)
    assert [(s.start_s, s.end_s, s.label) for s in back] == [(s.start_s, s.end_s, s.label) for s in segments]
    assert [s.p_female for s in back] == [s.p_female for s in segments]
    if suffix == ".TextGrid":
        from praatio import textgrid

        tg = textgrid.openTextgrid(str(out), includeEmptyIntervals=True)
        assert list(tg.tierNames) == ["gender", "p_female", "speaker"] and tg.maxTimestamp == 10.0


def test_cli_segment_formats(tmp_path, capsys, monkeypatch):
    import voicegender.listen.predict as predict

    monkeypatch.setattr(predict, "load_model", lambda model=None: constant_scorer)
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(3 * SR, np.float32), SR)
    assert main(["segment", str(audio), "--out", str(tmp_path / "t.TextGrid")]) == 0
    assert read_timeline(tmp_path / "t.TextGrid")[0].label == "no_speech"
    assert main(["segment", str(audio), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["start_s,end_s,label,p_female,speaker", "0.0,3.0,no_speech,,"]
    assert main(["segment", str(audio), "--format", "json"]) == 0
    assert '"label": "no_speech"' in capsys.readouterr().out
    assert main(["segment", str(audio), "--out", str(tmp_path / "t.xlsx")]) == 2
    assert "unknown timeline format" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "missing.wav")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_cli_segment_table(tmp_path: Path, capsys, monkeypatch):
    import voicegender.listen.predict as predict

    monkeypatch.setattr(predict, "load_model", lambda model=None: constant_scorer)
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(SR, np.float32), SR)
    assert main(["segment", str(audio)]) == 0
    assert "no_speech" in capsys.readouterr().out


def test_edge_slivers_join_the_neighbouring_speech():
    from voicegender.listen.segment import _absorb_edge_slivers

    timeline = [Segment(0.0, 0.03, "no_speech"), Segment(0.03, 5.016, "female", 0.9),
                Segment(5.016, 5.019, "no_speech")]
    assert [(s.start_s, s.end_s, s.label) for s in _absorb_edge_slivers(timeline, 5.019)] == [(0.0, 5.019, "female")]
    kept = [Segment(0.0, 0.5, "no_speech"), Segment(0.5, 2.0, "male", 0.1)]
    assert [(s.start_s, s.label) for s in _absorb_edge_slivers(kept, 2.0)] == [(0.0, "no_speech"), (0.5, "male")]


# --- Viterbi smoothing ------------------------------------------------------------------------------------------
def _path_score(evidence: np.ndarray, path: np.ndarray, penalty: float) -> float:
    return float(np.sum(np.where(path == 0, evidence, -evidence)) / 2 - penalty * np.sum(np.diff(path) != 0))


def test_viterbi_known_sequences():
    # 0 female, 1 male; evidence > 0 favours female
    assert viterbi_2state(np.array([1.0, 1.0, -0.5, 1.0]), 0.4).tolist() == [0, 0, 0, 0]  # flip gains 0.5 < 0.8
    assert viterbi_2state(np.array([1.0, 1.0, -0.5, 1.0]), 0.2).tolist() == [0, 0, 1, 0]  # 0.5 > 0.4: kept
    assert viterbi_2state(np.array([3.0, 3.0, -3.0, -3.0]), 5.0).tolist() == [0, 0, 1, 1]  # one change: 6 - 5 > 0
    assert viterbi_2state(np.array([3.0, 3.0, -3.0, -3.0]), 7.0).tolist() == [0, 0, 0, 0]  # 6 - 7 < 0; tie: female
    assert viterbi_2state(np.array([1.0, 1.0, -3.0, -3.0]), 5.0).tolist() == [1, 1, 1, 1]  # all male beats a change
    no_evidence = viterbi_2state(np.array([1.0, np.nan, np.nan, -1.0]), 0.1)  # NaN: no evidence either way
    assert no_evidence[0] == 0 and no_evidence[-1] == 1 and np.count_nonzero(np.diff(no_evidence)) == 1
    assert viterbi_2state(np.array([0.0, 0.0]), 1.0).tolist() == [0, 0]  # ties: female, no change
    assert viterbi_2state(np.zeros(0), 1.0).tolist() == []


def test_viterbi_penalty_zero_follows_the_sign():
    e = np.random.default_rng(0).normal(size=200)
    assert np.array_equal(viterbi_2state(e, 0.0), (e < 0).astype(int))


def test_viterbi_finds_the_best_path():
    """Against brute force over all 2^10 paths of short random sequences."""
    rng = np.random.default_rng(1)
    paths = np.array(list(itertools.product([0, 1], repeat=10)))
    for _ in range(30):
        e, penalty = rng.normal(size=10) * 2, float(rng.uniform(0, 3))
        best = max(_path_score(e, p, penalty) for p in paths)
        assert _path_score(e, viterbi_2state(e, penalty), penalty) == pytest.approx(best)


def test_viterbi_smooths_a_burst_keeps_a_change_and_the_penalty_decides():
    step = 0.1  # s per step; evidence = logit x seconds
    turn = np.r_[np.full(50, 2.0), np.full(5, -2.0), np.full(45, 2.0)] * step  # female, 0.5 s wrong burst
    assert viterbi_2state(turn, 1.5).tolist() == [0] * 100  # the burst is worth 1.0 < 2 x 1.5
    change = np.r_[np.full(50, 2.0), np.full(50, -2.0)] * step
    assert viterbi_2state(change, 1.5).tolist() == [0] * 50 + [1] * 50  # exactly at the change
    short = np.r_[np.full(40, 2.0), np.full(15, -2.0), np.full(45, 2.0)] * step  # a 1.5 s turn: worth 3.0
    assert viterbi_2state(short, 1.4).tolist() == [0] * 40 + [1] * 15 + [0] * 45  # 3.0 > 2.8: kept
    assert viterbi_2state(short, 1.6).tolist() == [0] * 100  # 3.0 < 3.2: smoothed


def test_timeline_viterbi_against_median_on_window_scores():
    """Known window scores (1.5 s every 0.5 s) over 20 s of speech: a burst of three confident wrong windows
    splits the turn with the median filter, not with the Viterbi; a real change and a 2 s turn are kept."""
    probs = np.full(int(20 / FRAME_S), 0.9, np.float32)
    median, viterbi = SegmentOptions(smoothing="median"), SegmentOptions()

    def labels(scored, options):
        return [(s.label, round(s.start_s, 1), round(s.end_s, 1)) for s in build_timeline(probs, scored, 20.0, options)]

    burst = _windows([(5.0, 3.0), (6.5, -4.0), (20.0, 3.0)])  # windows centred in 5.0-6.5 s say male at p=0.02
    assert [lab for lab, _, _ in labels(burst, median)] == ["female", "male", "female"]
    assert labels(burst, viterbi) == [("female", 0.0, 20.0)]  # worth ~1.7 (capped at 2) < 2 x 1.0
    assert labels(burst, SegmentOptions(switch_penalty=0.0))[1][0] == "male"  # no penalty: the burst stays
    change = _windows([(10.0, 3.0), (20.0, -3.0)])
    (_, _, end), _ = labels(change, viterbi)
    assert abs(end - 10.0) <= 0.1
    turn = _windows([(8.0, 3.0), (10.0, -3.0), (20.0, 3.0)])  # a 2 s male turn inside one speech region
    kept = labels(turn, viterbi)
    assert [lab for lab, _, _ in kept] == ["female", "male", "female"]
    assert abs(kept[1][1] - 8.0) <= 0.5 and abs(kept[1][2] - 10.0) <= 0.5
    assert labels(turn, SegmentOptions(switch_penalty=1.5)) == [("female", 0.0, 20.0)]  # worth ~2.7 < 2 x 1.5


def test_options_are_checked():
    with pytest.raises(ValueError, match="smoothing"):
        SegmentOptions(smoothing="mean")
    with pytest.raises(ValueError, match="switch_penalty"):
        SegmentOptions(switch_penalty=-1.0)


class _FlippingScorer:
    """pitch_scorer, except that the windows numbered in ``flip`` (in time order) say female at p=0.99."""

    def __init__(self, flip: set[int]) -> None:
        self.flip, self.n = flip, 0

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        p = pitch_scorer(waves)
        out = [0.99 if self.n + i in self.flip else float(x) for i, x in enumerate(p)]
        self.n += len(waves)
        return np.array(out)


@requires_espeak
def test_timeline_on_speech_burst_of_wrong_windows_and_back_to_back_change(tmp_path):
    """Synthetic speech: 8 s of male voices straight into 3 s of a female voice (one speech region). Windows 6-8
    (3.0-5.0 s) are made confidently female: the Viterbi keeps the male turn whole, the median filter splits it;
    both place the change within 0.5 s."""
    male = np.concatenate([espeak("Every morning I walk to the station and buy a newspaper before the train arrives "
                                  "at the platform", "en+m3", 30),
                           espeak("The committee will meet again next week to discuss the budget", "en+m1", 25)])
    female = espeak("She said the weather would be fine tomorrow so we planned a picnic", "en+f3", 70)
    path = tmp_path / "turns.wav"
    sf.write(path, np.concatenate([np.zeros(SR, np.float32), male, female, np.zeros(SR, np.float32)]), SR)
    change = 1 + len(male) / SR
    for smoothing, expected in (("viterbi", ["male", "female"]), ("median", ["male", "female", "male", "female"])):
        segments, _ = segment_file(path, _FlippingScorer({6, 7, 8}), SegmentOptions(smoothing=smoothing),
                                   show_progress=False)
        speech = [s for s in segments if s.label != "no_speech"]
        assert [s.label for s in speech] == expected, (smoothing, segments)
        assert abs(speech[-1].start_s - change) < 0.5


# --- speaking time ----------------------------------------------------------------------------------------------
TIMELINE = [Segment(0.0, 30.2, "no_speech"), Segment(30.2, 92.3, "female", 0.9), Segment(92.3, 180.3, "male", 0.1)]


def test_speaking_time_sums_and_shares():
    t = speaking_time(TIMELINE)
    assert (t.female_s, t.male_s, t.no_speech_s) == pytest.approx((62.1, 88.0, 30.2))
    assert t.speech_s == pytest.approx(150.1) and t.female_share == pytest.approx(62.1 / 150.1)
    assert t.female_share + t.male_share == pytest.approx(1.0)
    assert str(t) == "female 62.1 s (41 %), male 88.0 s (59 %) of 150.1 s speech; no_speech 30.2 s"
    assert t.as_dict() == {"female_s": 62.1, "male_s": 88.0, "no_speech_s": 30.2, "speech_s": 150.1,
                           "female_share": 0.4137, "male_share": 0.5863}
    silent = speaking_time([Segment(0.0, 3.0, "no_speech")])
    assert silent == SpeakingTime(0.0, 0.0, 3.0) and silent.female_share is None
    assert str(silent) == "female 0.0 s, male 0.0 s of 0.0 s speech; no_speech 3.0 s"
    assert speaking_time([]) == SpeakingTime(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="'music'"):
        speaking_time([Segment(0.0, 1.0, "music")])


def test_json_timeline_carries_the_speaking_time(tmp_path):
    import json

    out = write_timeline(TIMELINE, tmp_path / "t.json", path="x.wav", duration_s=180.3)
    data = json.loads(out.read_text())
    assert data["speaking_time"] == speaking_time(TIMELINE).as_dict()
    assert [s.label for s in read_timeline(out)] == ["no_speech", "female", "male"]


def test_cli_segment_prints_the_speaking_time(tmp_path, capsys, monkeypatch):
    import json

    import voicegender.listen.predict as predict

    monkeypatch.setattr(predict, "load_model", lambda model=None: constant_scorer)
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(3 * SR, np.float32), SR)
    assert main(["segment", str(audio), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["speaking_time"]["no_speech_s"] == 3.0
    assert captured.err.strip().splitlines()[-1] == "female 0.0 s, male 0.0 s of 0.0 s speech; no_speech 3.0 s"
    assert main(["segment", str(audio), "--out", str(tmp_path / "t.csv")]) == 0
    assert "no_speech 3.0 s" in capsys.readouterr().err
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "start_s,end_s,label,p_female,speaker"


class _ThreadRecordingModel:
    """A model that scores each clip on its own (by its pitch) and notes which thread scored how many clips."""

    name, version, metadata, speech_check, scores_clips_apart = "pitch", "", {}, None, True

    def __init__(self) -> None:
        import threading

        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def score(self, waves):
        import threading

        from voicegender.voice.model import Scores

        with self._lock:
            self.calls.append((threading.current_thread().name, len(waves)))
        return Scores(pitch_scorer(list(waves)))


def test_a_batch_of_windows_is_scored_on_two_threads_with_the_answers_of_one(tmp_path):
    import threading

    from voicegender.audio.synth import synth_voice

    # 39 s of voice: a woman, a man, a woman (about 50 windows of speech: one batch, split in two parts)
    path = tmp_path / "voices.wav"
    sf.write(path, np.concatenate([synth_voice(f0, 13.0, seed=i) for i, f0 in enumerate((220, 110, 230))]), SR)
    answers = {}
    for threads in (1, 2):
        model = _ThreadRecordingModel()
        options = SegmentOptions(speakers=False, score_threads=threads)
        answers[threads] = segment_file(path, model, options, show_progress=False)
        names = {name for name, _ in model.calls}
        assert (len(names) == 2) == (threads == 2), model.calls
        assert sum(n for _, n in model.calls) >= 2 * 8  # enough clips for two parts of SCORE_PART_MIN
    assert answers[1] == answers[2]
    voiced = [s.label for s in answers[2][0] if s.label != "no_speech"]
    assert [label for label, _ in itertools.groupby(voiced)] == ["female", "male", "female"]
    assert not [t for t in threading.enumerate() if t.name.startswith("voicegender-score")]  # let go at the end


def test_a_model_that_fails_on_a_scoring_thread_fails_the_timeline_and_lets_the_threads_go(tmp_path):
    import threading

    from voicegender.audio.synth import synth_voice
    from voicegender.errors import ModelError

    class Failing(_ThreadRecordingModel):
        def score(self, waves):
            raise ModelError("weights gone")

    path = tmp_path / "voice.wav"
    sf.write(path, synth_voice(200, 6.0), SR)
    with pytest.raises(ModelError, match="weights gone"):
        segment_file(path, Failing(), SegmentOptions(speakers=False, score_threads=2), show_progress=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("voicegender-score")]
