"""Simulated conversations: turns, gaps and cross-talk as asked, labels from the corpus, SNRs, music breaks,
RTTM, determinism; on synthetic voices and a fake background folder (one test on ../shared/data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED_DATA, requires_shared_data

from voicegender.audio.augment import rms
from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_noise, synth_tone, synth_voice
from voicegender.corpora import load_corpus
from voicegender.errors import CorpusError
from voicegender.voice.conversations import (
    CONDITIONS,
    SR,
    ConversationSpec,
    Turn,
    conversation_set,
    frame_genders,
    frame_speaker_counts,
    load_background,
    load_conversation,
    music_artist_group,
    read_rttm,
    simulate,
    speaker_pool,
    speaking_time,
    trim_to_speech,
)

SHORT = ConversationSpec(duration_s=(20.0, 24.0), turn_s=(1.0, 2.5))  # small and quick, clean


@pytest.fixture(scope="module")
def corpus_csv(tmp_path_factory) -> Path:
    """10 adult speakers (5 F / 5 M, 3 clips of 0.6-1.2 s with silence around each) and one child (age 8)."""
    root = tmp_path_factory.mktemp("voices")
    rows = ["path,speaker,gender,age"]
    for s in range(11):
        gender = "female" if s % 2 == 0 else "male"
        age = 8 if s == 10 else 20 + s
        for i in range(3):
            rel = f"clips/s{s}_{i}.flac"
            f0 = (FEMALE_F0 if gender == "female" else MALE_F0) * (1 + 0.03 * s)
            voice = synth_voice(f0, 0.6 + 0.3 * i, SR, seed=s * 3 + i)
            (root / "clips").mkdir(exist_ok=True)
            sf.write(root / rel, np.concatenate([np.zeros(SR // 5, np.float32), voice, np.zeros(SR // 5, np.float32)]),
                     SR)
            rows.append(f"{rel},spk{s},{gender},{age}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def background_dir(tmp_path_factory) -> Path:
    """Two noise scenes (one short, one quiet) and music by two artists, with a manifest like the real one's."""
    root = tmp_path_factory.mktemp("background")
    (root / "noise").mkdir()
    (root / "music").mkdir()
    sf.write(root / "noise" / "hiss.wav", synth_noise(3.0, SR, seed=1, level=0.001), SR)
    sf.write(root / "noise" / "short.wav", synth_noise(0.7, SR, seed=2, level=0.2), SR)
    chord = synth_tone(220.0, 8.0, SR) + synth_tone(330.0, 8.0, SR)
    sf.write(root / "music" / "chord.wav", chord / 2, SR)
    sf.write(root / "music" / "beep.wav", synth_tone(880.0, 1.5, SR, level=0.05), SR)
    (root / "manifest.csv").write_text(
        "path,kind,title,artist,licence,source\n"
        "noise/hiss.wav,noise,Hiss,Tester,CC0,made here\n"
        "noise/short.wav,noise,Short,Tester,CC0,made here\n"
        "music/chord.wav,music,Chord,Artist A,CC0,made here\n"
        "music/beep.wav,music,Beep,Artist B,CC BY,made here\n")
    return root


@pytest.fixture(scope="module")
def pool(corpus_csv):
    return speaker_pool([load_corpus(corpus_csv)])


def gaps(conv) -> list[float]:
    return [b.start_s - a.end_s for a, b in zip(conv.turns, conv.turns[1:], strict=False)]


def test_children_are_left_out_of_the_pool(pool):
    assert len(pool) == 10
    assert "manifest_corpus/spk10" not in pool and not any(k.endswith("/spk10") for k in pool)


def test_turns_keep_the_gap_and_labels_come_from_the_corpus(pool, corpus_csv):
    conv = simulate(SHORT, pool, None, 3, "clean", n_speakers=4)
    labels = {c.speaker_key: c.gender for c in load_corpus(corpus_csv).clips}
    assert len(conv.turns) >= 4
    assert gaps(conv) == pytest.approx([0.2] * (len(conv.turns) - 1), abs=1.5 / SR)
    assert all(t.gender == labels[t.speaker] for t in conv.turns)
    assert {g: len(v) for g, v in conv.speakers.items()} == {"female": 2, "male": 2}  # balanced, all spoke
    assert all(a.speaker != b.speaker for a, b in zip(conv.turns, conv.turns[1:], strict=False))
    assert all(1.0 - 0.3 <= t.duration_s <= 2.5 + 0.35 for t in conv.turns[:-1])
    assert SHORT.duration_s[0] - 1 <= conv.duration_s <= SHORT.duration_s[1] + 3
    assert conv.condition == "custom" and conv.seed == 3 and conv.samples.dtype == np.float32


