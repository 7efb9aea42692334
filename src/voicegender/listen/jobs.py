"""Prediction jobs at scale: sharded, resumable, interruptible result files.

``voicegender predict INPUTS --out results.jsonl`` (or ``.csv``) writes one line per file through
``results.jsonl.partial``, flushed (and fsynced) after every batch, and renames it to ``results.jsonl`` when every
file has its line. So ``results.jsonl`` is always either the complete previous file or the complete new one:

* SIGINT (Ctrl-C) or SIGTERM (a scheduler's polite kill): the lines of the files already scored are written,
  the job stops and says so, and ``results.jsonl.partial`` holds complete lines only (its name says it is
  partial). Exit code 128 + the signal number (130, 143).
* SIGKILL, a crash, a power cut: ``.partial`` holds complete lines and perhaps one torn last line.
* A full disk: the batch being written is taken back, the job stops with a one-line error, ``.partial`` holds the
  complete lines written before.
* ``--resume`` continues ``.partial`` (dropping a torn last line), or, without one, a finished ``results.jsonl``
  (new inputs are added to it): files that already have a line are skipped, so a killed job loses nothing and
  repeats nothing; a file whose line is an error is tried again (the missing file may be there now). Paths are
  matched normalised (``./a.wav`` is ``a.wav``: :func:`path_key`). A new run without ``--resume`` refuses to
  overwrite a ``.partial`` (it holds work), and a finished ``results.jsonl`` too unless ``--force`` says to replace
  it.

``--shard K/N`` keeps the inputs whose path hashes to K (``shard_index``: SHA-1 of the path as listed, so the
split does not depend on the order or the machine) and writes ``results.part-K-of-N.jsonl``; under torchrun the
shard is RANK/WORLD_SIZE. :func:`voicegender.listen.merge.merge_results` (``voicegender merge``) combines the parts.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import logging
import os
import queue
import re
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError, VoiceGenderError
from ..fileio import atomic_write, link_target, unescaped, utf8_bytes
from ..voice.loading import load_model
from .predict import iter_predictions
from .prediction import FIELDS, Prediction, PredictOptions
from .writers import prediction_csv_header, prediction_line

log = logging.getLogger(__name__)

RESULT_FORMATS = {".jsonl": "json", ".ndjson": "json", ".csv": "csv"}  # file extension -> row format
PARTIAL_SUFFIX = ".partial"  # results.jsonl.partial: the unfinished output of a running or interrupted job
# a shard's result file: results.part-K-of-N.jsonl (see Shard)
PART_NAME = re.compile(r"^(?P<stem>.+)\.part-(?P<k>\d+)-of-(?P<n>\d+)(?P<ext>\.jsonl|\.ndjson|\.csv)$")
_NUMERIC = tuple(f for f in FIELDS if f not in ("path", "label"))  # CSV cells read back as float or None


# --- shards ---------------------------------------------------------------------------------------------------------
def shard_index(path: str, count: int) -> int:
    """The shard (0..count-1) a file belongs to: SHA-1 of its normalised path as listed, modulo ``count``.

    Stable under the order the inputs are listed in and across machines and Python runs (unlike ``hash``). Give
    every shard the same inputs, spelled the same way (the same relative paths from the same folder, or the same
    absolute paths).
    """
    digest = hashlib.sha1(os.path.normpath(path).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based: SLURM_ARRAY_TASK_ID with --array=0-N-1, JOB_COMPLETION_INDEX)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise VoiceGenderError(f"--shard {self.index}/{self.count}: need 0 <= K < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` (e.g. ``"3/8"``)."""
        k, sep, n = text.partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(k), int(n))
        except ValueError:
            raise VoiceGenderError(f"--shard {text!r}: expected K/N, e.g. 0/4 (K from 0 to N-1)") from None

    @classmethod
    def from_env(cls) -> Shard:
        """RANK/WORLD_SIZE as torchrun sets them (0/1 when they are not set)."""
        from ..world import world_from_env

        try:
            world = world_from_env()
        except ValueError as e:
            raise VoiceGenderError(str(e)) from e
        return cls(world.rank, world.size)

    def select(self, paths: Iterable[str]) -> list[str]:
        """The paths of this shard, in their order."""
        return list(paths) if self.count == 1 else [p for p in paths if shard_index(p, self.count) == self.index]

    def output(self, out: str | os.PathLike) -> Path:
        """This shard's result file: ``results.part-K-of-N.jsonl`` for ``results.jsonl`` (itself for 1 shard)."""
        out = Path(out)
        if self.count == 1:
            return out
        return out.with_name(f"{out.stem}.part-{self.index}-of-{self.count}{out.suffix}")


