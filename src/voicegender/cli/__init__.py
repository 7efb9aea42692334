"""Command line (``voicegender``): a thin layer that parses arguments, calls one library function and formats
its result. Commands live in :mod:`.listen` (predict, merge, segment, record, serve), :mod:`.research`
(corpus info, train, evaluate, explain, fit, export) and :mod:`.models` (models fetch, models list); :mod:`.common`
holds the app and the consoles.

Heavy modules (torch, librosa) are imported inside the commands so that ``voicegender --help`` is instant.
Errors caused by the user's input print as one line (``error: <file>: <problem>``) with exit code 2;
``--debug`` shows the traceback instead. So does a missing extra (``error: voicegender train needs the research
extras: pip install 'voicegender[research]'``): commands check theirs up front, and a module of an extra found
missing later ends the same way.
"""

from __future__ import annotations

import sys

from ..errors import VoiceGenderError
from ..extras import MissingExtraError, extra_for
from . import listen, models, research  # noqa: F401  (importing them registers their commands)
from .common import EXIT_USER_ERROR, app, err

__all__ = ["app", "main"]


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
    except ModuleNotFoundError as e:  # a module of an extra the command did not check for up front
        extra = extra_for(e.name)
        if debug or extra is None:
            raise
        err.print(f"error: {MissingExtraError(_command(args), extra, (e.name,))}", markup=False, soft_wrap=True)
        return EXIT_USER_ERROR
    return 0


def _command(args: list[str]) -> str:
    """``"voicegender <command>"`` for the first argument that is not an option."""
    return " ".join(["voicegender", *[a for a in args if not a.startswith("-")][:1]])


if __name__ == "__main__":
    sys.exit(main())
