"""Timeline writers and readers: every format round trips with its speakers; RTTM's fields are where the NIST
format (and pyannote, dscore, md-eval) expect them; JSON carries the summary."""

from __future__ import annotations

import json

import pytest

from voicegender.listen.segment import Segment, Timeline
from voicegender.listen.speakers import Speaker
from voicegender.listen.writers import (
    as_timeline,
    read_timeline,
    rttm_file_id,
    timeline_csv,
    timeline_format,
    timeline_json,
    timeline_rttm,
    timeline_text,
    write_timeline,
)
from voicegender.voice.default_model import CHILD_FLAG

SPEAKERS = [Speaker("S1", "female", 0.91, 0.05, 5.5, 2), Speaker("S2", "male", 0.08, 0.02, 3.0, 1),
            Speaker("S3", "female", 0.77, 0.95, 2.25, 1)]  # S3: a child's voice
SEGMENTS = [Segment(0.0, 1.25, "no_speech"), Segment(1.25, 4.5, "female", 0.91, "S1"),
            Segment(4.5, 7.5, "male", 0.08, "S2"), Segment(7.5, 9.75, "female", 0.91, "S1"),
            Segment(9.75, 12.0, "female", 0.77, "S3"), Segment(12.0, 13.5, "no_speech")]
TIMELINE = Timeline(SEGMENTS, SPEAKERS, 13.5, "ge2e")
NO_SPEAKERS = Timeline([Segment(0.0, 1.0, "no_speech"), Segment(1.0, 3.5, "female", 0.8),
                        Segment(3.5, 6.0, "male", 0.2)], [], 6.0)


def _key(s: Segment) -> tuple:
    return s.start_s, s.end_s, s.label, s.speaker


@pytest.mark.parametrize("suffix", [".csv", ".json", ".TextGrid"])
def test_every_segment_round_trips_with_its_speaker(tmp_path, suffix):
    out = write_timeline(TIMELINE, tmp_path / f"t{suffix}", path="talk.wav")
    back = read_timeline(out)
    assert [_key(s) for s in back] == [_key(s) for s in SEGMENTS]
    assert [s.p_female for s in back] == [s.p_female for s in SEGMENTS]


def test_rttm_round_trips_the_speech_with_its_speakers(tmp_path):
    out = write_timeline(TIMELINE, tmp_path / "t.rttm", path="talk.wav")
    back = read_timeline(out)
    speech = [s for s in SEGMENTS if s.label != "no_speech"]
    # who spoke when comes back; the child's gender is not in RTTM (its stype is "child"), nor p_female
    assert [(s.start_s, s.end_s, s.speaker) for s in back] == [(s.start_s, s.end_s, s.speaker) for s in speech]
    assert [s.label for s in back] == ["female", "male", "female", "child"]
    assert all(s.p_female is None for s in back)


def test_rttm_fields_follow_the_nist_format():
    lines = timeline_rttm(TIMELINE, "/recordings/board meeting 2.wav").splitlines()
    assert len(lines) == 4  # one per speech segment, no_speech left out
    fields = lines[0].split(" ")
    # type, file id, channel, onset, duration, orthography, speaker type, name, confidence, lookahead
    assert fields == ["SPEAKER", "board_meeting_2", "1", "1.250", "3.250", "<NA>", "adult_female", "S1", "<NA>",
                      "<NA>"]
    assert lines[1].split()[3:8] == ["4.500", "3.000", "<NA>", "adult_male", "S2"]
    assert all(len(line.split(" ")) == 10 for line in lines)


def test_rttm_speaker_type_says_child_when_p_child_reaches_the_flag():
    types = {line.split()[7]: line.split()[6] for line in timeline_rttm(TIMELINE, "x.wav").splitlines()}
    assert types == {"S1": "adult_female", "S2": "adult_male", "S3": "child"}
    at_flag = Timeline([Segment(0.0, 2.0, "male", 0.1, "S1")], [Speaker("S1", "male", 0.1, CHILD_FLAG, 2.0, 1)], 2.0)
    below = Timeline([Segment(0.0, 2.0, "male", 0.1, "S1")],
                     [Speaker("S1", "male", 0.1, CHILD_FLAG - 0.01, 2.0, 1)], 2.0)
    assert timeline_rttm(at_flag, "x.wav").split()[6] == "child"
    assert timeline_rttm(below, "x.wav").split()[6] == "adult_male"


def test_rttm_without_speakers_names_the_gender(tmp_path):
    text = timeline_rttm(NO_SPEAKERS, "a.wav")
    assert [line.split()[6:8] for line in text.splitlines()] == [["adult_female", "female"], ["adult_male", "male"]]
    out = write_timeline(NO_SPEAKERS, tmp_path / "t.rttm", path="a.wav")
    assert [_key(s) for s in read_timeline(out)] == [(1.0, 3.5, "female", None), (3.5, 6.0, "male", None)]
    assert timeline_rttm(Timeline([Segment(0.0, 2.0, "no_speech")], [], 2.0), "a.wav") == ""


