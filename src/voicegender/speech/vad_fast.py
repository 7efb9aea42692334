"""silero's sequence VAD model with its convolutions as matrix products: the same network, 3x faster per frame.

silero's ``silero_vad_16k_sequence.onnx`` scores a block of 32 ms frames in one onnxruntime call, but its
front end (an STFT as a strided convolution and four small convolutions over 4, 2 and 1 positions) runs as
``Conv`` nodes with one small matrix product per frame. On one thread it spends 31 µs per frame, 1.7 ms of a
1.4 s clip, 60 % of it in the first two convolutions. :func:`build` writes the same layers as ``MatMul`` nodes
over all frames at once (each frame's 4 STFT windows, then im2col of each convolution), and keeps silero's
LSTM node and weights unchanged: 10 µs per frame (53 frames: 1.70 -> 0.53 ms; 512 frames: 16.0 -> 5.7 ms).

The products sum the same terms in a different blocking, so the probabilities are not bit-equal to silero's own:
they differ by at most a few 1e-7 (the export is refused above :data:`MAX_PROB_DIFF`), and speech regions were
the same on every clip measured (tests/test_vad_fast.py). Frames stay independent of how audio is split into
calls, so streaming still equals one pass exactly.

The rewritten file is made once per machine (it needs the ``onnx`` package, ~0.1 s to import, and the build
~0.3 s) into the same cache folder as the exported GE2E encoder (:func:`voicegender.cache.cache_dir`),
named after the SHA-256 of silero's file and :data:`RECIPE`, with a sidecar recording where it came from
(silero-vad, MIT licence). Without ``onnx`` or a writable cache, silero's own file is used (and a note logged).
``VOICEGENDER_VAD_MODEL=stock`` uses silero's own file always (to compare).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..cache import cache_dir, sha256_file
from ..fileio import atomic_write

log = logging.getLogger(__name__)

RECIPE = "matmul-v1"  # bump when build() changes: the cached file's name changes with it
FILE_PREFIX = "silero-vad-"  # + RECIPE + "-" + 16 hex digits of the source's SHA-256 + ".onnx" / ".json"
MAX_PROB_DIFF = 1e-4  # largest |p_fast - p_silero| accepted on the check frames of build() (measured here: 1e-6)
SOURCE = {
    "source": "silero-vad silero_vad_16k_sequence.onnx (Silero Team)",
    "source_url": "https://github.com/snakers4/silero-vad",
    "licence": "MIT (the silero-vad wheel's LICENSE file)",
}


def build(source: Path) -> bytes:
    """silero's sequence model in ``source`` with every convolution as a ``MatMul``; the bytes of the new model.

    Inputs and outputs are silero's: ``input`` (n, 576) frames with 64 samples of context, ``h``/``c``
    (1, 1, 128) → ``speech_probs`` (n,), ``hn``, ``cn``. Layout: channels last, (n, positions, channels).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    lstm = next(n for n in model.graph.node if n.op_type == "LSTM")
    inits: list = []
    nodes: list = []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def ints(*v: int) -> np.ndarray:
        return np.array(v, np.int64)

    # STFT: silero reflect-pads each 576-sample frame by 128 on both sides and keeps windows 1-4 of 256 samples
    # at stride 128 (its first window is dropped): samples [0:256], [128:384], [256:512], [384:640] of the frame
    # reflect-padded by 64 on the right
    basis = weights["stft.forward_basis_buffer"][:, 0, :]  # (258, 256): 129 real rows, then 129 imaginary
    node("Pad", ["input", const("stft.pads", ints(0, 0, 0, 64))], "stft.padded", mode="reflect")
    node("Reshape", ["stft.padded", const("stft.blocks_shape", ints(0, 5, 128))], "stft.blocks")
    node("Slice", ["stft.blocks", const("i0", ints(0)), const("i4", ints(4)), const("axis1", ints(1))], "stft.lo")
    node("Slice", ["stft.blocks", const("i1", ints(1)), const("i5", ints(5)), "axis1"], "stft.hi")
    node("Concat", ["stft.lo", "stft.hi"], "stft.windows", axis=2)  # (n, 4, 256)
    node("MatMul", ["stft.windows", const("stft.basis_t", np.ascontiguousarray(basis.T))], "stft.out")
    node("Slice", ["stft.out", "i0", const("i129", ints(129)), const("axis2", ints(2))], "stft.re")
    node("Slice", ["stft.out", "i129", const("i258", ints(258)), "axis2"], "stft.im")
    node("Mul", ["stft.re", "stft.re"], "stft.re2")
    node("Mul", ["stft.im", "stft.im"], "stft.im2")
    node("Add", ["stft.re2", "stft.im2"], "stft.power")
    x = node("Sqrt", ["stft.power"], "stft.magnitude")  # (n, 4, 129)

    def conv(x: str, name: str, positions: int, stride: int) -> tuple[str, int]:
        """Conv1d(kernel 3, padding 1, ``stride``) + ReLU over (n, positions, channels), as im2col + MatMul."""
        w = weights[f"{name}.weight"]  # (out, in, 3)
        out_ch, in_ch, kernel = w.shape
        padded = node("Pad", [x, const(f"{name}.pads", ints(0, 1, 0, 0, 1, 0))], f"{name}.padded")
        starts = list(range(0, positions, stride))
        taps = [node("Slice", [padded, const(f"{name}.s{j}", ints(j)), const(f"{name}.e{j}", ints(j + kernel)),
                               "axis1"], f"{name}.taps{j}") for j in starts]  # (n, 3, in) each
        cols = node("Concat", taps, f"{name}.cols", axis=1) if len(taps) > 1 else taps[0]
        cols = node("Reshape", [cols, const(f"{name}.cols_shape", ints(0, len(starts), kernel, in_ch))],
                    f"{name}.cols4")
        cols = node("Transpose", [cols], f"{name}.cols_t", perm=[0, 1, 3, 2])  # weight order: in-channel, tap
        cols = node("Reshape", [cols, const(f"{name}.flat_shape", ints(0, len(starts), in_ch * kernel))],
                    f"{name}.flat")
        y = node("MatMul", [cols, const(f"{name}.w_t", np.ascontiguousarray(w.reshape(out_ch, -1).T))],
                 f"{name}.mm")
        y = node("Add", [y, const(f"{name}.b", weights[f"{name}.bias"])], f"{name}.biased")
        return node("Relu", [y], f"{name}.relu"), len(starts)

    positions = 4
    for name, stride in (("encoder.0", 1), ("encoder.1", 2), ("encoder.2", 2), ("encoder.3", 1)):
        x, positions = conv(x, name, positions, stride)
    assert positions == 1  # (n, 1, 128): the LSTM's (sequence, batch 1, features)
    for name in lstm.input[1:4]:
        inits.append(numpy_helper.from_array(weights[name], name))
    nodes.append(helper.make_node("LSTM", [x, *lstm.input[1:4], "", "h", "c"], ["lstm.y", "hn", "cn"],
                                  name="lstm", hidden_size=128))
    node("Squeeze", ["lstm.y", const("lstm.axis", ints(1))], "lstm.out")  # (n, 1, 128)
    node("Relu", ["lstm.out"], "lstm.relu")
    out_w = weights["output.weight"][:, :, 0]  # (1, 128)
    node("MatMul", ["lstm.relu", const("output.w_t", np.ascontiguousarray(out_w.T))], "output.mm")
    node("Add", ["output.mm", const("output.b", weights["output.bias"])], "output.logit")
    node("Sigmoid", ["output.logit"], "output.p")
    node("Reshape", ["output.p", const("output.shape", ints(-1))], "speech_probs")
    graph = helper.make_graph(nodes, "silero_vad_16k_sequence_matmul", list(model.graph.input),
                              list(model.graph.output), inits)
    out = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version,
                            doc_string=f"silero-vad's sequence model with convolutions as MatMul ({RECIPE}), "
                                       "written by voicegender")
    onnx.checker.check_model(out)
    return out.SerializeToString()


