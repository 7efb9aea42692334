"""The light install's commands import nothing heavy: `predict`, `segment`, `record` on a file, and the web app
answering an upload with its picture and map, in a fresh Python process each (``sys.modules`` of this one holds whatever
earlier tests imported).

The networks they run ship inside the package as ONNX files, so no cache needs to be made first and no research
extra is needed: these checks would fail if a module of the research or fit extras (torch, scipy, librosa,
scikit-learn, matplotlib, ...) were imported on the way. `predict` also runs with those modules blocked, as in an
install without them. torch and resemblyzer cost 2-3 s and ~250 MB of a start-up; scipy 0.1-0.15 s.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# the research and fit extras' modules (silero_vad imports torch); PIL is the web extra's and may load there
HEAVY = ("torch", "resemblyzer", "silero_vad", "librosa", "scipy", "sklearn", "skimage", "matplotlib", "captum",
         "onnx", "parselmouth", "numba")


@pytest.fixture(scope="module")
def example() -> Path:
    """A real voice (the bundled Common Voice example): synthetic voices are no speech to silero, so the encoder
    would never run."""
    path = Path(str(importlib.resources.files("voicegender") / "examples" / "commonvoice_female_en.ogg"))
    assert path.is_file()
    return path


def _modules_after(code: str, tmp_path: Path, block: bool = False) -> tuple[set[str], str]:
    """Run ``code`` in a new interpreter (with :data:`HEAVY` made unimportable when ``block``); the heavy modules it
    imported, and its stdout before the last line. The cache folder must stay empty: nothing is made per machine."""
    blocker = f"import sys\nfor _m in {HEAVY!r}:\n    sys.modules[_m] = None\n" if block else ""
    script = blocker + code + textwrap.dedent(f"""
        import sys
        print("imported:" + ",".join(sorted(m for m in {HEAVY!r} if sys.modules.get(m) is not None)))
    """)
    cache = tmp_path / "cache"
    env = {**os.environ, "VOICEGENDER_CACHE_DIR": str(cache)}
    env.pop("VOICEGENDER_ENCODER", None)
    env.pop("VOICEGENDER_VAD_MODEL", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "falls back to torch" not in done.stderr and "TorchScript" not in done.stderr, done.stderr
    assert not cache.exists() or not any(cache.iterdir()), sorted(p.name for p in cache.iterdir())
    out, _, last = done.stdout.rpartition("imported:")
    return set(filter(None, last.strip().split(","))), out.strip()


PREDICT = """
from voicegender.cli import main
assert main(["predict", "--format", "json", {path!r}]) == 0
"""


@pytest.mark.parametrize("block", [False, True], ids=["installed", "blocked"])
def test_predict_on_a_file_imports_nothing_heavy(example: Path, tmp_path: Path, block: bool):
    imported, out = _modules_after(PREDICT.format(path=str(example)), tmp_path, block)
    row = json.loads(out.splitlines()[-1])
    assert row["label"] == "female" and row["p_female"] > 0.5
    assert imported == set(), f"predict imported {sorted(imported)}"


def test_segment_on_a_file_imports_nothing_heavy(example: Path, tmp_path: Path):
    out_file = tmp_path / "timeline.csv"
    imported, _ = _modules_after(textwrap.dedent(f"""
        from voicegender.cli import main
        assert main(["segment", {str(example)!r}, "--out", {str(out_file)!r}]) == 0
    """), tmp_path)
    assert out_file.is_file() and "female" in out_file.read_text()
    assert imported == set(), f"segment imported {sorted(imported)}"


def test_web_app_prediction_and_picture_import_nothing_heavy(example: Path, tmp_path: Path):
    pytest.importorskip("fastapi", reason="the web app needs the web extra")
    pytest.importorskip("multipart", reason="the web app needs python-multipart (web extra)")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    pytest.importorskip("PIL", reason="the page's picture needs pillow (web extra)")
    imported, out = _modules_after(textwrap.dedent(f"""
        import json
        from fastapi.testclient import TestClient
        from voicegender.web.app import create_app
        with TestClient(create_app()) as client:
            with open({str(example)!r}, "rb") as f:
                r = client.post("/api/predict?explain=1", files={{"file": ("voice.ogg", f.read(), "audio/ogg")}})
        assert r.status_code == 200, r.text
        print(json.dumps(r.json()))
    """), tmp_path)
    answer = json.loads(out.splitlines()[-1])
    assert answer["label"] == "female" and answer["cam"] is True and answer["overlay_png"]  # the occlusion map
    assert imported == set(), f"the web app imported {sorted(imported)}"


def test_record_imports_nothing_heavy(example: Path, tmp_path: Path):
    """`record` with a stand-in microphone (sounddevice replaced by a module that plays the bundled real voice)."""
    out_file = tmp_path / "me.wav"
    imported, out = _modules_after(textwrap.dedent(f"""
        import sys, types
        import numpy as np
        import soundfile as sf
        voice, rate = sf.read({str(example)!r}, dtype="float32")
        sd = types.ModuleType("sounddevice")
        sd.PortAudioError = OSError
        sd.check_input_settings = lambda **kwargs: None
        sd.query_devices = lambda: [{{"name": "mic", "max_input_channels": 1, "max_output_channels": 0}}]
        sd.rec = lambda frames, **kwargs: np.resize(voice, frames).reshape(-1, 1)
        sd.wait = lambda: None
        sys.modules["sounddevice"] = sd
        import voicegender.listen.record as record
        record.time.sleep = lambda s: None
        from voicegender.cli import main
        assert main(["record", "--seconds", str(len(voice) / rate), "--rate", str(rate),
                     "--out", {str(out_file)!r}]) == 0
    """), tmp_path)
    assert out_file.is_file() and ": female (p_female" in out
    assert imported == set(), f"record imported {sorted(imported)}"
