"""torchvision's ImageNet weights for the ResNets: find (given file, cache, download), hash-check and load them."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.request
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from voicegender.errors import ModelError

from .resnet import ResNet, SeedResNet

log = logging.getLogger(__name__)

# torchvision's ImageNet checkpoints: file name (its 8 hex digits start the file's SHA-256) and URL.
IMAGENET_WEIGHTS: dict[str, tuple[str, str]] = {
    "resnet34": ("resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
    "resnet50": ("resnet50-11ad3fa6.pth", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"),
}
DEFAULT_WEIGHTS_DIR = Path("~/.cache/voicegender/weights")  # first place resolve_imagenet_weights looks
DOWNLOAD_TIMEOUT = 10.0  # seconds to wait for download.pytorch.org before giving up (offline machines)

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torchvision style: name-<sha256 prefix>.pth


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_hash(path: Path, sha256: str | None) -> None:
    expected = sha256.lower() if sha256 else None
    if expected is None:
        m = _HASH_IN_NAME.search(path.name)
        if m is None:
            log.info("%s: no SHA-256 given and none in the file name; not verified", path)
            return
        expected = m.group(1)
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise ModelError(
            f"{path}: SHA-256 mismatch (expected {expected}…, file has {actual[: len(expected)]}…); "
            "the file is corrupt or not the one its name says. Delete it and fetch it again."
        )


def _state_dict_from_file(path: Path) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: cannot read as a PyTorch weights file ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return obj


def load_imagenet_weights(model: nn.Module, path: str | os.PathLike[str], sha256: str | None = None) -> nn.Module:
    """Load a torchvision ImageNet ResNet checkpoint into a model's trunk.

    The file is read with ``torch.load(..., weights_only=True)``. Its SHA-256 is checked against ``sha256``
    when given, else against the hex prefix in a torchvision-style file name (``resnet34-b627a593.pth`` → the
    hash must start with ``b627a593``); a name without one is loaded unverified (logged). Every key except
    ``fc.*`` must match the trunk by name and shape (``num_batches_tracked`` may be absent, as in old files).

    Parameters
    ----------
    model : nn.Module
        A :class:`SeedResNet` (weights go into ``model.body``) or a :class:`ResNet`.
    path : path-like
        Local ``.pth`` file.
    sha256 : str, optional
        Full (or prefix of the) expected hex SHA-256.

    Returns
    -------
    nn.Module
        ``model`` itself, loaded in place.

    Raises
    ------
    ModelError
        Missing file, bad hash, unreadable file, or keys/shapes that do not match; the message names the file.
    """
    path = Path(path).expanduser()
    target = model.body if isinstance(model, SeedResNet) else model
    if not isinstance(target, ResNet):
        raise TypeError(f"ImageNet weights need a SeedResNet or ResNet, got {type(model).__name__}")
    if not path.is_file():
        raise ModelError(f"{path}: ImageNet weights file not found")
    _verify_hash(path, sha256)
    sd = {k: v for k, v in _state_dict_from_file(path).items() if not k.startswith("fc.")}
    own = {k: v for k, v in target.state_dict().items() if not k.startswith("fc.")}
    ignore = "num_batches_tracked"
    missing = sorted(k for k in own if k not in sd and not k.endswith(ignore))
    unexpected = sorted(k for k in sd if k not in own)
    if missing or unexpected:
        raise ModelError(
            f"{path}: not {target.arch} ImageNet weights: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if v.shape != own[k].shape]
    if bad:
        raise ModelError(f"{path}: shape mismatch for {target.arch}: {bad[:3]}")
    for k in own:
        if k.endswith(ignore) and k not in sd:
            sd[k] = torch.zeros_like(own[k])
    if target.fc is not None:
        sd.update({k: v for k, v in target.state_dict().items() if k.startswith("fc.")})
    target.load_state_dict(sd, strict=True)
    log.info("loaded ImageNet weights from %s into %s", path, target.arch)
    return model


def _default_weight_dirs() -> list[Path]:
    return [DEFAULT_WEIGHTS_DIR.expanduser(), Path(torch.hub.get_dir()) / "checkpoints"]


def _download(url: str, dst: Path, timeout: float) -> None:
    """Fetch ``url`` to ``dst`` (hash-prefix checked by torch.hub); fails fast when offline."""
    # torch.hub.download_url_to_file has no timeout: probe the server first so offline machines fail quickly.
    urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    m = _HASH_IN_NAME.search(dst.name)
    torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=False)


def resolve_imagenet_weights(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path | None:
    """Find torchvision's ImageNet checkpoint for ``arch``: a given file, a cached one, or a download.

    Order: ``weights`` if given (must exist); then torchvision's file name (e.g. ``resnet34-b627a593.pth``) in
    ``cache_dir`` if given, else in ``~/.cache/voicegender/weights`` and ``$TORCH_HOME/hub/checkpoints``; then
    a download from download.pytorch.org into ``cache_dir`` (or the first default folder). If nothing works
    (offline machine) a ``UserWarning`` says so and ``None`` is returned: the caller then trains from random
    initialisation.

    Parameters
    ----------
    arch : str
        ``"resnet34"`` or ``"resnet50"``.
    weights : path-like, optional
        An explicit local file; takes precedence and is never replaced by a download.
    cache_dir : path-like, optional
        Folder to look in and download to.
    download : bool
        Try the URL when no local file is found.
    timeout : float
        Seconds to wait for the server.

    Returns
    -------
    Path or None
        The weights file, or None (random init).

    Raises
    ------
    ModelError
        ``weights`` was given but does not exist.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise ModelError(f"{p}: ImageNet weights file not found")
        return p
    if arch not in IMAGENET_WEIGHTS:
        raise ValueError(f"no ImageNet weights for arch {arch!r}; expected one of {sorted(IMAGENET_WEIGHTS)}")
    fname, url = IMAGENET_WEIGHTS[arch]
    dirs = [Path(cache_dir).expanduser()] if cache_dir is not None else _default_weight_dirs()
    for d in dirs:
        if (d / fname).is_file():
            log.info("using cached ImageNet weights %s", d / fname)
            return d / fname
    if download:
        dst = dirs[0] / fname
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s to %s", url, dst)
            _download(url, dst, timeout)
            return dst
        except Exception as e:  # offline, DNS failure, HTTP error, hash mismatch…
            reason = f"download of {url} failed ({type(e).__name__}: {e})"
    else:
        reason = "downloads disabled"
    warnings.warn(
        f"No ImageNet weights for {arch}: {fname} is not in {', '.join(map(str, dirs))} and {reason}. "
        f"The model starts from RANDOM initialisation (much worse than the original system). Put the file in "
        f"one of those folders or pass its path.",
        UserWarning,
        stacklevel=2,
    )
    return None
