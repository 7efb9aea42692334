"""Progress bars for long loops: tqdm on stderr, off with --quiet and when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
_enabled: bool | None = None  # None: tqdm decides (on for a terminal, off otherwise); the CLI sets False for --quiet


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on (True) or off (False), or let tqdm decide from the terminal (None)."""
    global _enabled
    _enabled = enabled


def progress(items: Iterable[T], desc: str = "", unit: str = "it", total: int | None = None) -> Iterator[T]:
    """Wrap a loop in a progress bar (see :func:`set_progress`)."""
    disable = None if _enabled is None else not _enabled
    return iter(tqdm(items, desc=desc, unit=unit, total=total, disable=disable, leave=False, dynamic_ncols=True))
