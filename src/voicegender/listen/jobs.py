"""Prediction jobs at scale: sharded, resumable, interruptible result files.

``voicegender predict INPUTS --out results.jsonl`` (or ``.csv``) writes one line per file through
``results.jsonl.partial``, flushed (and fsynced) after every batch, and renames it to ``results.jsonl`` when every
file has its line. So ``results.jsonl`` is always either the complete previous file or the complete new one:

* SIGINT (Ctrl-C) or SIGTERM (a scheduler's polite kill): the lines of the files already scored are written,
  the job stops and says so, and ``results.jsonl.partial`` holds complete lines only (its name says it is
  partial). Exit code 128 + the signal number (130, 143).
* SIGKILL, a crash, a power cut: ``.partial`` holds complete lines and perhaps one torn last line.
* ``--resume`` continues ``.partial`` (dropping a torn last line), or, without one, a finished ``results.jsonl``
  (new inputs are added to it): files that already have a line are skipped, so a killed job loses nothing and
  repeats nothing. A new run without ``--resume`` refuses to overwrite a ``.partial`` (it holds work), and a finished
  ``results.jsonl`` too unless ``--force`` says to replace it.

``--shard K/N`` keeps the inputs whose path hashes to K (``shard_index``: SHA-1 of the path as listed, so the
split does not depend on the order or the machine) and writes ``results.part-K-of-N.jsonl``; under torchrun the
shard is RANK/WORLD_SIZE. :func:`voicegender.listen.merge.merge_results` (``voicegender merge``) combines the parts.
"""

from __future__ import annotations

import csv
import hashlib
import io
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

from ..errors import VoiceGenderError
from ..fileio import atomic_write
from ..voice.loading import load_model
from .predict import iter_predictions
from .prediction import FIELDS, Prediction, PredictOptions
from .writers import prediction_csv_header, prediction_csv_row, prediction_json

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


def _typed(row: dict) -> dict:
    """A CSV row with numbers as floats and empty cells as None, like Prediction.as_dict()."""
    out = {}
    for k, v in row.items():
        if k in _NUMERIC:
            out[k] = None if v in ("", None) else float(v)
        elif k == "error" and v in ("", None) and row.get("label") != "error":
            continue
        else:
            out[k] = v
    return out


def read_results(path: str | os.PathLike, fmt: str | None = None, strict_header: bool = False
                 ) -> tuple[list[dict], int]:
    """The rows of a result file and the byte length of its complete lines.

    A last line without its newline is a torn write (a job killed while writing) and is not a row. Any other
    unreadable line is an error naming the file and line. ``strict_header``: a CSV file must have this version's
    columns (rows are about to be appended to it).
    """
    path = Path(path)
    fmt = result_format(path, fmt)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VoiceGenderError(f"{path}: cannot read it ({e.strerror or e})") from e
    complete = data.rfind(b"\n") + 1
    try:
        text = data[:complete].decode("utf-8")
    except UnicodeDecodeError as e:
        raise VoiceGenderError(f"{path}: not UTF-8 text (byte {e.start}); not a result file?") from e
    rows: list[dict] = []
    if fmt == "json":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise VoiceGenderError(f"{path}: line {n} is not a JSON object ({e}); not a result file?") from e
            if not isinstance(row, dict) or "path" not in row:
                raise VoiceGenderError(f"{path}: line {n} has no 'path'; not a result file?")
            rows.append(row)
        return rows, complete
    if not text:
        return rows, complete
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if "path" not in header or "label" not in header:
        raise VoiceGenderError(f"{path}: no path/label header; not a result file?")
    if strict_header and ",".join(header) != prediction_csv_header():
        raise VoiceGenderError(f"{path}: its columns ({','.join(header)}) are not this version's "
                               f"({prediction_csv_header()}); finish it with the version that started it, or "
                               "start again without --resume")
    rows = []
    for n, r in enumerate(reader, 2):
        try:
            rows.append(_typed(r))
        except (TypeError, ValueError) as e:
            raise VoiceGenderError(f"{path}: line {n} has a value that is not a number ({e}); not a result "
                                   "file?") from e
    return rows, complete


