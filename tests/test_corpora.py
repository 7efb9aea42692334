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


# --- manifest rows that cannot be clips: one line naming the file and the line(s), before any audio is read --------
@pytest.mark.parametrize("text, message", [
    ("path,speaker,gender\na.wav,,female\nb.wav,s1,male\nc.wav, ,male\n",
     "m.csv: empty speaker on lines 2, 4: every row names who speaks, or its clips all become one speaker"),
    ("path,speaker,gender\n,s1,female\n", "m.csv: empty path on line 2: every row names its recording"),
    ("path,speaker,gender,path\na.wav,s1,female,x.wav\n",
     "m.csv: the header names column 'path' more than once (columns 1 and 4); keep one"),
    ("path,speaker,gender\na.wav\n", "m.csv: line 2 has 1 field, the header has 3"),
    ("path,speaker,gender\na.wav,s1,female,x\n", "m.csv: line 2 has 4 fields, the header has 3"),
    ('path,speaker,gender\na.wav,s1,female\n"b.wav,s2,male\nc.wav,s3,male\n',
     "m.csv: unterminated quote from line 3: the rest of the file would be one cell; close the quote"),
    ('path,speaker,gender\n"a.wav,s1,female\nb.wav",s2\n',
     "m.csv: line 2 has 2 fields, the header has 3 (a quote opened on line 2 closes on line 3)"),
    ("path,speaker,gender\na.wav,A,female\nb.wav,B,male\na.wav,B,female\n",
     "m.csv: a.wav is listed with different speakers: 'A' on line 2, 'B' on line 4; a recording has one speaker and "
     "one gender"),
    ("path,speaker,gender\na.wav,A,female\n./a.wav,A,m\n",
     "m.csv: ./a.wav is listed with different genders: 'female' on line 2, 'male' on line 3"),
])
def test_manifest_rows_that_cannot_be_clips_are_errors_naming_the_lines(tmp_path: Path, text: str, message: str):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(CorpusError) as e:
        load_manifest(manifest)
    assert str(e.value).startswith(str(tmp_path)) and message in str(e.value) and "\n" not in str(e.value)


def test_a_repeated_manifest_row_counts_once_with_a_warning(tmp_path: Path, caplog):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,gender,age\na.wav,s1,female,30\n./a.wav,s1,F,30\nb.wav,s2,male,40,\n\n"
                        "a.wav,s1,female,30\n")  # a trailing empty field and a blank line are no problem
    with caplog.at_level("WARNING", logger="voicegender"):
        corpus = load_manifest(manifest)
    assert [(c.path, c.speaker, c.gender, c.age) for c in corpus.clips] == [
        (tmp_path / "a.wav", "s1", "female", 30.0), (tmp_path / "b.wav", "s2", "male", 40.0)]
    assert f"{manifest}: 2 row(s) repeat an earlier row's path, speaker and gender (lines 3, 6); each clip counts " \
           "once" in caplog.text
