from pathlib import Path

from voicegender.cli import main


def test_corpus_info_prints_counts(audiomnist_corpus: Path, capsys):
    assert main(["corpus", "info", str(audiomnist_corpus)]) == 0
    text = capsys.readouterr().out
    assert "female" in text and "male" in text and "total" in text
    total = next(line for line in text.splitlines() if "total" in line)
    assert "16" in total and "4" in total and "0.002" in total  # 16 clips x 0.5 s = 8 s = 0.002 h


def test_bad_input_is_one_line_error_without_traceback(tmp_path: Path, capsys):
    assert main(["corpus", "info", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {tmp_path / 'nope'}: no such file or folder"
    assert "Traceback" not in captured.err


def test_usage_errors_and_version(capsys):
    assert main(["corpus", "info"]) == 2
    assert "Missing argument" in capsys.readouterr().err
    assert main(["--version"]) == 0
    from voicegender import __version__
    from voicegender.voice.default_model import DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION

    # the package's version and the shipped model's own (issue 22)
    said = capsys.readouterr().out
    assert said == f"voicegender {__version__} (model {DEFAULT_MODEL_NAME} {DEFAULT_MODEL_VERSION})\n"
    assert main(["--help"]) == 0


def test_predict_min_speech_default_is_the_library_one():
    """The CLI keeps its defaults as literals (``voicegender --help`` imports no numpy): they must match."""
    import inspect

    from voicegender.cli.listen import predict_cmd
    from voicegender.listen.prediction import MIN_SPEECH_S

    assert inspect.signature(predict_cmd).parameters["min_speech"].default == MIN_SPEECH_S


def _commands(group, path=()):
    """Every command of the app as its argv prefix (("predict",), ("corpus", "info"), ...)."""
    for name, sub in group.commands.items():
        if hasattr(sub, "commands"):
            yield from _commands(sub, (*path, name))
        else:
            yield (*path, name)


def test_help_shows_no_value_for_flags_and_names_both_model_kinds(capsys):
    """Issue 22: "--resume <bool>" read as if the flag took a value."""
    import typer.main

    from voicegender.cli.common import app

    commands = list(_commands(typer.main.get_command(app)))
    assert ("predict",) in commands and ("corpus", "info") in commands
    for command in [(), *commands]:
        assert main([*command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "<bool>" not in text, command
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "<path>" in text and ".npz" in text and "voicegender fit" in text  # --model takes a fit head too


def test_global_flags_work_after_the_command(voice_pair, monkeypatch, capsys):
    """Issue 22: `-q` worked only before the command."""
    import voicegender.cli.common as common
    from voicegender.cli import _global_options_first

    quiet = []
    monkeypatch.setattr(common, "set_progress", lambda on: quiet.append(not on))
    assert main(["predict", str(voice_pair["female"]), "-f", "json", "-q"]) == 0
    assert quiet == [True] and '"label"' in capsys.readouterr().out
    assert main(["corpus", "info", "/no/such/corpus", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: /no/such/corpus: no such file or folder"
    # a flag that is an option's value stays where it is, and so does anything after --
    assert _global_options_first(["fit", "c/", "--name", "-q", "-v"]) == ["-v", "fit", "c/", "--name", "-q"]
    assert _global_options_first(["predict", "--", "-q"]) == ["predict", "--", "-q"]


def _rendered(table) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_table_keeps_full_paths_across_top_folders_and_shows_two_voices():
    """Issue 22: paths from several folders lost their leading "/" (footer "in /"); two-voice files were hidden."""
    from voicegender.cli.listen import _prediction_table
    from voicegender.listen.prediction import Prediction

    one = Prediction("/data/one.wav", "female", 0.9, 3.0, 2.5, female_s=2.5, male_s=0.0)
    two = Prediction("/srv/u/talk.wav", "female", 0.548, 120.0, 114.3, female_s=70.1, male_s=44.2)
    text = _rendered(_prediction_table([one, two]))
    assert "/data/one.wav" in text and "/srv/u/talk.wav" in text and "in /" not in text
    assert "female_s" in text and "male_s" in text and "70.100" in text and "44.200" in text
    assert "1 file with a female and a male voice" in text and "voicegender segment" in text
    text = _rendered(_prediction_table([Prediction("/data/a/x.wav", "male", 0.1, 2.0, 1.5, female_s=0.0,
                                                   male_s=1.5), one]))
    assert "in /data" in text and "a/x.wav" in text and "female_s" not in text  # one voice each: no split shown
