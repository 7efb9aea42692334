"""The label audit (``voicegender audit``): a corpus's speakers ranked by how strongly their audio contradicts their
gender label, each with a verdict a curator can act on.

**Rank**: the speaker's log-odds of the other gender (:attr:`SpeakerAnswer.log_odds_against`, pooled from all of
its clips), highest first. **Flag** (:class:`AuditRule`): the audio gives the other gender a probability of at least
``min_p`` (0.7) *and* at least ``min_against`` (2/3) of the speaker's answered clips are answered against the label —
one loud clip cannot flag a speaker, nor can many lukewarm ones. A speaker the audio contradicts whose ``p_child``
reaches ``child_p`` (:data:`~voicegender.voice.default_model.CHILD_FLAG`) is reported as a likely child instead:
before puberty gender from voice is unreliable, so that is not evidence of a wrong label.

Verdicts: ``flagged`` (the label is likely wrong: listen), ``child`` (contradicted, but a child's voice), ``mixed``
(the corpus labels the speaker's clips both ways), ``failed`` (every clip failed: nothing was heard, which is not
silence), ``no_speech`` (no clip holds speech), ``ok``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import VoiceGenderError
from ..voice.default_model import CHILD_FLAG
from .speaker_answers import FAILED, MIXED, SpeakerAnswer

VERDICTS = ("flagged", "child", "mixed", FAILED, "no_speech", "ok")


@dataclass(frozen=True)
class AuditRule:
    """When a speaker's label is flagged (probabilities in [0, 1])."""

    # the speaker's probability of the other gender at least this. The pooled probability is under-confident on
    # corpora the model never saw (issue 21): in the flip test (benchmarks/label_audit.py, held-out heads) 0.9 caught
    # 55-94 % of the flipped speakers per corpus, 0.7 caught 90-95 % and flagged no speaker beyond the four
    # speechocean762 speakers whose pitch and formants contradict their labels too (chosen on that test itself)
    min_p: float = 0.7
    min_against: float = 2 / 3  # and at least this share of its answered clips answered against the label
    child_p: float = CHILD_FLAG  # contradicted speakers whose p_child reaches this are likely children, not flagged

    def __post_init__(self) -> None:
        for name in ("min_p", "min_against", "child_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")


def verdict(speaker: SpeakerAnswer, rule: AuditRule = AuditRule()) -> str:
    """What the audit says of one speaker (see the module's docstring)."""
    if speaker.answer == FAILED:  # before mixed: until its files are read, nothing can be checked
        return FAILED
    if speaker.label == MIXED:
        return "mixed"
    if speaker.p_label is None or not speaker.answered:
        return "no_speech"
    contradicted = (1.0 - speaker.p_label >= rule.min_p
                    and (speaker.against_label or 0) >= rule.min_against * speaker.answered)
    if not contradicted:
        return "ok"
    if speaker.p_child is not None and speaker.p_child >= rule.child_p:
        return "child"
    return "flagged"


def audit(speakers: Sequence[SpeakerAnswer], rule: AuditRule = AuditRule()) -> list[SpeakerAnswer]:
    """The speakers with their verdicts, ranked by how strongly the audio contradicts the label (most first;
    speakers without an answer or with mixed labels last). Raises VoiceGenderError when no speaker has a label."""
    if speakers and all(s.label is None for s in speakers):
        raise VoiceGenderError("no labels to audit: the corpus gives no gender (a CSV manifest with a gender column, "
                               "an AudioMNIST folder, or female/<speaker>/ and male/<speaker>/ folders has them); "
                               "`voicegender speakers` answers unlabelled speakers")
    judged = [replace(s, verdict=verdict(s, rule)) for s in speakers]
    return sorted(judged, key=lambda s: -s.log_odds_against)  # stable: ties keep the corpus's order


def summary(ranked: Sequence[SpeakerAnswer]) -> str:
    """``"123 speakers: 2 flagged, 1 likely child, 120 agree with their label"``."""
    counts = {v: sum(s.verdict == v for s in ranked) for v in VERDICTS}
    parts = [f"{counts['flagged']} flagged"]
    if counts["child"]:
        parts.append(f"{counts['child']} likely child{'ren' if counts['child'] > 1 else ''} (not flagged)")
    if counts["mixed"]:
        parts.append(f"{counts['mixed']} with clips labelled both ways")
    if counts[FAILED]:
        parts.append(f"{counts[FAILED]} whose every clip failed")
    if counts["no_speech"]:
        parts.append(f"{counts['no_speech']} without speech")
    parts.append(f"{counts['ok']} agree with their label")
    return f"{len(ranked)} speakers: " + ", ".join(parts)
