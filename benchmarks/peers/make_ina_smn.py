"""Write inaSpeechSegmenter's speech / music / noise CNN as a numpy archive for ``ina_smn.py`` (beside this file).

Source: the PyPI sdist ``inaSpeechSegmenter-0.5.1.tar.gz`` (SHA-256
0fa43aff53751490e55ba944279870781299b0687239d86127bb9f94a8519fc3), member
``inaSpeechSegmenter-0.5.1/inaSpeechSegmenter/keras_speech_music_noise_cnn.hdf5`` (3,244,808 bytes, SHA-256
f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8): the network of ina's ``SpeechMusicNoise``
("smn" engine), a Keras 2.3.1 Sequential model by David Doukhan (Ina). Licence: MIT, "Copyright (c) 2018 Ina
(David Doukhan - http://www.ina.fr/)" (the sdist's ``inaSpeechSegmenter-0.5.1/LICENSE``, SHA-256
a005085a9ec81d44e8177ac80a7508264a5648d8b3792b6744adf01c46f3fdf9). benchmarks/peers/setup.sh fetches both into
``$VOICEGENDER_INA_DIR/models/`` (default ``.cache/peers/ina/models/``; the licence as
``LICENSE.inaSpeechSegmenter``), then runs this script.

Writes into ``--out`` (default ``$VOICEGENDER_INA_DIR``, i.e. ``.cache/peers/ina/``; files already equal are left
alone):

- ``speech_music_noise.npz``: every weight unchanged, float32, named ``<keras layer>.<weight>``
  (``conv2d_12.kernel``, ``batch_normalization_15.moving_mean``, ...); ``layers``: a JSON string listing the
  layers in order (type, settings the forward pass needs, weight names and shapes); ``labels``: a JSON string of
  the output classes in ina's order (``SpeechMusicNoise.outlabels``); ``source``: a JSON string with the facts
  above. Strings are numpy unicode scalars, so ``np.load(..., allow_pickle=False)`` reads everything. The zip is
  written with fixed timestamps and no compression, so the same input gives the same bytes.
- ``LICENSE.inaSpeechSegmenter``: ina's MIT licence text, unchanged.

Run with the python of ina's venv (it has h5py; the voicegender venv does not need it):

    .cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_smn.py          # write the files, print SHA-256s
    .cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_smn.py --check  # rebuild in memory; exit 1 if different
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is benchmarks/peers/make_ina_smn.py)
INA_DIR = Path(os.environ.get("VOICEGENDER_INA_DIR") or ROOT / ".cache" / "peers" / "ina")  # as setup.sh
MODEL_FILE = "speech_music_noise.npz"  # the name ina_smn.py reads
LICENCE_FILE = "LICENSE.inaSpeechSegmenter"
SOURCE = {
    "source": "inaSpeechSegmenter 0.5.1 sdist (PyPI), inaSpeechSegmenter-0.5.1/inaSpeechSegmenter/"
              "keras_speech_music_noise_cnn.hdf5",
    "source_url": "https://pypi.org/project/inaSpeechSegmenter/0.5.1/",
    "sdist_sha256": "0fa43aff53751490e55ba944279870781299b0687239d86127bb9f94a8519fc3",
    "source_sha256": "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8",
    "licence": "MIT, Copyright (c) 2018 Ina (David Doukhan - http://www.ina.fr/)",
    "licence_sha256": "a005085a9ec81d44e8177ac80a7508264a5648d8b3792b6744adf01c46f3fdf9",
}
LABELS = ("speech", "music", "noise")  # inaSpeechSegmenter.segmenter.SpeechMusicNoise.outlabels: the output order
# the settings of each Keras layer type that change what the layer computes at inference
SETTINGS = {
    "Reshape": ("target_shape",),
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias"),
    "BatchNormalization": ("axis", "epsilon", "center", "scale"),
    "Activation": ("activation",),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "Flatten": (),
    "Dense": ("units", "activation", "use_bias"),
    "Dropout": ("rate",),  # identity at inference
}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checked(path: Path, want: str, what: str) -> bytes:
    if not path.is_file():
        sys.exit(f"{path}: missing ({what}); run benchmarks/peers/setup.sh or pass its folder with --models")
    data = path.read_bytes()
    if sha256(data) != want:
        sys.exit(f"{path}: SHA-256 {sha256(data)}, expected {want} ({what})")
    return data


def archive_bytes(hdf5: bytes, labels: tuple[str, ...] = LABELS, source: dict = SOURCE) -> bytes:
    """The npz (as bytes) holding the network in ``hdf5`` (the bytes of ina's Keras file), its output ``labels`` in
    order and its ``source`` (provenance)."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    layers = []
    with h5py.File(io.BytesIO(hdf5), "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential", config["class_name"]
        group = f["model_weights"]
        for layer in config["config"]["layers"]:
            kind, cfg = layer["class_name"], layer["config"]
            if kind not in SETTINGS:
                sys.exit(f"unexpected layer {cfg['name']} of type {kind}: the numpy forward pass does not know it")
            entry = {"name": cfg["name"], "type": kind, **{k: cfg[k] for k in SETTINGS[kind]}}
            if "batch_input_shape" in cfg:
                entry["input_shape"] = cfg["batch_input_shape"][1:]
            names = [n.decode() for n in group[cfg["name"]].attrs["weight_names"]]
            entry["weights"] = {}
            for full in names:  # e.g. conv2d_12/kernel:0
                short = full.rsplit("/", 1)[1].split(":")[0]
                value = np.asarray(group[cfg["name"]][full], dtype=np.float32)
                arrays[f"{cfg['name']}.{short}"] = value
                entry["weights"][short] = list(value.shape)
            layers.append(entry)
    arrays["layers"] = np.array(json.dumps(layers))
    arrays["labels"] = np.array(json.dumps(list(labels)))
    arrays["source"] = np.array(json.dumps(source, sort_keys=True))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:  # what np.savez writes, minus the clock
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, arrays[name], allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE), member.getvalue())
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=Path, default=INA_DIR / "models",
                        help="folder with keras_speech_music_noise_cnn.hdf5 and LICENSE.inaSpeechSegmenter")
    parser.add_argument("--out", type=Path, default=INA_DIR, help=f"folder to write {MODEL_FILE} and {LICENCE_FILE} in")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    hdf5 = read_checked(args.models / "keras_speech_music_noise_cnn.hdf5", SOURCE["source_sha256"], "ina's smn CNN")
    licence = read_checked(args.models / LICENCE_FILE, SOURCE["licence_sha256"], "ina's licence")
    print(f"source: {SOURCE['source']} (sdist SHA-256 {SOURCE['sdist_sha256']})")
    print(f"source file SHA-256: {SOURCE['source_sha256']}; licence: {SOURCE['licence']}")
    return write_or_check({args.out / MODEL_FILE: archive_bytes(hdf5), args.out / LICENCE_FILE: licence}, args.check)


def write_or_check(outputs: dict[Path, bytes], check: bool) -> int:
    """Write each file whose bytes differ (or, with ``check``, only compare); a line per file; 1 if ``check`` found
    one that differs, else 0."""
    differ = 0
    for path, data in outputs.items():
        same = path.is_file() and path.read_bytes() == data
        if check:
            differ += not same
            state = "same" if same else "DIFFERS"
        elif same:
            state = "unchanged"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            state = "written"
        print(f"{path}\t{state}\t{sha256(data)}\t{len(data):,} bytes")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
