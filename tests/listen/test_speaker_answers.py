"""One answer per speaker (voicegender.listen.speaker_answers): the corpus layouts it reads, the pooling (the same
weighted log-odds as a recording's speakers), and the answers the shipped model gives a corpus of synthetic voices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SPEAKER_CORPUS, write_speaker_corpus, write_voice

from voicegender.errors import CorpusError
from voicegender.fileio import readable
from voicegender.listen.speaker_answers import (
    ClipScore,
    corpus_clips,
    pool_speaker,
    pool_speakers,
    score_clips,
    speaker_answers,
)
from voicegender.voice.loading import load_model
from voicegender.voice.model import logit, sigmoid, weighted_log_odds


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The synthetic speaker corpus (conftest.SPEAKER_CORPUS, 3 clips of 1.5 s each) scored by the shipped model."""
    manifest = write_speaker_corpus(tmp_path_factory.mktemp("speakers"))
    _, clips = corpus_clips(manifest)
    return manifest, score_clips(clips, load_model(), show_progress=False)


def test_each_speaker_gets_the_answer_of_its_voice(scored):
    _, scores = scored
    speakers = {s.speaker: s for s in pool_speakers(scores)}
    assert list(speakers) == list(SPEAKER_CORPUS)
    for name, (f0, label) in SPEAKER_CORPUS.items():
        s = speakers[name]
        truth = "female" if f0 > 165 else "male"
        assert s.answer == truth, s
        assert s.clips == s.answered == s.agree == 3
        assert s.label == label
        assert s.p_label == pytest.approx(s.p_female if label == "female" else 1 - s.p_female)
        assert s.against_label == (0 if label == truth else 3)
        assert s.pitch_hz == pytest.approx(f0 * 1.02, rel=0.05)  # the middle clip's pitch (f0 x 1.00, 1.02, 1.04)
        assert s.speech_s > 3.0
        assert s.p_child is not None and 0 <= s.p_child <= 1
    assert speakers["m1"].p_female < 0.1 and speakers["f1"].p_female > 0.8


def test_a_speaker_is_its_clips_log_odds_weighted_by_speech():
    clips = [ClipScore("a.wav", "s", "male", 0.9, 0.1, 3.0), ClipScore("b.wav", "s", "male", 0.2, 0.3, 1.0),
             ClipScore("c.wav", "s", "male", None, None, 0.0),
             ClipScore("d.wav", "s", "male", None, None, 0.0, error="x")]
    s = pool_speaker("s", clips)
    z = (3 * logit(0.9) + 1 * logit(0.2)) / 4
    assert s.p_female == pytest.approx(float(sigmoid(z)))
    assert s.p_child == pytest.approx(float(sigmoid((3 * logit(0.1) + logit(0.3)) / 4)))
    assert (s.answer, s.clips, s.answered, s.agree, s.against_label) == ("female", 4, 2, 1, 1)
    assert s.p_label == pytest.approx(1 - s.p_female)


def test_speakers_without_speech_labels_or_with_both_labels():
    silent = pool_speaker("s", [ClipScore("a.wav", "s", "female", None, None, 0.0)])
    assert (silent.answer, silent.p_female, silent.answered, silent.p_label) == ("no_speech", None, 0, None)
    unlabelled = pool_speaker("s", [ClipScore("a.wav", "s", None, 0.2, None, 1.0)])
    assert (unlabelled.label, unlabelled.p_label, unlabelled.against_label) == (None, None, None)
    mixed = pool_speaker("s", [ClipScore("a.wav", "s", "male", 0.2, None, 1.0),
                               ClipScore("b.wav", "s", "female", 0.3, None, 1.0)])
    assert (mixed.label, mixed.p_label) == ("mixed", None)


def test_the_pooling_is_one_function_with_even_odds_when_nothing_weighs():
    assert weighted_log_odds(np.array([2.0, -1.0]), np.array([1.0, 2.0])) == pytest.approx(0.0)
    assert weighted_log_odds(np.array([2.0, 4.0]), np.array([3.0, 1.0])) == pytest.approx(2.5)
    assert weighted_log_odds(np.zeros(0), np.zeros(0)) == 0.0
    assert weighted_log_odds(np.array([3.0]), np.array([0.0])) == 0.0


