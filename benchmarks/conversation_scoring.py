"""Scoring a timeline against a simulated conversation's reference (plain functions; used by conversations.py).

A **hypothesis** is a list of ``(start_s, end_s, label, speaker)``: label "female", "male" or anything else for no
speech (no_speech, music, noise, noEnergy, ...), speaker an id or None (a system that does not tell speakers apart).
A **reference** is what :meth:`voicegender.voice.conversations.Conversation.reference` returns (turns as dicts,
music-alone stretches, duration).

Frames are ``frame_s`` long and count at their centre (:func:`voicegender.voice.conversations.frame_genders`).

* **gender accuracy** on speech frames: reference frames where someone talks; right when the hypothesis label is
  the speaker's gender, or, on cross-talk frames (two speakers), either speaker's gender; missed speech (the
  hypothesis says no speech) counts as wrong. Also reported apart: one-speaker frames and cross-talk frames.
* **female share error**: the hypothesis's female share of speaking time (female s / (female + male) s) minus the
  reference's (female and male speaking time, overlapping turns of one gender counted once), in points.
* **music-alone frames given a gender**: share of the frames inside music-alone breaks labelled female or male.
* **DER / JER** (pyannote.metrics; only for hypotheses with speakers): ``DiarizationErrorRate(collar=0.5,
  skip_overlap=False)`` — a collar of ±0.25 s around reference boundaries, overlapped speech scored — and
  ``JaccardErrorRate`` with the same collar, over the whole file (uem = [0, duration]). DER maps hypothesis speakers
  to reference speakers (Hungarian), so it says nothing about gender: never use it for that.
* **speaker count**: distinct hypothesis speakers minus reference speakers.
* **overlapped speech** (a system that marks it): frames of reference cross-talk, frames marked, and frames both;
  precision and recall pool them over mixes. DER / JER with the second voice's lines an overlap-aware RTTM would
  add in overlapped stretches are kept beside (a reference's overlapped speech is scored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from voicegender.voice.conversations import Turn, frame_genders, frame_mask, frame_speaker_counts, speaking_time

GENDER_LABELS = ("female", "male")
CODES = {"female": 1, "male": 2}  # hypothesis frames: 0 = no speech
PYANNOTE_MISSING = ("pyannote.metrics is not installed: DER and JER need it. Install the benchmark extra: "
                    "pip install -e '.[bench]' (or pip install 'pyannote.metrics>=3.2')")

Hypothesis = Sequence[tuple[float, float, str, str | None]]


def reference_turns(reference: dict) -> list[Turn]:
    return [Turn(**t) for t in reference["turns"]]


def hypothesis_frames(hypothesis: Hypothesis, duration_s: float, frame_s: float = 0.01) -> np.ndarray:
    """Per frame 0 (no speech), 1 (female) or 2 (male), from the segment holding the frame's centre."""
    n = int(round(duration_s / frame_s))
    out = np.zeros(n, np.int8)
    for start, end, label, _ in hypothesis:
        code = CODES.get(label)
        if code:
            out[frame_mask([(start, end)], duration_s, frame_s)] = code
    return out


def gender_accuracy(ref_genders: Sequence[frozenset[str]], hyp: np.ndarray,
                    ref_counts: np.ndarray | None = None) -> dict:
    """Right / total reference speech frames (see the module docstring), overall, on one-speaker frames and on
    cross-talk frames (``ref_counts``: speakers per frame; without it cross-talk means both genders)."""
    female = np.array([("female" in g) for g in ref_genders], bool)
    male = np.array([("male" in g) for g in ref_genders], bool)
    speech = female | male
    right = (female & (hyp == 1)) | (male & (hyp == 2))
    crosstalk = (ref_counts >= 2) if ref_counts is not None else (female & male)
    out = {"right": int(right[speech].sum()), "frames": int(speech.sum())}
    for name, mask in (("single", speech & ~crosstalk), ("crosstalk", speech & crosstalk)):
        out[f"{name}_right"], out[f"{name}_frames"] = int(right[mask].sum()), int(mask.sum())
    out["accuracy"] = out["right"] / out["frames"] if out["frames"] else None
    return out


def hypothesis_seconds(hypothesis: Hypothesis) -> dict[str, float]:
    out = dict.fromkeys(GENDER_LABELS, 0.0)
    for start, end, label, _ in hypothesis:
        if label in out:
            out[label] += end - start
    return out


def female_share_error(reference_share: float | None, hypothesis: Hypothesis) -> float | None:
    """Hypothesis female share minus the reference's, in points (None when either has no speech)."""
    seconds = hypothesis_seconds(hypothesis)
    total = seconds["female"] + seconds["male"]
    if reference_share is None or total <= 0:
        return None
    return 100.0 * (seconds["female"] / total - reference_share)


