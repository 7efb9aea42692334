"""Example recordings bundled with the package, for the quick start and demos (credits: README.md here).

Two real voices from Mozilla Common Voice (CC0): ``commonvoice_female_en`` and ``commonvoice_male_en``, English
read speech. Four espeak-ng voices: English ``en-us`` (male) and ``en-us+f3`` (female) saying "Hello, this is a
short example recording for the voice gender classifier."; German ``de+m1`` and ``de+f3`` saying "Guten Tag, das
ist eine kurze Aufnahme." Synthetic voices show the tool working, not its accuracy (espeak's German female voice, for
one, gets only p_female 0.69; the model was trained on real voices). Plus two seconds of white noise
that must come out as no_speech.
"""

from importlib.resources import files
from pathlib import Path

EXAMPLES_DIR = Path(str(files(__name__)))


def example_paths() -> list[Path]:
    """The bundled example recordings, sorted by name."""
    return sorted(EXAMPLES_DIR.glob("*.ogg"))
