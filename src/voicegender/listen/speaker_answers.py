"""One answer per speaker of a corpus (``voicegender speakers``): every clip scored as ``predict`` scores it, then
pooled per speaker.

A speaker's many clips are right far more often than any one of them: on corpora the model never saw, pooling made
every speaker right on four corpora whose single clips score 0.964-1.000 (issue 21). Pooling is the same as for the
speakers of a recording (:func:`voicegender.voice.model.weighted_log_odds`): the clips' female log-odds averaged,
weighted by their seconds of speech; ``p_child`` likewise. Clips without speech (or that fail) do not vote. A
speaker whose every clip failed is answered ``failed``, not ``no_speech``: nobody heard it, so nothing says it is
silent (``failed`` counts a speaker's failed clips in every case).

Corpora: what :func:`voicegender.corpora.load_corpus` reads (a CSV manifest with ``path, speaker, gender``, an
AudioMNIST folder, ``female/<speaker>/`` and ``male/<speaker>/`` folders), or a folder of **one sub-folder per
speaker** without labels. Files lying directly in ``female/`` or ``male/`` name no speaker: a corpus made only of
those is refused with one line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio.decode import AUDIO_EXTENSIONS, audio_files, read_first_seconds
from ..corpora import AUDIOMNIST_META, LABELS, MANIFEST_NAME, folder_layout, load_corpus, speaker_note
from ..errors import CorpusError, VoiceGenderError
from ..voice.model import logit, sigmoid, weighted_log_odds
from ..voice.pitch import median_pitch
from .predict import iter_predictions
from .prediction import PredictOptions

log = logging.getLogger(__name__)

PITCH_READ_S = 30.0  # seconds of a clip read for its pitch (a clip's median needs no more; long files stay cheap)
MIXED = "mixed"  # the label of a speaker whose clips are labelled both female and male
FAILED = "failed"  # the answer of a speaker whose every clip failed (none could be read)
# the output record of a speaker (CSV columns, JSON keys); label / p_label / against_label are empty without
# labels, verdict without an audit (voicegender.listen.label_audit)
FIELDS = ("speaker", "label", "answer", "p_female", "p_label", "p_child", "pitch_hz", "clips", "answered", "failed",
          "agree", "against_label", "speech_s", "verdict")


@dataclass(frozen=True)
class SpeakerClip:
    """A clip of a corpus: its file, its speaker, and the speaker's label (None when the corpus gives none)."""

    path: Path
    speaker: str
    label: str | None


@dataclass(frozen=True)
class ClipScore:
    """What the model said about one clip (as ``predict`` says it), and its pitch."""

    path: str
    speaker: str
    label: str | None  # the corpus's label of the clip
    p_female: float | None  # None: no speech, or the clip failed
    p_child: float | None
    speech_s: float  # seconds of detected speech (0 when it failed)
    pitch_hz: float | None = None  # median F0 of the clip's voiced frames (voice.pitch); None: not measured
    error: str | None = None  # why the clip failed


@dataclass
class SpeakerAnswer:
    """One speaker's answer from all of its clips."""

    speaker: str
    label: str | None  # "female" | "male" | "mixed" (the corpus labels its clips both ways) | None (no labels)
    answer: str  # "female" | "male", "no_speech" when no clip holds speech, "failed" when every clip failed
    p_female: float | None  # from the clips' log-odds, weighted by speech; None without speech
    p_child: float | None  # the same for the child-voice probability; None when the model does not estimate it
    pitch_hz: float | None  # median over the clips' median F0
    clips: int  # clips of the speaker in the corpus
    answered: int  # clips with speech (the others are no_speech or failed)
    agree: int  # answered clips whose own answer is the speaker's answer
    speech_s: float  # seconds of speech over all clips
    p_label: float | None = None  # probability of the label given the audio (p_female or 1 - p_female)
    against_label: int | None = None  # answered clips whose own answer is not the label
    verdict: str | None = None  # set by voicegender.listen.label_audit.audit
    failed: int = 0  # clips that failed (could not be read): they do not vote
    scores: list[ClipScore] = field(default_factory=list, repr=False)  # the speaker's clips

    @property
    def log_odds_against(self) -> float:
        """How strongly the audio contradicts the label (log-odds of the other gender); -inf without one."""
        return float(logit(1.0 - self.p_label)) if self.p_label is not None else -np.inf

    def as_dict(self) -> dict:
        """The output record: exactly :data:`FIELDS`; probabilities rounded to 4 places, seconds and Hz to 0.1."""
        def rounded(x: float | None, places: int) -> float | None:
            return None if x is None else round(float(x), places)

        return {"speaker": self.speaker, "label": self.label, "answer": self.answer,
                "p_female": rounded(self.p_female, 4), "p_label": rounded(self.p_label, 4),
                "p_child": rounded(self.p_child, 4), "pitch_hz": rounded(self.pitch_hz, 1), "clips": self.clips,
                "answered": self.answered, "failed": self.failed, "agree": self.agree,
                "against_label": self.against_label,
                "speech_s": rounded(self.speech_s, 1), "verdict": self.verdict}



