"""Writers (and readers, for round trips) of predictions and timelines: JSON lines, CSV, JSON, Praat TextGrid, RTTM.

Predictions: one JSON object per line, or CSV, with exactly :data:`voicegender.listen.predict.FIELDS` (+ ``error`` on
error rows).

Timelines (a :class:`voicegender.listen.segment.Timeline`: segments covering the recording, its speakers, its length;
a plain list of segments is taken too, as a timeline without speakers). ``speaker`` is the speaker's id ("S1",
"S2", ... in order of first appearance), empty / null for no_speech or when speakers were not told apart.

* **CSV**: ``start_s,end_s,label,p_female,speaker``, one row per segment (no_speech included; empty p_female and
  speaker there).
* **JSON**: ``{"path", "duration_s", "speaking_time", "summary", "speakers", "segments"}``. ``speaking_time``:
  seconds per label and the shares of speech; ``summary``: :meth:`Timeline.summary
  <voicegender.listen.segment.Timeline.summary>` (the speaking time again, the number of speakers, of women and of
  men, the female share of speakers, the embedding that told them apart and ``by_speaker``); ``speakers``: one
  object per speaker (``speaker, label, p_female, p_child, speech_s, turns``); ``segments``: ``start_s, end_s,
  label, p_female, speaker``; ``overlaps``: where two voices speak at once (``start_s, end_s, speakers, labels``:
  the two speakers heard, or one when the second voice was not told apart; empty without speakers).
* **TextGrid** (Praat's long format, readable by Praat and praatio): IntervalTiers ``gender`` (labels), ``p_female``
  (probabilities, empty for no_speech) and ``speaker`` (ids, empty for no_speech); ``overlap`` (the speakers heard,
  ``S1+S2``) when two voices overlap somewhere.
* **RTTM** (NIST Rich Transcription Time Marked, the diarization standard read by pyannote, dscore and md-eval):
  one line per speech segment, ten space-separated fields
  ``SPEAKER <file-id> 1 <onset> <duration> <NA> <stype> <name> <NA> <NA>`` (onset and duration in seconds, 3
  decimals as pyannote.core writes them). ``<file-id>`` is the audio file's name without its extension, blanks
  replaced by ``_``; ``<stype>`` is the speaker type of the RTTM specification: ``adult_female``, ``adult_male``,
  or ``child`` when the speaker's p_child reaches :data:`voicegender.voice.default_model.CHILD_FLAG` (RTTM has no
  child gender, so a child's segments read back with the label ``child``); ``<name>`` is the speaker id, or the
  gender label when speakers were not told apart. No_speech is not written (RTTM lists speech only). Overlapped
  stretches are not written as second-voice lines: on the conversations benchmark such lines raised DER (the
  murmur of other voices is overlap to the detector, and 0.3 s of cross-talk at a change lies inside the scoring
  collar; docs/CONVERSATIONS.md); the JSON and TextGrid carry them.

Timeline files are replaced atomically (:func:`write_timeline`) and read back by :func:`read_timeline`; resumable
prediction files are :mod:`voicegender.listen.jobs`.
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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ..fileio import atomic_write, utf8_bytes
from .prediction import FIELDS, Prediction
from .segment import Segment, Timeline

SEGMENT_FIELDS = ("start_s", "end_s", "label", "p_female", "speaker")
TIMELINE_FORMATS = ("csv", "json", "textgrid", "rttm")
GENDER_TIER = "gender"
P_FEMALE_TIER = "p_female"
SPEAKER_TIER = "speaker"
OVERLAP_TIER = "overlap"
RTTM_NA = "<NA>"


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
def prediction_csv_header(with_error: bool = True) -> str:
    """The CSV header line (no newline): the contract's columns, then ``error``."""
    return ",".join(FIELDS + (("error",) if with_error else ()))


