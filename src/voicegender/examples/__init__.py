"""Example recordings bundled with the package, for the quick start and demos.

Made with the espeak-ng speech synthesiser (English ``en-us`` and ``en-us+f3``, German ``de+m1`` and ``de+f3``; text: "Hello, this is a short example recording for the voice gender classifier." / "Guten Tag,
das ist eine kurze Aufnahme."), plus two seconds of white noise that must come out as no_speech. Synthetic
voices, not real people: they show the tool working, not its accuracy (espeak's plain German voice, for one, comes
out undecided at p_female 0.52; the model was trained on real voices).
"""

from importlib.resources import files
from pathlib import Path

EXAMPLES_DIR = Path(str(files(__name__)))


def example_paths() -> list[Path]:
    """The bundled example recordings, sorted by name."""
    return sorted(EXAMPLES_DIR.glob("*.ogg"))
