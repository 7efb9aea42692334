from pathlib import Path

import pytest
import soundfile as sf
from conftest import SHARED_DATA, requires_shared_data, write_voice

from voicegender.corpora import load_corpus, load_manifest, summarise, write_manifest
from voicegender.errors import CorpusError


def test_audiomnist_layout(audiomnist_corpus: Path):
    corpus = load_corpus(audiomnist_corpus)
    assert corpus.kind == "audio" and len(corpus) == 16
    assert corpus.speakers("female") == ["12", "26"] and corpus.speakers("male") == ["02", "07"]
    clip = next(c for c in corpus.clips if c.path.name == "1_12_0.wav")
    assert (clip.gender, clip.extra["digit"], clip.extra["repetition"], clip.label) == ("female", "1", "0", 0)


def test_audiomnist_unknown_speaker_is_an_error(audiomnist_corpus: Path):
    write_voice(audiomnist_corpus / "data" / "99" / "0_99_0.wav", "male")
    with pytest.raises(CorpusError, match="speaker 99"):
        load_corpus(audiomnist_corpus)


def test_csv_manifest_with_relative_paths_and_extras(manifest_corpus: Path):
    corpus = load_corpus(manifest_corpus)
    assert len(corpus) == 24 and len(corpus.speakers()) == 8
    assert all(c.path.is_file() for c in corpus.clips)
    assert {c.gender for c in corpus.clips} == {"female", "male"}  # F/M normalised
    assert corpus.clips[0].age == 20.0
    summary = {row.gender: row for row in summarise(corpus, {c.path: 0.5 for c in corpus.clips})}
    assert (summary["female"].clips, summary["female"].speakers, summary["total"].seconds) == (12, 4, 12.0)


def test_manifest_errors_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,speaker\na.wav,1\n")
    with pytest.raises(CorpusError, match=r"bad\.csv: manifest lacks column\(s\) gender, path"):
        load_manifest(bad)
    odd = tmp_path / "odd.csv"
    odd.write_text("path,speaker,gender\na.wav,1,robot\n")
    with pytest.raises(CorpusError, match=r"odd\.csv:2: gender 'robot'"):
        load_manifest(odd)
    with pytest.raises(CorpusError, match="not a corpus"):
        load_corpus(tmp_path)


def test_gender_folders_and_manifest_round_trip(tmp_path: Path):
    root = tmp_path / "folders"
    write_voice(root / "female" / "anna" / "a1.wav", "female")
    write_voice(root / "female" / "anna" / "a2.wav", "female")
    write_voice(root / "male" / "bob.wav", "male")
    corpus = load_corpus(root)
    assert [(c.speaker, c.gender) for c in corpus.clips] == [("anna", "female"), ("anna", "female"), ("bob", "male")]
    write_manifest(corpus.clips, tmp_path / "written.csv")
    again = load_corpus(tmp_path / "written.csv")
    assert [(c.path, c.speaker, c.gender) for c in again.clips] == [(c.path, c.speaker, c.gender) for c in corpus.clips]


def test_image_manifest_is_an_image_corpus(tmp_path: Path):
    (tmp_path / "m").mkdir()
    rows = "path,speaker,gender\nx/female_1.jpg,12,female\nx/male_2.jpg,01,male\n"
    (tmp_path / "m" / "manifest.csv").write_text(rows)
    assert load_corpus(tmp_path / "m").kind == "image"


@requires_shared_data
@pytest.mark.parametrize("name,clips,speakers,females", [
    ("audiomnist_az", 3082, 59, 19), ("audiomnist_mfc", 18000, 60, 12), ("baved", 977, 60, 16),
    ("speechocean762_train", 875, 125, 67)])
def test_shared_corpora_counts(name: str, clips: int, speakers: int, females: int):
    corpus = load_corpus(SHARED_DATA / name)
    assert (len(corpus), len(corpus.speakers()), len(corpus.speakers("female"))) == (clips, speakers, females)


def test_folder_with_unreadable_extension_still_lists(tmp_path: Path):
    root = tmp_path / "c"
    (root / "male").mkdir(parents=True)
    sf.write(root / "male" / "x.flac", [0.0] * 100, 16_000)
    assert len(load_corpus(root)) == 1


def test_ages_from_numbers_and_common_voice_bands():
    from voicegender.corpora import age_years

    assert age_years("31") == 31.0 and age_years(8) == 8.0
    assert age_years("twenties") == 25.0 and age_years(" Fifties ") == 55.0
    assert age_years("teens") is None  # Common Voice's band spans children and adults
    assert age_years("") is None and age_years(None) is None and age_years("unknown") is None
