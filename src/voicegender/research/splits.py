"""Train / validation / test splits. All but the seed's random split keep every speaker in one part only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..corpora import Clip
from ..errors import VoiceGenderError

# The AudioMNIST authors' gender protocol: 12 female and 12 chosen male speakers in groups of three.
AUDIOMNIST_FEMALE_GROUPS = (("36", "47", "56"), ("12", "26", "57"), ("28", "43", "52"), ("58", "59", "60"))
AUDIOMNIST_MALE_GROUPS = (("02", "44", "50"), ("25", "37", "45"), ("41", "48", "53"), ("07", "23", "38"))
SPLIT_METHODS = ("audiomnist-4fold", "speaker-kfold", "random", "corpus-out")


@dataclass
class Split:
    """One fold: the clips of each part and a name that says how they were chosen."""

    name: str
    train: list[Clip]
    val: list[Clip]
    test: list[Clip]

    def parts(self) -> dict[str, list[Clip]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _speaker_id(speaker: str) -> str:
    return speaker.zfill(2) if speaker.isdigit() else speaker


def audiomnist_4fold(clips: list[Clip], fold: int) -> Split:
    """Fold ``fold`` (0-3) of the AudioMNIST gender protocol.

    Test: female group k and male group k; validation: groups k+1; training: the other two of each. Clips of
    speakers outside the 24 are left out, as in the protocol.
    """
    if not 0 <= fold < 4:
        raise VoiceGenderError(f"--fold must be 0..3 for the AudioMNIST 4-fold protocol, got {fold}")
    groups = list(zip(AUDIOMNIST_FEMALE_GROUPS, AUDIOMNIST_MALE_GROUPS, strict=True))
    test = set(groups[fold][0] + groups[fold][1])
    val = set(groups[(fold + 1) % 4][0] + groups[(fold + 1) % 4][1])
    train = {s for f, m in groups for s in f + m} - test - val
    known = {_speaker_id(c.speaker) for c in clips}
    absent = sorted((train | val | test) - known)
    if len(absent) == 24:
        raise VoiceGenderError("none of the AudioMNIST protocol's 24 speakers is in this corpus; "
                               "use --split speaker-kfold")
    pick = lambda ids: [c for c in clips if _speaker_id(c.speaker) in ids]  # noqa: E731
    return Split(f"audiomnist-4fold/{fold}", pick(train), pick(val), pick(test))


def speaker_folds(clips: list[Clip], k: int, seed: int = 0) -> list[list[str]]:
    """Deal speakers into ``k`` folds, each gender shuffled and dealt round-robin so folds stay balanced.

    Returns the speaker keys (corpus/speaker) of each fold. Female speakers are dealt first starting at fold 0,
    males continue where the females stopped, so fold sizes differ by at most one speaker.
    """
    if k < 3:
        raise VoiceGenderError(f"speaker k-fold needs k >= 3 (train, validation and test folds), got {k}")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    position = 0
    for gender in ("female", "male"):
        speakers = sorted({c.speaker_key for c in clips if c.gender == gender})
        for speaker in rng.permutation(speakers):
            folds[position % k].append(str(speaker))
            position += 1
    if min(len(f) for f in folds) == 0:
        raise VoiceGenderError(f"only {position} speakers: too few for {k} speaker-disjoint folds")
    return folds


def speaker_kfold(clips: list[Clip], fold: int, k: int = 5, seed: int = 0) -> Split:
    """Fold ``fold`` of a gender-stratified speaker k-fold: test = fold, validation = the next fold."""
    if not 0 <= fold < k:
        raise VoiceGenderError(f"--fold must be 0..{k - 1}, got {fold}")
    folds = speaker_folds(clips, k, seed)
    test, val = set(folds[fold]), set(folds[(fold + 1) % k])
    return Split(f"speaker-kfold{k}/{fold}",
                 [c for c in clips if c.speaker_key not in test | val],
                 [c for c in clips if c.speaker_key in val],
                 [c for c in clips if c.speaker_key in test])


def random_split(clips: list[Clip], val_fraction: float = 0.2, seed: int = 42) -> Split:
    """The seed's random clip split (80/20, seed 42). Speakers appear on both sides: it measures memorised
    voices, and is kept only to show how much that inflates the score. The test part is the validation part."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    n_val = int(round(len(clips) * val_fraction))
    val = [clips[i] for i in sorted(order[:n_val])]
    train = [clips[i] for i in sorted(order[n_val:])]
    return Split("random", train, val, val)


def corpus_out(clips: list[Clip], held_out: str, val_fraction: float = 0.15, seed: int = 0) -> Split:
    """Leave one corpus out: test = every clip of ``held_out``; validation = a speaker-disjoint share of the
    remaining corpora."""
    corpora = sorted({c.corpus for c in clips})
    if held_out not in corpora:
        raise VoiceGenderError(f"corpus {held_out!r} is not among {corpora}")
    rest = [c for c in clips if c.corpus != held_out]
    rng = np.random.default_rng(seed)
    val_speakers: set[str] = set()
    for gender in ("female", "male"):
        speakers = sorted({c.speaker_key for c in rest if c.gender == gender})
        n = max(1, int(round(len(speakers) * val_fraction)))
        val_speakers |= {str(s) for s in rng.permutation(speakers)[:n]}
    return Split(f"corpus-out/{held_out}",
                 [c for c in rest if c.speaker_key not in val_speakers],
                 [c for c in rest if c.speaker_key in val_speakers],
                 [c for c in clips if c.corpus == held_out])


def make_split(clips: list[Clip], method: str, fold: int = 0, k: int = 5, seed: int = 0) -> Split:
    """Dispatch on ``method`` (one of SPLIT_METHODS); for corpus-out, ``fold`` indexes the sorted corpora."""
    if method == "audiomnist-4fold":
        return audiomnist_4fold(clips, fold)
    if method == "speaker-kfold":
        return speaker_kfold(clips, fold, k, seed)
    if method == "random":
        return random_split(clips, seed=42 if seed == 0 else seed)
    if method == "corpus-out":
        corpora = sorted({c.corpus for c in clips})
        if not 0 <= fold < len(corpora):
            raise VoiceGenderError(f"--fold must be 0..{len(corpora) - 1} (one per corpus: {corpora})")
        return corpus_out(clips, corpora[fold], seed=seed)
    raise VoiceGenderError(f"unknown split {method!r}; choose one of {', '.join(SPLIT_METHODS)}")


def n_folds(clips: list[Clip], method: str, k: int = 5) -> int:
    """How many folds ``method`` has for these clips."""
    return {"audiomnist-4fold": 4, "speaker-kfold": k, "random": 1,
            "corpus-out": len({c.corpus for c in clips})}[method]
