"""What a model file holds, told from its content (torch-free): a voice head from ``voicegender fit`` (an ``.npz``
archive of arrays with a ``meta`` entry) or a network checkpoint from ``voicegender train`` (a PyTorch zip archive
with ``data.pkl``). Both loaders check the file with these first, so a wrong or damaged file gets one line."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ..errors import ModelError

VOICE_HEAD = "a voice head from `voicegender fit` (.npz), not a network checkpoint from `voicegender train`"


def _model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ModelError for a folder or a missing file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; give a model file (.npz from `voicegender fit`, .pt from "
                         "`voicegender train`)")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return path


def is_voice_head_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a voice head (an ``.npz`` archive with its ``meta`` entry) rather than a torch
    checkpoint; decided by the content, not the name. Raises ModelError for a folder or a missing file."""
    path = _model_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return "meta.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return path.suffix == ".npz"  # not an archive at all: the loader of its kind says what is wrong


def check_checkpoint_file(path: str | os.PathLike, use: str = "give a .pt checkpoint from `voicegender train`"
                          ) -> Path:
    """One-line ModelError unless ``path`` is a PyTorch archive (what `voicegender train` writes; its keys and
    weights are checked when it loads). A voice head is named as such, with ``use`` saying what to give."""
    path = _model_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:  # torch.save writes a zip archive (since torch 1.6)
        raise ModelError(f"{path}: not a voicegender checkpoint (not a PyTorch file)") from e
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        if names and all(n.endswith(".npy") for n in names):
            raise ModelError(f"{path}: {VOICE_HEAD}; {use}")
        raise ModelError(f"{path}: not a voicegender checkpoint (a zip archive without PyTorch data)")
    return path
