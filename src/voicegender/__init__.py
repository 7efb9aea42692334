"""voicegender: speaker gender from any recording.

The few names a Python user needs, loaded on first use (PEP 562), so ``import voicegender`` stays cheap (no torch,
numpy or audio libraries until a name below is used)::

    import voicegender

    model = voicegender.load_model()  # the shipped model (or a .npz from `voicegender fit`, a .pt from `train`)
    for p in voicegender.predict_files(["a.wav", "b.mp3"], model):
        print(p.path, p.label, p.p_female)
    segments, duration_s = voicegender.segment_file("meeting.flac", model)
    two = voicegender.SegmentOptions(speaker_options=voicegender.SpeakerOptions(min_speakers=2, max_speakers=2))
    timeline = voicegender.timeline_file("call.wav", model, two)  # timeline.speakers: S1, S2 with a gender each

The package is laid out by concern, data flowing one way (docs/ARCHITECTURE.md): the top-level modules (errors,
file writing, progress, corpora, metrics) → :mod:`~voicegender.audio` → :mod:`~voicegender.speech` →
:mod:`~voicegender.voice` → :mod:`~voicegender.listen`, with :mod:`~voicegender.research` (the seed reproduction
bench) beside voice and listen, and :mod:`~voicegender.cli` and :mod:`~voicegender.web` on top.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    # one recording or many -> Prediction(label, p_female, p_child, duration_s, speech_s, ...)
    "predict_file": "listen.predict",
    "predict_files": "listen.predict",
    "predict_waveform": "listen.predict",
    "iter_predictions": "listen.predict",
    "Prediction": "listen.prediction",
    "PredictOptions": "listen.prediction",
    # what scores speech: the shipped model, a model file, or a Model of your own
    "load_model": "voice.loading",
    "Model": "voice.model",
    "Scores": "voice.model",
    # who speaks when in a long recording: segments, speakers (S1, S2, ... with a gender each), summary
    "timeline_file": "listen.segment",
    "Timeline": "listen.segment",
    "segment_file": "listen.segment",
    "Segment": "listen.segment",
    "SegmentOptions": "listen.segment",
    "SpeakerOptions": "listen.speakers",  # SegmentOptions(speaker_options=...): e.g. min_speakers / max_speakers
    "speaking_time": "listen.segment",
    # models, audio, corpora
    "load_default_model": "voice.default_model",
    "load_audio": "audio.decode",
    "load_corpus": "corpora",
    "fit_corpora": "voice.fit",
    "VoiceGenderError": "errors",
}

__all__ = [  # the names of _API, spelled out for readers and linters
    "__version__",
    "predict_file", "predict_files", "predict_waveform", "iter_predictions", "Prediction", "PredictOptions",
    "load_model", "Model", "Scores",
    "timeline_file", "Timeline", "segment_file", "Segment", "SegmentOptions", "SpeakerOptions", "speaking_time",
    "load_default_model", "load_audio", "load_corpus", "fit_corpora", "VoiceGenderError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from .audio.decode import load_audio
    from .corpora import load_corpus
    from .errors import VoiceGenderError
    from .listen.predict import iter_predictions, predict_file, predict_files, predict_waveform
    from .listen.prediction import Prediction, PredictOptions
    from .listen.segment import Segment, SegmentOptions, Timeline, segment_file, speaking_time, timeline_file
    from .listen.speakers import SpeakerOptions
    from .voice.default_model import load_default_model
    from .voice.fit import fit_corpora
    from .voice.loading import load_model
    from .voice.model import Model, Scores


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