def test_crosstalk_overlaps_the_previous_turn_by_the_asked_amount(pool):
    conv = simulate(dataclasses.replace(SHORT, crosstalk_s=0.3), pool, None, 4, "xt", n_speakers=2)
    assert gaps(conv) == pytest.approx([-0.3] * (len(conv.turns) - 1), abs=1.5 / SR)
    counts = frame_speaker_counts(conv.turns, conv.duration_s)
    assert counts.max() == 2  # never three at once
    genders = conv.frame_genders()
    assert any(g == frozenset({"female", "male"}) for g in genders)


def test_speakers_can_be_random_by_gender_and_set_per_call(pool):
    spec = dataclasses.replace(SHORT, genders="random", speakers=(2, 6))
    for seed in range(4):
        conv = simulate(spec, pool, None, seed, n_speakers=5)
        by_gender = conv.speakers
        assert len(by_gender["female"]) + len(by_gender["male"]) == 5
        assert by_gender["female"] and by_gender["male"]


def test_noise_and_babble_are_at_the_asked_snr(pool, background_dir):
    bg = load_background(background_dir)
    spec = dataclasses.replace(SHORT, noise_snr_db=15.0, babble_voices=3, babble_snr_db=12.0, floor_dbfs=None)
    for seed in (0, 1):  # one draws each noise scene (a quiet one and one shorter than the conversation)
        conv = simulate(spec, pool, bg, seed, n_speakers=2, keep_stems=True)
        inside = np.zeros(len(conv.samples), bool)
        for t in conv.turns:
            inside[round(t.start_s * SR):round(t.end_s * SR)] = True
        speech = rms(conv.stems["speech"][inside])
        assert 20 * np.log10(speech / rms(conv.stems["noise"])) == pytest.approx(15.0, abs=1.0)
        assert 20 * np.log10(speech / rms(conv.stems["babble"])) == pytest.approx(12.0, abs=1.0)
        mix = sum(conv.stems.values())
        np.testing.assert_allclose(conv.samples, mix, atol=1e-5)


def test_babble_voices_are_not_conversation_speakers(pool):
    spec = dataclasses.replace(SHORT, babble_voices=6, babble_snr_db=12.0)
    conv = simulate(spec, pool, None, 7, n_speakers=4)
    talking = {t.speaker for t in conv.turns}
    assert len(conv.babble_speakers) == 6 and not talking & set(conv.babble_speakers)
    with pytest.raises(CorpusError, match="babble needs 7"):
        simulate(dataclasses.replace(spec, babble_voices=7), pool, None, 7, n_speakers=4)


def test_music_breaks_come_every_n_turns_and_hold_no_speech(pool, background_dir):
    bg = load_background(background_dir, music_artists=["Artist A"])
    spec = dataclasses.replace(SHORT, music_snr_db=10.0, music_break_every=3, duration_s=(30.0, 32.0))
    conv = simulate(spec, pool, bg, 2, n_speakers=3, keep_stems=True)
    assert len(conv.music) == (len(conv.turns) - 1) // 3 >= 2
    for k, (a, b) in enumerate(conv.music):
        before, after = conv.turns[3 * k + 2], conv.turns[3 * k + 3]
        assert before.end_s < a and b < after.start_s and 2.0 <= b - a <= 4.0
        part = slice(round(a * SR), round(b * SR))
        assert not np.any(conv.stems["speech"][part])
        speech = rms(np.concatenate([conv.stems["speech"][round(t.start_s * SR):round(t.end_s * SR)]
                                     for t in conv.turns]))
        assert 20 * np.log10(rms(conv.stems["music"][part]) / speech) == pytest.approx(0.0, abs=2.0)
    assert not any(conv.music_frames()[i] and g for i, g in enumerate(conv.frame_genders()))
    assert [c["artist"] for c in conv.background] == ["Artist A"]


def test_music_is_chosen_by_artist(background_dir):
    assert [r.artist for r in load_background(background_dir, ["Artist B"]).music] == ["Artist B"]
    assert len(load_background(background_dir, ["Artist B"]).noise) == 2
    with pytest.raises(CorpusError, match="no music by Nobody"):
        load_background(background_dir, ["Nobody"])
    assert music_artist_group("Kevin MacLeod") == music_artist_group("Kevin MacLeod") in range(4)
    assert {music_artist_group(f"artist {i}") for i in range(40)} == {0, 1, 2, 3}


