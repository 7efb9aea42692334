"""A :class:`~voicegender.voice.model.Model` from what a user names: nothing (the shipped model), a model file, a Model,
or a scorer function.

voice never imports the research bench: a ``.pt`` file from ``voicegender train`` is loaded by the loader the
installed package declares under the entry-point group :data:`MODEL_LOADERS` (research declares ``checkpoint``,
see pyproject.toml), looked up only when such a file is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelError
from .model import Model, ScorerModel

MODEL_LOADERS = "voicegender.model_loaders"  # entry-point group: model file kind -> loader (path -> Model)


def load_model(model: str | os.PathLike | Model | Callable | None = None) -> Model:
    """What scores speech: the shipped default model (None), a model file (a ``.npz`` voice head from ``voicegender
    fit``, a ``.pt`` checkpoint from ``voicegender train``), a :class:`Model` as given, or a scorer function.

    Raises ModelError naming the file when it is missing, a folder, or not a model file.
    """
    if model is None:
        from .default_model import load_default_model

        return load_default_model()
    if isinstance(model, (str, os.PathLike)):
        from .model_files import is_voice_head_file

        if is_voice_head_file(model):  # a voice head written by `voicegender fit`, whatever its name
            from .default_model import load_voice_model

            return load_voice_model(model)
        return _plugin_loader("checkpoint", model)(Path(model))
    if isinstance(model, Model):
        return model
    if callable(model):
        return ScorerModel(model)
    raise TypeError(f"not a model: {type(model).__name__} (give None, a model file, a Model or a scorer function)")


def _plugin_loader(kind: str, path: str | os.PathLike) -> Callable[[Path], Model]:
    """The loader the installed packages declare for model files of ``kind`` (entry points, :data:`MODEL_LOADERS`)."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=MODEL_LOADERS) if ep.name == kind]
    if not found:
        raise ModelError(f"{path}: a {kind} file, and no installed package loads those (entry points "
                         f"{MODEL_LOADERS!r}); reinstall voicegender (pip install 'voicegender[research]')")
    try:
        return found[0].load()
    except ImportError as e:  # the research bench needs torch
        raise ModelError(f"{path}: loading a {kind} needs the research extras ({e.name or 'a missing package'}): "
                         "pip install 'voicegender[research]'") from e
