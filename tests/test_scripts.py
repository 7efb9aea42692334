"""scripts/setup.sh and scripts/demo.sh say what they are doing while pip works (issue 22: the demo was silent for
~40 s while pip installed), and a failed install still fails. Run against a stand-in .venv whose python fakes pip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_PYTHON = """#!/usr/bin/env bash
# a stand-in for .venv/bin/python: pip prints what a real install prints; anything else succeeds quietly
if [ "$1 $2 $3" = "-m pip install" ]; then
  case " $* " in *" -q "*) exit 0 ;; esac
  echo "Obtaining file:///checkout"
  echo "Collecting numpy>=1.24 (from voicegender==0.1.0)"
  echo "  Using cached numpy-2.4.1-cp311-cp311-manylinux_2_28_x86_64.whl (16.4 MB)"
  echo "Collecting onnxruntime>=1.17 (from voicegender==0.1.0)"
  echo "Installing collected packages: numpy, onnxruntime, voicegender"
  if [ -n "${FAIL_PIP:-}" ]; then echo "ERROR: No matching distribution found for onnxruntime" >&2; exit 1; fi
  echo "Successfully installed numpy-2.4.1 onnxruntime-1.22.0 voicegender-0.1.0"
  exit 0
fi
exit 0
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The two scripts in a folder of their own, beside a .venv of stand-ins (python, voicegender, activate)."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    (tmp_path / "scripts").mkdir()
    for name in ("setup.sh", "demo.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "voicegender").write_text('#!/usr/bin/env bash\necho "voicegender 0.1.0 (model m 2.2.0) $*"\n')
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    for name in ("python", "voicegender"):
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _run(checkout: Path, script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_setup_shows_each_package_as_pip_collects_it(checkout: Path):
    done = _run(checkout, "setup.sh")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "updating pip in .venv"
    assert lines[1].startswith("installing voicegender into .venv")
    assert lines[2:5] == ["  Collecting numpy>=1.24 (from voicegender==0.1.0)",
                          "  Collecting onnxruntime>=1.17 (from voicegender==0.1.0)",
                          "  Installing collected packages: numpy, onnxruntime, voicegender"]
    assert lines[-1] == "installed: voicegender 0.1.0 (model m 2.2.0) --version"
    assert "Using cached" not in done.stdout  # one line per package, not pip's every line


def test_a_failed_install_fails_and_shows_pips_error(checkout: Path):
    done = _run(checkout, "setup.sh", FAIL_PIP="1")
    assert done.returncode != 0
    assert "  ERROR: No matching distribution found for onnxruntime" in done.stdout
    assert "installed:" not in done.stdout


def test_demo_says_what_it_does_before_and_after_the_install(checkout: Path):
    done = _run(checkout, "demo.sh")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("voicegender demo: setting up .venv")
    assert lines[-2].startswith("predicting the example recordings")
    assert lines[-1].startswith("voicegender 0.1.0 (model m 2.2.0) predict ")
