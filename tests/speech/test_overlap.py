"""Overlapped speech (pyannote/segmentation-3.0 via onnxruntime): two real voices talking at once are found, one
after the other are not; streaming equals one pass; regions and the speakers named in them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import overlapping_voices

from voicegender.listen.segment import Overlap, Segment, Timeline, overlaps_with_speakers
from voicegender.listen.speakers import Speaker
from voicegender.speech import overlap
from voicegender.speech.overlap import (
    FRAME_DURATION_S,
    FRAME_STEP_S,
    OverlapDetector,
    overlap_probabilities,
    overlap_regions,
)

SR = 16_000


def test_two_voices_at_once_are_found_and_one_after_the_other_are_not():
    together, a, b = overlapping_voices(1.5)
    found = overlap_regions(overlap_probabilities(together))
    assert len(found) == 1, found
    start, end = found[0]
    assert a - 0.3 <= start and end <= b + 0.3, (found, a, b)
    assert min(end, b) - max(start, a) >= 0.5 * (b - a), (found, a, b)  # most of the overlap is marked
    apart, _, _ = overlapping_voices(-0.5)  # half a second of silence between them
    assert overlap_regions(overlap_probabilities(apart)) == []


def test_fed_in_odd_blocks_it_equals_one_pass():
    x, _, _ = overlapping_voices(1.5)
    x = np.concatenate([x, x, x])  # ~22 s: three chunks and a last one ending at the end
    whole = overlap_probabilities(x)
    detector = OverlapDetector()
    for i in range(0, len(x), 7777):
        detector.feed(x[i:i + 7777])
    assert np.array_equal(detector.finish(), whole)
    assert len(whole) == int(np.ceil(len(x) / SR / FRAME_STEP_S))


def test_short_and_empty_audio():
    assert len(overlap_probabilities(np.zeros(SR, np.float32))) == int(np.ceil(1 / FRAME_STEP_S))
    assert overlap_probabilities(np.zeros(0, np.float32)).shape == (0,)
    assert overlap_regions(overlap_probabilities(np.zeros(3 * SR, np.float32))) == []


def test_regions_from_probabilities():
    p = np.zeros(100, np.float32)
    p[10:20] = 0.9  # 10 frames: 0.169 s
    p[50:53] = 0.6  # 3 frames: 0.05 s, under the minimum
    (start, end), = overlap_regions(p)
    centre = FRAME_DURATION_S / 2
    assert start == pytest.approx(10 * FRAME_STEP_S + centre - FRAME_STEP_S / 2, abs=1e-4)
    assert end == pytest.approx(19 * FRAME_STEP_S + centre + FRAME_STEP_S / 2, abs=1e-4)
    assert len(overlap_regions(p, min_duration_s=0.0)) == 2
    assert overlap_regions(p, threshold=0.95) == []


def test_the_speakers_named_in_an_overlap_are_the_nearest_two():
    segments = [Segment(0.0, 1.0, "no_speech"), Segment(1.0, 4.0, "female", 0.9, "S1"),
                Segment(4.0, 6.0, "male", 0.1, "S2"), Segment(6.0, 9.0, "female", 0.8, "S3"),
                Segment(9.0, 10.0, "no_speech")]
    at_change, inside, nowhere = overlaps_with_speakers([(3.7, 4.2), (7.0, 7.5), (12.0, 12.5)], segments)[:2] + [None]
    assert (at_change.speakers, at_change.labels) == (("S1", "S2"), ("female", "male"))  # S1 has more speech near
    assert (inside.speakers, inside.labels) == (("S3",), ("female",))  # no one else within 0.5 s
    assert len(overlaps_with_speakers([(12.0, 12.5)], segments)) == 0


def test_json_and_textgrid_carry_the_overlaps_and_rttm_one_line_per_segment(tmp_path):
    import json

    from voicegender.listen.writers import read_timeline, timeline_json, timeline_rttm, write_textgrid

    segments = [Segment(0.0, 4.0, "female", 0.9, "S1"), Segment(4.0, 6.0, "male", 0.1, "S2")]
    speakers = [Speaker("S1", "female", 0.9, 0.0, 4.0, 1), Speaker("S2", "male", 0.1, 0.0, 2.0, 1)]
    timeline = Timeline(segments, speakers, 6.0, "ecapa", [Overlap(3.7, 4.2, ("S1", "S2"), ("female", "male"))])
    data = json.loads(timeline_json(timeline))
    assert data["overlaps"] == [{"start_s": 3.7, "end_s": 4.2, "speakers": ["S1", "S2"], "labels": ["female", "male"]}]
    assert data["summary"]["overlap_s"] == 0.5
    out = write_textgrid(timeline, tmp_path / "t.TextGrid")
    assert '"overlap"' in out.read_text() and '"S1+S2"' in out.read_text()
    assert [s.label for s in read_timeline(out)] == ["female", "male"]  # the gender tier reads back as before
    lines = [line.split() for line in timeline_rttm(timeline, "talk.wav").splitlines()]
    assert [(f[3], f[4], f[7]) for f in lines] == [("0.000", "4.000", "S1"), ("4.000", "2.000", "S2")]


def test_segment_marks_the_overlap_and_leaves_the_segments_as_they_were(tmp_path):
    """The whole pipeline (speakers by the gender model's own embeddings, as on a machine without the speaker
    encoder): the stretch where the two voices overlap is marked, twice in a recording that holds the conversation
    twice; without overlaps the segments are the same and none is marked."""
    import soundfile as sf

    from voicegender.listen.segment import SegmentOptions, timeline_file

    once, a, b = overlapping_voices(1.5)
    gap = np.zeros(SR // 2, np.float32)
    path = tmp_path / "twice.wav"
    sf.write(path, np.concatenate([once, gap, once]), SR)
    marked = timeline_file(path, None, SegmentOptions(), show_progress=False, encoder=None)
    plain = timeline_file(path, None, SegmentOptions(overlaps=False), show_progress=False, encoder=None)
    assert [(s.start_s, s.end_s, s.label, s.speaker) for s in marked.segments] == \
           [(s.start_s, s.end_s, s.label, s.speaker) for s in plain.segments]
    assert plain.overlaps == []
    second = (len(once) + len(gap)) / SR
    assert len(marked.overlaps) == 2, marked.overlaps
    for o, (start, end) in zip(marked.overlaps, [(a, b), (a + second, b + second)], strict=True):
        assert start - 0.3 <= o.start_s and o.end_s <= end + 0.3 and o.speakers and o.speakers[0].startswith("S")
    assert marked.summary()["overlap_s"] == pytest.approx(sum(o.end_s - o.start_s for o in marked.overlaps), abs=1e-3)


def test_a_reading_given_up_leaves_no_thread_behind_and_a_pause_changes_nothing(monkeypatch):
    import threading
    import time

    monkeypatch.setattr(overlap, "WORKER_IDLE_S", 0.05)
    x, _, _ = overlapping_voices(1.5)
    x = np.concatenate([x, x, x])
    detector = OverlapDetector()
    detector.feed(x[:len(x) // 2])  # one chunk to the network's thread, then nothing for a while

    def workers() -> int:
        return sum(t.name == "voicegender-overlaps" for t in threading.enumerate())

    deadline = time.monotonic() + 5
    while workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert workers() == 0  # the thread ended while idle
    detector.feed(x[len(x) // 2:])  # and the reading goes on: another thread, the chunks in order
    assert np.array_equal(detector.finish(), overlap_probabilities(x))


def test_a_reading_that_fails_stops_the_overlap_thread_at_once():
    import threading

    from voicegender.listen.segment import segment_stream

    x, _, _ = overlapping_voices(1.5)

    def blocks():
        yield np.concatenate([x, x])  # a chunk for the network's thread
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="disk went away"):
        segment_stream(blocks())
    assert not [t for t in threading.enumerate() if t.name == "voicegender-overlaps"]


def _powerset(classes: list[int]) -> np.ndarray:
    """Frames of sure powerset classes (0 nobody, 1-3 one local speaker, 4-6 two)."""
    return np.eye(7)[classes]


def test_local_speaker_change_is_one_voice_ending_where_another_starts():
    from voicegender.speech.overlap import CHANGE_HALF_FRAMES as H
    from voicegender.speech.overlap import local_speaker_change

    change = local_speaker_change(_powerset([1] * 100 + [2] * 100))
    assert int(np.argmax(change)) == 100 and change[100] == pytest.approx(1.0)
    assert change[:100 - H].max() == 0.0 and change[100 + H:].max() == 0.0
    assert local_speaker_change(_powerset([0] * 100 + [1] * 100)).max() == 0.0  # a voice after silence: no change
    assert local_speaker_change(_powerset([1] * 100 + [0] * 100)).max() == 0.0  # ... nor silence after a voice
    through_overlap = local_speaker_change(_powerset([1] * 100 + [4] * 10 + [2] * 100))  # 1, then 1 and 2, then 2
    assert 100 <= int(np.argmax(through_overlap)) <= 110 and through_overlap.max() >= 0.7
    assert local_speaker_change(_powerset([1] * 100 + [2] * 100), half=150).max() == 0.0  # shorter than 2 halves


def test_local_speaker_change_between_two_real_voices_is_at_the_pause_between_them():
    x, man_starts, woman_ends = overlapping_voices(-0.3)  # the woman, 0.3 s of silence, the man
    detector = OverlapDetector()
    detector.feed(x)
    detector.finish()
    change = detector.speaker_change
    assert change.scores.dtype == np.uint8  # a byte a frame
    times = change.first_s + np.arange(len(change.scores)) * change.step_s
    scores = change.at(times)
    peak = times[int(np.argmax(scores))]
    assert woman_ends - 0.15 <= peak <= man_starts + 0.15 and scores.max() >= 0.3
    far = np.abs(times - (woman_ends + man_starts) / 2) > 0.6
    assert scores[far].max() < 0.1


def test_local_change_at_times_is_the_nearest_frames():
    scores = np.zeros(100, np.float32)
    scores[50] = 0.8
    change = overlap.LocalChange(scores)
    at50 = change.first_s + 50 * change.step_s
    assert change.at(np.array([at50, at50 + 0.4 * change.step_s])).tolist() == pytest.approx([0.8, 0.8])
    assert change.at(np.array([at50 + 0.6 * change.step_s]))[0] == 0.0
    assert change.at(np.array([-5.0, 1e4])).tolist() == [0.0, 0.0]
    assert overlap.LocalChange(np.zeros(0, np.float32)).at(np.array([1.0])).tolist() == [0.0]
    assert overlap.LocalChange(np.array([0, 255, 51], np.uint8)).at(
        change.first_s + np.arange(3) * change.step_s).tolist() == pytest.approx([0.0, 1.0, 0.2])  # steps of 1/255