def prediction_line(row: dict, fmt: str) -> str:
    """One answer (:meth:`Prediction.as_dict`, or a row read back from a result file) as a line of ``fmt`` (``json``
    or ``csv``: the contract's columns, then ``error``; None an empty cell), without the newline; stdout, job
    files and merges all write it (files through :func:`voicegender.fileio.utf8_bytes`). A CSV cell holding a line
    break is quoted (csv quotes only the line terminator's characters: with none, a name holding a newline would
    split its row in two)."""
    if fmt == "json":
        return json.dumps(row, ensure_ascii=False)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(["" if row.get(k) is None else row[k] for k in (*FIELDS, "error")])
    return buf.getvalue().removesuffix("\r\n")


def write_predictions(predictions: Iterable[Prediction], stream: TextIO, fmt: str = "json") -> None:
    """Write predictions as JSON lines (``fmt="json"``) or CSV with a header (``fmt="csv"``)."""
    if fmt == "csv":
        stream.write(prediction_csv_header() + "\n")
    for p in predictions:
        stream.write(prediction_line(p.as_dict(), fmt) + "\n")


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
def as_timeline(timeline: Timeline | Sequence[Segment], duration_s: float | None = None) -> Timeline:
    """A :class:`Timeline` as it is; a list of segments as a timeline without speakers, ``duration_s`` seconds long
    (default, and at least: where the last segment ends)."""
    if isinstance(timeline, Timeline):
        return timeline
    segments = list(timeline)
    end = float(segments[-1].end_s) if segments else 0.0
    return Timeline(segments, [], end if duration_s is None else max(float(duration_s), end))


def timeline_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``csv`` / ``json`` / ``textgrid`` / ``rttm``, from ``fmt`` or the file extension (.csv, .json, .TextGrid,
    .rttm)."""
    from_name = Path(path).suffix.lower().lstrip(".") if str(path) not in ("", "-") else ""
    if fmt:
        fmt = fmt.lower()
        if fmt not in TIMELINE_FORMATS:
            raise ValueError(f"--format {fmt!r}: use {' | '.join(TIMELINE_FORMATS)}")
        if from_name in TIMELINE_FORMATS and from_name != fmt:
            raise ValueError(f"{path}: its name says {from_name}, --format says {fmt}; make them agree")
        return fmt
    if from_name not in TIMELINE_FORMATS:
        raise ValueError(f"{path}: unknown timeline format {from_name!r}; use .csv, .json, .TextGrid or .rttm "
                         f"(or --format {'|'.join(TIMELINE_FORMATS)})")
    return from_name


def timeline_csv(timeline: Timeline | Sequence[Segment]) -> str:
    """``start_s,end_s,label,p_female,speaker`` rows; None becomes an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SEGMENT_FIELDS)
    for s in as_timeline(timeline).segments:
        d = s.as_dict()
        w.writerow(["" if d[k] is None else d[k] for k in SEGMENT_FIELDS])
    return buf.getvalue()


def timeline_json(timeline: Timeline | Sequence[Segment], path: str = "") -> str:
    """``{"path", "duration_s", "speaking_time", "summary", "speakers", "segments", "overlaps"}`` (see the module
    docstring); ``speaking_time`` sums the segments (:meth:`voicegender.listen.segment.SpeakingTime.as_dict`)."""
    t = as_timeline(timeline)
    return json.dumps({"path": path, "duration_s": round(float(t.duration_s), 3),
                       "speaking_time": t.speaking_time().as_dict(), "summary": t.summary(),
                       "speakers": [s.as_dict() for s in t.speakers],
                       "segments": [s.as_dict() for s in t.segments],
                       "overlaps": [o.as_dict() for o in t.overlaps]}, ensure_ascii=False, indent=1) + "\n"


def rttm_file_id(path: str | os.PathLike) -> str:
    """RTTM's ``<file-id>``: the audio file's name without folder or extension, blanks replaced by ``_`` (a field
    of a space-separated line); ``<NA>`` without a name."""
    stem = Path(path).stem if str(path) not in ("", "-") else ""
    return "_".join(stem.split()) or RTTM_NA


