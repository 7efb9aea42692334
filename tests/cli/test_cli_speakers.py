"""`voicegender speakers` and `voicegender audit` on a corpus of synthetic voices (the shipped model): the CSV / JSON
columns, the table, the page, and one-line errors for bad corpora and output files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import SPEAKER_CORPUS, write_speaker_corpus, write_voice

from voicegender.cli import main
from voicegender.listen.label_audit import AuditRule
from voicegender.listen.speaker_answers import FIELDS


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return write_speaker_corpus(tmp_path_factory.mktemp("cli_speakers"))


def test_speakers_csv_and_json_have_the_fields(manifest, capsys):
    assert main(["speakers", str(manifest), "--format", "csv", "--no-pitch"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert tuple(rows[0]) == FIELDS
    assert [(r["speaker"], r["answer"]) for r in rows] == [("f1", "female"), ("f2", "female"), ("m1", "male"),
                                                           ("m2", "male")]
    assert all(r["verdict"] == "" and r["pitch_hz"] == "" for r in rows)
    assert main(["speakers", str(manifest), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [tuple(r) for r in rows] == [FIELDS] * 4
    assert rows[3]["label"] == "female" and rows[3]["against_label"] == 3 and rows[3]["pitch_hz"] > 100


def test_audit_table_lists_the_flagged_speaker_and_the_summary(manifest, capsys):
    assert main(["audit", str(manifest)]) == 0
    captured = capsys.readouterr()
    assert "m2" in captured.out and "flagged" in captured.out and "f1" not in captured.out
    assert "3 speaker(s) whose audio agrees with the label not shown" in captured.out
    assert captured.err.strip().endswith("4 speakers: 1 flagged, 3 agree with their label")


def test_audit_out_and_html_refuse_to_replace_without_force(manifest, tmp_path, capsys):
    out = tmp_path / "audit.jsonl"
    page = tmp_path / "page"
    assert main(["audit", str(manifest), "--out", str(out), "--html", str(page), "--no-pitch"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["speaker"] for r in rows][0] == "m2" and [r["verdict"] for r in rows] == ["flagged"] + ["ok"] * 3
    assert (page / "index.html").is_file() and len(list((page / "clips").rglob("*.wav"))) == 3
    capsys.readouterr()
    before = out.read_text()
    assert main(["audit", str(manifest), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {out}: already exists; give --out another name, or add "
                                               "--force to replace it")
    assert main(["audit", str(manifest), "--html", str(page)]) == 2
    assert "add --force to replace it" in capsys.readouterr().err
    assert out.read_text() == before
    assert main(["audit", str(manifest), "--html", str(page), "--force"]) == 0  # --force replaces the page alone
    assert main(["audit", str(manifest), "--out", str(out), "--html", str(page), "--force", "-f", "json"]) == 0


@pytest.mark.parametrize("text, message", [
    ("path,speaker\na.wav,s1\n", "lacks column(s) gender"),
    ("path,speaker,gender\na.wav,s1,robot\n", "neither female nor male"),
    ("", "empty file"),
])
def test_bad_manifests_are_one_line_errors(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    for command in ("speakers", "audit"):
        assert main([command, str(bad)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {bad}") and message in lines[0]


def test_audit_needs_labels_and_speakers_needs_speaker_ids(tmp_path, capsys):
    for speaker in ("anna", "bob"):
        write_voice(tmp_path / "voices" / speaker / "1.wav", "female")
    assert main(["speakers", str(tmp_path / "voices"), "-f", "csv", "--no-pitch"]) == 0
    assert [r["label"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))] == ["", ""]
    assert main(["audit", str(tmp_path / "voices")]) == 2
    assert capsys.readouterr().err.startswith("error: no labels to audit")
    write_voice(tmp_path / "loose" / "female" / "a.wav", "female")
    assert main(["speakers", str(tmp_path / "loose")]) == 2
    assert "no speaker ids" in capsys.readouterr().err


def test_bad_options_fail_before_any_work(manifest, tmp_path, capsys):
    assert main(["audit", str(manifest), "--min-p", "1.5"]) == 2
    assert main(["speakers", str(manifest), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["speakers", str(manifest), "--force"]) == 2
    assert main(["speakers", str(manifest), "--format", "xml"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 4


def test_audit_defaults_are_the_rules():
    import inspect

    from voicegender.cli.speakers import audit_cmd

    params = inspect.signature(audit_cmd).parameters
    assert params["min_p"].default == AuditRule.min_p and params["min_against"].default == AuditRule.min_against
    assert len(SPEAKER_CORPUS) == 4
