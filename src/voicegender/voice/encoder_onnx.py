"""The GE2E encoder through onnxruntime: its ONNX file in the user's cache, that file's provenance, the session.

This module never imports torch (nor resemblyzer): prediction runs the encoder from here. The ONNX file is made
once per machine from resemblyzer's ``pretrained.pt`` by :func:`voicegender.voice.embeddings.export_encoder_onnx` (which
does need torch and the ``onnx`` package) and written into the cache directory, named after the SHA-256 of the
weights it came from, so new weights get a new file and a stale file is never used.

Why the user's cache and not a file in our package: the network holds 1.42 M float32 parameters, so the ONNX file
is 5.7 MB — over the 5 MB the repository's own shipped files may take, by itself; it would duplicate weights the
``resemblyzer`` wheel (a dependency) already installs; and a derived copy in our wheel would carry resemblyzer's
Apache-2.0 licence and NOTICE duties into every release. The sidecar ``.json`` (also stored in the model's
metadata) records where the file came from and under which licence.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import cache_dir, sha256_file
from ..errors import ModelError
from ..fileio import atomic_write

log = logging.getLogger(__name__)

INPUT_NAME = "mels"  # (batch, 160, 40) float32 mel power frames
OUTPUT_NAME = "embeddings"  # (batch, 256) float32, L2 norm 1
HIDDEN_NAME = "hidden_mean"  # (batch, 256) float32: the top LSTM layer's output averaged over frames 40-159
ONNX_OPSET = 17
# + the first 16 hex digits of pretrained.pt's SHA-256 + ".onnx" / ".json"; "h" since the file has a second output
# (HIDDEN_NAME): an older cached file without it is not picked up, a new one is exported next to it
FILE_PREFIX = "ge2e-h-"
DIGEST_CHARS = 16  # 64 bits of the weights' SHA-256 in the file name; the sidecar holds all 256
DEFAULT_THREADS = 1  # intra-op threads per session; callers run several sessions/stages side by side instead
# Windows per onnxruntime run on one thread. The LSTM's time per window depends on the batch in steps (MLAS
# blocks rows): 96 windows in runs of 4 / 5 / 6 / 8 / 12 / 16 / 32 / 96 took 2.35 / 2.25 / 2.3 / 2.85 / 2.4 /
# 2.6 / 2.65 / 2.65 ms per window on one thread here (two sessions side by side: the same pattern, 6 best at
# 2.25), and one window alone 5.3 ms. Runs are cut in equal parts of at most this many.
RUN_WINDOWS = 6
SOURCE = {
    "source": "resemblyzer pretrained.pt (GE2E voice encoder, Jemine 2019, after Wan et al. 2018)",
    "source_url": "https://github.com/resemble-ai/Resemblyzer",
    "licence": "Apache-2.0 (the resemblyzer wheel's LICENSE file; PyPI classifier 'Apache Software License')",
}

_lock = threading.Lock()
_sessions: dict[tuple[str, int], OnnxEncoder] = {}


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _source_stat(weights: Path) -> dict[str, Any]:
    st = weights.stat()
    return {"source_path": str(weights), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def weights_digest(weights: Path, directory: Path | None = None) -> str:
    """SHA-256 of ``weights``, taken from a sidecar in ``directory`` when that sidecar saw this very file.

    "This very file" = same path, size and modification time (ns) as when the sidecar was written — the check
    make and pip use — so a start-up does not re-hash 17 MB; any change to the file re-hashes it.
    """
    directory = cache_dir() if directory is None else directory
    stat = _source_stat(weights)
    for sidecar in sorted(directory.glob(f"{FILE_PREFIX}*.json")):
        meta = _read_json(sidecar)
        if meta and all(meta.get(k) == v for k, v in stat.items()) and isinstance(meta.get("source_sha256"), str):
            return meta["source_sha256"]
    return sha256_file(weights)


def onnx_path_for(digest: str, directory: Path | None = None) -> Path:
    """The cache file of the encoder exported from weights with SHA-256 ``digest``."""
    directory = cache_dir() if directory is None else directory
    return directory / f"{FILE_PREFIX}{digest[:DIGEST_CHARS]}.onnx"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance(weights: Path, digest: str) -> dict[str, Any]:
    """What the sidecar records: source file, its hash and stat, licence, and the exporting versions."""
    return {**SOURCE, "source_sha256": digest, **_source_stat(weights), "onnx_opset": ONNX_OPSET,
            "input": f"{INPUT_NAME} (batch, 160, 40) float32 mel power",
            "outputs": f"{OUTPUT_NAME} (batch, 256), {HIDDEN_NAME} (batch, 256)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {d: _version(d) for d in ("resemblyzer", "voicegender", "torch", "onnx")}}


def ensure_onnx(weights: Path, export: Callable[[Path, dict[str, Any]], bytes] | None,
                directory: Path | None = None) -> Path | None:
    """The cached ONNX encoder for ``weights``, exported first (atomically) when missing and ``export`` is given.

    ``export(weights, provenance)`` returns the model's bytes (see ``embeddings.export_encoder_onnx``). Returns
    None when the file is missing and ``export`` is None. Export errors propagate (the caller decides whether to
    fall back to torch).
    """
    directory = cache_dir() if directory is None else directory
    digest = weights_digest(weights, directory)
    path = onnx_path_for(digest, directory)
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    if export is None:
        return None
    meta = provenance(weights, digest)
    started = time.perf_counter()
    model = export(weights, meta)
    atomic_write(path, lambda f: f.write(model))
    # the sidecar last: its presence says the model next to it is complete
    atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    log.info("exported the GE2E encoder to %s (%.1f s, once per machine and weights)", path,
             time.perf_counter() - started)
    return path


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
            raise ModelError(f"{path}: onnxruntime cannot load this encoder ({e}); delete it to rebuild") from e
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != [OUTPUT_NAME, HIDDEN_NAME]:
            raise ModelError(f"{path}: encoder outputs {outputs}, expected {[OUTPUT_NAME, HIDDEN_NAME]}; delete it "
                             "to rebuild")

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


def load_session(path: Path, threads: int = DEFAULT_THREADS) -> OnnxEncoder:
    """The :class:`OnnxEncoder` for ``path`` with ``threads`` intra-op threads, made once per process."""
    key = (str(path), int(threads))
    with _lock:
        if key not in _sessions:
            _sessions[key] = OnnxEncoder(path, int(threads))
        return _sessions[key]
