"""`predict --out/--resume/--shard` and `merge` in trouble say it in one line, never a traceback, and lose nothing
already written: names that are not UTF-8, a disk that fills up, an existing or incomplete merge, launcher
variables left in the shell, error lines from an earlier run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import write_voice

from voicegender.cli import main
from voicegender.listen.jobs import Shard, read_results

BAD_NAME = os.fsdecode(b"bad\xff\xfebytes.wav")  # a name copied from a disk that holds other bytes than UTF-8
SCORER = "lambda waves: np.array([0.25 + 0.5 * (len(w) % 2) for w in waves])"  # a stand-in model: milliseconds


def scorer(waves) -> np.ndarray:
    return np.array([0.25 + 0.5 * (len(w) % 2) for w in waves])


@pytest.fixture
def stand_in_model(monkeypatch):
    """Every command scores with :func:`scorer` instead of the model it names (or the shipped one)."""
    import voicegender.voice.loading as loading

    real = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda model=None: real(scorer))


@pytest.fixture
def voices(tmp_path: Path) -> list[str]:
    return [str(write_voice(tmp_path / "audio" / f"v{i:02d}.wav", "female", seed=i, seconds=0.3)) for i in range(12)]


@pytest.fixture
def no_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def paths_in(path: Path) -> list[str]:
    return [str(r["path"]) for r in read_results(path)[0]]


# --- 1: a name that is not UTF-8 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_predict_out_and_resume_with_a_name_that_is_not_utf8(voices, tmp_path, capsys, stand_in_model, no_launcher,
                                                               ext):
    shutil.copy(voices[0], tmp_path / "audio" / BAD_NAME)
    out = tmp_path / f"r{ext}"
    command = ["-q", "predict", str(tmp_path / "audio"), "-o", str(out), "--no-vad"]
    assert main(command) == 0
    assert str(tmp_path / "audio" / BAD_NAME) in paths_in(out) and len(paths_in(out)) == 13
    assert b"bad\\udcff\\udcfebytes.wav" in out.read_bytes()
    capsys.readouterr()
    assert main([*command, "--resume"]) == 0
    assert "wrote 0 line(s)" in capsys.readouterr().err and len(paths_in(out)) == 13


# --- 2: a full disk ---------------------------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_exit_code_2_not_an_abort(voices, tmp_path: Path, no_launcher):
    """The disk filled up during `predict -o`: two tracebacks, then 'terminate called without an active exception'
    (exit code 134) as Python exited with the decoding thread still running."""
    script = textwrap.dedent(f"""
        import errno, os, sys
        import numpy as np
        import voicegender.listen.jobs as jobs
        import voicegender.voice.loading as loading
        from voicegender.cli import main

        real, room = loading.load_model, [700]
        loading.load_model = lambda model=None: real({SCORER})

        class FullDisk:
            def __init__(self, file):
                self.file = file
            def write(self, data):
                if room[0] <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                taken = self.file.write(data[:room[0]])
                room[0] -= taken
                return taken
            def __getattr__(self, name):
                return getattr(self.file, name)

        opened = jobs.ResultsFile.open
        def on_a_filling_disk(self, *args, **kwargs):
            opened(self, *args, **kwargs)
            self._file = FullDisk(self._file)
            return self
        jobs.ResultsFile.open = on_a_filling_disk
        sys.exit(main(sys.argv[1:]))
    """)
    out = tmp_path / "r.csv"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", script, "-q", "predict", str(tmp_path / "audio"), "-o", str(out),
                           "--no-vad", "--batch-size", "2"], env=env, capture_output=True, text=True, timeout=300)
    partial = tmp_path / "r.csv.partial"
    assert (done.returncode, done.stderr) == (2, f"error: {partial}: cannot write (No space left on device); the "
                                                 "lines written so far are kept; free space and run again with "
                                                 "--resume\n")
    kept = paths_in(partial)
    assert 0 < len(kept) < 12 and partial.read_bytes().endswith(b"\n") and not out.exists()


# --- 3: merge -----------------------------------------------------------------------------------------------------
def test_merge_never_replaces_unasked_never_writes_an_incomplete_merge_and_makes_no_folder_first(
        voices, tmp_path: Path, capsys, stand_in_model, no_launcher):
    part = tmp_path / "r.jsonl"
    assert main(["-q", "predict", str(tmp_path / "audio"), "-o", str(part), "--no-vad"]) == 0
    out = tmp_path / "all.jsonl"
    out.write_text("a merge someone uses\n")
    capsys.readouterr()
    assert main(["-q", "merge", "-o", str(out), str(part)]) == 2
    assert "all.jsonl: already exists; give --out another name, or add --force" in error_line(capsys)
    gone = str(tmp_path / "audio" / "gone.wav")
    assert main(["-q", "merge", "-o", str(out), str(part), "--expect", str(tmp_path / "audio"), "--expect", gone,
                 "--force"]) == 1
    said = capsys.readouterr().err
    assert f"{out}: not written, the merge is incomplete" in said and f"no line for: {gone}" in said
    assert out.read_text() == "a merge someone uses\n"
    assert main(["-q", "merge", "-o", str(out), str(part), "--expect", str(tmp_path / "audio"), "--force"]) == 0
    assert paths_in(out) == voices
    capsys.readouterr()

    nowhere = tmp_path / "nodir" / "x.jsonl"
    assert main(["-q", "merge", "-o", str(nowhere)]) == 2  # no shards of it: said before any folder is made
    assert "no shard files x.part-K-of-N.jsonl" in error_line(capsys)
    assert not (tmp_path / "nodir").exists()
    assert main(["-q", "merge", "-o", str(nowhere), str(part)]) == 0
    assert f"created the folder {tmp_path / 'nodir'} for --out {nowhere}" in capsys.readouterr().err
    assert paths_in(nowhere) == voices


# --- 4: launcher variables ----------------------------------------------------------------------------------------
def test_a_shard_from_the_environment_is_said_and_a_missing_rank_is_an_error(voices, tmp_path, capsys, monkeypatch,
                                                                            stand_in_model, no_launcher):
    """A WORLD_SIZE left in the shell silently predicted half of the files (or none)."""
    command = ["-q", "predict", str(tmp_path / "audio"), "-f", "csv", "--no-vad"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(command) == 2
    assert "WORLD_SIZE=2 is set but RANK is not: each process needs its own RANK (0 to 1)" in error_line(capsys)
    monkeypatch.setenv("RANK", "1")
    mine = Shard(1, 2).select(voices)
    assert main(command) == 0
    said = capsys.readouterr()
    assert said.err == f"shard 1/2 from RANK/WORLD_SIZE: {len(mine)} of 12 file(s)\n"
    assert [line.split(",")[0] for line in said.out.splitlines()[1:]] == mine
    assert main([*command, "--shard", "0/1"]) == 0  # --shard says it: nothing to add
    assert capsys.readouterr().err == ""

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "abc")
    for shard in ([], ["--shard", "0/1"]):
        assert main([*command, *shard]) == 2
        assert "LOCAL_WORLD_SIZE='abc' is not a whole number" in error_line(capsys)


# --- 5: error lines are tried again and counted -----------------------------------------------------------------------
def test_resume_tries_error_lines_again_and_the_exit_code_counts_those_kept(voices, tmp_path, capsys,
                                                                           stand_in_model, no_launcher,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    late = f"../{tmp_path.name}/late.wav"
    out = "r.jsonl"
    assert main(["-q", "predict", "audio", late, "-o", out, "--no-vad"]) == 1  # late.wav is not there yet
    shutil.copy(voices[0], late)
    capsys.readouterr()
    assert main(["-q", "predict", "./audio", f".././{tmp_path.name}/late.wav", "-o", out, "--no-vad",
                 "--resume"]) == 0
    assert "wrote 1 line(s) to r.jsonl, 12 already there (1 error line(s) from before tried again)" in \
        capsys.readouterr().err
    rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    assert len(rows) == 13 and all(r["label"] != "error" for r in rows)

    assert main(["-q", "predict", "gone.wav", "-o", "s.jsonl", "--no-vad"]) == 1
    capsys.readouterr()
    assert main(["-q", "predict", late, "-o", "s.jsonl", "--no-vad", "--resume"]) == 1  # gone.wav's line is kept
    assert "1 error line(s) from before kept in s.jsonl (files not given this time)" in capsys.readouterr().err
