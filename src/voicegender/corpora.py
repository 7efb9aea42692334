"""Corpora: tables of clips (path, speaker, gender, extras). Loaders never read audio.

Three layouts are understood, and :func:`load_corpus` picks one from what it finds:

- **AudioMNIST**: ``data/NN/D_NN_I.(wav|flac)`` plus ``audioMNIST_meta.txt`` (JSON keyed by speaker id).
- **CSV manifest**: any CSV with columns ``path, speaker, gender`` (paths relative to the CSV); other columns
  (age, digit, ...) are kept as extras. A folder holding ``manifest.csv`` means that manifest. Image paths
  (the seed's MFCC JPEGs) make an image corpus.
- **Gender folders**: ``<root>/female/...`` and ``<root>/male/...``; the speaker is the first sub-folder
  under the gender folder, or the file stem for files directly inside it (:attr:`Corpus.speaker_from_file` counts
  them, and :func:`speaker_note` says what that does to speaker-disjoint scores).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .audio.decode import AUDIO_EXTENSIONS, audio_files
from .errors import CorpusError

log = logging.getLogger(__name__)

LABELS = ("female", "male")  # class index 0 = female (the seed's positive class), 1 = male
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MANIFEST_NAME = "manifest.csv"
AUDIOMNIST_META = "audioMNIST_meta.txt"
_SNIFF_BYTES = 8192  # the start of a manifest that must be text (no NUL bytes) before the CSV reader sees it
_GENDER_WORDS = {"female": "female", "f": "female", "woman": "female", "w": "female",
                 "male": "male", "m": "male", "man": "male"}
_AUDIOMNIST_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)$")


@dataclass(frozen=True)
class Clip:
    """One recording (or, for the seed's image set, one MFCC image) of a known speaker."""

    path: Path
    speaker: str  # unique within the corpus; splits group by (corpus, speaker)
    gender: str  # "female" | "male"
    corpus: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # age, digit, duration_s, ...

    @property
    def label(self) -> int:
        return LABELS.index(self.gender)

    @property
    def speaker_key(self) -> str:
        return f"{self.corpus}/{self.speaker}"

    @property
    def age(self) -> float | None:
        return age_years(self.extra.get("age"))


# Common Voice gives age bands; the middle of each band stands for it ("teens" spans children and adults: unknown)
AGE_BANDS = {"twenties": 25.0, "thirties": 35.0, "fourties": 45.0, "forties": 45.0, "fifties": 55.0,
             "sixties": 65.0, "seventies": 75.0, "eighties": 85.0, "nineties": 95.0}


def age_years(value) -> float | None:
    """A speaker's age in years from a manifest cell: a number, a Common Voice band (its middle), else None."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return AGE_BANDS.get(str(value).strip().lower())


@dataclass
class Corpus:
    """A named list of clips; ``kind`` is "audio" or "image" (the seed's MFCC JPEGs)."""

    name: str
    root: Path
    clips: list[Clip]
    kind: str = "audio"
    # clips whose speaker is only their file name (files directly in female/ or male/): nobody said who speaks
    speaker_from_file: int = 0

    def speakers(self, gender: str | None = None) -> list[str]:
        return sorted({c.speaker for c in self.clips if gender is None or c.gender == gender})

    def __len__(self) -> int:
        return len(self.clips)


def normalise_gender(value: str, where: str) -> str:
    """Map female/f/woman/F and male/m/man/M to "female"/"male"; anything else is a CorpusError."""
    gender = _GENDER_WORDS.get(str(value).strip().lower())
    if gender is None:
        raise CorpusError(f"{where}: gender {value!r} is neither female nor male (expected female/male/f/m)")
    return gender


def _kind_of(paths: list[Path], where: Path) -> str:
    suffixes = Counter(p.suffix.lower() for p in paths)
    if suffixes and all(s in IMAGE_EXTENSIONS for s in suffixes):
        return "image"
    odd = [s for s in suffixes if s not in AUDIO_EXTENSIONS and s not in IMAGE_EXTENSIONS]
    if odd:
        log.warning("%s: unusual file extensions %s; will try to decode them as audio", where, odd)
    return "audio"


def load_manifest(csv_path: str | Path, name: str | None = None) -> Corpus:
    """Read a CSV manifest with columns path, speaker, gender (paths relative to the CSV's folder)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CorpusError(f"{csv_path}: manifest not found")
    root = csv_path.parent
    name = name or (root.name if csv_path.name == MANIFEST_NAME else csv_path.stem)
    not_text = f"{csv_path}: not a UTF-8 text CSV manifest (path, speaker, gender)"
    try:
        with csv_path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
        if not head.strip():
            raise CorpusError(f"{csv_path}: empty file, not a CSV manifest (path, speaker, gender)")
        if b"\0" in head:
            raise CorpusError(f"{not_text}: it holds NUL bytes (binary, or UTF-16: save it as UTF-8)")
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            clips = _manifest_clips(f, csv_path, root, name)
    except UnicodeDecodeError as e:
        raise CorpusError(f"{not_text}: undecodable bytes ({e.reason})") from e
    except csv.Error as e:
        raise CorpusError(f"{csv_path}: not a readable CSV manifest ({e})") from e
    except OSError as e:
        raise CorpusError(f"{csv_path}: cannot read the manifest ({e.strerror or e})") from e
    if not clips:
        raise CorpusError(f"{csv_path}: manifest lists no clips")
    return Corpus(name, root, clips, _kind_of([c.path for c in clips], csv_path))


def _manifest_clips(text: TextIO, csv_path: Path, root: Path, name: str) -> list[Clip]:
    """The clips of a manifest's rows; CorpusError names the file and the line(s).

    A row repeated as it is (the same path, speaker and gender) counts once, with a warning: listed twice, a clip
    would weigh double in its speaker's answer and in training. The same path with another speaker or gender is an
    error: one recording has one speaker and one gender, and which row is right only the manifest's author knows.
    """
    columns, rows = _manifest_rows(text, csv_path)
    missing = {"path", "speaker", "gender"} - set(columns)
    if missing:
        raise CorpusError(f"{csv_path}: manifest lacks column(s) {', '.join(sorted(missing))} "
                          f"(it has: {', '.join(columns) or 'none'})")
    for column, why in (("path", "every row names its recording"),
                        ("speaker", "every row names who speaks, or its clips all become one speaker")):
        empty = [line for line, row in rows if not row[column]]
        if empty:
            raise CorpusError(f"{csv_path}: empty {column} on {_line_list(empty)}: {why}")
    clips: list[Clip] = []
    first: dict[str, tuple[int, Clip]] = {}  # a clip's path (normalised) -> its first line and clip
    repeated: list[int] = []
    for line, row in rows:
        clip = Clip(root / row["path"], row["speaker"], normalise_gender(row["gender"], f"{csv_path}:{line}"), name,
                    {k: v for k, v in row.items() if k not in ("path", "speaker", "gender")})
        key = os.path.normpath(clip.path)
        if key not in first:
            first[key] = line, clip
            clips.append(clip)
            continue
        seen_line, seen = first[key]
        for what, before, now in (("speakers", seen.speaker, clip.speaker), ("genders", seen.gender, clip.gender)):
            if before != now:
                raise CorpusError(f"{csv_path}: {row['path']} is listed with different {what}: {before!r} on line "
                                  f"{seen_line}, {now!r} on line {line}; a recording has one speaker and one gender")
        repeated.append(line)
    if repeated:
        log.warning("%s: %d row(s) repeat an earlier row's path, speaker and gender (%s); each clip counts once",
                    csv_path, len(repeated), _line_list(repeated))
    return clips


def _manifest_rows(text: TextIO, csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A manifest's columns and rows, each row as (its first line, {column: cell}), cells stripped, blank lines
    skipped. CorpusError (the file and the line) for what would put a cell in the wrong column, which the gender
    check further on would report as a wrong gender: a column named twice, a row with more or fewer fields than the
    header, a quote left open (the rest of the file would be one cell)."""
    reader = csv.reader(text, strict=True)  # strict: a quote left open is an error, not the rest of the file
    end = 0  # the last line read: a row starts on the line after the previous one ends
    rows = []
    try:
        columns = [c.strip() for c in next(reader, [])]
        end = reader.line_num
        twice = [c for c, n in Counter(columns).items() if c and n > 1]
        if twice:
            where = " and ".join(str(i) for i, c in enumerate(columns, 1) if c == twice[0])
            raise CorpusError(f"{csv_path}: the header names column {twice[0]!r} more than once (columns {where}); "
                              "keep one")
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not cells:
                continue
            surplus = cells[len(columns):]
            if len(cells) < len(columns) or any(c.strip() for c in surplus):
                spans = f" (a quote opened on line {start} closes on line {end})" if end > start else ""
                raise CorpusError(f"{csv_path}: line {start} has {_count(len(cells), 'field')}, the header has "
                                  f"{len(columns)}{spans}")
            if any("\0" in c for c in cells):
                raise CorpusError(f"{csv_path}:{start}: NUL bytes in the row: not a text CSV manifest")
            rows.append((start, {c: v.strip() for c, v in zip(columns, cells, strict=False) if c}))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise CorpusError(f"{csv_path}: unterminated quote from line {end + 1}: the rest of the file would be one "
                              "cell; close the quote") from e
        raise CorpusError(f"{csv_path}:{end + 1}: not a readable CSV row ({e})") from e
    return columns, rows


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _line_list(lines: list[int], shown: int = 10) -> str:
    """``"line 3"``, ``"lines 2, 5"``, or the first ``shown`` and how many more."""
    more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(str(n) for n in lines[:shown])}{more}"


def load_audiomnist(root: str | Path, name: str | None = None) -> Corpus:
    """Read an AudioMNIST-layout corpus: ``data/NN/D_NN_I.(wav|flac)`` and ``audioMNIST_meta.txt``."""
    root = Path(root)
    meta_path = root / AUDIOMNIST_META
    if not meta_path.is_file():
        meta_path = root / "data" / AUDIOMNIST_META  # the original repository keeps it inside data/
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CorpusError(f"{root}: no {AUDIOMNIST_META} (AudioMNIST layout needs it)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{meta_path}: not valid UTF-8 JSON ({e})") from e
    except OSError as e:
        raise CorpusError(f"{meta_path}: cannot read it ({e.strerror or e})") from e
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise CorpusError(f"{meta_path}: expected a JSON object of speakers, each an object with a gender")
    data = root / "data" if (root / "data").is_dir() else root
    clips = []
    for path in sorted(p for p in data.glob("*/*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        match = _AUDIOMNIST_NAME.match(path.stem)
        if not match:
            log.warning("%s: name is not D_NN_I; skipped", path)
            continue
        digit, speaker, repetition = match.groups()
        info = meta.get(speaker) or meta.get(speaker.zfill(2))
        if info is None:
            raise CorpusError(f"{path}: speaker {speaker} is not in {meta_path.name}")
        extra = {"digit": digit, "repetition": repetition}
        if info.get("age") is not None:
            extra["age"] = str(info["age"])
        clips.append(Clip(path, speaker, normalise_gender(info.get("gender", ""), f"{meta_path} speaker {speaker}"),
                          name or root.name, extra))
    if not clips:
        raise CorpusError(f"{root}: no D_NN_I audio files under {data}")
    return Corpus(name or root.name, root, clips, "audio")


def load_gender_folders(root: str | Path, name: str | None = None) -> Corpus:
    """Read ``root/female/**`` and ``root/male/**`` audio; speaker = first sub-folder (or file stem)."""
    root = Path(root)
    clips = []
    from_file = 0
    for gender_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in _GENDER_WORDS):
        gender = normalise_gender(gender_dir.name, str(gender_dir))
        for path in audio_files(gender_dir):
            parts = path.relative_to(gender_dir).parts
            speaker = parts[0] if len(parts) > 1 else path.stem
            from_file += len(parts) == 1
            clips.append(Clip(path, speaker, gender, name or root.name))
    if not clips:
        raise CorpusError(f"{root}: no audio under female/ or male/ sub-folders")
    return Corpus(name or root.name, root, clips, "audio", speaker_from_file=from_file)


def speaker_note(corpus: Corpus) -> str | None:
    """A one-line warning when some clips have no speaker but their file name (:attr:`Corpus.speaker_from_file`):
    each then counts as its own speaker, so a speaker with several such files can sit on both sides of a
    speaker-disjoint split and its scores are optimistic. None when every clip names its speaker."""
    n = corpus.speaker_from_file
    if not n:
        return None
    return (f"{corpus.root}: {n} of {len(corpus.clips)} files lie directly in female/ or male/, so each counts as "
            "its own speaker; if one speaker made several, held-out speakers are not really held out and the "
            "scores are optimistic: put each speaker's files in female/<speaker>/ or male/<speaker>/ (or use a "
            "CSV manifest with a speaker column)")


def folder_layout(path: str | Path) -> str | None:
    """Which of :func:`load_corpus`'s folder layouts ``path`` is: "audiomnist", "manifest" (a folder holding
    manifest.csv), "gender_folders" (female/ and male/ sub-folders), or None (not a corpus folder)."""
    path = Path(path)
    if (path / AUDIOMNIST_META).is_file() or (path / "data" / AUDIOMNIST_META).is_file():
        return "audiomnist"
    if (path / MANIFEST_NAME).is_file():
        return "manifest"
    if any(p.is_dir() and p.name.lower() in _GENDER_WORDS for p in path.iterdir()):
        return "gender_folders"
    return None


def load_corpus(path: str | Path, name: str | None = None) -> Corpus:
    """Load any supported corpus: a CSV manifest, an AudioMNIST folder, a folder with manifest.csv, or
    a folder with female/ and male/ sub-folders."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise CorpusError(f"{path}: a corpus is a folder or a CSV manifest (path, speaker, gender)")
        return load_manifest(path, name)
    layout = folder_layout(path)
    if layout == "audiomnist":
        return load_audiomnist(path, name)
    if layout == "manifest":
        return load_manifest(path / MANIFEST_NAME, name)
    if layout == "gender_folders":
        return load_gender_folders(path, name)
    raise CorpusError(f"{path}: not a corpus: expected {AUDIOMNIST_META}, {MANIFEST_NAME}, "
                      "or female/ and male/ sub-folders")


def write_manifest(clips: list[Clip], csv_path: str | Path) -> None:
    """Write clips as a CSV manifest (absolute paths, corpus column, extras) — the record of a run's data."""
    csv_path = Path(csv_path)
    extras = sorted({k for c in clips for k in c.extra})
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "speaker", "gender", "corpus", *extras])
        for c in clips:
            extra = (c.extra.get(k, "") for k in extras)
            writer.writerow([str(c.path.resolve()), c.speaker, c.gender, c.corpus, *extra])


@dataclass(frozen=True)
class GenderSummary:
    gender: str
    clips: int
    speakers: int
    seconds: float | None  # None for image corpora


def summarise(corpus: Corpus, durations: dict[Path, float] | None = None) -> list[GenderSummary]:
    """Clips, speakers and total duration per gender (and a "total" row).

    durations : seconds per clip path; clips without one use their ``duration_s`` extra when present.
    """
    rows = []
    for gender in (*LABELS, "total"):
        clips = [c for c in corpus.clips if gender == "total" or c.gender == gender]
        seconds = None
        if corpus.kind == "audio":
            seconds = 0.0
            for c in clips:
                value = (durations or {}).get(c.path, c.extra.get("duration_s"))
                seconds += float(value) if value not in (None, "") else 0.0
        rows.append(GenderSummary(gender, len(clips), len({c.speaker for c in clips}), seconds))
    return rows
