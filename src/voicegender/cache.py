"""The user's cache folder (models exported or rebuilt once per machine) and file hashes that name and check them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where models made once per machine live: ``$VOICEGENDER_CACHE_DIR``, else
    ``platformdirs.user_cache_dir("voicegender")``.

    platformdirs honours ``$XDG_CACHE_HOME`` on Linux (default ``~/.cache/voicegender``).
    """
    override = os.environ.get("VOICEGENDER_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    try:
        import platformdirs
    except ImportError:  # platformdirs is a dependency; this keeps a broken install usable on Linux
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voicegender"
    return Path(platformdirs.user_cache_dir("voicegender", appauthor=False))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (17 MB of weights: about 10–25 ms here)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
