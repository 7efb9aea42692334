"""Small file helpers shared by the modules that write results (features cache, checkpoints)."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

# what a disk says when it takes no more: full, over quota, read-only, a file larger than it allows
DISK_REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def link_target(path: str | os.PathLike[str]) -> Path:
    """Where writing ``path`` belongs: the file a symbolic link points to (a link the user made says where the output
    goes; replacing it would cut the link), else ``path`` itself. A link to a missing file gives that file."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through a private temporary file in the same folder, then rename it into place.

    Readers never see a half-written file, and several processes writing the same path do not collide; on any
    error the temporary file is removed and the old file (if any) is left as it was. A ``path`` that is a device or
    a pipe (``-o /dev/null``, a FIFO a reader waits on) is written into, never replaced: there is no file to keep; a
    symbolic link has its target written, and stays a link.

    Raises
    ------
    OutputError (a :class:`VoiceGenderError`) naming ``path`` when the disk refuses the writing (full, read-only,
    over quota); other errors of ``write`` as they are.
    """
    path = link_target(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        try:
            with open(path, "wb") as f:
                write(f)
        except OSError as e:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results get the permissions a plain open() gives
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_REFUSALS:
            kept = "the file there is unchanged" if path.is_file() else "nothing was written"
            raise OutputError(f"{path}: cannot write ({e.strerror}); {kept}") from e
        raise
    return path


def utf8_bytes(text: str) -> bytes:
    """``text`` as UTF-8 for any output file. Python holds a file name that is not valid UTF-8 (bytes another system
    wrote) with those bytes as the lone surrogates U+DC80-U+DCFF, which no UTF-8 file, terminal or page takes; they
    are written as ``\\udcff`` escapes, as stderr shows them: valid text, readable, and JSON reads them back as the
    same name (:func:`voicegender.listen.jobs.read_results` turns a CSV cell's escapes back too)."""
    return text.encode("utf-8", "backslashreplace")


def readable(text: str) -> str:
    """``text`` as :func:`utf8_bytes` writes it, as a string (for tables, pages and messages)."""
    return utf8_bytes(text).decode("utf-8")


# what utf8_bytes writes for a byte that was not UTF-8: \udc80-\udcff (a name that truly holds a backslash followed
# by "udc" and two such hex digits reads back as the other one: not a name anybody writes)
_ESCAPED_SURROGATE = re.compile(r"\\udc[89a-f][0-9a-f]")


def unescaped(text: str) -> str:
    """The inverse of :func:`readable`: ``\\udcXX`` escapes back into the name's own surrogates (for a format
    without escapes of its own, as CSV; JSON reads them back itself)."""
    if "\\udc" not in text:
        return text
    return _ESCAPED_SURROGATE.sub(lambda m: chr(int(m[0][2:], 16)), text)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask
