"""Prediction jobs: shards, resumable result files, SIGINT/SIGTERM mid-run, merging shard outputs; atomic
timeline files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicegender.audio.synth import synth_voice
from voicegender.cli import main
from voicegender.errors import VoiceGenderError
from voicegender.listen.jobs import Shard, read_results, run_predictions, shard_index
from voicegender.listen.merge import merge_results
from voicegender.listen.predict import PredictOptions
from voicegender.listen.segment import Segment
from voicegender.listen.writers import deferred_signals, read_timeline, write_timeline

SR = 16_000
FAST = PredictOptions(vad=False, batch_size=4, workers=1)  # no speech detection: milliseconds per file


def write_files(folder: Path, n: int, seconds: float = 0.3) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    wave = synth_voice(150.0, seconds, SR, seed=0)
    paths = []
    for i in range(n):
        path = folder / f"f{i:03d}.wav"
        sf.write(path, wave, SR, subtype="PCM_16")
        paths.append(str(path))
    return paths


def scorer(waves) -> np.ndarray:
    """A stand-in model: p_female from the clip's length (any number will do here)."""
    return np.array([0.25 + 0.5 * (len(w) % 2) for w in waves])


def signalling_scorer(signum: int, at_call: int):
    """A model that sends ``signum`` to this process while it scores its ``at_call``-th batch."""
    calls = {"n": 0}

    def score(waves):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signum)
        if calls["n"] >= at_call:
            time.sleep(0.2)  # a slow model: the job cannot finish before it notices the signal
        return scorer(waves)

    return score


def paths_in(path: Path) -> list[str]:
    return [str(r["path"]) for r in read_results(path)[0]]


# --- shards ---------------------------------------------------------------------------------------------------
def test_shards_split_inputs_by_path_whatever_their_order():
    paths = [f"corpus/spk{i // 10}/clip{i}.wav" for i in range(200)]
    parts = [Shard(k, 4).select(paths) for k in range(4)]
    assert sorted(sum(parts, [])) == sorted(paths)  # every file in exactly one shard
    assert all(30 <= len(p) <= 70 for p in parts)  # roughly even
    shuffled = list(np.random.default_rng(0).permutation(paths))
    assert [set(Shard(k, 4).select(shuffled)) for k in range(4)] == [set(p) for p in parts]
    assert shard_index("corpus/./spk0/clip0.wav", 4) == shard_index("corpus/spk0/clip0.wav", 4)
    assert Shard.parse("3/8") == Shard(3, 8)
    assert Shard(0, 1).output("r.jsonl") == Path("r.jsonl")
    assert Shard(3, 8).output("out/r.csv") == Path("out/r.part-3-of-8.csv")
    for bad in ("8/8", "1", "a/b", "-1/4", "0/0"):
        with pytest.raises(VoiceGenderError, match="--shard"):
            Shard.parse(bad)


def test_shard_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert Shard.from_env() == Shard(1, 3)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert Shard.from_env() == Shard(0, 1)


# --- resumable, interruptible result files -------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_interrupted_job_keeps_previous_file_and_resumes_exactly_once(tmp_path: Path, signum: int, ext: str):
    files = write_files(tmp_path / "audio", 22)
    out = tmp_path / f"results{ext}"
    out.write_text("the previous, complete results\n")
    job = run_predictions(files, out, signalling_scorer(signum, 3), FAST, show_progress=False, force=True)
    assert job.interrupted == signum
    assert out.read_text() == "the previous, complete results\n"  # untouched
    partial = tmp_path / f"results{ext}.partial"
    assert partial.read_bytes().endswith(b"\n")  # complete lines only
    done = paths_in(partial)
    assert 0 < len(done) < len(files) and len(done) == job.written == len(set(done))
    with pytest.raises(VoiceGenderError, match="--resume"):  # a fresh run must not throw that work away
        run_predictions(files, out, scorer, FAST, show_progress=False)
    again = run_predictions(files, out, scorer, FAST, resume=True, show_progress=False)
    assert again.interrupted is None and again.skipped == len(done) and again.written == len(files) - len(done)
    assert not partial.exists()
    assert Counter(paths_in(out)) == Counter(files)  # every file exactly once


