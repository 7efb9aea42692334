"""Rebuild the two ONNX networks voicegender ships, from their sources, byte for byte.

- ``src/voicegender/assets/ge2e/ge2e_encoder.onnx``: resemblyzer 0.1.4's GE2E encoder (``pretrained.pt``,
  Apache-2.0) exported with torch with both outputs, embeddings and hidden means
  (``voicegender.voice.embeddings.export_encoder_onnx``).
- ``src/voicegender/assets/silero_vad/silero_vad_16k_sequence_matmul.onnx``: silero-vad 6.2.3's sequence model
  (MIT) with its convolutions as matrix products (``voicegender.speech.vad_fast.build``).

Needs the research extras (torch==2.13.0, resemblyzer, onnx, silero-vad); the installed package only runs the files.
The sources are checked against the SHA-256 the package records (``encoder_onnx.SOURCE``, ``vad_fast.SOURCE``): the
shipped model was fitted on these very networks. The same torch and onnx versions (recorded in the GE2E file's
metadata) give the same bytes; other versions give an equivalent file whose bytes may differ.

    python scripts/make_onnx_assets.py            # write both files, print their SHA-256 and size
    python scripts/make_onnx_assets.py --check    # rebuild in memory; exit 1 when a shipped file differs

Update the SHA-256 in THIRD_PARTY.md after writing a new file (tests/test_third_party.py checks them).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import sys
from pathlib import Path

from voicegender.cache import sha256_file
from voicegender.speech import vad_fast
from voicegender.voice import embeddings, encoder_onnx

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("which", nargs="*", help="ge2e and/or silero (default: both)")
    args = parser.parse_args(argv)
    targets = {"ge2e": (ASSETS.joinpath(*encoder_onnx.ASSET_DIR, encoder_onnx.MODEL_FILE), ge2e_bytes),
               "silero": (ASSETS.joinpath(*vad_fast.ASSET_DIR, vad_fast.MODEL_FILE), silero_bytes)}
    unknown = set(args.which) - set(targets)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}; choose ge2e and/or silero")
    differ = 0
    for name in args.which or targets:
        path, make = targets[name]
        data = make()
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
