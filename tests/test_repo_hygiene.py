"""The repository holds no absolute path of one machine (its data, cache, run or home folders): docs cite commands a
reader can run and paths relative to the checkout, and code takes such places from arguments or the user's cache."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# an absolute path into a machine's work, temp, root or home folders, not part of a longer path or a URL
MACHINE_PATH = re.compile(r"(^|[^a-zA-Z0-9_.])/(work|tmp|root|home)/[A-Za-z._]")


def _checkout_files() -> list[Path]:
    """Tracked files plus new ones not ignored (so a path is caught before its commit); skips outside git."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"git ls-files failed: {e}")
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    names = sorted({name for name in done.stdout.decode().split("\0") if name})
    return [ROOT / name for name in names if (ROOT / name).is_file()]  # a deleted, not yet committed file is gone


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary (audio, pictures, model files)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_absolute_machine_paths_in_the_repository():
    found = []
    for path in _checkout_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:160]}")
    assert not found, "absolute machine paths (use a relative path or a command a reader can run):\n" + "\n".join(found)


ROOTS = ("work", "tmp", "home", "root")  # spelled apart, so this file does not hold the paths it looks for


@pytest.mark.parametrize(("line", "machine"), [
    (f"see /{ROOTS[0]}/runs/x", True), (f"`/{ROOTS[1]}/web.png`", True), (f"/{ROOTS[2]}/alice/data", True),
    (f"/{ROOTS[3]}/.cache/x", True),
    ("runs/explain/x", False), ("https://example.org/tmp/x", False), ("~/.cache/voicegender", False),
    ("../shared/data/cv_en", False), ("a/work/b", False), ("/tmp", False), ("/proc/self", False),
])
def test_the_pattern(line: str, machine: bool):
    assert bool(MACHINE_PATH.search(line)) is machine
