"""Example recordings bundled with the package, for the quick start and demos.

Made with the espeak-ng speech synthesiser: English ``en-us`` (male) and ``en-us+f3`` (female) saying "Hello,
this is a short example recording for the voice gender classifier."; German ``de+m1`` and ``de+f3`` saying "Guten
Tag, das ist eine kurze Aufnahme."; plus two seconds of white noise that must come out as no_speech. Synthetic
voices, not real people: they show the tool working, not its accuracy (espeak's plain German voice, for one,
comes out undecided at p_female 0.52; the model was trained on real voices).
"""

from importlib.resources import files
from pathlib import Path

EXAMPLES_DIR = Path(str(files(__name__)))


def example_paths() -> list[Path]:
    """The bundled example recordings, sorted by name."""
    return sorted(EXAMPLES_DIR.glob("*.ogg"))