def test_resume_drops_a_torn_last_line_and_extends_a_finished_file(tmp_path: Path):
    files = write_files(tmp_path / "audio", 10)
    out = tmp_path / "r.jsonl"
    run_predictions(files[:6], out, scorer, FAST, show_progress=False)
    partial = tmp_path / "r.jsonl.partial"
    lines = out.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:4]) + lines[4][:17])  # killed (SIGKILL) while writing line 5
    out.unlink()
    job = run_predictions(files, out, scorer, FAST, resume=True, show_progress=False)
    assert job.skipped == 4 and job.written == 6
    assert Counter(paths_in(out)) == Counter(files)
    for line in out.read_text().splitlines():
        assert json.loads(line)["label"] in ("female", "male")
    more = write_files(tmp_path / "more", 3)  # a finished file gets new inputs
    job = run_predictions(files + more + files[:2], out, scorer, FAST, resume=True, show_progress=False)
    assert (job.skipped, job.written, job.total) == (10, 3, 13)
    assert Counter(paths_in(out)) == Counter(files + more)


def test_a_finished_file_is_replaced_only_when_asked(tmp_path: Path):
    """Issue 22: `--out x.csv` without --resume silently replaced a finished results file."""
    files = write_files(tmp_path / "audio", 3)
    out = tmp_path / "r.csv"
    run_predictions(files, out, scorer, FAST, show_progress=False)
    finished = out.read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("loaded the model before saying the file is there")

    with pytest.raises(VoiceGenderError) as said:
        run_predictions(files, out, refuse, FAST, show_progress=False)
    assert str(said.value) == (f"{out}: already holds results; add --resume to keep them and add the files it lacks, "
                               "give --out another name, or add --force to replace it")
    assert out.read_bytes() == finished and not (tmp_path / "r.csv.partial").exists()
    job = run_predictions(files[:1], out, scorer, FAST, show_progress=False, force=True)
    assert job.written == 1 and len(paths_in(out)) == 1
    out.write_bytes(b"")  # an empty file holds nothing to lose
    assert run_predictions(files, out, scorer, FAST, show_progress=False).written == 3


def test_csv_resume_refuses_other_columns(tmp_path: Path):
    files = write_files(tmp_path / "audio", 3)
    (tmp_path / "r.csv.partial").write_text("path,label,p_female\n")
    with pytest.raises(VoiceGenderError, match="columns"):
        run_predictions(files, tmp_path / "r.csv", scorer, FAST, resume=True, show_progress=False)
    with pytest.raises(VoiceGenderError, match=".jsonl"):
        run_predictions(files, tmp_path / "r.json", scorer, FAST, show_progress=False)


# --- shards + merge ---------------------------------------------------------------------------------------------------
def test_shards_and_merge_cover_every_file_exactly_once(tmp_path: Path):
    files = write_files(tmp_path / "audio", 25)
    out = tmp_path / "all.jsonl"
    for k in range(3):
        fmt_out = out if k != 1 else tmp_path / "all.csv"  # parts may differ in format
        job = run_predictions(files, fmt_out, scorer, FAST, shard=Shard(k, 3), show_progress=False)
        assert job.out.name == f"all.part-{k}-of-3{fmt_out.suffix}"
    report = merge_results(out, expected=files)
    assert report.complete and report.rows == 25 and len(report.parts) == 3
    assert paths_in(out) == files  # every file once, in input order
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(isinstance(r["p_female"], float) for r in rows)  # CSV cells came back as numbers

    (tmp_path / "all.part-2-of-3.jsonl").rename(tmp_path / "all.part-2-of-3.jsonl.partial")
    complete = out.read_bytes()
    with pytest.raises(VoiceGenderError, match="shard.*missing.*not overwritten"):
        merge_results(out, expected=files)  # a complete merge is never replaced by a shorter one
    assert out.read_bytes() == complete
    out.unlink()
    report = merge_results(out, expected=files)
    assert not report.complete and report.missing_parts == ["part 2 of 3 (unfinished: only its .partial)"]
    assert len(report.missing) == len(Shard(2, 3).select(files))
    parts = [tmp_path / "all.part-0-of-3.jsonl", tmp_path / "all.part-0-of-3.jsonl"]
    assert len(merge_results(tmp_path / "dup.csv", parts).duplicated) == len(Shard(0, 3).select(files))


