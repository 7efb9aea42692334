"""The CLI's shared pieces: the typer app, the consoles, and how results are printed."""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.console import Console

from .. import __version__
from ..errors import VoiceGenderError
from ..progress import set_progress

# typer's help prints a type beside every option, flags included ("--resume <bool>", "--help <bool>"), as if they took
# a value: a flag shows none (options that take a value keep theirs: "--model <path>")
_display_type = typer.core.TyperOption.display_type_rich


def _flag_shows_no_type(self, ctx):
    return None if self.is_flag or self.count else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_shows_no_type

app = typer.Typer(
    name="voicegender",
    help="Speaker gender (female / male / no speech) from recordings, with maps that show why.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
corpus_app = typer.Typer(help="Inspect corpora (AudioMNIST layout, CSV manifests, female/ male/ folders).",
                         no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

# results (stdout); piped or captured output gets 120 columns instead of rich's 80, so a predict table with
# p_child does not fold file names (a terminal keeps its own width; COLUMNS still wins)
out = Console(highlight=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120)
err = Console(stderr=True, highlight=False)  # messages (stderr)
EXIT_USER_ERROR = 2  # bad input: a file, an argument, a corpus


def _version(value: bool) -> None:
    if value:
        out.print(version_line(), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit()


def version_line() -> str:
    """``voicegender 0.1.0 (model ge2e-head-v2 2.3.0)``: the package's version and the shipped model's own, as its
    file says (the model changes on its own schedule)."""
    from ..voice.default_model import load_default_model

    try:
        model = load_default_model()
    except VoiceGenderError as e:  # a broken install still says which package it is
        return f"voicegender {__version__} (the shipped model cannot be read: {e})"
    return f"voicegender {__version__} (model {model.name} {model.version})"


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log what is happening")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or info messages")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version (and the shipped model's) and exit")] = False,
) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    if quiet:
        set_progress(False)
        logging.getLogger().setLevel(logging.ERROR)


def result(line: str) -> None:
    """One result line on stdout (tab-separated, unwrapped, for scripts); messages go to stderr."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- argument checks, before any work is done -------------------------------------------------------------------
def check_number(value: float | int, option: str, *, minimum: float | None = None, above: float | None = None,
                 maximum: float | None = None) -> None:
    """One-line error unless ``value`` is a finite number within the bounds (``above``: strictly greater)."""
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
              f"<= {maximum:g}" if maximum is not None else ""]
    wanted = " and ".join(b for b in bounds if b) or "finite"
    if not (isinstance(value, int) or math.isfinite(value)) or (minimum is not None and value < minimum) or (
            above is not None and value <= above) or (maximum is not None and value > maximum):
        raise VoiceGenderError(f"{option} {value}: must be a number {wanted}")


# --force of the commands that write one --out file (refused when it exists without it)
REPLACE_OUT_HELP = "replace an existing --out file (without it: an error)"
# --model of the commands that answer with a model
MODEL_HELP = ("a voice head (.npz) from `voicegender fit` or a checkpoint (.pt) from `voicegender train` "
              "(default: the model shipped with the package)")


def check_threshold(threshold: float) -> None:
    """--threshold (p_female at or above it is 'female') strictly between 0 and 1, else a one-line error."""
    if not 0.0 < threshold < 1.0:
        raise VoiceGenderError(f"--threshold must be between 0 and 1, got {threshold}")


def check_output_path(path: Path, option: str = "--out", force: bool | None = None) -> Path:
    """One-line error unless ``path`` can be written as a file: not a folder, its folder creatable and writable,
    and (``force`` False) not an existing file, which the command would replace: ``--force`` says to. Creates the
    missing folders, and says so on stderr (a mistyped folder name must not go unnoticed). Called before the work,
    so that nothing computed is thrown away at the end."""
    path = Path(path)
    if str(path) == "":
        raise VoiceGenderError(f"{option}: empty path")
    if path.is_dir():
        raise VoiceGenderError(f"{path}: is a folder; {option} needs a file name")
    if path.exists() and not path.is_file():  # a device or a pipe (/dev/null, a FIFO): written into, not replaced
        if not os.access(path, os.W_OK):
            raise VoiceGenderError(f"{path}: cannot write to it (permission denied)")
        return path
    if force is False and path.is_file() and path.stat().st_size > 0:
        raise VoiceGenderError(f"{path}: already exists; give {option} another name, or add --force to replace it")
    parent = path.parent
    try:
        if not parent.is_dir():
            missing = first_missing_folder(parent)
            parent.mkdir(parents=True)
            err.print(f"created the folder {missing} for {option} {path}", markup=False, soft_wrap=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise VoiceGenderError(f"{path}: a part of its folder path is a file, not a folder") from e
    except OSError as e:
        raise VoiceGenderError(f"{path}: cannot write in {parent} ({e.strerror or e})") from e
    _probe(parent, path)
    return path


def first_missing_folder(folder: Path) -> Path:
    """The outermost folder of ``folder``'s path that is not there (``folder`` itself when its parent is): the one
    to name when saying that folders were created for an output."""
    missing = Path(folder)
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    return missing


def check_output_folder(path: Path, option: str) -> Path:
    """One-line error unless ``path`` is, or can become, a folder to write in: not a file, under no file, in a
    writable place. Creates nothing (the command creates the folder when it writes)."""
    path = Path(path)
    if str(path) == "":
        raise VoiceGenderError(f"{option}: empty path")
    if path.exists() and not path.is_dir():
        raise VoiceGenderError(f"{path}: is a file, not a folder; {option} needs a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:  # the nearest folder that is there
        existing = existing.parent
    if not existing.is_dir():
        raise VoiceGenderError(f"{path}: a part of its folder path is a file, not a folder ({option})")
    _probe(existing, path)
    return path


def _probe(folder: Path, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".voicegender-probe-"):
            pass  # root passes os.access everywhere; only a real file says whether /proc or a read-only mount takes one
    except OSError as e:
        raise VoiceGenderError(f"{path}: cannot write in {folder} ({e.strerror or e})") from e