def test_same_seed_same_samples_and_noise_leaves_the_speech_alone(pool, background_dir):
    bg = load_background(background_dir)
    a = simulate(SHORT, pool, bg, 11, n_speakers=3)
    b = simulate(SHORT, pool, bg, 11, n_speakers=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert simulate(SHORT, pool, bg, 12, n_speakers=3).turns != a.turns
    noisy = simulate(dataclasses.replace(SHORT, noise_snr_db=15.0), pool, bg, 11, n_speakers=3)
    assert noisy.turns == a.turns  # paired conditions: the same speech under the noise


def test_telephone_line_removes_the_high_band(pool, background_dir):
    spec = dataclasses.replace(SHORT, telephone=True, noise_snr_db=20.0)
    conv = simulate(spec, pool, load_background(background_dir), 0, n_speakers=2)
    spectrum = np.abs(np.fft.rfft(conv.samples)) ** 2
    freqs = np.fft.rfftfreq(len(conv.samples), 1 / SR)
    assert spectrum[freqs > 4200].sum() < 1e-3 * spectrum.sum()


def test_rttm_round_trip_and_save_load(pool, tmp_path):
    conv = simulate(dataclasses.replace(SHORT, crosstalk_s=0.3), pool, None, 5, "mix one", n_speakers=3)
    turns = read_rttm(conv.to_rttm("file 1"))["file_1"]
    assert [(t.speaker, t.gender, t.corpus) for t in turns] == [(t.speaker, t.gender, t.corpus) for t in conv.turns]
    assert [t.start_s for t in turns] == pytest.approx([t.start_s for t in conv.turns], abs=6e-4)
    assert [t.end_s for t in turns] == pytest.approx([t.end_s for t in conv.turns], abs=1.1e-3)
    wav = conv.save(tmp_path)
    assert wav.name == "mix one.wav" and (tmp_path / "mix one.rttm").is_file()
    back = load_conversation(tmp_path / "mix one.json")
    assert back.turns == conv.turns and back.spec == conv.spec and back.seed == 5
    np.testing.assert_allclose(back.samples, conv.samples, atol=1 / 2**15)


def test_frame_genders_and_speaking_time_on_known_turns():
    turns = [Turn("c/a", "female", 0.0, 1.0, "c"), Turn("c/b", "male", 0.8, 2.0, "c"),
             Turn("c/d", "female", 1.9, 3.0, "c")]
    genders = frame_genders(turns, 3.5, 0.1)
    assert len(genders) == 35
    assert genders[5] == {"female"} and genders[9] == {"female", "male"} and genders[15] == {"male"}
    assert genders[19] == {"female", "male"} and genders[30:] == [frozenset()] * 5
    time = speaking_time(turns)
    assert time.by_gender == pytest.approx({"female": 2.1, "male": 1.2})
    assert time.by_speaker == pytest.approx({"c/a": 1.0, "c/b": 1.2, "c/d": 1.1})
    assert time.female_share == pytest.approx(2.1 / 3.3)


def test_trim_to_speech_cuts_silence():
    voice = synth_voice(FEMALE_F0, 0.5, SR)
    padded = np.concatenate([np.zeros(SR, np.float32), voice, np.zeros(SR, np.float32)])
    assert 0.5 * SR <= len(trim_to_speech(padded)) <= 0.5 * SR + 4 * 160


def test_conversation_set_is_seeded_and_named(corpus_csv, background_dir):
    spec = dataclasses.replace(CONDITIONS["music"], duration_s=(20.0, 22.0), music_break_every=3)
    first = conversation_set(corpus_csv, spec, 2, seed=1, background_dir=background_dir, n_speakers=2)
    again = conversation_set([load_corpus(corpus_csv)], spec, 2, seed=1, background_dir=background_dir,
                             n_speakers=2)
    assert [c.name for c in first] == ["custom_000", "custom_001"]
    assert all(c.condition == "custom" and c.music for c in first)
    assert [c.seed for c in first] == [c.seed for c in again] and first[0].seed != first[1].seed
    np.testing.assert_array_equal(first[1].samples, again[1].samples)
    alone = simulate(spec, speaker_pool([load_corpus(corpus_csv)]), load_background(background_dir), first[1].seed,
                     "custom_001", n_speakers=2)
    np.testing.assert_array_equal(alone.samples, first[1].samples)
    named = conversation_set(corpus_csv, "telephone", 1, seed=1, background_dir=background_dir, name_prefix="call")
    assert named[0].name == "call_000" and named[0].condition == "telephone" and len(named[0].turns) > 10
    with pytest.raises(ValueError, match="unknown condition"):
        conversation_set(corpus_csv, "opera", 1, 0, background_dir)


@requires_shared_data
def test_a_conversation_from_the_shared_corpora():
    corpus = load_corpus(SHARED_DATA / "baved")
    spec = dataclasses.replace(CONDITIONS["music"], duration_s=(25.0, 30.0), music_break_every=4)
    pool = speaker_pool([corpus])
    children = {c.speaker_key for c in corpus.clips if c.age is not None and c.age <= 12}
    assert children and not children & set(pool)
    conv = simulate(spec, pool, load_background(SHARED_DATA / "background"), 0, "baved", n_speakers=3)
    labels = {c.speaker_key: c.gender for c in corpus.clips}
    assert all(t.gender == labels[t.speaker] for t in conv.turns) and conv.music
    assert conv.background[0]["kind"] == "music" and np.abs(conv.samples).max() <= 0.98 + 1e-6
