"""Which optional extras a feature needs, and the one-line error that names the missing one.

``pip install voicegender`` gives predict, segment, merge and the models commands (numpy, onnxruntime, PyAV, ...).
The rest comes with extras (pyproject.toml): ``web`` (the page), ``record`` (the microphone), ``fit`` (the shipped
kind of model fitted on your corpora) and ``research`` (torch: train, evaluate, explain, export, attribution maps).
A command whose extra is missing stops with one line (a :class:`MissingExtraError`, exit code 2)::

    voicegender train needs the research extras: pip install 'voicegender[research]'
"""

from __future__ import annotations

import importlib.util

from .errors import VoiceGenderError

# extra -> the top-level modules it brings (import names, not distribution names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "research": ("torch", "librosa", "skimage", "matplotlib", "captum", "resemblyzer", "onnx", "PIL", "sklearn",
                 "scipy"),
    "fit": ("sklearn", "scipy", "parselmouth"),
    "web": ("fastapi", "uvicorn", "multipart", "PIL"),
    "record": ("sounddevice",),
}
# a missing module -> the extra to name when it is missing (the smallest extra that brings it)
_EXTRA_OF = {module: extra for extra in ("research", "fit", "web", "record") for module in EXTRAS[extra]}


class MissingExtraError(VoiceGenderError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, what: str, extra: str, modules: tuple[str, ...] = ()) -> None:
        self.what, self.extra, self.modules = what, extra, tuple(modules)
        super().__init__(f"{what} needs the {extra} extras: pip install 'voicegender[{extra}]'")


def installed(module: str) -> bool:
    """True when ``module`` can be imported (found without importing it; False when a test blocked it with
    ``sys.modules[module] = None``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The modules of ``extra`` (or just ``modules`` of it) that cannot be imported."""
    return tuple(m for m in (EXTRAS[extra] if modules is None else modules) if not installed(m))


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` (``"<what> needs the <extra> extras: pip install ..."``) unless every
    module ``what`` needs from ``extra`` (default: all of them) can be imported. Checked before any work."""
    gone = missing(extra, modules)
    if gone:
        raise MissingExtraError(what, extra, gone)


def extra_for(module_name: str | None) -> str | None:
    """The extra that brings ``module_name`` (e.g. ``"torch.nn"`` → ``"research"``), None for other modules."""
    if not module_name:
        return None
    return _EXTRA_OF.get(module_name.partition(".")[0])
