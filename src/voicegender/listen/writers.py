"""Writers (and readers, for round trips) of predictions and timelines: JSON lines, CSV, JSON, Praat TextGrid.

Predictions: one JSON object per line, or CSV, with exactly :data:`voicegender.listen.predict.FIELDS` (+ ``error`` on
error rows). Timelines: CSV (``start_s,end_s,label,p_female``), JSON (``{"path", "duration_s", "speaking_time",
"segments"}``; ``speaking_time``: seconds per label and shares of speech) or a TextGrid with an IntervalTier
``gender`` (labels) and one ``p_female`` (probabilities, empty for no_speech), readable by Praat and praatio.
Timeline files are replaced atomically (:func:`write_timeline`); resumable prediction files are
:mod:`voicegender.listen.jobs`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from ..fileio import atomic_write
from .prediction import FIELDS, Prediction
from .segment import Segment, speaking_time

SEGMENT_FIELDS = ("start_s", "end_s", "label", "p_female")
TIMELINE_FORMATS = ("csv", "json", "textgrid")
GENDER_TIER = "gender"
P_FEMALE_TIER = "p_female"


# --- writing files -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def deferred_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold ``signals`` (Ctrl-C, a polite kill) while the block runs, then deliver them to the handlers that were
    in place: a file being replaced is finished first. Only the main thread receives signals; elsewhere this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in dict.fromkeys(received):
            signal.raise_signal(s)


# --- predictions --------------------------------------------------------------------------------------------
def prediction_json(prediction: Prediction) -> str:
    """One JSON line (no trailing newline)."""
    return json.dumps(prediction.as_dict(), ensure_ascii=False)


def prediction_csv_header(with_error: bool = True) -> str:
    """The CSV header line (no newline): the contract's columns, then ``error``."""
    return ",".join(FIELDS + (("error",) if with_error else ()))


def prediction_csv_row(prediction: Prediction) -> str:
    """One CSV line (no newline); None becomes an empty cell."""
    d = prediction.as_dict()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if d.get(k) is None else d[k] for k in (*FIELDS, "error")])
    return buf.getvalue()


def write_predictions(predictions: Iterable[Prediction], stream: TextIO, fmt: str = "json") -> None:
    """Write predictions as JSON lines (``fmt="json"``) or CSV with a header (``fmt="csv"``)."""
    if fmt == "csv":
        stream.write(prediction_csv_header() + "\n")
    for p in predictions:
        stream.write((prediction_json(p) if fmt == "json" else prediction_csv_row(p)) + "\n")


