"""What a prediction is: :class:`Prediction` (the answer for one recording and its output record),
:class:`PredictOptions` (how recordings are turned into answers) and :class:`Prepared` (a recording between speech
detection and its answer), shared by :mod:`voicegender.listen.predict` and its helpers
(:mod:`voicegender.listen.recording`: one recording; :mod:`voicegender.listen.workers`: many files on threads).

Only speech is classified: the speech regions the VAD finds are concatenated and scored as one clip (speech
longer than :data:`voicegender.voice.model.MAX_CHUNK_S` is scored in chunks whose logits are averaged, weighted
by duration). A file with less than ``min_speech_s`` of speech is answered ``no_speech`` (``p_female`` None)
instead of a guess.

Concatenation rather than scoring fixed windows: every model kind takes variable-length input (the GE2E
encoder reads 1.6 s windows itself; the CNNs pool over time), pauses carry no gender information, and one
forward pass per file is the cheapest way to batch many short clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..speech.classified import MIN_SPEECH_S, PREDICT_VAD
from ..speech.vad import VadConfig
from .speakers import SpeakerOptions

if TYPE_CHECKING:
    from .segment import Timeline

LABELS = ("female", "male", "no_speech", "error")
# the JSON/CSV contract (+ "error")
FIELDS = ("path", "label", "p_female", "p_child", "duration_s", "speech_s", "female_s", "male_s")
# female_s / male_s come from segment's windows when there is more speech than this (seconds); below, all speech
# is given to the predicted label: 2 s turns are the shortest the timeline keeps, so 8 s holds a few of them. The
# windows (1.5 s every 0.5 s: 3 s of model input per second of speech) are the cost. Measured with the shipped
# model on 2 busy cores (benchmarks/long_audio.py --cost, load 1.7-2.8): 3 and 6 s clips unchanged (15-44 ms per
# file, below the threshold); 12 s clips 47-56 -> 91-101 ms; 30 s clips 71-174 -> 384-528 ms; a 1 h conversation
# 15 s -> 37 s (load 3.8).
SPEAKING_TIME_ABOVE_S = 8.0
DECODE_TIMEOUT_S = 60.0  # a file whose decoding makes no progress for this long (seconds) is given up: error row


@dataclass
class Prediction:
    """The answer for one recording."""

    path: str  # the file (or a name given to an array)
    label: str  # "female" | "male" | "no_speech" | "error"
    p_female: float | None  # calibrated probability of a female speaker; None for no_speech and errors
    duration_s: float | None  # length of the recording in seconds; None when it could not be decoded
    speech_s: float | None  # seconds of detected speech (all of it with vad=False)
    error: str | None = None  # what went wrong (label "error" only)
    # probability that the voice is a child's (aged 12 or younger), where gender from voice is unreliable;
    # None when there is no speech or the model does not estimate it
    p_child: float | None = None
    # seconds of speech_s attributed to female and male voices (they add up to speech_s): from segment's windows
    # when there is more than PredictOptions.speaking_time_above_s of speech, else all to the label; 0 for
    # no_speech, None for errors
    female_s: float | None = None
    male_s: float | None = None
    # the voices segment's timeline told apart (Speaker.as_dict(): speaker, label, p_female, p_child, speech_s,
    # turns) when it heard more than one; None otherwise (and below speaking_time_above_s of speech)
    speakers: list[dict] | None = None
    # the finished timeline (segments, speakers, summary) female_s / male_s / speakers came from, with
    # PredictOptions.keep_timeline; None otherwise (and when none was drawn). Not part of the output record
    timeline: Timeline | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        """The output record: exactly :data:`FIELDS`, plus ``error`` on error rows and ``speakers`` when the
        recording holds more than one voice; floats rounded."""
        def seconds(x: float | None) -> float | None:
            return None if x is None else round(float(x), 3)

        d = {
            "path": self.path,
            "label": self.label,
            "p_female": None if self.p_female is None else round(float(self.p_female), 4),
            "p_child": None if self.p_child is None else round(float(self.p_child), 4),
            "duration_s": seconds(self.duration_s),
            "speech_s": seconds(self.speech_s),
            "female_s": seconds(self.female_s),
            "male_s": seconds(self.male_s),
        }
        if self.label == "error":
            d["error"] = self.error
        if self.speakers is not None:
            d["speakers"] = self.speakers
        return d


@dataclass(frozen=True)
class PredictOptions:
    """How recordings are turned into answers."""

    threshold: float = 0.5  # p_female >= threshold -> "female", else "male"
    min_speech_s: float = MIN_SPEECH_S  # less detected speech (seconds) -> "no_speech"
    vad: bool = True  # False: classify the whole recording as speech (no speech detection)
    vad_config: VadConfig = field(default_factory=lambda: PREDICT_VAD)  # speech detector thresholds
    batch_size: int = 32  # recordings decoded and scored together
    workers: int = 0  # threads decoding and detecting speech; 0: one per CPU core (at most 4)
    torch_threads: int = 1  # torch threads for the model (voicegender.threads.torch_threads); 0: unchanged
    # more speech than this (seconds): female_s / male_s from segment's windows; math.inf: always from the label
    speaking_time_above_s: float = SPEAKING_TIME_ABOVE_S
    decode_timeout_s: float = DECODE_TIMEOUT_S  # iter_predictions: no decoding progress this long -> error; 0: off
    # the speakers of a recording with more speech than speaking_time_above_s: how many, when the user knows
    speaker_options: SpeakerOptions = field(default_factory=SpeakerOptions)
    # keep the timeline drawn for the speaking time on the answer (Prediction.timeline), for a caller that also
    # shows it (the web page's explain): off by default, so that jobs over many files hold no timelines
    keep_timeline: bool = False
    # threads the timeline of a long recording scores its windows on (SegmentOptions.score_threads); 0: 2 when
    # one recording is predicted (predict_file, or one path: the other worker would idle), 1 for many (the workers
    # already fill the cores)
    score_threads: int = 0


@dataclass
class Prepared:
    """A recording after decoding and speech detection: its speech waiting for the model, or already scored."""

    path: str
    duration_s: float | None = None
    speech: np.ndarray | None = None  # speech to score in the batch (at most MAX_CHUNK_S); None once scored
    speech_s: float | None = None
    error: str | None = None
    scores: tuple[float, float | None] | None = None  # (p_female, p_child) of speech scored by the worker
    female_share: float | None = None  # share of the speech segment's windows call female; None: use the label
    speakers: list[dict] | None = None  # the timeline's speakers when it heard more than one voice
    timeline: Timeline | None = None  # the finished timeline itself, with PredictOptions.keep_timeline
