"""The label audit (voicegender.listen.label_audit) and its page (voicegender.listen.audit_page): a corpus with one
man labelled female is flagged there and nowhere else; children, lukewarm and one-clip contradictions are not."""

from __future__ import annotations

import re

import pytest
import soundfile as sf
from conftest import SPEAKER_CORPUS, write_speaker_corpus

from voicegender.errors import VoiceGenderError
from voicegender.listen.audit_page import write_audit_page
from voicegender.listen.label_audit import AuditRule, audit, summary, verdict
from voicegender.listen.speaker_answers import ClipScore, corpus_clips, pool_speaker, pool_speakers, score_clips
from voicegender.voice.loading import load_model


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    manifest = write_speaker_corpus(tmp_path_factory.mktemp("audit"))
    _, clips = corpus_clips(manifest)
    return audit(pool_speakers(score_clips(clips, load_model(), show_progress=False)))


def test_the_mislabelled_speaker_is_flagged_first_and_alone(ranked):
    wrong = [name for name, (f0, label) in SPEAKER_CORPUS.items() if (f0 > 165) != (label == "female")]
    assert wrong == ["m2"]
    assert [s.speaker for s in ranked if s.verdict == "flagged"] == wrong
    assert ranked[0].speaker == "m2" and ranked[0].p_label < 0.1
    assert all(s.verdict == "ok" for s in ranked[1:])
    assert [s.log_odds_against for s in ranked] == sorted((s.log_odds_against for s in ranked), reverse=True)
    assert summary(ranked) == "4 speakers: 1 flagged, 3 agree with their label"
    assert not any(s.verdict == "flagged" for s in audit(ranked, AuditRule(min_p=0.999)))  # the rule decides


def _speaker(p_female: list[float], label: str = "male", p_child: float = 0.1):
    return pool_speaker("s", [ClipScore(f"{i}.wav", "s", label, p, p_child, 1.0) for i, p in enumerate(p_female)])


def test_the_flag_rule():
    assert verdict(_speaker([0.99, 0.98, 0.97])) == "flagged"
    assert verdict(_speaker([0.99, 0.98, 0.97], "female")) == "ok"
    assert verdict(_speaker([0.62, 0.66, 0.6])) == "ok"  # every clip against the label, but lukewarm
    assert verdict(_speaker([0.999999, 0.3, 0.4])) == "ok"  # one loud clip: 1 of 3 against the label
    assert verdict(_speaker([0.999, 0.99, 0.4])) == "flagged"  # 2 of 3 against it
    assert verdict(_speaker([0.99, 0.98, 0.97], p_child=0.95)) == "child"  # a child is not a label error
    assert verdict(_speaker([0.99, 0.98], p_child=0.95), AuditRule(child_p=1.0)) == "flagged"
    assert verdict(pool_speaker("s", [ClipScore("a.wav", "s", "male", None, None, 0.0)])) == "no_speech"
    both = pool_speaker("s", [ClipScore("a.wav", "s", "male", 0.9, None, 1.0),
                              ClipScore("b.wav", "s", "female", 0.9, None, 1.0)])
    assert verdict(both) == "mixed"
    with pytest.raises(ValueError):
        AuditRule(min_p=1.5)


def test_auditing_unlabelled_speakers_is_an_error():
    unlabelled = pool_speaker("s", [ClipScore("a.wav", "s", None, 0.9, None, 1.0)])
    with pytest.raises(VoiceGenderError, match="no labels to audit"):
        audit([unlabelled])


def test_the_page_has_a_player_for_each_clip_of_the_flagged_speaker_only(ranked, tmp_path):
    page = write_audit_page(ranked, tmp_path / "page", "synthetic", model_name="ge2e-head-v2 2.2.0")
    text = page.read_text()
    players = re.findall(r'<audio controls preload=none src="([^"]+)">', text)
    assert players == ["clips/1/1.wav", "clips/1/2.wav", "clips/1/3.wav"]  # m2's three clips
    for rel in players:
        samples, rate = sf.read(page.parent / rel)
        assert rate == 16_000 and len(samples) == pytest.approx(1.5 * 16_000, abs=2)
    assert "<h3>m2</h3>" in text and "<h3>f1</h3>" not in text
    assert "labelled female, heard as male" in text and "3 of 3 clips answered against the label" in text
    assert "probability of at least 0.7 and at least 2/3 of its answered clips" in text


def test_a_page_with_nothing_to_hear_says_so(ranked, tmp_path):
    fine = [s for s in ranked if s.verdict == "ok"]
    text = write_audit_page(fine, tmp_path / "fine", "synthetic").read_text()
    assert "<audio" not in text and "nothing to listen to" in text


def test_a_speaker_whose_every_clip_failed_is_its_own_verdict_and_listed_on_the_page(ranked, tmp_path):
    name = b"sp\xff".decode("utf-8", "surrogateescape")  # a folder named in bytes that are not UTF-8
    gone = pool_speaker(name, [ClipScore(f"{name}/a.wav", name, "male", None, None, 0.0,
                                         error=f"{name}/a.wav: file not found")])
    silent = pool_speaker("quiet", [ClipScore("q.wav", "quiet", "male", None, None, 0.0)])
    assert (verdict(gone), verdict(silent)) == ("failed", "no_speech")
    judged = audit([*ranked, gone, silent])
    assert summary(judged) == ("6 speakers: 1 flagged, 1 whose every clip failed, 1 without speech, 3 agree with "
                               "their label")
    page = write_audit_page(judged, tmp_path / "page", name)
    text = page.read_bytes().decode("utf-8")  # the whole page is UTF-8, the name's byte escaped
    assert "<h1>Label audit: sp\\udcff</h1>" in text and "<h3>sp\\udcff</h3>" in text
    assert "Every clip failed: nothing was heard" in text and "sp\\udcff/a.wav: file not found" in text
    assert "labelled male; its only clip failed, so nothing was heard" in text
    assert len(re.findall("<audio", text)) == 3  # m2's clips; a clip that failed gets none
