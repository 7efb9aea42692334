"""voicegender: speaker gender from any recording.

The few names a Python user needs, loaded on first use (PEP 562), so ``import voicegender`` stays cheap (no torch,
numpy or audio libraries until a name below is used)::

    import voicegender

    model = voicegender.load_model()  # the shipped model (or a .npz from `voicegender fit`, a .pt from `train`)
    for p in voicegender.predict_files(["a.wav", "b.mp3"], model):
        print(p.path, p.label, p.p_female)
    segments, duration_s = voicegender.segment_file("meeting.flac", model)

The long-audio timeline is ``segment_file`` (not ``segment``): :mod:`voicegender.segment` is a module of this
package, and a module's name cannot also lazily name a function of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    # one recording or many -> Prediction(label, p_female, p_child, duration_s, speech_s, ...)
    "predict_file": "predict",
    "predict_files": "predict",
    "predict_waveform": "predict",
    "iter_predictions": "predict",
    "Prediction": "predict",
    "PredictOptions": "predict",
    "load_model": "predict",
    # who speaks when in a long recording
    "segment_file": "segment",
    "Segment": "segment",
    "SegmentOptions": "segment",
    "speaking_time": "segment",
    # models, audio, corpora
    "load_default_model": "default_model",
    "load_audio": "audio",
    "load_corpus": "corpora",
    "fit_corpora": "fit",
    "VoiceGenderError": "errors",
}

__all__ = [  # the names of _API, spelled out for readers and linters
    "__version__",
    "predict_file", "predict_files", "predict_waveform", "iter_predictions", "Prediction", "PredictOptions",
    "load_model",
    "segment_file", "Segment", "SegmentOptions", "speaking_time",
    "load_default_model", "load_audio", "load_corpus", "fit_corpora", "VoiceGenderError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from .audio import load_audio
    from .corpora import load_corpus
    from .default_model import load_default_model
    from .errors import VoiceGenderError
    from .fit import fit_corpora
    from .predict import (
        Prediction,
        PredictOptions,
        iter_predictions,
        load_model,
        predict_file,
        predict_files,
        predict_waveform,
    )
    from .segment import Segment, SegmentOptions, segment_file, speaking_time


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