def rttm_speaker_type(label: str, p_child: float | None = None) -> str:
    """RTTM's ``<stype>`` of a SPEAKER line: ``child`` when ``p_child`` reaches
    :data:`voicegender.voice.default_model.CHILD_FLAG`, else ``adult_female`` / ``adult_male``."""
    from ..voice.default_model import CHILD_FLAG

    return "child" if p_child is not None and p_child >= CHILD_FLAG else f"adult_{label}"


def timeline_rttm(timeline: Timeline | Sequence[Segment], path: str | os.PathLike = "") -> str:
    """RTTM: ``SPEAKER <file-id> 1 <onset> <duration> <NA> <stype> <name> <NA> <NA>`` per speech segment (see the
    module docstring); ``path`` is the audio file (its name gives ``<file-id>``). Empty without speech."""
    from ..voice.model import GENDERS

    t = as_timeline(timeline)
    file_id = rttm_file_id(path)
    speakers = {s.id: s for s in t.speakers}
    lines = []
    for seg in t.segments:
        if seg.label not in GENDERS:
            continue
        onset = round(float(seg.start_s), 3)
        duration = round(round(float(seg.end_s), 3) - onset, 3)  # onset + duration gives back the rounded end
        if duration <= 0:
            continue
        speaker = speakers.get(seg.speaker) if seg.speaker else None
        stype = rttm_speaker_type(seg.label, speaker.p_child if speaker is not None else None)
        name = seg.speaker or seg.label
        lines.append(f"SPEAKER {file_id} 1 {onset:.3f} {duration:.3f} {RTTM_NA} {stype} {name} {RTTM_NA} {RTTM_NA}")
    return "".join(line + "\n" for line in lines)


