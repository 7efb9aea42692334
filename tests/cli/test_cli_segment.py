"""`voicegender segment` with speakers: RTTM / JSON / CSV / the table on a conversation of known turns (espeak-ng
voices, a pitch model whose window embeddings tell the two voices apart), and --no-speakers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import espeak, overlapping_voices, pitch_scorer, requires_espeak

from voicegender.cli import main
from voicegender.voice.model import Scores

SR = 16_000
TURNS = [("male", "Every morning I walk to the station and buy a newspaper."),
         ("female", "She said the weather would be fine tomorrow."),
         ("male", "The committee will meet again next week."),
         ("female", "We planned a picnic by the river for the afternoon.")]


class PitchVoices:
    """pitch_scorer as a Model whose window embeddings are one-hot by gender: two voices, told apart."""

    name, version, metadata = "pitch-voices", "", {}
    speech_check = None
    scores_clips_apart = True

    def score(self, waves16k) -> Scores:
        p = pitch_scorer(list(waves16k))
        return Scores(p, None, np.stack([p >= 0.5, p < 0.5], axis=1).astype(np.float32))


@pytest.fixture(scope="module")
def conversation(tmp_path_factory) -> Path:
    """Four turns (male, female, male, female) with 0.6 s pauses, as "a talk.wav" (a blank in the name)."""
    pause = np.zeros(int(0.6 * SR), np.float32)
    parts = [pause]
    for gender, text in TURNS:
        voice, pitch = ("en+f3", 70) if gender == "female" else ("en+m3", 30)
        parts += [espeak(text, voice, pitch, trim=True), pause]
    path = tmp_path_factory.mktemp("conv") / "a talk.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path


@pytest.fixture
def pitch_voices(monkeypatch):
    import voicegender.listen.segment as segment

    monkeypatch.setattr(segment, "load_model", lambda model=None: PitchVoices())
    monkeypatch.setattr(segment, "speaker_encoder", lambda: None)  # the model's embeddings, whatever is cached


@requires_espeak
def test_rttm_names_each_speaker_with_its_type(conversation, pitch_voices, capsys):
    assert main(["-q", "segment", str(conversation), "--format", "rttm"]) == 0
    captured = capsys.readouterr()
    lines = [line.split(" ") for line in captured.out.splitlines()]
    assert len(lines) == 4 and all(len(f) == 10 and f[:3] == ["SPEAKER", "a_talk", "1"] for f in lines)
    assert [(f[6], f[7]) for f in lines] == [("adult_male", "S1"), ("adult_female", "S2"), ("adult_male", "S1"),
                                            ("adult_female", "S2")]
    onsets = [float(f[3]) for f in lines]
    assert onsets == sorted(onsets) and onsets[0] == pytest.approx(0.6, abs=0.5)
    assert "2 speakers (1 woman, 1 man), women " in captured.err


@requires_espeak
def test_json_has_the_speakers_and_the_summary(conversation, pitch_voices, capsys, tmp_path):
    out = tmp_path / "t.json"
    assert main(["-q", "segment", str(conversation), "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(s["speaker"], s["label"], s["turns"]) for s in data["speakers"]] == [("S1", "male", 2),
                                                                                  ("S2", "female", 2)]
    summary = data["summary"]
    assert (summary["speakers"], summary["female_speakers"], summary["male_speakers"]) == (2, 1, 1)
    assert summary["female_speaker_share"] == 0.5 and summary["speaker_embedding"] == "ge2e"
    speech = [s for s in data["segments"] if s["label"] != "no_speech"]
    assert [s["speaker"] for s in speech] == ["S1", "S2", "S1", "S2"]
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"2 speakers (1 woman, 1 man), women {100 * summary['female_share']:.0f} % of speaking time")


@requires_espeak
def test_table_has_a_speaker_column_and_a_speaker_table(conversation, pitch_voices, capsys):
    assert main(["-q", "segment", str(conversation)]) == 0
    shown = capsys.readouterr().out
    header = next(line for line in shown.splitlines() if "start_s" in line)
    assert header.split("┃")[1:-1] == [" start_s ", " end_s ", " label     ", " p_female ", " speaker "]
    rows = [line for line in shown.splitlines() if line.startswith("│ S")]  # the per-speaker table
    assert [row.split("│")[1:3] for row in rows] == [[" S1      ", " male   "], [" S2      ", " female "]]
    assert all(row.rstrip("│ ").endswith("2") for row in rows)  # turns


@requires_espeak
def test_no_speakers_leaves_the_speaker_column_empty(conversation, pitch_voices, capsys):
    assert main(["-q", "segment", str(conversation), "--no-speakers", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert [r["label"] for r in rows if r["label"] != "no_speech"] == ["male", "female", "male", "female"]
    assert {r["speaker"] for r in rows} == {""}
    assert "speakers" not in captured.err.strip().splitlines()[-1]
    assert main(["-q", "segment", str(conversation), "--no-speakers", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["speakers"] == [] and data["summary"]["speakers"] == 0
    assert {s["speaker"] for s in data["segments"]} == {None}
    assert main(["-q", "segment", str(conversation), "--no-speakers", "--format", "rttm"]) == 0
    assert [line.split()[7] for line in capsys.readouterr().out.splitlines()] == ["male", "female", "male", "female"]


@requires_espeak
@pytest.mark.parametrize("args, speakers", [(["--num-speakers", "1"], ["S1"] * 4),
                                            (["--max-speakers", "1"], ["S1"] * 4),
                                            (["--num-speakers", "2"], ["S1", "S2", "S1", "S2"]),
                                            (["--min-speakers", "4"], ["S1", "S2", "S3", "S4"])])
def test_a_number_of_speakers_given_is_the_number_found(conversation, pitch_voices, capsys, args, speakers):
    """Two voices, four turns: told there is one speaker (or at most one), all four turns are S1's; at least
    four, each turn is its own speaker (however clearly two voices take turns)."""
    assert main(["-q", "segment", str(conversation), "--format", "rttm", *args]) == 0
    assert [line.split()[7] for line in capsys.readouterr().out.splitlines()] == speakers


@pytest.mark.parametrize("given", [3, 4])  # found by itself: 2 (the women, the men)
def test_predict_gives_a_long_recording_as_many_speakers_as_it_is_told(tmp_path, capsys, given):
    """The bundled voices taking turns (two women, two men; 18 s of speech, so predict draws the timeline): with
    --num-speakers N, its JSON lists exactly N speakers, whose speech adds up to the recording's."""
    from voicegender.audio.decode import load_audio
    from voicegender.examples import EXAMPLES_DIR

    voices = [load_audio(EXAMPLES_DIR / f"espeak_{name}.ogg").samples
              for name in ("female_en", "male_en", "female_de", "male_de")]
    pause = np.zeros(SR, np.float32)
    path = tmp_path / "call.flac"
    sf.write(path, np.concatenate([part for v in voices for part in (v, pause)]), SR)
    assert main(["-q", "predict", str(path), "--format", "json", "--num-speakers", str(given)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [s["speaker"] for s in answer["speakers"]] == [f"S{i}" for i in range(1, given + 1)]
    assert sum(s["speech_s"] for s in answer["speakers"]) == pytest.approx(answer["speech_s"], abs=0.01)


def test_two_voices_at_once_are_in_the_json_the_table_and_the_summary(tmp_path, capsys):
    """Two real voices (the Common Voice examples) overlapping for 1.5 s: JSON lists the stretch, the table and
    the summary line say it; --no-overlaps marks none."""
    audio, start, end = overlapping_voices(1.5)
    path = tmp_path / "two.wav"
    sf.write(path, audio, SR)
    assert main(["-q", "segment", str(path), "-f", "json"]) == 0
    captured = capsys.readouterr()
    overlaps = json.loads(captured.out)["overlaps"]
    assert len(overlaps) == 1 and start - 0.3 <= overlaps[0]["start_s"] and overlaps[0]["end_s"] <= end + 0.3
    assert "two voices at once for" in captured.err
    assert main(["-q", "segment", str(path)]) == 0
    assert "two voices at once" in capsys.readouterr().out
    assert main(["-q", "segment", str(path), "-f", "json", "--no-overlaps"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["overlaps"] == [] and "two voices at once" not in captured.err
