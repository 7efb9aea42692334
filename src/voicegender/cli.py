"""Command line: a thin layer that parses arguments, calls one library function and formats its result.

Heavy modules (torch, librosa) are imported inside the commands so that ``voicegender --help`` is instant.
Errors caused by the user's input print as one line (``error: <file>: <problem>``) with exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import VoiceGenderError
from .progress import set_progress

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

out = Console(highlight=False)  # results (stdout)
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


# --- corpus ---------------------------------------------------------------------------------------------------
@corpus_app.command("info")
def corpus_info(
    path: Annotated[Path, typer.Argument(help="corpus folder or CSV manifest")],
) -> None:
    """Print clips, speakers and duration per gender."""
    from .audio import audio_duration
    from .corpora import load_corpus, summarise
    from .progress import progress

    corpus = load_corpus(path)
    durations = {}
    if corpus.kind == "audio":
        unknown = [c for c in corpus.clips if c.extra.get("duration_s") in (None, "")]
        for clip in progress(unknown, desc="reading durations", unit="file"):
            try:
                durations[clip.path] = audio_duration(clip.path)
            except VoiceGenderError as e:
                err.print(f"warning: {e}")
    table = Table(title=f"{corpus.name} ({corpus.kind}, {corpus.root})")
    for column in ("gender", "clips", "speakers", "hours"):
        table.add_column(column, justify="left" if column == "gender" else "right")
    for row in summarise(corpus, durations):
        hours = "n/a" if row.seconds is None else f"{row.seconds / 3600:.3f}"
        table.add_row(row.gender, f"{row.clips:,}", str(row.speakers), hours)
    out.print(table)


# --- serve ------------------------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    model: Annotated[Path | None, typer.Option(help="checkpoint to serve (default: the shipped model)")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="largest accepted upload in MB; bigger gets 413")] = 25.0,
) -> None:
    """Start the web page and JSON API (POST /api/predict, GET /api/health). Needs the [web] extra."""
    try:
        import uvicorn

        from .web.app import create_app
    except ImportError as e:
        raise VoiceGenderError(f"the web page needs the web extra: pip install 'voicegender[web]' ({e})") from e
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: serving on {host}: anyone who can reach this address can use the page")
    web_app = create_app(model=model, max_upload_mb=max_upload_mb)
    err.print(f"voicegender: open http://{'[' + host + ']' if ':' in host else host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


# --- entry point ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # standalone mode: typer prints usage errors itself and exits through SystemExit
        app(args=args, prog_name="voicegender", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except VoiceGenderError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
