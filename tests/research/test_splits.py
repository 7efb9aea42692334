from pathlib import Path

import pytest

from voicegender.corpora import Clip
from voicegender.errors import VoiceGenderError
from voicegender.research.splits import (
    AUDIOMNIST_FEMALE_GROUPS,
    AUDIOMNIST_MALE_GROUPS,
    audiomnist_4fold,
    corpus_out,
    make_split,
    random_split,
    speaker_kfold,
)

FEMALE_IDS = {12, 26, 28, 36, 43, 47, 52, 56, 57, 58, 59, 60}


def audiomnist_clips(reps: int = 3) -> list[Clip]:
    return [Clip(Path(f"{d}_{s:02d}_{r}.wav"), f"{s:02d}", "female" if s in FEMALE_IDS else "male", "amnist")
            for s in range(1, 61) for d in range(2) for r in range(reps)]


def speakers(clips: list[Clip]) -> set[str]:
    return {c.speaker_key for c in clips}


def assert_disjoint(split):
    train, val, test = speakers(split.train), speakers(split.val), speakers(split.test)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)


@pytest.mark.parametrize("fold", range(4))
def test_audiomnist_protocol_fold(fold: int):
    split = audiomnist_4fold(audiomnist_clips(), fold)
    assert_disjoint(split)
    test_ids = {c.speaker for c in split.test}
    assert test_ids == set(AUDIOMNIST_FEMALE_GROUPS[fold] + AUDIOMNIST_MALE_GROUPS[fold])
    assert {c.speaker for c in split.val} == set(AUDIOMNIST_FEMALE_GROUPS[(fold + 1) % 4]
                                                  + AUDIOMNIST_MALE_GROUPS[(fold + 1) % 4])
    for part, n in ((split.train, 12), (split.val, 6), (split.test, 6)):
        assert len({c.speaker for c in part}) == n
        assert sum(c.gender == "female" for c in part) == sum(c.gender == "male" for c in part)  # balanced


def test_audiomnist_protocol_rotates_test_over_all_24():
    tested = set().union(*({c.speaker for c in audiomnist_4fold(audiomnist_clips(1), k).test} for k in range(4)))
    assert len(tested) == 24
    with pytest.raises(VoiceGenderError):
        audiomnist_4fold(audiomnist_clips(1), 4)


@pytest.mark.parametrize("k", [3, 5])
def test_speaker_kfold_disjoint_balanced_and_covering(k: int):
    clips = audiomnist_clips(1)
    tested = []
    for fold in range(k):
        split = speaker_kfold(clips, fold, k=k, seed=7)
        assert_disjoint(split)
        assert len(split.train) + len(split.val) + len(split.test) == len(clips)
        females = {c.speaker for c in split.test if c.gender == "female"}
        assert abs(len(females) - 12 / k) <= 1  # genders spread evenly over folds
        tested += list(speakers(split.test))
    assert sorted(tested) == sorted(speakers(clips))  # every speaker tested exactly once
    assert speaker_kfold(clips, 0, k, seed=7).test == speaker_kfold(clips, 0, k, seed=7).test  # seeded


def test_same_speaker_id_in_two_corpora_stays_separate():
    clips = [Clip(Path(f"{c}{s}{i}"), str(s), "female" if s % 2 else "male", c)
             for c in ("a", "b") for s in range(6) for i in range(2)]
    split = speaker_kfold(clips, 0, k=3)
    assert_disjoint(split)
    held = corpus_out(clips, "b")
    assert {c.corpus for c in held.test} == {"b"} and {c.corpus for c in held.train + held.val} == {"a"}
    assert not speakers(held.train) & speakers(held.val)


def test_random_split_is_the_seed_80_20_with_speaker_overlap():
    clips = audiomnist_clips(5)
    split = random_split(clips)
    assert len(split.val) == round(0.2 * len(clips)) and len(split.train) + len(split.val) == len(clips)
    assert speakers(split.train) & speakers(split.val)  # the flaw it exists to show
    assert random_split(clips).val == split.val


def test_make_split_rejects_unknown_method_and_tiny_corpora():
    with pytest.raises(VoiceGenderError, match="unknown split"):
        make_split(audiomnist_clips(1), "nope")
    few = audiomnist_clips(1)[:6]
    with pytest.raises(VoiceGenderError, match="too few"):
        speaker_kfold(few, 0, k=5)