# --- which clips ---------------------------------------------------------------------------------------------------
def corpus_clips(path: str | Path) -> tuple[str, list[SpeakerClip]]:
    """The name and clips of a corpus, each with its speaker and label (see the module's docstring for the layouts).

    Raises CorpusError (one line naming the file) for a corpus that cannot be read, holds images, or names no
    speaker.
    """
    path = Path(path)
    if path.is_dir() and folder_layout(path) is None:
        folders = _speaker_folders(path)
        if not folders:
            raise CorpusError(f"{path}: not a corpus: expected a CSV manifest (path, speaker, gender), "
                              f"{MANIFEST_NAME}, {AUDIOMNIST_META}, female/ and male/ sub-folders, or one sub-folder "
                              "of recordings per speaker")
        return path.name, [SpeakerClip(f, d.name, None) for d in folders for f in audio_files(d)]
    corpus = load_corpus(path)
    if corpus.kind != "audio":
        raise CorpusError(f"{path}: the corpus lists images, not recordings: speakers are answered from audio")
    if corpus.speaker_from_file == len(corpus.clips):
        raise CorpusError(f"{corpus.root}: no speaker ids: every file lies directly in female/ or male/; put each "
                          "speaker's files in female/<speaker>/ or male/<speaker>/, or use a CSV manifest with a "
                          "speaker column")
    note = speaker_note(corpus)
    if note:
        log.warning("%s", note)
    return corpus.name, [SpeakerClip(c.path, c.speaker, c.gender) for c in corpus.clips]


def _speaker_folders(path: Path) -> list[Path]:
    """The sub-folders holding recordings of a folder of one sub-folder per speaker; [] when it is not one (audio
    lies at its top, or no sub-folder holds any)."""
    if any(p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS for p in path.iterdir()):
        return []
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in subs if audio_files(p)]


# --- clips -> scores -> speakers -----------------------------------------------------------------------------------
def score_clips(clips: Sequence[SpeakerClip], model=None, options: PredictOptions = PredictOptions(),
                pitch: bool = True, show_progress: bool = True) -> list[ClipScore]:
    """Score every clip with the prediction path of ``predict`` (:func:`voicegender.listen.predict.iter_predictions`:
    speech detection, the model, no_speech below ``options.min_speech_s``), in input order; with ``pitch``, also
    each answered clip's median F0 from its first :data:`PITCH_READ_S` seconds. A clip that fails is a score with
    its error (and no p_female), as predict's error rows."""
    from ..progress import progress

    out = []
    predictions = iter_predictions([c.path for c in clips], model, options, show_progress)
    for clip, p in zip(clips, predictions, strict=True):
        out.append(ClipScore(str(clip.path), clip.speaker, clip.label, p.p_female, p.p_child, float(p.speech_s or 0.0),
                             error=p.error))
    if pitch:
        answered = [i for i, s in enumerate(out) if s.p_female is not None]
        for i in progress(answered, desc="pitch", unit="file") if show_progress else answered:
            out[i] = _with_pitch(out[i])
    return out


def _with_pitch(score: ClipScore) -> ClipScore:
    from dataclasses import replace

    try:
        samples = read_first_seconds(score.path, PITCH_READ_S)
    except VoiceGenderError as e:  # it decoded a moment ago; a file changing under us leaves the pitch unknown
        log.warning("%s", e)
        return score
    return replace(score, pitch_hz=median_pitch(samples))


def pool_speakers(scores: Sequence[ClipScore], threshold: float = 0.5) -> list[SpeakerAnswer]:
    """Each speaker's answer from its clips' scores (speakers in order of first appearance)."""
    by_speaker: dict[str, list[ClipScore]] = {}
    for s in scores:
        by_speaker.setdefault(s.speaker, []).append(s)
    return [pool_speaker(name, mine, threshold) for name, mine in by_speaker.items()]


def pool_speaker(speaker: str, scores: Sequence[ClipScore], threshold: float = 0.5) -> SpeakerAnswer:
    """One speaker's answer: its answered clips' log-odds averaged, weighted by speech seconds."""
    labels = {s.label for s in scores}
    label = None if labels <= {None} else labels.pop() if len(labels) == 1 else MIXED
    answered = [s for s in scores if s.p_female is not None]
    failed = sum(s.error is not None for s in scores)
    speech_s = float(sum(s.speech_s for s in scores))
    if not answered:
        answer = FAILED if failed == len(scores) else "no_speech"
        return SpeakerAnswer(speaker, label, answer, None, None, None, len(scores), 0, 0, speech_s,
                             against_label=0 if label in LABELS else None, failed=failed, scores=list(scores))
    weights = np.array([max(s.speech_s, 1e-3) for s in answered])  # a clip scored at all has some speech
    p = float(sigmoid(weighted_log_odds(logit(np.array([s.p_female for s in answered])), weights)))
    p_child = None
    if all(s.p_child is not None for s in answered):
        p_child = float(sigmoid(weighted_log_odds(logit(np.array([s.p_child for s in answered])), weights)))
    answer = "female" if p >= threshold else "male"
    own = ["female" if s.p_female >= threshold else "male" for s in answered]
    pitches = [s.pitch_hz for s in answered if s.pitch_hz is not None]
    out = SpeakerAnswer(speaker, label, answer, p, p_child, float(np.median(pitches)) if pitches else None,
                        len(scores), len(answered), sum(a == answer for a in own), speech_s, failed=failed,
                        scores=list(scores))
    if label in LABELS:
        out.p_label = p if label == "female" else 1.0 - p
        out.against_label = sum(a != label for a in own)
    return out


def speaker_answers(corpus: str | Path, model=None, options: PredictOptions = PredictOptions(), pitch: bool = True,
                    show_progress: bool = True) -> list[SpeakerAnswer]:
    """``voicegender speakers`` as one call: the corpus's clips (:func:`corpus_clips`), scored
    (:func:`score_clips`) and pooled per speaker (:func:`pool_speakers`, at ``options.threshold``)."""
    _, clips = corpus_clips(corpus)
    return pool_speakers(score_clips(clips, model, options, pitch, show_progress), options.threshold)