def _session(model: str | bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def max_difference(fast: bytes | str, source: Path, frames: np.ndarray) -> float:
    """Largest |probability| difference between two sequence models on ``frames`` (n, 576), one call each."""
    state = {"h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}
    feed = {"input": np.ascontiguousarray(frames, np.float32), **state}
    a = _session(fast).run(["speech_probs"], feed)[0]
    b = _session(str(source)).run(["speech_probs"], feed)[0]
    return float(np.max(np.abs(a - b)))


def _check_frames() -> np.ndarray:
    """Frames to compare the two models on: a voice-like harmonic signal, noise and silence (n, 576)."""
    rng = np.random.default_rng(0)
    t = np.arange(200 * 512) / 16_000
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(2 * np.pi * np.cumsum(f0 * k) / 16_000) / k for k in range(1, 12)) * 0.1
    voice *= (np.sin(2 * np.pi * 2.5 * t) > -0.3)
    audio = np.concatenate([voice, rng.normal(0, 0.02, 60 * 512), np.zeros(20 * 512)]).astype(np.float32)
    frames = audio.reshape(-1, 512)
    context = np.concatenate([np.zeros((1, 64), np.float32), frames[:-1, -64:]])
    return np.concatenate([context, frames], axis=1)


def fast_model_path(source: Path) -> Path | None:
    """The rewritten model for silero's ``source`` file, built into the cache first when missing; None when it
    cannot be had (no ``onnx``, unwritable cache, a build that does not reproduce silero) or is turned off."""
    if os.environ.get("VOICEGENDER_VAD_MODEL", "") == "stock":
        return None
    directory = cache_dir()
    digest = sha256_file(source)  # 1.2 MB: about 1 ms
    path = directory / f"{FILE_PREFIX}{RECIPE}-{digest[:16]}.onnx"
    sidecar = path.with_suffix(".json")
    if path.is_file() and sidecar.is_file():
        return path
    try:
        started = time.perf_counter()
        data = build(source)
        diff = max_difference(data, source, _check_frames())
        if not diff <= MAX_PROB_DIFF:
            log.warning("the rewritten silero VAD differs from silero's by %.2g; using silero's own file", diff)
            return None
        meta = {**SOURCE, "source_sha256": digest, "source_path": str(source), "recipe": RECIPE,
                "max_prob_diff": diff, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write(path, lambda f: f.write(data))
        atomic_write(sidecar, lambda f: f.write(json.dumps(meta, indent=1).encode()))  # last: the file is complete
        log.info("wrote the faster silero VAD to %s (%.1f s, once per machine)", path, time.perf_counter() - started)
        return path
    except ImportError:
        log.info("the faster silero VAD needs the 'onnx' package once; using silero's own file")
    except OSError as e:
        log.info("%s: cannot write the faster silero VAD there (%s); using silero's own file", directory, e)
    except Exception as e:  # onnx checker / onnxruntime errors have many types
        log.warning("cannot build the faster silero VAD (%s: %s); using silero's own file", type(e).__name__, e)
    return None
