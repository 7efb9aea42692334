"""predict, segment, merge, record and serve refuse bad arguments and output places in one line (exit 2), before
any audio is decoded or any model loaded, so that nothing computed is thrown away at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_voice

from voicegender.cli import main
from voicegender.cli.common import check_number, check_output_folder, check_output_path
from voicegender.errors import VoiceGenderError


@pytest.fixture
def voice(tmp_path: Path) -> Path:
    return write_voice(tmp_path / "v.wav", "female")


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a model (it should have stopped before)."""
    import voicegender.listen.predict
    import voicegender.listen.segment

    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded a model before checking its arguments")

    monkeypatch.setattr(voicegender.listen.predict, "load_model", refuse)
    monkeypatch.setattr(voicegender.listen.segment, "segment_file", refuse)
    monkeypatch.setattr(voicegender.listen.segment, "timeline_file", refuse)


def _error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_check_number_and_paths(tmp_path: Path):
    check_number(0.0, "--x", minimum=0)
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(VoiceGenderError, match=r"--x .*: must be a number >= 0"):
            check_number(bad, "--x", minimum=0)
    with pytest.raises(VoiceGenderError, match="> 0"):
        check_number(0, "--y", above=0)
    check_number(10**400, "--z", minimum=1)  # a whole number too large for a float is still a number
    with pytest.raises(VoiceGenderError, match="must be a number <= 65535"):
        check_number(10**400, "--port", maximum=65535)
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    with pytest.raises(VoiceGenderError, match="is a folder"):
        check_output_path(tmp_path)
    with pytest.raises(VoiceGenderError, match="is a file, not a folder"):
        check_output_path(a_file / "out.jsonl")
    made = check_output_path(tmp_path / "new" / "deeper" / "out.jsonl")
    assert made.parent.is_dir() and not made.exists()  # the folder is made, the file left to the command
    assert list(made.parent.iterdir()) == []  # the write probe leaves nothing behind
    with pytest.raises(VoiceGenderError, match="needs a folder"):
        check_output_folder(a_file, "--explain")
    assert check_output_folder(tmp_path / "later" / "maps", "--explain") and not (tmp_path / "later").exists()


