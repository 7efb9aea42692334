"""The package's layout holds: imports follow the layers (import-linter's contracts in pyproject.toml: no import
against the flow core -> audio -> speech -> voice -> listen | research -> web -> cli, even indirectly, and no import
circle), and no module imports another module's private name."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "voicegender"


def test_imports_follow_the_layers_and_hold_no_circle():
    if importlib_linter_missing():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def importlib_linter_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("importlinter") is None


def private_imports(root: Path) -> list[str]:
    """``module <- source.name`` for every private name (``_x``, not ``__x__``) imported from another module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("voicegender")):
                found += [f"{path.relative_to(root)} <- {'.' * node.level}{node.module or ''}.{alias.name}"
                          for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_name():
    assert private_imports(SRC) == []


def test_the_private_name_check_finds_one(tmp_path: Path):
    (tmp_path / "a.py").write_text("from .b import _helper, public\nfrom . import __version__\n")
    assert private_imports(tmp_path) == ["a.py <- .b._helper"]


def test_the_layer_check_fails_on_an_import_against_the_flow(tmp_path: Path):
    """The contract is not vacuous: a copy of the package where speech imports listen breaks it."""
    if importlib_linter_missing():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    copy = tmp_path / "voicegender"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("*.npz", "*.ogg", "*.onnx", "static", "__pycache__"))
    vad = copy / "speech" / "vad.py"
    vad.write_text(vad.read_text() + "\n\ndef _late():\n    from ..listen.predict import predict_file  # noqa\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                           "from importlinter.cli import lint_imports_command; lint_imports_command()",
                           str(tmp_path), "--config", str(config), "--no-cache"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "voicegender.speech is not allowed to import voicegender.listen" in done.stdout
