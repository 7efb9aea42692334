"""Bad arguments and files given to the research commands (corpus info, train, evaluate, explain, fit, export):
one line ``error: ...`` naming the option or file, exit code 2, and no work done before the check."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_voice

import voicegender
from voicegender.cli import main

# what a command must not reach before its arguments are checked (each would train, score or load a model)
SLOW = ("voicegender.research.train.train", "voicegender.research.train.train_folds",
        "voicegender.research.evaluate.evaluate", "voicegender.voice.fit.fit_corpora",
        "voicegender.research.explain_corpus.explain_corpus", "voicegender.research.models.load_checkpoint")
DEFAULT_HEAD = Path(voicegender.__file__).parent / "assets" / "default_model.npz"


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("slow work ran before the arguments were checked")

    for target in SLOW:
        monkeypatch.setattr(target, refuse)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A manifest of 4 short synthetic clips (2 female, 2 male speakers)."""
    rows = ["path,speaker,gender"]
    for i, gender in enumerate(("female", "male", "female", "male")):
        write_voice(tmp_path / "clips" / f"{i}.wav", gender, seed=i, seconds=0.3)
        rows.append(f"clips/{i}.wav,s{i},{gender}")
    (tmp_path / "tiny.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "tiny.csv"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A tiny real checkpoint (small_cnn over log-mel) in a run folder with a test.csv."""
    import torch

    from voicegender.research.features import LogMelConfig, feature_config_dict
    from voicegender.research.models import ModelConfig, build_model, save_checkpoint

    mcfg = ModelConfig(arch="small_cnn", in_rows=LogMelConfig().n_mels, width=4)
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.csv").write_text("path,speaker,gender\n")
    return save_checkpoint(run / "model.pt", build_model(mcfg), mcfg, feature_config_dict("log_mel", LogMelConfig()),
                           ["female", "male"])


def error_line(capsys, *args) -> str:
    """Run the CLI; the one error line (exit code 2, no traceback)."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err.strip()


# --- 1. manifests that are not UTF-8 text ------------------------------------------------------------------------
def bad_manifests(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    import random

    noise = bytes(random.Random(0).randrange(256) for _ in range(2000))
    files = {"binary": (noise, "not a UTF-8 text CSV manifest"),
             "nul": (b"path,speaker,gender\n\0\0x.wav,a,f\n", "NUL bytes"),
             "utf16": ("path,speaker,gender\nx.wav,a,f\n".encode("utf-16"), "UTF-16"),
             "latin1": (b"path,speaker,gender\nx.wav,J\xf6rg,f\n", "not a UTF-8 text CSV manifest"),
             "empty": (b"", "empty file"),
             "blank": (b" \n\n", "empty file")}
    out = {}
    for name, (data, message) in files.items():
        (tmp_path / f"{name}.csv").write_bytes(data)
        out[name] = (tmp_path / f"{name}.csv", message)
    return out


@pytest.mark.parametrize("kind", ["binary", "nul", "utf16", "latin1", "empty", "blank"])
def test_corpus_info_names_a_manifest_that_is_not_text(tmp_path, capsys, kind):
    path, message = bad_manifests(tmp_path)[kind]
    line = error_line(capsys, "corpus", "info", path)
    assert line.startswith(f"error: {path}: ") and message in line


def test_nul_bytes_late_in_a_manifest_name_the_line(tmp_path, capsys):
    path = tmp_path / "late.csv"
    path.write_bytes(b"path,speaker,gender\n" + b"a.wav,s,f\n" * 1000 + b"b\0.wav,s,f\n")
    line = error_line(capsys, "corpus", "info", path)
    assert line == f"error: {path}:1002: NUL bytes in the row: not a text CSV manifest"


def test_every_command_reading_corpora_names_a_binary_manifest(tmp_path, capsys, checkpoint):
    path = bad_manifests(tmp_path)["binary"][0]
    for args in (["evaluate", checkpoint, path], ["fit", path, "-o", tmp_path / "m.npz"],
                 ["train", path, "-o", tmp_path / "run_t"], ["explain", checkpoint, "--corpus", path]):
        assert error_line(capsys, *args).startswith(f"error: {path}: not a UTF-8 text CSV manifest"), args
    assert not (tmp_path / "run_t").exists()


# --- 2. output paths ---------------------------------------------------------------------------------------------
def test_output_paths_are_checked_before_the_work(tmp_path, capsys, manifest, checkpoint):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    folder = tmp_path / "existing"
    folder.mkdir()
    cases = [  # (args, what the line says)
        (["evaluate", checkpoint, manifest, "-o", afile / "rep"], "a part of its folder path is a file"),
        (["evaluate", checkpoint, manifest, "-o", afile], "is a file, not a folder; --out needs a folder"),
        (["evaluate", checkpoint, manifest, "-o", "/proc/vg_report"], "cannot write in /proc"),
        (["explain", "--corpus", manifest, "-o", afile / "x"], "a part of its folder path is a file"),
        (["explain", "--corpus", manifest, "-o", "/proc/vg_explain"], "cannot write in /proc"),
        (["export", checkpoint, "-o", afile / "m.onnx"], "a part of its folder path is a file"),
        (["export", checkpoint, "-o", folder], "is a folder; --out needs a file name"),
        (["export", checkpoint, "-o", "/proc/m.onnx"], "cannot write in /proc"),
        (["fit", manifest, "-o", folder], "is a folder; --out needs a file name"),
        (["fit", manifest, "--out", afile / "m.npz"], "a part of its folder path is a file"),
        (["fit", manifest, "-o", "/proc/m.npz"], "cannot write in /proc"),
        (["train", manifest, "-o", afile], "is a file, not a folder; --out needs a folder"),
        (["train", manifest, "-o", afile / "run"], "a part of its folder path is a file"),
        (["train", manifest, "-o", "/proc/vg_run"], "cannot write in /proc"),
    ]
    for args, message in cases:
        assert message in error_line(capsys, *args), args


def test_fit_and_export_keep_an_existing_out_file_without_force(tmp_path, capsys, manifest, checkpoint):
    """Issue 22: fit and export replaced an earlier model without a word (fitting takes minutes)."""
    for command, source in (("fit", manifest), ("export", checkpoint)):
        earlier = tmp_path / f"earlier_{command}.bin"
        earlier.write_bytes(b"an earlier model")
        line = error_line(capsys, command, source, "-o", earlier)
        assert line == f"error: {earlier}: already exists; give --out another name, or add --force to replace it"
        assert earlier.read_bytes() == b"an earlier model"


# --- 3. fit ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--c", "-1"], "--c -1.0: must be a number > 0"),
    (["--c", "nan"], "--c nan: must be a number > 0"),
    (["--c", "0"], "--c 0.0: must be a number > 0"),
    (["--workers", "-1"], "--workers -1: must be a number >= 1"),
    (["--workers", "0"], "--workers 0: must be a number >= 1"),
    (["--voice-weight", "nan"], "--voice-weight nan: must be a number >= 0"),
    (["--voice-weight", "-2"], "--voice-weight -2.0: must be a number >= 0"),
    (["--short-max-s", "nan"], "--short-max-s nan: must be 0 (no short-speech layer) or more"),
])
def test_fit_options(tmp_path, capsys, manifest, args, message):
    assert error_line(capsys, "fit", manifest, "-o", tmp_path / "m.npz", *args) == f"error: {message}"
    assert not (tmp_path / "m.npz").exists()


# --- 4. evaluate -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "0"], "--batch-size 0: must be a number >= 1"),
    (["--threads", "-2"], "--threads -2: must be a number >= 0"),
    (["--top-k", "-1"], "--top-k -1: must be a number >= 0"),
    (["--explain-clips", "-1"], "--explain-clips -1: must be a number >= 0"),
])
def test_evaluate_options(capsys, manifest, checkpoint, args, message):
    assert error_line(capsys, "evaluate", checkpoint, manifest, *args) == f"error: {message}"


def test_evaluate_without_a_test_csv_says_so_before_scoring(tmp_path, capsys, checkpoint):
    (checkpoint.parent / "test.csv").unlink()
    assert "no test.csv next to the checkpoint" in error_line(capsys, "evaluate", checkpoint)


# --- 5. explain --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--max-clips", "-5"], "--max-clips -5: must be a number >= 1"),
    (["--max-clips", "0"], "--max-clips 0: must be a number >= 1"),
    (["--bands", "-1"], "--bands -1: must be a number >= 1"),
    (["--bands", "0"], "--bands 0: must be a number >= 1"),
    (["--bands", "1000"], "--bands 1000: must be 1..40 for this model's ge2e features"),  # the shipped model
    (["--threads", "0"], "--threads 0: must be a number >= 1"),
    (["--baseline", "max"], "--baseline 'max': must be mean or min"),
    (["--methods", "gradcam,nope"], "--methods: unknown explanation method 'nope'"),
])
def test_explain_options(tmp_path, capsys, manifest, args, message):
    line = error_line(capsys, "explain", "--corpus", manifest, "-o", tmp_path / "ex", *args)
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "ex").exists()


def test_explain_bands_above_a_checkpoints_rows(tmp_path, capsys, manifest, checkpoint, monkeypatch):
    monkeypatch.undo()  # this one loads the tiny checkpoint (its rows bound --bands); explain_corpus stays out
    monkeypatch.setattr("voicegender.research.explain_corpus.explain_corpus", lambda *a, **k: pytest.fail("explained"))
    line = error_line(capsys, "explain", checkpoint, "--corpus", manifest, "-o", tmp_path / "ex", "--bands", "65")
    assert line == "error: --bands 65: must be 1..64 for this model's log_mel features"


# --- 6. train ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "-1"], "--seed -1: must be 0..4294967295"),
    (["--seed", str(2**32)], "--seed 4294967296: must be 0..4294967295"),
    (["--crop-seconds", "-1"], "--crop-seconds -1.0: must be a number > 0"),
    (["--lr", "nan"], "--lr nan: must be a number > 0"),
    (["--lr", "0"], "--lr 0.0: must be a number > 0"),
    (["--finetune-lr", "inf"], "--finetune-lr inf: must be a number > 0"),
    (["--epochs", "0"], "--epochs 0: nothing would train (small_cnn has no other stage); give 1 or more"),
    (["--epochs", "-1"], "--epochs -1: must be a number >= 0"),
    (["--arch", "resnet34", "--features", "seed_image", "--epochs", "0", "--head-epochs", "0"],
     "--epochs 0: nothing would train (and --head-epochs 0); give 1 or more"),
    (["--k", "0"], "--k 0: must be a number >= 3"),
    (["--fold", "5"], "--fold 5: must be a number >= 0 and <= 4"),
    (["--fold", "-1"], "--fold -1: must be a number >= 0 and <= 4"),
    (["--split", "audiomnist-4fold", "--fold", "4"], "--fold 4: must be a number >= 0 and <= 3"),
    (["--split", "nope"], "--split 'nope': must be one of"),
    (["--head-epochs", "-1"], "--head-epochs -1: must be a number >= 0"),
    (["--batch-size", "0"], "--batch-size 0: must be a number >= 1"),
    (["--threads", "0"], "--threads 0: must be a number >= 1"),
    (["--max-train-clips", "0"], "--max-train-clips 0: must be a number >= 1"),
    (["--max-val-clips", "-3"], "--max-val-clips -3: must be a number >= 1"),
    (["--nproc", "0"], "--nproc 0: must be a number >= 1"),
    (["--weights", "missing.pth"], "--weights missing.pth: no such file"),
])
def test_train_options(tmp_path, capsys, manifest, args, message):
    line = error_line(capsys, "train", manifest, "-o", tmp_path / "run", *args)
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()


def test_train_resnet_head_only_is_allowed_past_the_checks(tmp_path, capsys, manifest):
    """--epochs 0 with head epochs keeps its meaning for the resnets (the head stage only): it reaches train()."""
    with pytest.raises(AssertionError, match="slow work ran"):
        main(["train", str(manifest), "-o", str(tmp_path / "run"), "--arch", "resnet34", "--features", "seed_image",
              "--epochs", "0"])


# --- 7. model files ----------------------------------------------------------------------------------------------
@pytest.fixture
def not_checkpoints(tmp_path: Path) -> dict[str, Path]:
    import random

    (tmp_path / "garbage.pt").write_bytes(bytes(random.Random(1).randrange(256) for _ in range(500)))
    (tmp_path / "text.pt").write_text("hello\n")
    (tmp_path / "folder").mkdir()
    return {"garbage": tmp_path / "garbage.pt", "text": tmp_path / "text.pt", "folder": tmp_path / "folder",
            "wav": write_voice(tmp_path / "voice.wav", "male", seconds=0.2)}


@pytest.mark.parametrize("kind", ["garbage", "text", "folder", "wav"])
def test_files_that_are_not_checkpoints(tmp_path, capsys, manifest, not_checkpoints, kind):
    path = not_checkpoints[kind]
    expected = (f"error: {path}: run folder without model.pt" if kind == "folder"
                else f"error: {path}: not a voicegender checkpoint (not a PyTorch file)")
    for args in (["evaluate", path, manifest], ["export", path, "-o", tmp_path / "m.onnx"]):
        assert error_line(capsys, *args).startswith(expected), args
    line = error_line(capsys, "explain", path, "--corpus", manifest, "-o", tmp_path / "ex")
    assert line.startswith(f"error: {path}: no model.pt" if kind == "folder" else expected)


def test_a_voice_head_is_not_an_exportable_network(tmp_path, capsys, manifest):
    line = error_line(capsys, "export", DEFAULT_HEAD, "-o", tmp_path / "m.onnx")
    assert line == (f"error: {DEFAULT_HEAD}: a voice head from `voicegender fit` (.npz), not a network checkpoint "
                    "from `voicegender train`; only networks from `voicegender train` export to ONNX")
    assert "a voice head from `voicegender fit` (.npz)" in error_line(capsys, "evaluate", DEFAULT_HEAD, manifest)


def test_explain_names_a_missing_or_foreign_model_before_looking_for_clips(tmp_path, capsys):
    assert error_line(capsys, "explain", tmp_path / "missing.pt") == (
        f"error: {tmp_path / 'missing.pt'}: no such file or folder (a run folder, a checkpoint .pt or a voice head "
        ".npz)")
    text = tmp_path / "notes.wav"
    text.write_text("not a model")
    assert error_line(capsys, "explain", text).startswith(f"error: {text}: not a voicegender checkpoint")


def test_explain_does_not_replace_an_earlier_explain_without_force(tmp_path, capsys, manifest):
    earlier = tmp_path / "ex"
    earlier.mkdir()
    (earlier / "summary.json").write_text("{}")
    line = error_line(capsys, "explain", "--corpus", manifest, "-o", earlier)
    assert line == f"error: {earlier}: holds an earlier explain (summary.json); give --out another folder, or add " \
                   "--force to replace it"
    assert (earlier / "summary.json").read_text() == "{}"
