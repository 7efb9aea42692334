"""Write inaSpeechSegmenter's male / female CNN as a numpy archive for ``ina_gender.py`` (beside this file).

Source: the PyPI sdist ``inaSpeechSegmenter-0.5.1.tar.gz`` (SHA-256
0fa43aff53751490e55ba944279870781299b0687239d86127bb9f94a8519fc3), member
``inaSpeechSegmenter-0.5.1/inaSpeechSegmenter/keras_male_female_cnn.hdf5`` (6,040,200 bytes, SHA-256
2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f): the network of ina's ``Gender`` segmenter, a
Keras 2.3.1 Sequential model by David Doukhan (Ina). Licence: MIT, "Copyright (c) 2018 Ina (David Doukhan -
http://www.ina.fr/)" (the sdist's ``inaSpeechSegmenter-0.5.1/LICENSE``, SHA-256
a005085a9ec81d44e8177ac80a7508264a5648d8b3792b6744adf01c46f3fdf9). benchmarks/peers/setup.sh fetches both into
``$VOICEGENDER_INA_DIR/models/`` (default ``.cache/peers/ina/models/``; the licence as
``LICENSE.inaSpeechSegmenter``), then runs this script after ``make_ina_smn.py``.

Writes into ``--out`` (default ``$VOICEGENDER_INA_DIR``, i.e. ``.cache/peers/ina/``; a file already equal is left
alone) ``male_female.npz`` (6.0 MB), in exactly the format of ``make_ina_smn.py``'s ``speech_music_noise.npz``
(that module's ``archive_bytes`` and ``write_or_check`` are called with the gender network's labels and
provenance): every weight unchanged, float32, named ``<keras
layer>.<weight>``; ``layers`` / ``labels`` (``female``, ``male``: ina's ``Gender.outlabels``) / ``source`` (the
facts above) as JSON strings; the same input gives the same bytes. ina's licence text lies beside it
(``LICENSE.inaSpeechSegmenter``, written by ``make_ina_smn.py``; checked here).

Run with the python of ina's venv (it has h5py; the voicegender venv does not need it):

    .cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_gender.py          # write it, print its SHA-256
    .cache/peers/ina/venv/bin/python benchmarks/peers/make_ina_gender.py --check  # exit 1 if it differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import make_ina_smn as smn  # beside this file (a script's folder is first on sys.path)

MODEL_FILE = "male_female.npz"  # the name ina_gender.py reads
HDF5_FILE = "keras_male_female_cnn.hdf5"
LABELS = ("female", "male")  # inaSpeechSegmenter.segmenter.Gender.outlabels: the output order
SOURCE = {
    **smn.SOURCE,  # the same sdist, licence and their SHA-256s
    "source": "inaSpeechSegmenter 0.5.1 sdist (PyPI), inaSpeechSegmenter-0.5.1/inaSpeechSegmenter/" + HDF5_FILE,
    "source_sha256": "2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=Path, default=smn.INA_DIR / "models",
                        help=f"folder with {HDF5_FILE} and {smn.LICENCE_FILE}")
    parser.add_argument("--out", type=Path, default=smn.INA_DIR, help=f"folder to write {MODEL_FILE} in")
    parser.add_argument("--check", action="store_true", help="compare with the file in --out instead of writing")
    args = parser.parse_args(argv)
    hdf5 = smn.read_checked(args.models / HDF5_FILE, SOURCE["source_sha256"], "ina's gender CNN")
    smn.read_checked(args.models / smn.LICENCE_FILE, SOURCE["licence_sha256"], "ina's licence")
    print(f"source: {SOURCE['source']} (sdist SHA-256 {SOURCE['sdist_sha256']})")
    print(f"source file SHA-256: {SOURCE['source_sha256']}; licence: {SOURCE['licence']}")
    return smn.write_or_check({args.out / MODEL_FILE: smn.archive_bytes(hdf5, LABELS, SOURCE)}, args.check)


if __name__ == "__main__":
    sys.exit(main())