def write_textgrid(timeline: Timeline | Sequence[Segment], out: str | os.PathLike) -> Path:
    """A Praat TextGrid (long format) with IntervalTiers ``gender``, ``p_female`` and ``speaker``, and ``overlap``
    when two voices overlap somewhere."""
    from praatio import textgrid

    t = as_timeline(timeline)
    segments = t.segments
    end = max(float(t.duration_s), float(segments[-1].end_s) if segments else 0.0)
    tg = textgrid.Textgrid(0.0, end)
    spans = [(float(s.start_s), float(s.end_s), s) for s in segments if s.end_s - s.start_s > 1e-6]
    tg.addTier(textgrid.IntervalTier(GENDER_TIER, [(a, b, s.label) for a, b, s in spans], 0.0, end))
    tg.addTier(textgrid.IntervalTier(
        P_FEMALE_TIER, [(a, b, "" if s.p_female is None else f"{s.p_female:.4f}") for a, b, s in spans], 0.0, end))
    tg.addTier(textgrid.IntervalTier(SPEAKER_TIER, [(a, b, s.speaker or "") for a, b, s in spans], 0.0, end))
    if t.overlaps:
        tg.addTier(textgrid.IntervalTier(OVERLAP_TIER, [(o.start_s, min(o.end_s, end), "+".join(o.speakers))
                                                        for o in t.overlaps if min(o.end_s, end) > o.start_s],
                                         0.0, end))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="voicegender-textgrid-") as tmp:
        draft = Path(tmp) / "draft.TextGrid"  # praatio writes a file by name: draft it, then replace ``out`` at once
        tg.save(str(draft), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")
        data = draft.read_bytes()
    with deferred_signals():
        atomic_write(out, lambda f: f.write(data))
    return out


def timeline_text(timeline: Timeline | Sequence[Segment], fmt: str, path: str | os.PathLike = "") -> str:
    """The timeline as the text of a file in ``fmt`` (``csv | json | textgrid | rttm``; for stdout): ``path`` is
    the audio file, named in the JSON and giving RTTM's file id."""
    if fmt == "textgrid":
        with tempfile.TemporaryDirectory(prefix="voicegender-textgrid-") as tmp:
            return write_textgrid(timeline, Path(tmp) / "t.TextGrid").read_text(encoding="utf-8")
    if fmt == "csv":
        return timeline_csv(timeline)
    if fmt == "json":
        return timeline_json(timeline, str(path))
    if fmt == "rttm":
        return timeline_rttm(timeline, path)
    raise ValueError(f"--format {fmt!r}: use {' | '.join(TIMELINE_FORMATS)}")


def write_timeline(timeline: Timeline | Sequence[Segment], out: str | os.PathLike, fmt: str | None = None,
                   path: str | os.PathLike = "", duration_s: float | None = None) -> Path:
    """Write a timeline to ``out`` as CSV, JSON, TextGrid or RTTM (``fmt`` or the extension decides).

    Parameters
    ----------
    timeline : a :class:`Timeline` (segments, speakers, duration), or a list of segments (no speakers).
    path : the audio file: named in the JSON; its name is RTTM's file id (default: ``out``'s name).
    duration_s : only for a list of segments: the recording's length in seconds (default: where the last ends).

    The file is replaced atomically, with SIGINT/SIGTERM held until it is in place: an interrupted run leaves the
    previous file or the complete new one, never a truncated one.
    """
    fmt = timeline_format(out, fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    timeline = as_timeline(timeline, duration_s)
    if fmt == "textgrid":
        return write_textgrid(timeline, out)
    text = timeline_text(timeline, fmt, path if str(path) or fmt != "rttm" else out)
    with deferred_signals():
        atomic_write(out, lambda f: f.write(utf8_bytes(text)))  # a name that is not valid UTF-8 as \udcXX escapes
    return out


RTTM_LABELS = {"adult_female": "female", "adult_male": "male", "child": "child"}  # <stype> -> a segment's label


def read_timeline(path: str | os.PathLike, fmt: str | None = None) -> list[Segment]:
    """The segments of a timeline written by :func:`write_timeline` (any of its formats), speaker included.

    CSV, JSON and TextGrid give back every segment (no_speech too) with its p_female; RTTM gives the speech
    segments only, without p_female, labelled by ``<stype>`` (``child`` for a child, ``unknown`` for another tool's
    ``<NA>``, unless the name is a gender label: a timeline without speakers). Files without a speaker column or
    tier (written before speakers) read with speaker None.
    """
    fmt = timeline_format(path, fmt)
    path = Path(path)
    if fmt == "csv":
        return [Segment(float(r["start_s"]), float(r["end_s"]), r["label"], _opt_float(r["p_female"]),
                        r.get("speaker") or None)
                for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))]
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Segment(float(d["start_s"]), float(d["end_s"]), d["label"], d["p_female"], d.get("speaker"))
                for d in data["segments"]]
    if fmt == "rttm":
        return _read_rttm(path)
    from praatio import textgrid

    tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)

    def by_span(tier: str) -> dict[tuple[float, float], str]:
        return {(round(e.start, 4), round(e.end, 4)): e.label for e in tg.getTier(tier).entries} \
            if tier in tg.tierNames else {}

    probs, speakers = by_span(P_FEMALE_TIER), by_span(SPEAKER_TIER)
    return [Segment(e.start, e.end, e.label, _opt_float(probs.get(key)), speakers.get(key) or None)
            for e in tg.getTier(GENDER_TIER).entries if e.label  # praatio fills gaps with blank intervals
            for key in [(round(e.start, 4), round(e.end, 4))]]


def _read_rttm(path: Path) -> list[Segment]:
    from ..voice.model import GENDERS

    segments = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":  # blank lines, ;; comments, other record types
            continue
        try:
            onset, duration = float(fields[3]), float(fields[4])
            stype, name = fields[6], fields[7]
        except (IndexError, ValueError) as e:
            raise ValueError(f"{path}: line {n} is not an RTTM SPEAKER line "
                             "(SPEAKER <file-id> 1 <onset> <duration> <NA> <stype> <name> <NA> <NA>)") from e
        speaker = None if name in GENDERS or name == RTTM_NA else name
        label = RTTM_LABELS.get(stype) or (name if name in GENDERS else "unknown")
        segments.append(Segment(onset, round(onset + duration, 3), label, None, speaker))
    return sorted(segments, key=lambda s: s.start_s)
