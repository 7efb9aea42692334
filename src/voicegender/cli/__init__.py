"""Command line (``voicegender``): a thin layer that parses arguments, calls one library function and formats
its result. Commands live in :mod:`.listen` (predict, merge, segment, record, serve), :mod:`.speakers` (speakers,
audit: a corpus per speaker), :mod:`.research` (corpus info, train, evaluate, explain, fit, export) and :mod:`.models`
(models fetch, models list); :mod:`.common` holds the app and the consoles.

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
from ..memory import limit_heap_arenas, map_large_blocks
from . import listen, models, research, speakers  # noqa: F401  (importing them registers their commands)
from .common import EXIT_USER_ERROR, app, err

__all__ = ["app", "main"]


# --- entry point ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    limit_heap_arenas()  # before any thread: predict's workers and the web server's threads share the arenas
    map_large_blocks()  # and big blocks do not leave holes in them (voicegender.memory)
    args = _global_options_first(list(sys.argv[1:] if argv is None else argv))
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


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose", "--debug")  # the app's own flags (common._global_options)


def _global_options_first(args: list[str]) -> list[str]:
    """``voicegender predict x.wav -q`` as ``voicegender -q predict x.wav``: the app's flags are read before the
    command, wherever they are written (click reads them only there). Not a flag that is the value of the option
    before it (``--name -q``), nor anything after ``--``."""
    if not any(a in GLOBAL_FLAGS for a in args[1:]):  # nothing to move: no need to build the command (~40 ms)
        return args
    import typer.main

    command = typer.main.get_command(app)
    takes_value: set[str] = set()
    ctx_names = [a for a in args if not a.startswith("-")][:2]  # the command (and a sub-command: corpus info)
    group = command
    for name in ctx_names:
        sub = getattr(group, "commands", {}).get(name)
        if sub is None:
            break
        takes_value |= {o for p in sub.params if not getattr(p, "is_flag", True) and not getattr(p, "count", False)
                        for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
        group = sub
    hoisted, rest = [], []
    for i, arg in enumerate(args):
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_FLAGS and rest and rest[-1] not in takes_value:
            hoisted.append(arg)
        else:
            rest.append(arg)
    return hoisted + rest


def _command(args: list[str]) -> str:
    """``"voicegender <command>"`` for the first argument that is not an option."""
    return " ".join(["voicegender", *[a for a in args if not a.startswith("-")][:1]])


if __name__ == "__main__":
    sys.exit(main())