def music_alone_given_gender(music: np.ndarray, hyp: np.ndarray) -> float | None:
    """Share (%) of the music-alone frames the hypothesis calls female or male (None without music-alone)."""
    return 100.0 * float(np.mean(hyp[music] > 0)) if music.any() else None


def hypothesis_speakers(hypothesis: Hypothesis) -> set[str] | None:
    """The speaker ids of the speech segments, or None when the system gives none."""
    ids = {spk for _, _, label, spk in hypothesis if label in GENDER_LABELS and spk is not None}
    return ids or None


def diarization_errors(turns: Iterable[Turn], hypothesis: Hypothesis, duration_s: float,
                       collar: float = 0.5) -> dict[str, float]:
    """DER and JER (fractions) of the hypothesis's speakers against the reference turns (pyannote.metrics)."""
    try:
        from pyannote.core import Annotation, Segment, Timeline
        from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
    except ImportError as e:
        raise ImportError(PYANNOTE_MISSING) from e
    ref, hyp = Annotation(uri="mix"), Annotation(uri="mix")
    for i, t in enumerate(turns):
        ref[Segment(t.start_s, t.end_s), i] = t.speaker  # a track per turn: overlapping turns are kept
    for i, (start, end, label, spk) in enumerate(hypothesis):
        if label in GENDER_LABELS and spk is not None and end > start:
            hyp[Segment(start, end), i] = spk
    uem = Timeline([Segment(0.0, duration_s)])
    der = DiarizationErrorRate(collar=collar, skip_overlap=False)(ref, hyp, uem=uem)
    jer = JaccardErrorRate(collar=collar, skip_overlap=False)(ref, hyp, uem=uem)
    return {"der": float(der), "jer": float(jer)}


def overlap_frames(reference_counts: np.ndarray, overlaps: Sequence[tuple[float, float]], frame_s: float) -> dict:
    """Frames of reference cross-talk (two speakers or more), frames the system marks as overlapped, and both."""
    marked = frame_mask(overlaps, len(reference_counts) * frame_s, frame_s)[:len(reference_counts)]
    truth = reference_counts >= 2
    return {"reference": int(truth.sum()), "marked": int(marked.sum()), "both": int((truth & marked).sum())}


def score_mix(reference: dict, hypothesis: Hypothesis, frame_s: float = 0.01, diarization: bool = True,
              overlaps: Sequence[tuple[float, float]] | None = None,
              second_voices: Hypothesis | None = None) -> dict:
    """Every figure of one system on one mix (see the module docstring); DER/JER only when the hypothesis has
    speakers and ``diarization`` (pyannote.metrics present). ``overlaps``: the stretches the system marks as two
    voices at once (scored against the reference's cross-talk frames); ``second_voices``: the extra
    ``(start, end, label, speaker)`` lines an overlap-aware RTTM would list there: DER/JER with them too
    (``der_second_voices``, ``jer_second_voices``)."""
    duration = reference["duration_s"]
    turns = reference_turns(reference)
    ref_genders = frame_genders(turns, duration, frame_s)
    hyp = hypothesis_frames(hypothesis, duration, frame_s)
    accuracy = gender_accuracy(ref_genders, hyp, frame_speaker_counts(turns, duration, frame_s))
    ref_share = speaking_time(turns).female_share
    speakers = hypothesis_speakers(hypothesis)
    n_ref = len({t.speaker for t in turns})
    out = {"gender_accuracy": accuracy["accuracy"], "frames": accuracy,
           "female_share_ref": ref_share, "female_share_error": female_share_error(ref_share, hypothesis),
           "music_alone_given_gender": music_alone_given_gender(frame_mask(reference["music"], duration, frame_s),
                                                               hyp),
           "hypothesis_seconds": hypothesis_seconds(hypothesis), "speakers_ref": n_ref,
           "speakers_hyp": None if speakers is None else len(speakers),
           "speaker_count_error": None if speakers is None else len(speakers) - n_ref,
           "der": None, "jer": None}
    if overlaps is not None:
        out["overlap_frames"] = overlap_frames(frame_speaker_counts(turns, duration, frame_s), overlaps, frame_s)
    if speakers is not None and diarization:
        out.update(diarization_errors(turns, hypothesis, duration))
        if second_voices:
            both = diarization_errors(turns, [*hypothesis, *second_voices], duration)
            out.update(der_second_voices=both["der"], jer_second_voices=both["jer"])
    return out


def spread(values: Iterable[float | None]) -> dict | None:
    """Mean, min and max of the values that are not None (None when there are none), and how many there were."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {"mean": float(np.mean(xs)), "min": min(xs), "max": max(xs), "n": len(xs)}
