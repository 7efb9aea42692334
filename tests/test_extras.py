"""A command whose extra is missing stops with one line naming the extra and the pip command (exit code 2).

The missing modules are simulated in a fresh interpreter with ``sys.modules[name] = None`` (import and find_spec then
fail as if the package were not installed), since this process has every extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voicegender import extras

RESEARCH = "needs the research extras: pip install 'voicegender[research]'"


def _cli(args: list[str], blocked: tuple[str, ...], tmp_path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None
        from voicegender.cli import main
        sys.exit(main({args!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(("args", "blocked", "line"), [
    (["train", "corpus"], ("torch",), f"voicegender train {RESEARCH}"),
    (["evaluate", "run"], ("torch", "captum"), f"voicegender evaluate {RESEARCH}"),
    (["explain", "--corpus", "x"], ("captum",), f"voicegender explain {RESEARCH}"),
    (["export", "model.pt"], ("torch",), f"voicegender export {RESEARCH}"),
    (["predict", "--explain", "maps", "a.wav"], ("matplotlib",), f"voicegender predict --explain {RESEARCH}"),
    (["fit", "corpus"], ("sklearn",), "voicegender fit needs the fit extras: pip install 'voicegender[fit]'"),
    (["serve"], ("fastapi",), "voicegender serve needs the web extras: pip install 'voicegender[web]'"),
])
def test_a_missing_extra_is_one_line(args: list[str], blocked: tuple[str, ...], line: str, tmp_path: Path):
    done = _cli(["-q", *args], blocked, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {line}\n" and done.stdout == ""


def test_a_module_missing_deeper_down_is_one_line_too(tmp_path: Path):
    """An import no command checked for up front (here: the research bench's loader of a .pt checkpoint)."""
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    (tmp_path / "a.wav").write_bytes(b"")
    done = _cli(["predict", "--model", "model.pt", "a.wav"], ("torch",), tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("needs the research extras (torch): pip install "
                                                          "'voicegender[research]'")


def test_require_and_the_extra_of_a_module(monkeypatch: pytest.MonkeyPatch):
    extras.require("research", "anything", ("numpy",))  # installed: nothing happens
    monkeypatch.setitem(sys.modules, "captum", None)
    with pytest.raises(extras.MissingExtraError) as caught:
        extras.require("research", "voicegender explain")
    assert str(caught.value) == f"voicegender explain {RESEARCH}" and caught.value.modules == ("captum",)
    assert extras.extra_for("torch.nn") == "research" and extras.extra_for("sklearn.linear_model") == "fit"
    assert extras.extra_for("fastapi") == "web" and extras.extra_for("numpy") is None and extras.extra_for(None) is None


def test_any_missing_module_of_an_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path):
    """The CLI's last line of defence: a ModuleNotFoundError of an extra's module, wherever it comes from."""
    from voicegender.cli import main
    from voicegender.listen import predict

    def missing_scipy(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(predict, "iter_predictions", missing_scipy)
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["predict", str(tmp_path / "a.wav")]) == 2
    err = capsys.readouterr().err
    assert err == "error: voicegender predict needs the fit extras: pip install 'voicegender[fit]'\n"
    monkeypatch.setattr(predict, "iter_predictions", lambda *a, **k: __import__("no_such_module_at_all"))
    with pytest.raises(ModuleNotFoundError):  # not an extra's module: a real bug, with its traceback
        main(["predict", str(tmp_path / "a.wav")])
