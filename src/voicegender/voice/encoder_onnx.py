"""The GE2E encoder through onnxruntime: the ONNX file shipped inside the package, its provenance, the session.

This module never imports torch (nor resemblyzer): prediction runs the encoder from here. The file,
``assets/ge2e/ge2e_encoder.onnx`` (5.7 MB, read through ``importlib.resources``), is resemblyzer 0.1.4's
``pretrained.pt`` (Apache-2.0; its LICENSE and a NOTICE of what was changed lie next to it, THIRD_PARTY.md lists
its SHA-256) exported with both outputs by ``scripts/make_onnx_assets.py``, which needs torch, resemblyzer and
onnx (the research extras) and rebuilds the file byte for byte with the same torch and onnx versions.

It ships so that ``pip install voicegender`` needs no torch: before, the file was exported once per machine into
the user's cache from the resemblyzer wheel, which made torch (and, on a machine with only the public package
index, a multi-GB CUDA build of it) a dependency of every install. The model's ``metadata_props`` record where it
came from (:data:`SOURCE`, the weights' SHA-256, the exporting versions).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

INPUT_NAME = "mels"  # (batch, 160, 40) float32 mel power frames
OUTPUT_NAME = "embeddings"  # (batch, 256) float32, L2 norm 1
HIDDEN_NAME = "hidden_mean"  # (batch, 256) float32: the top LSTM layer's output averaged over frames 40-159
ONNX_OPSET = 17
ASSET_DIR = ("assets", "ge2e")  # inside the voicegender package
MODEL_FILE = "ge2e_encoder.onnx"
DEFAULT_THREADS = 1  # intra-op threads per session; callers run several sessions/stages side by side instead
# Windows per onnxruntime run on one thread. The LSTM's time per window depends on the batch in steps (MLAS
# blocks rows): 96 windows in runs of 4 / 5 / 6 / 8 / 12 / 16 / 32 / 96 took 2.35 / 2.25 / 2.3 / 2.85 / 2.4 /
# 2.6 / 2.65 / 2.65 ms per window on one thread here (two sessions side by side: the same pattern, 6 best at
# 2.25), and one window alone 5.3 ms. Runs are cut in equal parts of at most this many.
RUN_WINDOWS = 6
SOURCE = {
    "source": "resemblyzer 0.1.4 pretrained.pt (GE2E voice encoder, Jemine 2019, after Wan et al. 2018)",
    "source_url": "https://github.com/resemble-ai/Resemblyzer",
    "licence": "Apache-2.0 (the resemblyzer wheel's LICENSE file; PyPI classifier 'Apache Software License')",
    # the weights the shipped file holds: resemblyzer 0.1.4's pretrained.pt, 17,090,379 bytes
    "source_sha256": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
}

_lock = threading.Lock()
_sessions: dict[tuple[str, int], OnnxEncoder] = {}


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def model_path() -> Path:
    """The shipped encoder's path on disk (inside the installed package)."""
    path = Path(str(importlib.resources.files("voicegender").joinpath(*ASSET_DIR, MODEL_FILE)))
    if not path.is_file():
        raise ModelError(f"{path}: the GE2E encoder is missing from the installed package; reinstall voicegender")
    return path


def provenance(versions: dict[str, str]) -> dict[str, Any]:
    """What the shipped file records in its ``metadata_props``: :data:`SOURCE`, its input and outputs, and the
    ``versions`` that exported it (no dates or paths, so that an export reproduces the file byte for byte)."""
    return {**SOURCE, "onnx_opset": ONNX_OPSET, "input": f"{INPUT_NAME} (batch, 160, 40) float32 mel power",
            "outputs": f"{OUTPUT_NAME} (batch, 256), {HIDDEN_NAME} (batch, 256)", "versions": dict(versions)}


class OnnxEncoder:
    """An onnxruntime session of the GE2E encoder: ``encoder(mels)`` maps (n, 160, 40) → (n, 256) float32
    embeddings; :meth:`with_hidden` also returns the top layer's mean output per window."""

    def __init__(self, path: Path, threads: int = DEFAULT_THREADS) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:  # idle pool threads would spin for ~ms after each run, stealing the other stages' core
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: the exporter's unused-initializer notes are not news
        self.path, self.threads = path, threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{path}: onnxruntime cannot load this encoder ({e}); reinstall voicegender") from e
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != [OUTPUT_NAME, HIDDEN_NAME]:
            raise ModelError(f"{path}: encoder outputs {outputs}, expected {[OUTPUT_NAME, HIDDEN_NAME]}; reinstall "
                             "voicegender")

    def _run(self, names: list[str], mels: np.ndarray, batch_windows: int) -> list[np.ndarray]:
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.shape[0] == 0:
            return [np.zeros((0, 256), np.float32) for _ in names]
        size = min(batch_windows, RUN_WINDOWS) if self.threads == 1 else batch_windows
        runs = [self.session.run(names, {INPUT_NAME: run}) for run in np.array_split(mels, -(-len(mels) // size))]
        return [np.concatenate([r[i] for r in runs]) for i in range(len(names))]

    def __call__(self, mels: np.ndarray, batch_windows: int = 64) -> np.ndarray:
        """Embeddings of (n, 160, 40) windows in runs of at most ``batch_windows`` (on one thread: of about
        :data:`RUN_WINDOWS`, cut equally)."""
        return self._run([OUTPUT_NAME], mels, batch_windows)[0]

    def with_hidden(self, mels: np.ndarray, batch_windows: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, hidden means) of (n, 160, 40) windows, from the same run of the network."""
        emb, hidden = self._run([OUTPUT_NAME, HIDDEN_NAME], mels, batch_windows)
        return emb, hidden


def load_session(path: Path | None = None, threads: int = DEFAULT_THREADS) -> OnnxEncoder:
    """The :class:`OnnxEncoder` for ``path`` (default: the shipped file) with ``threads`` intra-op threads, made
    once per process."""
    path = model_path() if path is None else Path(path)
    key = (str(path), int(threads))
    with _lock:
        if key not in _sessions:
            _sessions[key] = OnnxEncoder(path, int(threads))
        return _sessions[key]