def test_speaker_answers_reads_a_corpus_in_one_call(scored):
    manifest, scores = scored
    answers = speaker_answers(manifest, load_model(), pitch=False, show_progress=False)
    assert [a.speaker for a in answers] == list(SPEAKER_CORPUS)
    assert all(a.pitch_hz is None for a in answers)
    assert [a.answer for a in answers] == [a.answer for a in pool_speakers(scores)]


# --- layouts -------------------------------------------------------------------------------------------------------
def test_layouts_give_speakers_and_labels(audiomnist_corpus, manifest_corpus, tmp_path):
    name, clips = corpus_clips(audiomnist_corpus)
    assert {(c.speaker, c.label) for c in clips} == {("02", "male"), ("07", "male"), ("12", "female"),
                                                      ("26", "female")}
    _, clips = corpus_clips(manifest_corpus)
    assert len({c.speaker for c in clips}) == 8 and {c.label for c in clips} == {"female", "male"}
    for gender, speaker in (("female", "anna"), ("male", "bob")):
        write_voice(tmp_path / "folders" / gender / speaker / "1.wav", gender)
    _, clips = corpus_clips(tmp_path / "folders")
    assert {(c.speaker, c.label) for c in clips} == {("anna", "female"), ("bob", "male")}


def test_one_folder_per_speaker_gives_unlabelled_speakers(tmp_path):
    for speaker in ("anna", "bob"):
        for i in range(2):
            write_voice(tmp_path / "voices" / speaker / f"{i}.wav", "female", seed=i)
    name, clips = corpus_clips(tmp_path / "voices")
    assert name == "voices"
    assert sorted((c.speaker, c.label) for c in clips) == [("anna", None)] * 2 + [("bob", None)] * 2


@pytest.mark.parametrize("make, message", [
    (lambda root: [write_voice(root / "female" / "a.wav", "female"), write_voice(root / "male" / "b.wav", "male")],
     "no speaker ids"),
    (lambda root: (root / "notes").mkdir(parents=True), "not a corpus"),
    (lambda root: write_voice(root / "loose.wav", "male"), "not a corpus"),
])
def test_corpora_without_speakers_are_one_line_errors(tmp_path, make, message):
    root = tmp_path / "corpus"
    root.mkdir()
    make(root)
    with pytest.raises(CorpusError, match=message) as e:
        corpus_clips(root)
    assert str(root) in str(e.value) and "\n" not in str(e.value)


def test_an_image_manifest_is_refused(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "manifest.csv").write_text("path,speaker,gender\na.jpg,s1,female\n")
    with pytest.raises(CorpusError, match="images"):
        corpus_clips(tmp_path / "manifest.csv")


def test_a_speaker_whose_every_clip_failed_is_failed_not_silent():
    def clip(name: str, p: float | None, error: str | None = None) -> ClipScore:
        return ClipScore(name, "s", "female", p, None, 1.0 if p is not None else 0.0, error=error)

    gone = pool_speaker("s", [clip("a.wav", None, "a.wav: file not found"), clip("b.wav", None, "b.wav: empty")])
    assert (gone.answer, gone.clips, gone.answered, gone.failed, gone.p_female) == ("failed", 2, 0, 2, None)
    quiet = pool_speaker("s", [clip("a.wav", None, "a.wav: file not found"), clip("b.wav", None)])
    assert (quiet.answer, quiet.failed) == ("no_speech", 1)  # one clip was heard: it holds no speech
    partial = pool_speaker("s", [clip("a.wav", None, "a.wav: file not found"), clip("b.wav", 0.9)])
    assert (partial.answer, partial.answered, partial.failed) == ("female", 1, 1)  # answered from the other clip
    assert partial.as_dict()["failed"] == 1 and gone.as_dict()["answer"] == "failed"


def test_names_that_are_not_utf8_are_written_with_their_bytes_escaped():
    name = b"sp\xff".decode("utf-8", "surrogateescape")  # how Python reads a folder named in such bytes
    answer = pool_speaker(name, [ClipScore(f"{name}/a.wav", name, None, 0.9, None, 1.0)])
    assert answer.as_dict()["speaker"] == name and readable(name) == "sp\\udcff"  # as predict writes such paths
    assert readable("anna") == "anna" and readable("sp\ud800") == "sp\\ud800"  # a surrogate from no file name