def test_cli_predict_sharded_then_merge(tmp_path: Path, tiny_checkpoint: Path, capsys):
    files = write_files(tmp_path / "audio", 9)
    out = tmp_path / "res.jsonl"
    common = [str(tmp_path / "audio"), "--out", str(out), "--no-vad", "-m", str(tiny_checkpoint)]
    assert main(["-q", "predict", *common, "--shard", "0/2"]) == 0
    assert main(["-q", "merge", "-o", str(out), "--expect", str(tmp_path / "audio")]) == 1
    assert "missing shard: part 1 of 2" in capsys.readouterr().err
    assert main(["-q", "predict", *common, "--shard", "1/2", "--resume"]) == 0
    assert main(["-q", "merge", "-o", str(out), "--expect", str(tmp_path / "audio")]) == 0
    assert paths_in(out) == files
    assert main(["-q", "predict", str(tmp_path / "audio"), "--resume"]) == 2  # --resume needs --out


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from voicegender.research.features import LogMelConfig, feature_config_dict
    from voicegender.research.models import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(arch="small_cnn", in_rows=64, width=4)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", build_model(cfg).eval(), cfg,
                           feature_config_dict("log_mel", LogMelConfig()), ["female", "male"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_job_killed_midway_and_resumed_yields_every_file_once(tmp_path: Path, tiny_checkpoint: Path,
                                                                    signum: int):
    """`voicegender predict --out` in a subprocess, sent SIGTERM / SIGINT once some lines are on disk."""
    files = write_files(tmp_path / "audio", 120, seconds=1.0)
    out = tmp_path / "res.csv"
    command = [sys.executable, "-m", "voicegender", "-q", "predict", str(tmp_path / "audio"), "--out", str(out),
               "--batch-size", "4", "--no-vad", "-m", str(tiny_checkpoint)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "res.csv.partial"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if partial.is_file() and partial.read_text().count("\n") > 8:  # the header + two batches
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signum, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not out.exists()
    done = paths_in(partial)
    assert 8 <= len(done) < len(files) and len(set(done)) == len(done)
    assert partial.read_bytes().endswith(b"\n")
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} already there" in resumed.stderr
    assert Counter(paths_in(out)) == Counter(files) and not partial.exists()


# --- timelines: never a truncated file ---------------------------------------------------------------------------
SEGMENTS = [Segment(0.0, 1.5, "female", 0.9), Segment(1.5, 2.0, "no_speech", None), Segment(2.0, 4.0, "male", 0.1)]


@pytest.mark.parametrize("name", ["t.json", "t.csv", "t.TextGrid"])
def test_timeline_write_is_atomic(tmp_path: Path, name: str, monkeypatch):
    out = tmp_path / name
    write_timeline(SEGMENTS[:1], out)
    before = out.read_bytes()

    def broken_write(path, write):  # the disk fills up (or the process is stopped) half-way
        raise OSError("No space left on device")

    monkeypatch.setattr("voicegender.listen.writers.atomic_write", broken_write)
    with pytest.raises(OSError):
        write_timeline(SEGMENTS, out)
    assert out.read_bytes() == before
    monkeypatch.undo()
    write_timeline(SEGMENTS, out, duration_s=4.0)
    assert [s.label for s in read_timeline(out)] == ["female", "no_speech", "male"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_signals_wait_for_the_file_being_replaced(tmp_path: Path):
    """SIGINT arriving while a timeline is written is delivered after the file is complete."""
    out = tmp_path / "t.json"
    # Python raises KeyboardInterrupt only where SIGINT was not ignored at start-up (a job started in the background
    # of a non-interactive shell inherits SIG_IGN, and deferred_signals rightly keeps that): set it for this test
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            write_timeline(SEGMENTS, out, duration_s=4.0)
            assert out.is_file()  # the signal has not stopped us yet
    finally:
        signal.signal(signal.SIGINT, before)
    assert len(json.loads(out.read_text())["segments"]) == 3


# --- robustness: names, full disks, error lines, spellings, torn parts ----------------------------------------------
NAMES = [os.fsdecode(b"bad\xff\xfebytes.wav"), "new\nline.wav", "sep\u2028arated.wav", 'a,b "q".wav', "ünï.wav"]


@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_names_that_are_not_plain_text_are_written_readably_and_resumed(tmp_path: Path, ext: str):
    """A name that is not valid UTF-8 (bytes from another system) broke the writing with UnicodeEncodeError, a
    newline split a CSV row in two and U+2028 a JSON line: the good files got no line and --resume never ended."""
    (wave,) = write_files(tmp_path / "audio", 1)
    files = [str(shutil.copy(wave, tmp_path / name)) for name in NAMES]
    out = tmp_path / f"r{ext}"
    assert run_predictions(files, out, scorer, FAST, show_progress=False).written == 5
    data = out.read_bytes()
    data.decode("utf-8")  # valid text: the undecodable bytes are escapes
    assert b"bad\\udcff\\udcfebytes.wav" in data
    assert paths_in(out) == files  # read back as the very names
    again = run_predictions(files, out, scorer, FAST, resume=True, show_progress=False)
    assert (again.skipped, again.written) == (5, 0) and out.read_bytes() == data


def filling_disk(monkeypatch, room: int) -> None:
    """The disk of every result file takes ``room`` more bytes, then says ENOSPC (a write cut short first)."""
    import voicegender.listen.jobs as jobs

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            nonlocal room
            if room == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            taken = self.file.write(data[:room])
            room -= taken
            return taken

        def __getattr__(self, name):
            return getattr(self.file, name)

    opened = jobs.ResultsFile.open

    def open_on_a_filling_disk(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        self._file = FullDisk(self._file)
        return self

    monkeypatch.setattr(jobs.ResultsFile, "open", open_on_a_filling_disk)


@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_a_full_disk_stops_the_job_in_one_line_keeping_the_lines_written(tmp_path: Path, monkeypatch, ext: str):
    files = write_files(tmp_path / "audio", 10)
    out = tmp_path / f"r{ext}"
    whole = run_predictions(files, tmp_path / f"all{ext}", scorer, FAST, show_progress=False).out.stat().st_size
    filling_disk(monkeypatch, room=whole // 2)  # the first batch (4 lines) fits, not the ten lines
    with pytest.raises(VoiceGenderError) as said:
        run_predictions(files, out, scorer, FAST, show_progress=False)
    partial = tmp_path / f"r{ext}.partial"
    assert str(said.value) == (f"{partial}: cannot write (No space left on device); the lines written so far are "
                               "kept; free space and run again with --resume")
    assert partial.read_bytes().endswith(b"\n")  # the batch cut short is taken back: complete lines only
    done = paths_in(partial)
    assert 0 < len(done) < len(files) and done == files[:len(done)] and not out.exists()
    monkeypatch.undo()
    job = run_predictions(files, out, scorer, FAST, resume=True, show_progress=False)
    assert (job.skipped, job.written) == (len(done), len(files) - len(done)) and paths_in(out) == files


def test_resume_tries_error_lines_again_and_matches_paths_however_spelled(tmp_path: Path, monkeypatch):
    """--resume kept a file's error line forever (the missing file now there, the exit code 0); and ../a.wav and
    .././a.wav were two files to it."""
    monkeypatch.chdir(tmp_path)
    files = [os.path.relpath(f) for f in write_files(tmp_path / "audio", 4)]
    late = "audio/late.wav"  # not there yet: its line is an error
    out = Path("r.jsonl")
    job = run_predictions([*files, late], out, scorer, FAST, show_progress=False)
    assert (job.written, job.failed) == (5, 1)
    before = out.read_bytes().splitlines(keepends=True)
    assert json.loads(before[4])["label"] == "error"
    write_files(Path("more"), 1)
    os.replace("more/f000.wav", late)
    respelled = ["./" + f.replace("/", "/./") for f in files]
    job = run_predictions([*respelled, late], out, scorer, FAST, resume=True, show_progress=False)
    assert (job.skipped, job.written, job.failed, job.retried, job.failed_kept) == (4, 1, 0, 1, 0)
    after = out.read_bytes().splitlines(keepends=True)
    assert after[:4] == before[:4]  # the other lines byte for byte
    assert json.loads(after[4])["path"] == late and json.loads(after[4])["label"] in ("female", "male")

    os.remove(late)
    run_predictions([late], "s.jsonl", scorer, FAST, show_progress=False)  # an error line ...
    job = run_predictions(files[:1], "s.jsonl", scorer, FAST, resume=True, show_progress=False)
    assert (job.written, job.retried, job.failed_kept) == (1, 0, 1)  # ... of a file not given again is kept, counted
    assert paths_in(Path("s.jsonl")) == [late, files[0]]


def test_merge_refuses_to_replace_or_to_write_an_incomplete_merge(tmp_path: Path):
    files = write_files(tmp_path / "audio", 6)
    part = run_predictions(files, tmp_path / "r.jsonl", scorer, FAST, show_progress=False).out
    out = tmp_path / "all.jsonl"
    out.write_text("a merge someone uses\n")
    with pytest.raises(VoiceGenderError, match="all.jsonl: already exists; .* add --force"):
        merge_results(out, [part])
    missing = str(tmp_path / "audio" / "gone.wav")
    report = merge_results(out, [part], expected=[*files, missing], force=True)
    assert report.missing == [missing] and not report.written
    assert out.read_text() == "a merge someone uses\n"
    report = merge_results(out, [part], expected=files, force=True)
    assert report.complete and report.written and paths_in(out) == files


@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_merge_keeps_a_complete_last_line_without_its_newline_and_names_a_torn_part(tmp_path: Path, ext: str):
    files = write_files(tmp_path / "audio", 3)
    part = run_predictions(files, tmp_path / f"r{ext}", scorer, FAST, show_progress=False).out
    whole = part.read_bytes()
    part.write_bytes(whole[:-1])  # a tool (or an editor) left the last line without its newline
    report = merge_results(tmp_path / "all.jsonl", [part], expected=files)
    assert report.complete and paths_in(tmp_path / "all.jsonl") == files
    part.write_bytes(whole[:-12])  # cut inside the last line
    with pytest.raises(VoiceGenderError, match=rf"r{ext}: its last line is cut off"):
        merge_results(tmp_path / "again.jsonl", [part])
    assert not (tmp_path / "again.jsonl").exists()


def test_a_job_refuses_an_out_that_is_a_pipe_or_device_and_leaves_it_be(tmp_path: Path):
    files = write_files(tmp_path / "audio", 2)
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    for resume in (False, True):
        with pytest.raises(VoiceGenderError, match="results.jsonl: not a regular file; a job's --out must be one"):
            run_predictions(files, fifo, scorer, FAST, show_progress=False, resume=resume)
    assert fifo.is_fifo() and not (tmp_path / "results.jsonl.partial").exists()


def test_an_out_that_is_a_symlink_gets_its_results_in_the_target_and_stays_a_link(tmp_path: Path):
    """A link the user made (results.jsonl -> store/results.jsonl) says where results belong: before, the
    finished run renamed its file over the link, cutting it."""
    files = write_files(tmp_path / "audio", 3)
    (tmp_path / "store").mkdir()
    target, link = tmp_path / "store" / "results.jsonl", tmp_path / "results.jsonl"
    link.symlink_to(target)  # to a file not there yet
    run_predictions(files[:2], link, scorer, FAST, show_progress=False)
    assert link.is_symlink() and len(paths_in(target)) == 2
    run_predictions(files, link, scorer, FAST, show_progress=False, resume=True)
    assert link.is_symlink() and sorted(paths_in(target)) == sorted(files)
    run_predictions(files[:1], link, scorer, FAST, show_progress=False, force=True)
    assert link.is_symlink() and paths_in(link) == files[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "results.jsonl", "store"]  # no stray .partial
