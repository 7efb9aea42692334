"""segment: boundaries of a concatenation of known clips, smoothing, bounded memory, timeline writers."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import espeak as _espeak
from conftest import pitch_scorer, requires_espeak

from voicegender.cli import main
from voicegender.export import read_timeline, write_timeline
from voicegender.segment import Segment, SegmentOptions, build_timeline, segment_file, segment_stream
from voicegender.vad import FRAME_S

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


def test_long_file_in_bounded_memory(tmp_path):
    """10 minutes at 16 kHz: 38 MB as float32, 77 MB as float64; the stream keeps a block and a window."""
    from voicegender.synth import synth_noise, synth_voice

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
    assert peak < 10e6, f"peak {peak / 1e6:.1f} MB"


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
        assert list(tg.tierNames) == ["gender", "p_female"] and tg.maxTimestamp == 10.0


def test_cli_segment_formats(tmp_path, capsys, monkeypatch):
    import voicegender.predict as predict

    monkeypatch.setattr(predict, "load_model", lambda model=None: constant_scorer)
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(3 * SR, np.float32), SR)
    assert main(["segment", str(audio), "--out", str(tmp_path / "t.TextGrid")]) == 0
    assert read_timeline(tmp_path / "t.TextGrid")[0].label == "no_speech"
    assert main(["segment", str(audio), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["start_s,end_s,label,p_female", "0.0,3.0,no_speech,"]
    assert main(["segment", str(audio), "--format", "json"]) == 0
    assert '"label": "no_speech"' in capsys.readouterr().out
    assert main(["segment", str(audio), "--out", str(tmp_path / "t.xlsx")]) == 2
    assert "unknown timeline format" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "missing.wav")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_cli_segment_table(tmp_path: Path, capsys, monkeypatch):
    import voicegender.predict as predict

    monkeypatch.setattr(predict, "load_model", lambda model=None: constant_scorer)
    audio = tmp_path / "quiet.wav"
    sf.write(audio, np.zeros(SR, np.float32), SR)
    assert main(["segment", str(audio)]) == 0
    assert "no_speech" in capsys.readouterr().out


def test_edge_slivers_join_the_neighbouring_speech():
    from voicegender.segment import _absorb_edge_slivers

    timeline = [Segment(0.0, 0.03, "no_speech"), Segment(0.03, 5.016, "female", 0.9),
                Segment(5.016, 5.019, "no_speech")]
    assert [(s.start_s, s.end_s, s.label) for s in _absorb_edge_slivers(timeline, 5.019)] == [(0.0, 5.019, "female")]
    kept = [Segment(0.0, 0.5, "no_speech"), Segment(0.5, 2.0, "male", 0.1)]
    assert [(s.start_s, s.label) for s in _absorb_edge_slivers(kept, 2.0)] == [(0.0, "no_speech"), (0.5, "male")]