@pytest.mark.parametrize("args, message", [
    (["predict", "{voice}", "-o", "{file}/r.jsonl"], "is a file, not a folder"),
    (["predict", "{voice}", "-o", "{tmp}"], "is a folder; --out needs a file name"),
    (["predict", "{voice}", "--explain", "{file}"], "is a file, not a folder; --explain needs a folder"),
    (["predict", "{voice}", "--min-speech", "nan"], "--min-speech nan: must be a number >= 0"),
    (["predict", "{voice}", "--min-speech", "-1"], "--min-speech -1.0: must be a number >= 0"),
    (["predict", ""], "'': empty path"),
    (["predict", "-"], "reading standard input is not supported"),
    (["segment", "{voice}", "--min-segment", "nan"], "--min-segment nan"),
    (["segment", "{voice}", "--min-segment", "inf"], "--min-segment inf"),
    (["segment", "{voice}", "-o", "{file}/t.csv"], "is a file, not a folder"),
    (["segment", "{voice}", "-f", "xml"], "--format 'xml': use csv | json | textgrid | rttm"),
    (["segment", "{voice}", "-o", "{tmp}/t.csv", "-f", "json"], "its name says csv, --format says json"),
    (["segment", "{voice}", "-o", "{tmp}/t.rttm", "-f", "csv"], "its name says rttm, --format says csv"),
    (["merge", "-o", "{file}/m.jsonl"], "is a file, not a folder"),
    (["record", "--seconds", "nan"], "--seconds nan: must be a number > 0"),
    (["record", "-o", "{tmp}/take.txt"], "--out is a WAV file"),
    (["record", "-o", "{file}/take.wav"], "is a file, not a folder"),
    (["predict", "{voice}", "-o", "{tmp}/old.csv"], "old.csv: already holds results; add --resume to keep them"),
    (["predict", "{voice}", "-o", "{tmp}/r.csv", "--force", "--resume"], "--force replaces FILE and --resume"),
    (["predict", "{voice}", "--force"], "--force replaces an output file: give it with --out FILE"),
    (["segment", "{voice}", "-o", "{tmp}/old.csv"], "old.csv: already exists; give --out another name, or add --force"),
    (["segment", "{voice}", "--force"], "--force replaces an output file: give it with --out FILE"),
    (["segment", "{voice}", "--num-speakers", "0"], "--num-speakers 0: must be a number >= 1"),
    (["segment", "{voice}", "--min-speakers", "3", "--max-speakers", "2"],
     "--min-speakers/--max-speakers: the most speakers (2) must not be fewer than the fewest (3)"),
    (["segment", "{voice}", "--num-speakers", "2", "--max-speakers", "3"], "give it without --min-speakers"),
    (["segment", "{voice}", "--no-speakers", "--num-speakers", "2"], "--no-speakers does not tell speakers apart"),
    (["predict", "{voice}", "--num-speakers", "0"], "--num-speakers 0: must be a number >= 1"),
    (["predict", "{voice}", "--min-speakers", "2", "--num-speakers", "2"], "give it without --min-speakers"),
    (["record", "-o", "{tmp}/old.wav"], "old.wav: already exists; give --out another name, or add --force"),
    (["serve", "--port", "99999"], "--port 99999: must be a number >= 0 and <= 65535"),
    (["serve", "--max-upload-mb", "nan"], "--max-upload-mb nan"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(args, message, voice, tmp_path, capsys, no_model_load,
                                                           monkeypatch):
    import voicegender.listen.record

    monkeypatch.setattr(voicegender.listen.record, "record_and_predict",
                        lambda *a, **k: pytest.fail("recorded before checking the arguments"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    (tmp_path / "old.wav").write_bytes(b"RIFF an earlier take")
    (tmp_path / "old.csv").write_text("path,label\nsomething.wav,female\n")
    argv = [a.format(voice=voice, file=a_file, tmp=tmp_path) for a in args]
    assert main(["-q", *argv]) == 2
    assert message in _error(capsys)


def test_output_folders_made_for_out_are_named_and_force_replaces(voice, tmp_path, capsys):
    """Issue 22: `segment --out` silently created missing folders (a mistyped name went unnoticed)."""
    out = tmp_path / "new" / "deeper" / "t.csv"
    assert main(["-q", "segment", str(voice), "-o", str(out), "--no-speakers"]) == 0
    assert f"created the folder {tmp_path / 'new'} for --out {out}" in capsys.readouterr().err
    first = out.read_bytes()
    out.write_text("my corrected timeline\n")
    assert main(["-q", "segment", str(voice), "-o", str(out), "--no-speakers"]) == 2
    assert out.read_text() == "my corrected timeline\n"
    assert main(["-q", "segment", str(voice), "-o", str(out), "--no-speakers", "--force"]) == 0
    assert out.read_bytes() == first and "created the folder" not in capsys.readouterr().err


def test_record_in_a_folder_it_cannot_write_stops_before_the_countdown(capsys, monkeypatch):
    import voicegender.listen.record

    monkeypatch.setattr(voicegender.listen.record, "record_and_predict",
                        lambda *a, **k: pytest.fail("recorded before checking where the WAV goes"))
    monkeypatch.chdir("/proc")  # a folder nobody can create files in, root included
    assert main(["-q", "record"]) == 2
    assert "cannot write in /proc" in _error(capsys)


def test_damaged_result_files_name_the_file(tmp_path: Path, capsys):
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xf0\x9f\x00\xff garbage\n")
    assert main(["-q", "merge", "-o", str(tmp_path / "m.jsonl"), str(binary)]) == 2
    assert "bin.jsonl: not UTF-8 text" in _error(capsys)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("path,label,p_female\na.wav,female,abc\n")
    assert main(["-q", "merge", "-o", str(tmp_path / "m.csv"), str(bad_csv)]) == 2
    assert "bad.csv: line 2 has a value that is not a number" in _error(capsys)


def test_model_files_are_told_apart_by_content_and_bad_ones_named(voice, tmp_path: Path, capsys):
    import numpy as np

    from voicegender.voice.default_model import default_model_path

    garbage = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    cases = {
        "garbage.pt": (garbage, "not a voicegender checkpoint (not a PyTorch file)"),
        "garbage.npz": (garbage, "not a readable voice head (not an .npz of arrays)"),
        "notes.txt": (b"hello\n", "not a voicegender checkpoint"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert main(["-q", "predict", str(voice), "-m", str(tmp_path / name)]) == 2
        line = _error(capsys)
        assert name in line and message in line and "weights_only" not in line and "unsafe" not in line
    assert main(["-q", "predict", str(voice), "-m", str(tmp_path)]) == 2
    assert "is a folder; give a model file" in _error(capsys)
    # a voice head under any name is still a voice head (fit -o model.bin, then predict -m model.bin)
    renamed = tmp_path / "head.bin"
    renamed.write_bytes(default_model_path().read_bytes())
    assert main(["-q", "predict", str(voice), "-m", str(renamed), "-f", "json"]) == 0
    assert '"label": "female"' in capsys.readouterr().out


def test_a_pipe_is_named_as_such_not_as_an_empty_file(tmp_path: Path, capsys):
    import os

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert main(["-q", "predict", str(fifo), "-f", "json"]) == 1  # a failed file, as every unreadable input
    assert "pipe.wav: not a regular file (a pipe or a device)" in capsys.readouterr().err


def test_predict_and_segment_word_a_bad_file_alike(tmp_path: Path, capsys):
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(bytes(range(256)) * 40)
    assert main(["-q", "predict", str(bad), "-f", "json"]) == 1
    predicted = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("error: "))
    assert main(["-q", "segment", str(bad)]) == 2
    assert _error(capsys) == predicted == f"error: {bad}: not a readable audio file, or damaged (FFmpeg: invalid " \
                                          "data found when processing input)"


def test_serve_says_when_the_address_is_taken_before_it_says_open(capsys, monkeypatch):
    import socket

    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("started serving on a taken port"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["-q", "serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot serve on 127.0.0.1:{port}" in err and "open http" not in err


def test_predict_explain_pictures_a_bounded_stretch_of_a_long_file(tmp_path: Path, monkeypatch, capsys):
    """`predict --explain DIR` maps the loudest MAP_MAX_S seconds of the first PICTURE_READ_S, never the whole file."""
    import numpy as np
    import soundfile as sf

    import voicegender.research.explain
    from voicegender.audio import decode as audio
    from voicegender.audio.synth import synth_voice

    sr = 16_000
    wave = np.concatenate([np.zeros(30 * sr, np.float32), synth_voice(200.0, 3.0, sr, seed=1),
                           np.zeros(30 * sr, np.float32), synth_voice(120.0, 3.0, sr, seed=2)])
    path = tmp_path / "long.flac"
    sf.write(path, wave, sr)
    seen = []
    monkeypatch.setattr(voicegender.research.explain, "explain_clip_png",
                        lambda samples, rate, loaded, title, target: seen.append(
                            (samples.copy(), rate, title, target)) or b"png")
    monkeypatch.setattr(audio, "MAP_MAX_S", 4.0)
    monkeypatch.setattr(audio, "PICTURE_READ_S", 40.0)  # the second voice (from 63 s) is never read
    assert main(["-q", "predict", str(path), "--explain", str(tmp_path / "maps"), "-f", "json"]) == 0
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    (samples, rate, title, target), = seen
    assert rate == sr and len(samples) == 4 * sr
    want = synth_voice(200.0, 3.0, sr, seed=1)
    assert np.abs(samples).sum() == pytest.approx(np.abs(want).sum(), rel=1e-3)  # the first voice, whole
    assert (tmp_path / "maps" / "long.png").read_bytes() == b"png"
    # issue 22: the picture and the line naming it say what it covers and explain the file's own answer, in words
    span = f", in 29.0-33.0 s of {answer['duration_s']:.1f} s (the loudest 4 s)"
    assert target == answer["label"]
    assert title == f"Why '{answer['label']}' (p_female {answer['p_female']:.2f}): where the model heard it{span}"
    assert f"map: {tmp_path / 'maps' / 'long.png'}{span}" in captured.err


def test_predict_explain_never_replaces_a_picture_already_in_its_folder(tmp_path: Path, monkeypatch, capsys):
    """A second run into the same DIR wrote its pictures over the first run's; now they take the next free name."""
    import soundfile as sf

    import voicegender.research.explain
    from voicegender.audio.synth import synth_voice

    runs = iter([b"first", b"second", b"third"])
    monkeypatch.setattr(voicegender.research.explain, "explain_clip_png", lambda *a, **k: next(runs))
    sf.write(tmp_path / "voice.wav", synth_voice(200.0, 2.0, 16_000, seed=1), 16_000)
    maps = tmp_path / "maps"
    for _ in range(3):
        assert main(["-q", "predict", str(tmp_path / "voice.wav"), "--explain", str(maps), "-f", "json"]) == 0
    assert {p.name: p.read_bytes() for p in maps.iterdir()} == {
        "voice.png": b"first", "voice_2.png": b"second", "voice_3.png": b"third"}
    assert f"map: {maps / 'voice_3.png'}" in capsys.readouterr().err


def test_predict_explain_says_why_a_file_without_speech_has_no_picture(tmp_path: Path, monkeypatch, capsys):
    import numpy as np
    import soundfile as sf

    import voicegender.research.explain

    monkeypatch.setattr(voicegender.research.explain, "explain_clip_png",
                        lambda *a, **k: pytest.fail("a map of no speech"))
    sf.write(tmp_path / "quiet.wav", np.zeros(16_000, np.float32), 16_000)
    assert main(["-q", "predict", str(tmp_path / "quiet.wav"), "--explain", str(tmp_path / "maps"), "-f", "json"]) == 0
    assert f"map: none for {tmp_path / 'quiet.wav'} (no speech: nothing to explain)" in capsys.readouterr().err
    assert list((tmp_path / "maps").iterdir()) == []


def test_map_pictures_speak_plainly():
    from voicegender.research import plots

    assert "percentile" not in plots.MAP_SCALE_LABEL and "relevance" not in plots.MAP_SCALE_LABEL