def _opt_float(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def read_predictions_csv(text: str) -> list[dict]:
    """Parse CSV written by :func:`write_predictions` back into dicts like :meth:`Prediction.as_dict`."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        d = {"path": row["path"], "label": row["label"]}
        d.update({k: _opt_float(row.get(k)) for k in FIELDS if k not in ("path", "label")})
        if row["label"] == "error":
            d["error"] = row.get("error") or ""
        rows.append(d)
    return rows


# --- timelines ------------------------------------------------------------------------------------------------
def timeline_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``csv`` / ``json`` / ``textgrid``, from ``fmt`` or the file extension (.csv, .json, .TextGrid)."""
    from_name = Path(path).suffix.lower().lstrip(".") if str(path) not in ("", "-") else ""
    if fmt:
        fmt = fmt.lower()
        if fmt not in TIMELINE_FORMATS:
            raise ValueError(f"--format {fmt!r}: use {' | '.join(TIMELINE_FORMATS)}")
        if from_name in TIMELINE_FORMATS and from_name != fmt:
            raise ValueError(f"{path}: its name says {from_name}, --format says {fmt}; make them agree")
        return fmt
    if from_name not in TIMELINE_FORMATS:
        raise ValueError(f"{path}: unknown timeline format {from_name!r}; use .csv, .json or .TextGrid "
                         f"(or --format {'|'.join(TIMELINE_FORMATS)})")
    return from_name


def timeline_csv(segments: Iterable[Segment]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SEGMENT_FIELDS)
    for s in segments:
        d = s.as_dict()
        w.writerow(["" if d[k] is None else d[k] for k in SEGMENT_FIELDS])
    return buf.getvalue()


def timeline_json(segments: Iterable[Segment], path: str = "", duration_s: float | None = None) -> str:
    """``{"path", "duration_s", "speaking_time", "segments"}``; ``speaking_time`` sums the segments
    (:meth:`voicegender.listen.segment.SpeakingTime.as_dict`: seconds of each label and the shares of speech)."""
    segments = list(segments)
    return json.dumps({"path": path, "duration_s": None if duration_s is None else round(duration_s, 3),
                       "speaking_time": speaking_time(segments).as_dict(),
                       "segments": [s.as_dict() for s in segments]}, ensure_ascii=False, indent=1) + "\n"


def write_textgrid(segments: list[Segment], out: str | os.PathLike, duration_s: float | None = None) -> Path:
    """A Praat TextGrid (long format) with IntervalTiers ``gender`` and ``p_female``."""
    from praatio import textgrid

    end = duration_s if duration_s is not None else (segments[-1].end_s if segments else 0.0)
    end = max(end, segments[-1].end_s if segments else 0.0)
    tg = textgrid.Textgrid(0.0, end)
    spans = [(s.start_s, s.end_s, s) for s in segments if s.end_s - s.start_s > 1e-6]
    tg.addTier(textgrid.IntervalTier(GENDER_TIER, [(a, b, s.label) for a, b, s in spans], 0.0, end))
    tg.addTier(textgrid.IntervalTier(
        P_FEMALE_TIER, [(a, b, "" if s.p_female is None else f"{s.p_female:.4f}") for a, b, s in spans], 0.0, end))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="voicegender-textgrid-") as tmp:
        draft = Path(tmp) / "draft.TextGrid"  # praatio writes a file by name: draft it, then replace ``out`` at once
        tg.save(str(draft), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")
        data = draft.read_bytes()
    with deferred_signals():
        atomic_write(out, lambda f: f.write(data))
    return out


def write_timeline(segments: list[Segment], out: str | os.PathLike, fmt: str | None = None,
                   path: str = "", duration_s: float | None = None) -> Path:
    """Write a timeline to ``out`` as CSV, JSON or TextGrid (``fmt`` or the extension decides).

    The file is replaced atomically, with SIGINT/SIGTERM held until it is in place: an interrupted run leaves the
    previous file or the complete new one, never a truncated one.
    """
    fmt = timeline_format(out, fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "textgrid":
        return write_textgrid(segments, out, duration_s)
    text = timeline_csv(segments) if fmt == "csv" else timeline_json(segments, path, duration_s)
    with deferred_signals():
        atomic_write(out, lambda f: f.write(text.encode("utf-8")))
    return out


def read_timeline(path: str | os.PathLike, fmt: str | None = None) -> list[Segment]:
    """Read a timeline written by :func:`write_timeline` (any of its formats)."""
    fmt = timeline_format(path, fmt)
    path = Path(path)
    if fmt == "csv":
        return [Segment(float(r["start_s"]), float(r["end_s"]), r["label"], _opt_float(r["p_female"]))
                for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))]
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Segment(float(d["start_s"]), float(d["end_s"]), d["label"], d["p_female"]) for d in data["segments"]]
    from praatio import textgrid

    tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    labels = tg.getTier(GENDER_TIER).entries
    probs = {(round(e.start, 4), round(e.end, 4)): e.label for e in tg.getTier(P_FEMALE_TIER).entries} \
        if P_FEMALE_TIER in tg.tierNames else {}
    return [Segment(e.start, e.end, e.label, _opt_float(probs.get((round(e.start, 4), round(e.end, 4)))))
            for e in labels if e.label]  # praatio fills gaps with blank intervals: not segments
