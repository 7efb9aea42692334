"""The package's public API (voicegender/__init__.py): a few names, loaded on first use."""

import json
import subprocess
import sys

import pytest

import voicegender

HEAVY = ("torch", "numpy", "scipy", "librosa", "sklearn", "onnxruntime", "soundfile", "av", "matplotlib")


def _modules_after(code: str) -> set[str]:
    """Top-level modules loaded by ``code`` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_voicegender_stays_cheap():
    loaded = _modules_after("import voicegender; voicegender.__version__; dir(voicegender)")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("name", sorted(set(voicegender.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_module(name: str):
    import importlib

    value = getattr(voicegender, name)
    module = importlib.import_module(f"voicegender.{voicegender._API[name]}")
    assert value is getattr(module, name)
    assert name in dir(voicegender)


def test_all_lists_exactly_the_lazy_names():
    assert sorted(voicegender.__all__) == sorted(["__version__", *voicegender._API])


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        voicegender.no_such_thing  # noqa: B018
    with pytest.raises(ImportError):
        from voicegender import no_such_thing  # noqa: F401


def test_predict_from_python(tmp_path):
    """The README's "From Python" lines, on a synthetic voice and a scorer that needs no model file."""
    import numpy as np
    import soundfile as sf

    from voicegender.audio.synth import FEMALE_F0, synth_voice

    path = tmp_path / "voice.wav"
    sf.write(path, synth_voice(FEMALE_F0, 2.0, 16_000, seed=0), 16_000)
    model = voicegender.load_model(lambda waves: np.full(len(waves), 0.9))  # any callable scorer is a model
    (p,) = voicegender.predict_files([path], model, voicegender.PredictOptions(vad=False))
    assert isinstance(p, voicegender.Prediction) and p.label == "female" and p.p_female == pytest.approx(0.9)