def test_rttm_file_id_and_rounding():
    assert rttm_file_id("/a/b/my talk.final.flac") == "my_talk.final"
    assert rttm_file_id("") == "<NA>"
    odd = Timeline([Segment(0.1234, 1.9876, "male", 0.1, "S1")], [Speaker("S1", "male", 0.1, None, 1.8, 1)], 2.0)
    onset, duration = timeline_rttm(odd, "x.wav").split()[3:5]
    assert (onset, duration) == ("0.123", "1.865")  # onset + duration = the rounded end (1.988)


def test_rttm_reader_takes_other_tools_files(tmp_path):
    path = tmp_path / "ref.rttm"
    path.write_text(";; a comment\n"
                    "SPEAKER rec 1 5.00 1.50 <NA> <NA> spk_b <NA> <NA>\n"
                    "SPEAKER rec 1 0.50 2.25 <NA> <NA> spk_a <NA> <NA>\n"
                    "SPKR-INFO rec 1 <NA> <NA> <NA> adult_male spk_a <NA> <NA>\n")
    back = read_timeline(path)
    assert [_key(s) for s in back] == [(0.5, 2.75, "unknown", "spk_a"), (5.0, 6.5, "unknown", "spk_b")]
    path.write_text("SPEAKER rec 1 zero 1.5\n")
    with pytest.raises(ValueError, match="line 1 is not an RTTM SPEAKER line"):
        read_timeline(path)


def test_csv_has_a_speaker_column():
    lines = timeline_csv(TIMELINE).splitlines()
    assert lines[0] == "start_s,end_s,label,p_female,speaker"
    assert lines[1] == "0.0,1.25,no_speech,,"
    assert lines[2] == "1.25,4.5,female,0.91,S1"
    assert timeline_csv(NO_SPEAKERS).splitlines()[2] == "1.0,3.5,female,0.8,"


def test_json_carries_the_summary_and_the_speakers():
    data = json.loads(timeline_json(TIMELINE, "talk.wav"))
    assert list(data) == ["path", "duration_s", "speaking_time", "summary", "speakers", "segments", "overlaps"]
    assert data["overlaps"] == []  # none marked in this timeline (tests/speech/test_overlap.py has some)
    assert data["path"] == "talk.wav" and data["duration_s"] == 13.5
    assert data["speaking_time"] == TIMELINE.speaking_time().as_dict()
    assert data["summary"] == json.loads(json.dumps(TIMELINE.summary()))
    summary = data["summary"]
    assert (summary["speakers"], summary["female_speakers"], summary["male_speakers"]) == (3, 2, 1)
    assert summary["female_speaker_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["female_share"] == pytest.approx(7.75 / 10.75, abs=1e-4)  # of speaking time
    assert [s["speaker"] for s in data["speakers"]] == ["S1", "S2", "S3"]
    assert data["speakers"][0] == {"speaker": "S1", "label": "female", "p_female": 0.91, "p_child": 0.05,
                                   "speech_s": 5.5, "turns": 2}
    assert summary["by_speaker"] == data["speakers"]
    assert [s["speaker"] for s in data["segments"]] == [None, "S1", "S2", "S1", "S3", None]


def test_textgrid_has_gender_p_female_and_speaker_tiers(tmp_path):
    from praatio import textgrid

    out = write_timeline(TIMELINE, tmp_path / "t.TextGrid")
    tg = textgrid.openTextgrid(str(out), includeEmptyIntervals=True)
    assert list(tg.tierNames) == ["gender", "p_female", "speaker"] and tg.maxTimestamp == 13.5
    assert [e.label for e in tg.getTier("speaker").entries] == ["", "S1", "S2", "S1", "S3", ""]


def test_a_list_of_segments_is_a_timeline_without_speakers(tmp_path):
    t = as_timeline(NO_SPEAKERS.segments, duration_s=8.0)
    assert t.speakers == [] and t.duration_s == 8.0 and as_timeline(NO_SPEAKERS.segments).duration_s == 6.0
    assert as_timeline(TIMELINE) is TIMELINE
    out = write_timeline(NO_SPEAKERS.segments, tmp_path / "t.json", duration_s=8.0)
    assert json.loads(out.read_text())["duration_s"] == 8.0


def test_formats_by_name_and_option():
    assert timeline_format("x.rttm") == "rttm" and timeline_format("x.TextGrid") == "textgrid"
    assert timeline_format("-", "RTTM") == "rttm"
    with pytest.raises(ValueError, match="use .csv, .json, .TextGrid or .rttm"):
        timeline_format("x.lab")
    with pytest.raises(ValueError, match="its name says rttm, --format says json"):
        timeline_format("x.rttm", "json")
    assert timeline_text(TIMELINE, "rttm", "talk.wav") == timeline_rttm(TIMELINE, "talk.wav")
    assert timeline_text(TIMELINE, "textgrid").startswith('File type = "ooTextFile"')


def test_write_timeline_names_rttm_lines_after_the_audio_or_the_file(tmp_path):
    out = write_timeline(TIMELINE, tmp_path / "out.rttm", path="/data/Interview 3.mp3")
    assert {line.split()[1] for line in out.read_text().splitlines()} == {"Interview_3"}
    out = write_timeline(TIMELINE, tmp_path / "fallback.rttm")
    assert {line.split()[1] for line in out.read_text().splitlines()} == {"fallback"}
