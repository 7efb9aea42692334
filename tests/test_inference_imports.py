"""The inference path imports no torch: `predict`, `segment`, `record` on a file; the web app answering an upload.

Each check runs in a fresh Python process (``sys.modules`` of this one holds whatever earlier tests imported) with
the ONNX GE2E encoder and the rewritten VAD already in the test's cache folder (made in the fixture: the export
itself needs torch). torch and resemblyzer cost 2-3 s and ~250 MB of a start-up; scipy (0.1-0.15 s) is not needed
by ``predict`` either.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None or importlib.util.find_spec("onnx") is None,
    reason="making the ONNX encoder once needs the resemblyzer wheel (its weights) and the onnx package",
)
HEAVY = ("torch", "resemblyzer", "silero_vad", "librosa")  # silero_vad and librosa import torch / numba


@pytest.fixture(scope="module")
def example() -> Path:
    """A real voice (the bundled Common Voice example): synthetic voices are no speech to silero, so the encoder
    would never run."""
    path = Path(str(importlib.resources.files("voicegender") / "examples" / "commonvoice_female_en.ogg"))
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def cache() -> Path:
    """The test run's cache folder with the ONNX encoder and the rewritten VAD made (this process may use torch)."""
    from voicegender.speech import vad_fast, vad_model
    from voicegender.voice import embeddings

    directory = Path(os.environ["VOICEGENDER_CACHE_DIR"])
    embeddings.onnx_encoder()
    assert vad_fast.fast_model_path(vad_model._sequence_model_path()) is not None
    return directory


def _modules_after(code: str, cache: Path) -> tuple[set[str], str]:
    """Run ``code`` in a new interpreter; the heavy modules it imported, and its stdout before the last line."""
    script = code + textwrap.dedent(f"""
        import sys
        print("imported:" + ",".join(sorted(m for m in {HEAVY + ("scipy",)!r} if m in sys.modules)))
    """)
    env = {**os.environ, "VOICEGENDER_CACHE_DIR": str(cache)}
    env.pop("VOICEGENDER_ENCODER", None)
    env.pop("VOICEGENDER_VAD_MODEL", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "falls back to torch" not in done.stderr, done.stderr
    out, _, last = done.stdout.rpartition("imported:")
    return set(filter(None, last.strip().split(","))), out.strip()


def test_predict_on_a_file_imports_no_torch(cache: Path, example: Path):
    imported, out = _modules_after(textwrap.dedent(f"""
        from voicegender.cli import main
        assert main(["predict", "--format", "json", {str(example)!r}]) == 0
    """), cache)
    row = json.loads(out.splitlines()[-1])
    assert row["label"] == "female" and row["p_female"] > 0.5
    assert imported == set(), f"predict imported {sorted(imported)}"


def test_segment_on_a_file_imports_no_torch(cache: Path, example: Path, tmp_path: Path):
    out_file = tmp_path / "timeline.csv"
    imported, _ = _modules_after(textwrap.dedent(f"""
        from voicegender.cli import main
        assert main(["segment", {str(example)!r}, "--out", {str(out_file)!r}]) == 0
    """), cache)
    assert out_file.is_file() and "female" in out_file.read_text()
    assert not imported & set(HEAVY), f"segment imported {sorted(imported & set(HEAVY))}"


def test_web_app_and_one_prediction_import_no_torch(cache: Path, example: Path):
    pytest.importorskip("fastapi", reason="the web app needs the web extra")
    pytest.importorskip("multipart", reason="the web app needs python-multipart (web extra)")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    imported, out = _modules_after(textwrap.dedent(f"""
        import json
        from fastapi.testclient import TestClient
        from voicegender.web.app import create_app
        with TestClient(create_app()) as client:
            with open({str(example)!r}, "rb") as f:
                r = client.post("/api/predict", files={{"file": ("voice.ogg", f.read(), "audio/ogg")}})
        assert r.status_code == 200, r.text
        print(json.dumps(r.json()))
    """), cache)
    assert json.loads(out.splitlines()[-1])["label"] == "female"
    assert not imported & set(HEAVY), f"the web app imported {sorted(imported & set(HEAVY))}"


def test_record_imports_no_torch(cache: Path, example: Path, tmp_path: Path):
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
        sd.rec = lambda frames, **kwargs: np.resize(voice, frames).reshape(-1, 1)
        sd.wait = lambda: None
        sys.modules["sounddevice"] = sd
        import voicegender.listen.record as record
        record.time.sleep = lambda s: None
        from voicegender.cli import main
        assert main(["record", "--seconds", str(len(voice) / rate), "--rate", str(rate),
                     "--out", {str(out_file)!r}]) == 0
    """), cache)
    assert out_file.is_file() and ": female (p_female" in out
    assert not imported & set(HEAVY), f"record imported {sorted(imported & set(HEAVY))}"
