"""The CLI's shared pieces: the typer app, the consoles, and how results are printed."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from .. import __version__
from ..progress import set_progress

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
        out.print(f"voicegender {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log what is happening")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or info messages")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    if quiet:
        set_progress(False)
        logging.getLogger().setLevel(logging.ERROR)


def _result(line: str) -> None:
    sys.stdout.write(line + "\n")  # tab-separated result lines, unwrapped, for scripts
    sys.stdout.flush()