def row_line(row: dict, fmt: str) -> str:
    """One result row as a line of the file's format (``json`` or ``csv``), without the newline."""
    if fmt == "json":
        return json.dumps(row, ensure_ascii=False)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if row.get(k) is None else row[k] for k in (*FIELDS, "error")])
    return buf.getvalue()


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
        self.out = Path(out)
        self.fmt = result_format(self.out, fmt)
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        self.resume = resume
        self.force = force  # a new run may replace a finished ``out`` (never a .partial: resume or delete it)
        self.done: set[str] = set()  # paths that already have a line
        self._file = None

    def check(self) -> None:
        """One-line error when starting afresh would lose written lines: a ``.partial`` (an interrupted run) or,
        unless ``force``, a finished non-empty ``out``. Nothing is written."""
        if self.resume:
            return
        if self.partial.is_file():
            raise VoiceGenderError(f"{self.partial}: holds the results of an interrupted run; add --resume to "
                                   "continue it, or delete it to start again")
        if not self.force and self.out.is_file() and self.out.stat().st_size > 0:
            raise VoiceGenderError(f"{self.out}: already holds results; add --resume to keep them and add the files "
                                   "it lacks, give --out another name, or add --force to replace it")

    def open(self) -> ResultsFile:
        """Start (or, with ``resume``, continue) the ``.partial`` file; fills :attr:`done`."""
        self.check()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        source = None
        if self.resume:
            source = self.partial if self.partial.is_file() else self.out if self.out.is_file() else None
        if source is not None:
            rows, complete = read_results(source, self.fmt, strict_header=True)
            self.done = {str(r["path"]) for r in rows}
            if source == self.out:  # a finished file gets new inputs: continue from a copy of it
                data = self.out.read_bytes()[:complete]
                atomic_write(self.partial, lambda f: f.write(data))
            elif complete < self.partial.stat().st_size:
                log.warning("%s: dropping a torn last line (the run was killed while writing)", self.partial)
                os.truncate(self.partial, complete)
            self._file = self.partial.open("ab")
            if self.fmt == "csv" and complete == 0:
                self._write_text(prediction_csv_header() + "\n")
        else:
            self._file = self.partial.open("wb")
            if self.fmt == "csv":
                self._write_text(prediction_csv_header() + "\n")
        return self

    def _write_text(self, text: str) -> None:
        self._file.write(text.encode("utf-8"))  # one write call per batch: lines are never interleaved
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, predictions: list[Prediction]) -> None:
        """Append one line per prediction, flushed to disk before returning."""
        if predictions:
            line = prediction_json if self.fmt == "json" else prediction_csv_row
            self._write_text("".join(line(p) + "\n" for p in predictions))

    def close(self) -> None:
        """Stop writing; the ``.partial`` file stays (complete lines)."""
        if self._file is not None:
            self._file.close()
            self._file = None

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
    files : audio paths (``predict.expand_paths`` output); a path listed twice is predicted once.
    out : the result file (.jsonl or .csv); with ``shard.count > 1`` the shard's part (:meth:`Shard.output`).
    model : None (the shipped model), a model file, or a loaded model (:func:`voicegender.listen.predict.load_model`).
    options : how files are predicted (default ``PredictOptions()``); lines are written (and fsynced) a batch of
        ``options.batch_size`` files at a time.
    fmt : ``json`` or ``csv`` (default: from the extension).
    resume : skip files that already have a line in ``<out>.partial`` or ``out``.
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
    files = shard.select(list(dict.fromkeys(str(f) for f in files)))
    results = ResultsFile(shard.output(out), fmt, resume, force)
    results.check()  # before the model loads: a file that must not be replaced is said at once
    loaded = load_model(model)  # before touching any file: a bad model leaves everything as it was
    results.open()
    todo = [f for f in files if f not in results.done]
    job = JobResult(results.out, results.partial, len(files), len(files) - len(todo), 0, 0)
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
