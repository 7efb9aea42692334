"""Combining the result files of sharded ``predict --out`` runs (``voicegender merge``): the shards of an output
found by name (``<stem>.part-K-of-N.jsonl|csv``), one line per file, and a report of the shards missing or
unfinished, the files without a line and those with more than one. Nothing is written when shards or files are
missing, and an existing file is replaced only when asked (``force``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VoiceGenderError
from ..fileio import atomic_write, utf8_bytes
from .jobs import PART_NAME, PARTIAL_SUFFIX, path_key, read_results, result_format
from .writers import prediction_csv_header, prediction_line


@dataclass
class MergeReport:
    """What :func:`merge_results` found."""

    out: Path
    rows: int  # lines for ``out`` (written when ``written``)
    parts: list[Path]  # the files read
    missing_parts: list[str] = field(default_factory=list)  # "part K of N" not found, or only its .partial
    missing: list[str] = field(default_factory=list)  # expected files without a line
    duplicated: list[str] = field(default_factory=list)  # files with more than one line (the first is kept)
    unexpected: list[str] = field(default_factory=list)  # lines for files not among the expected (kept)
    written: bool = False  # ``out`` holds the merge (not when shards or files are missing)

    @property
    def complete(self) -> bool:
        return not (self.missing_parts or self.missing or self.duplicated)


def find_parts(out: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """The shard files of ``out`` (``<stem>.part-K-of-N.jsonl|csv`` next to it) in shard order, and the shards
    that are missing ("part K of N", "(unfinished)" when only its .partial exists)."""
    out = Path(out)
    folder = out.parent
    found: dict[int, Path] = {}
    counts: set[int] = set()
    unfinished: set[int] = set()
    for p in folder.iterdir() if folder.is_dir() else []:
        name = p.name.removesuffix(PARTIAL_SUFFIX)
        m = PART_NAME.match(name)
        if not m or m["stem"] != out.stem:
            continue
        counts.add(int(m["n"]))
        if p.name.endswith(PARTIAL_SUFFIX):
            unfinished.add(int(m["k"]))
        else:
            found[int(m["k"])] = p
    if not counts:
        raise VoiceGenderError(f"no shard files {out.stem}.part-K-of-N{out.suffix} in {folder}")
    if len(counts) > 1:
        raise VoiceGenderError(f"{folder}: shard files of {out.stem} from runs with different N "
                               f"({', '.join(map(str, sorted(counts)))}); give the parts to merge explicitly")
    n = counts.pop()
    missing = [f"part {k} of {n}" + (" (unfinished: only its .partial)" if k in unfinished else "")
               for k in range(n) if k not in found]
    return [found[k] for k in sorted(found)], missing


def merge_results(out: str | os.PathLike, parts: list[str | os.PathLike] | None = None,
                  expected: list[str] | None = None, fmt: str | None = None, force: bool = False) -> MergeReport:
    """Combine result files (the shards of ``out`` when ``parts`` is None) into ``out``, written atomically.

    Each file gets one line (the first found; ``a.wav`` and ``./a.wav`` are one file, :func:`jobs.path_key`); with
    ``expected`` (the inputs given to predict, expanded) the lines follow their order and files without a line are
    reported. Parts may be JSON lines or CSV, whatever ``out`` is; a part whose last line lacks its newline keeps
    it when it is a complete record (else a one-line error: the part is torn).

    An incomplete merge (shards missing, expected files without a line) is not written (``written`` False): a file
    that looks finished but lacks lines would be used as one. An existing non-empty ``out`` is replaced only with
    ``force`` (else a VoiceGenderError, raised after the parts are read, before anything is written).
    """
    out = Path(out)
    fmt = result_format(out, fmt)
    if parts is None:
        part_paths, missing_parts = find_parts(out)
    else:
        part_paths, missing_parts = [Path(p) for p in parts], []
    rows: dict[str, dict] = {}
    duplicated: dict[str, None] = {}
    for part in part_paths:
        if not part.is_file():
            raise VoiceGenderError(f"{part}: no such result file")
        for row in read_results(part, unterminated="keep")[0]:
            key = path_key(str(row["path"]))
            if key in rows:
                duplicated[str(row["path"])] = None
            else:
                rows[key] = row
    if missing_parts and out.exists():
        raise VoiceGenderError(f"{out}: exists, and {len(missing_parts)} shard(s) are missing ({missing_parts[0]}"
                               f"{', ...' if len(missing_parts) > 1 else ''}): not overwritten; merge again when "
                               "every shard is there")
    report = MergeReport(out, len(rows), part_paths, missing_parts, duplicated=list(duplicated))
    order = list(rows)
    if expected is not None:
        wanted: dict[str, str] = {}  # each file once, under the spelling listed first
        for e in expected:
            wanted.setdefault(path_key(str(e)), str(e))
        report.missing = [e for k, e in wanted.items() if k not in rows]
        extra = [k for k in rows if k not in wanted]
        report.unexpected = [str(rows[k]["path"]) for k in extra]
        order = [k for k in wanted if k in rows] + extra
    if report.missing_parts or report.missing:
        return report
    if not force and out.is_file() and out.stat().st_size > 0:
        raise VoiceGenderError(f"{out}: already exists; give --out another name, or add --force to replace it")
    lines = ([prediction_csv_header()] if fmt == "csv" else []) + [prediction_line(rows[k], fmt) for k in order]
    text = "".join(line + "\n" for line in lines)
    atomic_write(out, lambda f: f.write(utf8_bytes(text)))
    report.written = True
    return report