# --- result files ---------------------------------------------------------------------------------------------------
def result_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``json`` (JSON lines) or ``csv``, from ``fmt`` or the extension (.jsonl / .ndjson / .csv; .partial ignored)."""
    name = Path(path).name.removesuffix(PARTIAL_SUFFIX)
    ext = Path(name).suffix.lower()
    if fmt in ("json", "csv"):
        if RESULT_FORMATS.get(ext, fmt) != fmt:
            raise VoiceGenderError(f"{path}: a {ext} file cannot hold --format {fmt} results")
        return fmt
    if ext not in RESULT_FORMATS:
        raise VoiceGenderError(f"{path}: results are written as .jsonl (one JSON object per line) or .csv, "
                               f"not {ext or 'no extension'!r}")
    return RESULT_FORMATS[ext]


def path_key(path: str | os.PathLike) -> str:
    """What tells two spellings of one input apart from two inputs: the path normalised as :func:`shard_index`
    does (``.././a.wav`` is ``../a.wav``). Result lines keep the path as it was given; they are matched by this."""
    return os.path.normpath(os.fspath(path))


def _typed(row: dict) -> dict:
    """A CSV row with numbers as floats and empty cells as None, like Prediction.as_dict()."""
    out = {}
    for k, v in row.items():
        if k in _NUMERIC:
            out[k] = None if v in ("", None) else float(v)
        elif k == "error" and v in ("", None) and row.get("label") != "error":
            continue
        else:
            out[k] = unescaped(v) if isinstance(v, str) else v  # CSV has no escapes of its own
    return out


@dataclass
class _Record:
    """One row of a result file and its bytes there (its newline included), kept as they are when the file is
    continued. ``row`` is None for a blank line."""

    row: dict | None
    raw: bytes


@dataclass
class _Contents:
    """A result file read: its CSV header line (b"" for JSON lines), its complete records, their byte length (the
    header's included), and whether it ends in a record cut off while being written."""

    header: bytes
    records: list[_Record]
    torn: bool

    @property
    def complete(self) -> int:
        return len(self.header) + sum(len(r.raw) for r in self.records)


def _read_contents(path: Path, fmt: str, strict_header: bool, unterminated: str) -> _Contents:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VoiceGenderError(f"{path}: cannot read it ({e.strerror or e})") from e
    end = data.rfind(b"\n") + 1
    try:
        text = data[:end].decode("utf-8")
    except UnicodeDecodeError as e:
        raise VoiceGenderError(f"{path}: not UTF-8 text (byte {e.start}); not a result file?") from e
    lines = [line + "\n" for line in text.split("\n")[:-1]]  # "\n" only: a name may hold U+2028 or U+0085
    tail = data[end:]
    torn = bool(tail)
    if tail and unterminated == "keep":
        try:
            lines.append(tail.decode("utf-8"))
            torn = False  # unless it is not a complete record: seen below
        except UnicodeDecodeError:  # cut inside a character
            pass
    if fmt == "csv":
        return _csv_contents(path, lines, strict_header, torn)
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            records.append(_Record(None, line.encode("utf-8")))
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            if n == len(lines) and not line.endswith("\n"):  # a last line cut off while it was written
                return _Contents(b"", records, True)
            raise VoiceGenderError(f"{path}: line {n} is not a JSON object ({e}); not a result file?") from e
        if not isinstance(row, dict) or "path" not in row:
            raise VoiceGenderError(f"{path}: line {n} has no 'path'; not a result file?")
        records.append(_Record(row, line.encode("utf-8")))
    return _Contents(b"", records, torn)


def _csv_contents(path: Path, lines: list[str], strict_header: bool, torn: bool) -> _Contents:
    """The records of a CSV result file from its lines (a record holds several when a quoted name holds a
    newline). The last record is cut off when it ends inside a quoted cell or, without its newline, lacks cells."""
    reader = csv.reader(iter(lines))
    header_cells = next(reader, None)
    if header_cells is None:
        return _Contents(b"", [], torn)
    header = "".join(lines[:reader.line_num]).encode("utf-8")
    if "path" not in header_cells or "label" not in header_cells:
        raise VoiceGenderError(f"{path}: no path/label header; not a result file?")
    if strict_header and ",".join(header_cells) != prediction_csv_header():
        raise VoiceGenderError(f"{path}: its columns ({','.join(header_cells)}) are not this version's "
                               f"({prediction_csv_header()}); finish it with the version that started it, or "
                               "start again without --resume")
    records: list[_Record] = []
    first = reader.line_num
    for cells in reader:
        record = "".join(lines[first:reader.line_num])
        if reader.line_num == len(lines) and (record.count('"') % 2 or not record.endswith("\n")
                                              and len(cells) != len(header_cells)):
            return _Contents(header, records, True)
        if not cells:
            records.append(_Record(None, record.encode("utf-8")))
        else:
            # as csv.DictReader: missing cells None, extra ones under None
            row = dict(zip(header_cells, cells, strict=False))
            row.update(dict.fromkeys(header_cells[len(cells):]))
            if len(cells) > len(header_cells):
                row[None] = cells[len(header_cells):]
            try:
                records.append(_Record(_typed(row), record.encode("utf-8")))
            except (TypeError, ValueError) as e:
                raise VoiceGenderError(f"{path}: line {first + 1} has a value that is not a number ({e}); not a "
                                       "result file?") from e
        first = reader.line_num
    return _Contents(header, records, torn)


def read_results(path: str | os.PathLike, fmt: str | None = None, strict_header: bool = False,
                 unterminated: str = "drop") -> tuple[list[dict], int]:
    """The rows of a result file and the byte length of its complete records.

    A last line without its newline is, with ``unterminated="drop"``, a torn write (a job killed while writing; its
    ``.partial`` is continued without it) and not a row; with ``"keep"`` (a finished file, which a person or a
    tool may have left without its last newline) it is a row when it is a complete record, else a one-line error
    saying the file is torn. Any other unreadable line is an error naming the file and line. ``strict_header``: a
    CSV file must have this version's columns (rows are about to be appended to it).
    """
    path = Path(path)
    contents = _read_contents(path, result_format(path, fmt), strict_header, unterminated)
    if contents.torn and unterminated == "keep":
        raise VoiceGenderError(f"{path}: its last line is cut off (torn: the job writing it was killed?); finish "
                               "that job with --resume, or delete the broken line")
    return [r.row for r in contents.records if r.row is not None], contents.complete


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultsFile:
    """The output of one job: lines appended to ``<out>.partial``, renamed to ``out`` by :meth:`commit`."""

    def __init__(self, out: str | os.PathLike, fmt: str | None = None, resume: bool = False, force: bool = False):
        self.out = link_target(out)  # a symlink's target gets the results; the link stays
        self.fmt = result_format(Path(out), fmt)
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        self.resume = resume
        self.force = force  # a new run may replace a finished ``out`` (never a .partial: resume or delete it)
        self.done: set[str] = set()  # paths (path_key) that already have a line
        self.failed_kept = 0  # error lines already there and kept: their files are not retried (not among the inputs)
        self.retried = 0  # error lines already there and dropped: their files are tried again
        self._file = None

    def check(self) -> None:
        """One-line error when starting afresh would lose written lines: a ``.partial`` (an interrupted run) or,
        unless ``force``, a finished non-empty ``out``. Nothing is written."""
        if self.out.exists() and not self.out.is_file() and not self.out.is_dir():  # /dev/null, a FIFO
            raise VoiceGenderError(f"{self.out}: not a regular file; a job's --out must be one (its lines go to "
                                   f"{self.partial.name}, renamed into place when every file has its line)")
        if self.resume:
            return
        if self.partial.is_file():
            raise VoiceGenderError(f"{self.partial}: holds the results of an interrupted run; add --resume to "
                                   "continue it, or delete it to start again")
        if not self.force and self.out.is_file() and self.out.stat().st_size > 0:
            raise VoiceGenderError(f"{self.out}: already holds results; add --resume to keep them and add the files "
                                   "it lacks, give --out another name, or add --force to replace it")

    def open(self, retry: Iterable[str] | None = None) -> ResultsFile:
        """Start (or, with ``resume``, continue) the ``.partial`` file; fills :attr:`done`.

        Resuming drops the error lines of the files in ``retry`` (every error line when None), so that they are
        tried again: the missing file may be there now, the broken one repaired. The other lines stay byte for
        byte; error lines of files not in ``retry`` stay too (nothing would replace them), counted in
        :attr:`failed_kept`.
        """
        self.check()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        source = None
        if self.resume:
            source = self.partial if self.partial.is_file() else self.out if self.out.is_file() else None
        if source is None:
            self._file = self.partial.open("wb", buffering=0)
            if self.fmt == "csv":
                self._write_text(prediction_csv_header() + "\n")
            return self
        contents = _read_contents(source, self.fmt, strict_header=True, unterminated="drop")
        again = None if retry is None else {path_key(p) for p in retry}
        kept = [r for r in contents.records if r.row is None or r.row.get("label") != "error"
                or (again is not None and path_key(str(r.row["path"])) not in again)]
        self.done = {path_key(str(r.row["path"])) for r in kept if r.row is not None}
        self.failed_kept = sum(r.row is not None and r.row.get("label") == "error" for r in kept)
        self.retried = len(contents.records) - len(kept)
        if contents.torn and source == self.partial:
            log.warning("%s: dropping a torn last line (the run was killed while writing)", self.partial)
        data = contents.header + b"".join(r.raw for r in kept)
        if source == self.out or len(kept) < len(contents.records):  # a copy of the file, or without its errors
            atomic_write(self.partial, lambda f: f.write(data))
        elif contents.torn:
            os.truncate(self.partial, contents.complete)
        self._file = self.partial.open("ab", buffering=0)
        if self.fmt == "csv" and not contents.header:
            self._write_text(prediction_csv_header() + "\n")
        return self

    def _write_text(self, text: str) -> None:
        """``text`` (whole lines) at the end of the file and on the disk before returning. One write call per batch
        (unbuffered: nothing is left in a buffer to fail again at close), so lines are never interleaved; when the
        disk refuses it, the file is cut back to its complete lines and the error says what is kept."""
        data = memoryview(utf8_bytes(text))
        start = self._file.seek(0, os.SEEK_END)
        try:
            while data:
                data = data[self._file.write(data):]
            os.fsync(self._file.fileno())
        except OSError as e:
            try:
                self._file.truncate(start)  # frees space: works on a full disk
            except OSError:
                pass  # a torn last line then, which --resume drops
            what = "free space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
            raise OutputError(f"{self.partial}: cannot write ({e.strerror or e}); the lines written so far are "
                              f"kept; {what} and run again with --resume") from e

    def write(self, predictions: list[Prediction]) -> None:
        """Append one line per prediction, flushed to disk before returning."""
        if predictions:
            self._write_text("".join(prediction_line(p.as_dict(), self.fmt) + "\n" for p in predictions))

    def close(self) -> None:
        """Stop writing; the ``.partial`` file stays (complete lines)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def commit(self) -> Path:
        """Every file has its line: ``.partial`` becomes ``out`` (atomically replacing any previous file)."""
        self.close()
        os.replace(self.partial, self.out)
        _fsync_dir(self.out.parent)
        return self.out


# --- the job --------------------------------------------------------------------------------------------------------
@dataclass
class JobResult:
    """What a prediction job did."""

    out: Path  # the result file (complete when ``interrupted`` is None)
    partial: Path  # where the lines are while the job runs or after an interruption
    total: int  # files of this shard (duplicates in the inputs counted once)
    skipped: int  # files that already had a line (--resume)
    written: int  # lines written by this run
    failed: int  # error rows among them
    interrupted: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the job early
    failed_kept: int = 0  # error rows already in the file for files not among the inputs (kept, not retried)
    retried: int = 0  # error rows already in the file that this run replaced by trying their files again

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.written


class _Signals:
    """SIGINT and SIGTERM record themselves instead of stopping the process (main thread only)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


_DONE = object()


@dataclass
class _Failed:
    error: BaseException = field(repr=False)


def _produce(files: list[str], loaded, options: PredictOptions, show_progress: bool, out: queue.Queue,
             stop: threading.Event) -> None:
    predictions = iter_predictions(files, loaded, options, show_progress)
    try:
        for p in predictions:
            out.put(p)
            if stop.is_set():
                break
    except BaseException as e:  # handed to the main thread, which raises it
        out.put(_Failed(e))
    finally:
        predictions.close()
        out.put(_DONE)


def _ready(lines: queue.Queue) -> list[Prediction]:
    """The predictions waiting in ``lines`` (without waiting for more)."""
    out = []
    while True:
        try:
            item = lines.get_nowait()
        except queue.Empty:
            return out
        if isinstance(item, Prediction):
            out.append(item)


def run_predictions(files: Iterable[str], out: str | os.PathLike, model=None,
                    options: PredictOptions | None = None, *, fmt: str | None = None, resume: bool = False,
                    shard: Shard = Shard(), show_progress: bool = True,
                    on_batch: Callable[[list[Prediction]], None] | None = None, force: bool = False) -> JobResult:
    """Predict ``files`` into a result file, resumable and safe to interrupt (see the module docstring).

    Parameters
    ----------
    files : audio paths (``predict.expand_paths`` output); a path listed twice is predicted once (``a.wav`` and
        ``./a.wav`` are one path: :func:`path_key`), under the spelling listed first.
    out : the result file (.jsonl or .csv); with ``shard.count > 1`` the shard's part (:meth:`Shard.output`).
    model : None (the shipped model), a model file, or a loaded model (:func:`voicegender.listen.predict.load_model`).
    options : how files are predicted (default ``PredictOptions()``); lines are written (and fsynced) a batch of
        ``options.batch_size`` files at a time.
    fmt : ``json`` or ``csv`` (default: from the extension).
    resume : skip files that already have a line in ``<out>.partial`` or ``out``; a file whose line is an error
        is tried again (its line replaced).
    force : without ``resume``, replace a finished ``out`` (else a non-empty one is a VoiceGenderError, raised before
        the model is loaded: its lines are never lost silently).
    shard : predict only this shard's files.
    on_batch : called with each batch of new predictions once they are on disk (messages, pictures).

    Returns
    -------
    JobResult; ``interrupted`` is the signal number when SIGINT/SIGTERM stopped the job (``out`` then is still
    the previous file, and ``partial`` has the finished lines).
    """
    options = options or PredictOptions()
    first: dict[str, str] = {}  # each file once, under the spelling listed first
    for f in files:
        first.setdefault(path_key(f), str(f))
    files = shard.select(first.values())
    results = ResultsFile(shard.output(out), fmt, resume, force)
    results.check()  # before the model loads: a file that must not be replaced is said at once
    loaded = load_model(model)  # before touching any file: a bad model leaves everything as it was
    results.open(retry=files)
    todo = [f for f in files if path_key(f) not in results.done]
    job = JobResult(results.out, results.partial, len(files), len(files) - len(todo), 0, 0,
                    failed_kept=results.failed_kept, retried=results.retried)
    if not todo:
        job.out = results.commit()
        return job
    lines: queue.Queue = queue.Queue()
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(todo, loaded, options, show_progress, lines, stop),
                                name="voicegender-predict", daemon=True)
    batch: list[Prediction] = []

    def flush() -> None:
        if not batch:
            return
        results.write(batch)
        job.written += len(batch)
        job.failed += sum(p.label == "error" for p in batch)
        if on_batch is not None:
            on_batch(list(batch))
        batch.clear()

    try:
        with _Signals() as signals:
            producer.start()
            while True:
                if signals.received is not None:
                    job.interrupted = signals.received
                    stop.set()
                    batch.extend(_ready(lines))  # answers already computed: keep them
                    break
                try:
                    item = lines.get(timeout=0.05)
                except queue.Empty:  # the model is busy with the next batch: put this one on disk now
                    flush()
                    continue
                if item is _DONE:
                    break
                if isinstance(item, _Failed):
                    raise item.error
                batch.append(item)
                if len(batch) >= options.batch_size:
                    flush()
            flush()  # lines already computed are complete answers: keep them, interrupted or not
    except BaseException:  # a disk that takes no more, a failing model: the batch being decoded is let finish, as
        stop.set()  # Python exiting while a decoding thread runs native code aborts the process (exit code 134)
        if producer.is_alive():
            producer.join(timeout=5.0)
        raise
    finally:
        stop.set()
        results.close()
    if job.written == len(todo):  # complete (even if a signal came as the last line was written)
        job.interrupted = None
        job.out = results.commit()
    elif job.interrupted is None:  # the producer ended early without an error: should not happen
        raise VoiceGenderError(f"prediction stopped after {job.written} of {len(todo)} files; "
                               f"the lines so far are in {results.partial}")
    producer.join(timeout=5.0)  # let the decoding threads finish their batch (it is not waited for beyond this)
    return job
