"""silero's sequence VAD model with its convolutions as matrix products: the same network, 3x faster per frame.

silero's ``silero_vad_16k_sequence.onnx`` scores a block of 32 ms frames in one onnxruntime call, but its
front end (an STFT as a strided convolution and four small convolutions over 4, 2 and 1 positions) runs as
``Conv`` nodes with one small matrix product per frame. On one thread it spends 31 µs per frame, 1.7 ms of a
1.4 s clip, 60 % of it in the first two convolutions. :func:`build` writes the same layers as ``MatMul`` nodes
over all frames at once (each frame's 4 STFT windows, then im2col of each convolution), and keeps silero's
LSTM node and weights unchanged: 10 µs per frame (53 frames: 1.70 -> 0.53 ms; 512 frames: 16.0 -> 5.7 ms).

The products sum the same terms in a different blocking, so the probabilities are not bit-equal to silero's own:
they differ by at most a few 1e-7 (a build is refused above :data:`MAX_PROB_DIFF`), and speech regions were
the same on every clip measured (tests/speech/test_vad_fast.py). Frames stay independent of how audio is split into
calls, so streaming still equals one pass exactly.

The rewritten file ships inside the package (``assets/silero_vad/``, 1.2 MB, with silero's MIT licence; read
through ``importlib.resources``), so speech detection needs neither silero-vad nor torch nor the ``onnx`` package.
``scripts/make_onnx_assets.py`` rebuilds it byte for byte from silero-vad 6.2.3's file (:data:`SOURCE`; it needs
``onnx`` and silero-vad). ``VOICEGENDER_VAD_MODEL=stock`` runs silero's own file instead, when silero-vad is
installed (to compare).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

import numpy as np

RECIPE = "matmul-v1"  # bump when build() changes (and rebuild the shipped file)
ASSET_DIR = ("assets", "silero_vad")  # inside the voicegender package
MODEL_FILE = "silero_vad_16k_sequence_matmul.onnx"
SILERO_FILE = "silero_vad_16k_sequence.onnx"  # silero's sequence model in its wheel (silero_vad/data/)
MAX_PROB_DIFF = 1e-4  # largest |p_fast - p_silero| accepted on the check frames of build() (measured here: 1e-6)
SOURCE = {
    "source": "silero-vad 6.2.3 silero_vad_16k_sequence.onnx (Silero Team)",
    "source_url": "https://github.com/snakers4/silero-vad",
    "licence": "MIT (the silero-vad wheel's LICENSE file)",
    "source_sha256": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",  # 1.2 MB
}


def model_path() -> Path | None:
    """The shipped rewritten model's path on disk (inside the installed package); None when it is missing."""
    path = Path(str(importlib.resources.files("voicegender").joinpath(*ASSET_DIR, MODEL_FILE)))
    return path if path.is_file() else None


def silero_model_path() -> Path | None:
    """silero's own sequence model inside the silero-vad wheel, found without importing silero_vad (which imports
    torch); None when silero-vad (a research extra) is not installed or has no sequence model."""
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):  # blocked in sys.modules by a test
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data" / SILERO_FILE
        if path.is_file():
            return path
    return None


def build(source: Path, metadata: dict[str, str] | None = None) -> bytes:
    """silero's sequence model in ``source`` with every convolution as a ``MatMul``; the bytes of the new model
    (``metadata``: its ``metadata_props``, e.g. :data:`SOURCE`). Needs the ``onnx`` package.

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
    if metadata:
        helper.set_model_props(out, {k: str(v) for k, v in metadata.items()})
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


def check_frames() -> np.ndarray:
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


def build_checked(source: Path, metadata: dict[str, str] | None = None) -> tuple[bytes, float]:
    """:func:`build`, then the new model against silero's on :func:`check_frames`: (the model's bytes, the largest
    probability difference). Raises ValueError when that exceeds :data:`MAX_PROB_DIFF`."""
    data = build(source, metadata)
    diff = max_difference(data, source, check_frames())
    if not diff <= MAX_PROB_DIFF:
        raise ValueError(f"the rewritten silero VAD differs from {source} by {diff:.2g} (> {MAX_PROB_DIFF:g})")
    return data, diff
