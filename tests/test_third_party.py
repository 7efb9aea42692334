"""THIRD_PARTY.md tells the truth: every bundled file it lists is there with its size and SHA-256, every bundled model
and recording is listed, each model folder carries its licence text and a NOTICE, and the sources it names are the
ones the code checks (``SOURCE`` of the GE2E encoder and of the speech detector)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from voicegender.speech import overlap, vad_fast
from voicegender.voice import encoder_onnx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "voicegender"
ROW = re.compile(r"^\| `(src/[^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|$", re.MULTILINE)
MODEL_FOLDERS = ("ge2e", "silero_vad", "ecapa", "pyannote_segmentation")


def _listed() -> dict[str, tuple[int, str]]:
    text = (ROOT / "THIRD_PARTY.md").read_text()
    return {path: (int(size.replace(",", "")), digest) for path, size, digest in ROW.findall(text)}


def test_every_listed_file_is_there_with_its_size_and_sha256():
    listed = _listed()
    assert len(listed) >= 14
    for name, (size, digest) in listed.items():
        path = ROOT / name
        assert path.is_file(), f"{name}: listed in THIRD_PARTY.md but missing"
        data = path.read_bytes()
        found = (len(data), hashlib.sha256(data).hexdigest())
        assert found == (size, digest), f"{name}: changed; update THIRD_PARTY.md"


def test_every_bundled_model_and_recording_is_listed():
    bundled = [*PACKAGE.glob("assets/*/*.onnx"), *PACKAGE.glob("assets/*/*.json"), *PACKAGE.glob("assets/*/LICENSE"),
               *PACKAGE.glob("examples/*.ogg")]
    missing = sorted(str(p.relative_to(ROOT)) for p in bundled if str(p.relative_to(ROOT)) not in _listed())
    assert not missing, f"bundled but not in THIRD_PARTY.md: {missing}"


def test_each_model_folder_carries_its_licence_and_notice():
    for folder in MODEL_FOLDERS:
        for name in ("LICENSE", "NOTICE"):
            assert (PACKAGE / "assets" / folder / name).is_file(), f"assets/{folder}/{name}"
    assert "Apache License" in (PACKAGE / "assets" / "ge2e" / "LICENSE").read_text()
    assert "Silero Team" in (PACKAGE / "assets" / "silero_vad" / "LICENSE").read_text()
    assert "Copyright (c) 2020 CNRS" in (PACKAGE / "assets" / "pyannote_segmentation" / "LICENSE").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_sources_named_are_the_ones_the_code_checks():
    text = (ROOT / "THIRD_PARTY.md").read_text()
    for source in (encoder_onnx.SOURCE, vad_fast.SOURCE, overlap.SOURCE):
        assert source["source_sha256"] in text
    for folder, source in (("ge2e", encoder_onnx.SOURCE), ("silero_vad", vad_fast.SOURCE),
                           ("pyannote_segmentation", overlap.SOURCE)):
        assert source["source_sha256"] in (PACKAGE / "assets" / folder / "NOTICE").read_text()
