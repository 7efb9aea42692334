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
