"""`voicegender speakers` and `voicegender audit` on corpora that go wrong: clips that fail (a speaker none of whose
clips could be read is `failed`, never silence), speaker folders named in bytes that are not UTF-8 (written with the
bytes escaped, the scores kept), and manifest rows that cannot be clips (one line naming the file and the line)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import write_voice

from voicegender.cli import main


def _rows(text: str) -> dict[str, dict]:
    return {r["speaker"]: r for r in csv.DictReader(io.StringIO(text))}


def test_a_speaker_whose_every_clip_failed_is_failed_and_the_others_keep_their_answers(tmp_path, capsys):
    write_voice(tmp_path / "anna.wav", "female", seconds=1.5)
    (tmp_path / "broken.wav").write_text("not audio")
    sf.write(tmp_path / "silence.wav", np.zeros(16_000, np.float32), 16_000)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,gender\nanna.wav,anna,female\nbroken.wav,anna,female\nmissing.wav,gone,male\n"
                        "silence.wav,quiet,male\n")
    assert main(["speakers", str(manifest), "-f", "csv", "--no-pitch"]) == 0
    captured = capsys.readouterr()
    rows = _rows(captured.out)
    assert [(s, r["answer"], r["clips"], r["answered"], r["failed"]) for s, r in rows.items()] == [
        ("anna", "female", "2", "1", "1"), ("gone", "failed", "1", "0", "1"), ("quiet", "no_speech", "1", "0", "0")]
    assert captured.err.strip().splitlines()[-1] == ("2 of 4 clip(s) failed ('failed' column); 1 speaker(s) whose "
                                                     "every clip failed are answered failed, the others from their "
                                                     "other clips")
    assert main(["audit", str(manifest), "--no-pitch"]) == 0
    captured = capsys.readouterr()
    assert "failed" in captured.out
    assert captured.err.strip().endswith("3 speakers: 0 flagged, 1 whose every clip failed, 1 without speech, "
                                         "1 agree with their label")


def test_a_corpus_none_of_whose_clips_can_be_read_is_an_error_after_its_rows_are_written(tmp_path, capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,gender\nmissing.wav,A,female\nempty.wav,B,male\n")
    out = tmp_path / "spk.csv"
    for command in (["speakers", "-o", str(out)], ["audit", "-f", "json"]):
        assert main([*command, str(manifest), "--no-pitch"]) == 1
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == f"error: {manifest}: every clip failed (2 of 2); no speaker is answered"
        assert "answered from" not in err and "without speech" not in err
    assert [(r["answer"], r["failed"]) for r in _rows(out.read_text()).values()] == [("failed", "1")] * 2


def test_speaker_folders_named_in_bytes_that_are_not_utf8_are_written_escaped(tmp_path, capsys):
    name = b"sp\xff".decode("utf-8", "surrogateescape")  # how Python reads such a folder's name
    voices = tmp_path / "voices"
    write_voice(voices / "female" / "x" / "a.wav", "male", seconds=1.5)  # a man labelled female: flagged
    write_voice(voices / "male" / "bob" / "a.wav", "male", seconds=1.5)
    try:
        (voices / "female" / "x").rename(voices / "female" / name)  # (soundfile cannot write to such a path)
    except OSError:
        pytest.skip("this file system takes only UTF-8 names")
    out = tmp_path / "spk.csv"
    assert main(["speakers", str(voices), "-o", str(out), "--no-pitch"]) == 0
    assert list(_rows(out.read_bytes().decode("utf-8"))) == ["sp\\udcff", "bob"]
    assert main(["speakers", str(voices), "-f", "json", "--no-pitch"]) == 0
    assert [json.loads(line)["speaker"] for line in capsys.readouterr().out.splitlines()] == [name, "bob"]
    assert main(["audit", str(voices), "--html", str(tmp_path / "page"), "--no-pitch"]) == 0
    assert "sp\\udcff" in capsys.readouterr().out
    assert "<h3>sp\\udcff</h3>" in (tmp_path / "page" / "index.html").read_bytes().decode("utf-8")


def test_speaker_names_are_plain_text_in_the_table(tmp_path, capsys):
    write_voice(tmp_path / "a.wav", "female", seconds=1.5)
    (tmp_path / "m.csv").write_text("path,speaker,gender\na.wav,[/b],female\n")
    assert main(["speakers", str(tmp_path / "m.csv"), "--no-pitch"]) == 0  # not a closing tag for rich's markup
    assert "[/b]" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("path,speaker,gender\na.wav,,female\nb.wav,,male\n", "empty speaker on lines 2, 3"),
    ("path,speaker,gender,path\na.wav,A,female,x\n", "the header names column 'path' more than once"),
    ("path,speaker,gender\na.wav\n", "line 2 has 1 field, the header has 3"),
    ('path,speaker,gender\n"a.wav,A,female\n', "unterminated quote from line 2"),
    ("path,speaker,gender\na.wav,A,female\na.wav,B,male\n", "a.wav is listed with different speakers"),
])
def test_manifest_rows_that_cannot_be_clips_are_one_line_errors(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    for command in ("speakers", "audit"):
        assert main([command, str(bad)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and message in lines[0]


def test_a_repeated_manifest_row_counts_once(tmp_path, capsys):
    write_voice(tmp_path / "a.wav", "female", seconds=1.5)
    (tmp_path / "m.csv").write_text("path,speaker,gender\na.wav,A,female\na.wav,A,female\n")
    assert main(["speakers", str(tmp_path / "m.csv"), "-f", "csv", "--no-pitch"]) == 0
    captured = capsys.readouterr()
    assert _rows(captured.out)["A"]["clips"] == "1"
    assert "1 row(s) repeat an earlier row's path, speaker and gender (line 3); each clip counts once" in captured.err
