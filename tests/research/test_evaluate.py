from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_train import small_config, write_corpus

from voicegender.cli import main
from voicegender.corpora import Clip
from voicegender.research.evaluate import score, summarise_folds
from voicegender.research.report import Section, render_html, write_report


def image_alts(page: str) -> list[str]:
    """The alt text of every ``<img>`` of an HTML page ("" when missing or empty)."""
    alts: list[str] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                alts.append((dict(attrs).get("alt") or "").strip())

    Images().feed(page)
    return alts


def _clips() -> list[Clip]:
    clips = []
    for s in range(4):
        gender = "female" if s < 2 else "male"
        clips += [Clip(Path(f"/nowhere/s{s}_{i}.wav"), f"s{s}", gender, "c", {"age": "8" if s in (0, 2) else "40"})
                  for i in range(3)]
    return clips


def test_score_per_speaker_groups_and_top_losses():
    clips = _clips()
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.9, 0.1, 0.2, 0.1, 0.4, 0.3, 0.2])  # 3 mistakes
    report = score(clips, p, split="unit", top_k=3)
    assert report.metrics.confusion == [[5, 1], [0, 6]]
    by_speaker = {s.speaker: s.accuracy for s in report.per_speaker}
    assert by_speaker == pytest.approx({"c/s0": 2 / 3, "c/s1": 1.0, "c/s2": 1.0, "c/s3": 1.0})
    assert report.per_speaker[0].speaker == "c/s0"  # worst first
    assert set(report.groups) == {"child", "adult"} and report.groups["child"].n == 6
    assert report.top_losses[0].p_female == pytest.approx(0.3) and report.top_losses[0].predicted == "male"


def test_html_report_is_self_contained_with_hook(tmp_path: Path):
    audio = tmp_path / "a.wav"
    from conftest import write_voice

    write_voice(audio, "female")
    clips = [Clip(audio, "s0", "female"), Clip(tmp_path / "b.wav", "s1", "male")]
    report = score(clips, np.array([0.2, 0.1]), split="unit")
    page = render_html(report, extra_sections=[Section("Class activation maps", "<p id=cam>maps</p>")])
    assert page.count("data:image/png;base64,") >= 3  # confusion, ROC, speakers
    assert "data:audio/wav;base64," in page and "<p id=cam>maps</p>" in page
    assert "http://" not in page and "https://" not in page
    paths = write_report(report, tmp_path / "out")
    assert paths["json"].is_file() and paths["html"].is_file()
    summary = summarise_folds([report, report])
    assert summary.std["accuracy"] == 0.0
    assert write_report(summary, tmp_path / "sum")["html"].read_text().count("± ") >= 5


def test_every_report_picture_says_what_it_shows(tmp_path: Path):
    """No <img> with an empty alt: the plots (and the seed's MFCC pictures) read in a screen reader."""
    picture = tmp_path / "s1_0.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")  # embedded as it is; only its alt text matters here
    clips = _clips()
    clips[0] = Clip(picture, "s0", "female", "c")
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.6, 0.9, 0.1, 0.2, 0.1, 0.4, 0.3, 0.2])  # 3 mistakes
    report = score(clips, p, split="unit", top_k=12)
    page = write_report(report, tmp_path / "out")["html"].read_text()
    alts = image_alts(page)
    assert len(alts) >= 4 and all(alts), alts  # confusion, ROC, speakers, the MFCC picture
    assert "Confusion matrix: of 6 female clips, 5 called female, 1 called male; of 6 male clips, 0 called female, " \
           "6 called male." in alts
    assert any(a.startswith("ROC curve of P(female), female positive: AUC ") and "12 clips (6 female, 6 male)" in a
               for a in alts)
    assert any(a.startswith("Per-speaker accuracy bars of 4 speakers") and "s0 (female) 67%" in a for a in alts)
    assert "MFCC image of a female speaker's clip, predicted female (P(female) 0.900)" in alts
    summary = write_report(summarise_folds([report, report]), tmp_path / "sum")["html"].read_text()
    assert all(image_alts(summary)) and len(image_alts(summary)) == 2


def test_cli_train_evaluate_and_bad_corpus(tmp_path: Path, capsys):
    corpus = write_corpus(tmp_path / "corpus", speakers=6, clips=3)
    cfg = small_config(tmp_path)
    args = ["train", str(corpus), "--out", str(tmp_path / "run"), "--split", "speaker-kfold", "--k", "3",
            "--epochs", "1", "--batch-size", "8", "--crop-seconds", "0.5", "--threads", "1",
            "--cache-dir", cfg.cache_dir]
    assert main(args) == 0
    assert "accuracy=" in capsys.readouterr().out
    assert (tmp_path / "run" / "report.html").is_file()
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "ev"), "--cache-dir", cfg.cache_dir]) == 0
    assert "f1_female=" in capsys.readouterr().out and (tmp_path / "ev" / "metrics.json").is_file()
    assert main([*args[:3], str(tmp_path / "folds"), *args[4:], "--all-folds"]) == 0
    assert "mean±std\tfolds=3" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "folds"), "--cache-dir", cfg.cache_dir]) == 0
    assert "mean±std\tfolds=3" in capsys.readouterr().out
    assert (tmp_path / "folds" / "report.html").is_file() and (tmp_path / "folds" / "fold2" / "metrics.json").is_file()
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'missing'}: no such file or folder"
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["train", str(corpus), "--arch", "resnet34", "--features", "log_mel"]) == 2


def test_a_damaged_run_manifest_is_named(tmp_path):
    from voicegender.errors import VoiceGenderError
    from voicegender.research.evaluate import read_run_manifest

    binary = tmp_path / "test.csv"
    binary.write_bytes(b"path,speaker,gender\n\xff\xfe\x00garbage\n")
    with pytest.raises(VoiceGenderError, match="test.csv: not a readable CSV manifest"):
        read_run_manifest(binary)
    short = tmp_path / "short.csv"
    short.write_text("path,speaker,gender\na.wav,s1\n")
    with pytest.raises(VoiceGenderError, match="short.csv: line 2 has no path, speaker or gender"):
        read_run_manifest(short)
