"""Commands for people who curate speech corpora: speakers (one answer per speaker) and audit (the speakers whose
gender label the audio contradicts, ranked, with a page to listen to them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..errors import VoiceGenderError
from .common import (
    MODEL_HELP,
    app,
    check_number,
    check_output_folder,
    check_output_path,
    check_threshold,
    err,
    out,
)

_CORPUS_HELP = ("a CSV manifest (path, speaker, gender), an AudioMNIST folder, female/<speaker>/ and "
                "male/<speaker>/ folders, or one sub-folder of recordings per speaker (no labels)")
_FORMAT_HELP = "table | json (one object per speaker and line) | csv (default: from --out; a table without it)"


def _check_format(fmt: str | None, out_file: Path | None, force: bool, html_dir: Path | None = None) -> str:
    """The output format ("table", "json" or "csv"), checked with --out and --force before any work (--force may
    replace audit's --html page instead)."""
    from ..listen.jobs import result_format

    if fmt not in (None, "table", "json", "csv"):
        raise VoiceGenderError(f"--format must be table, json or csv, got {fmt!r}")
    if out_file is None:
        if force and html_dir is None:
            raise VoiceGenderError("--force replaces an output file: give it with --out FILE")
        return fmt or "table"
    if fmt == "table":
        raise VoiceGenderError("--out writes json or csv: drop --format table")
    kind = result_format(out_file, fmt)
    check_output_path(out_file, force=force)
    return kind


def _options(threshold: float, no_vad: bool):
    from ..listen.prediction import PredictOptions

    check_threshold(threshold)
    return PredictOptions(threshold=threshold, vad=not no_vad)


def _answers(corpus: Path, model, options, pitch: bool):
    """The corpus's speakers, scored; clip failures reported on stderr (one line each, at most 10, and how many)."""
    from ..fileio import readable
    from ..listen.speaker_answers import FAILED, corpus_clips, pool_speakers, score_clips
    from ..voice.loading import load_model

    name, clips = corpus_clips(corpus)
    if not clips:
        raise VoiceGenderError(f"{corpus}: no recordings found")
    loaded = load_model(model)
    scores = score_clips(clips, loaded, options, pitch)
    rows = pool_speakers(scores, options.threshold)
    failed = [s for s in scores if s.error is not None]
    for s in failed[:10]:
        err.print(f"error: {readable(s.error)}", markup=False, soft_wrap=True)
    lost = sum(r.answer == FAILED for r in rows)
    if failed and len(failed) < len(scores):
        them = (f"{lost} speaker(s) whose every clip failed are answered {FAILED}, the others from their other clips"
                if lost else "their speakers are answered from their other clips")
        err.print(f"{len(failed)} of {len(scores)} clip(s) failed ('failed' column); {them}", markup=False,
                  soft_wrap=True)
    return readable(name), loaded, rows


def _every_clip_failed(corpus: Path, rows) -> None:
    """A one-line error and exit code 1 when no clip of the corpus could be read (after the output is written: its
    rows say which speakers): no speaker is answered, which a run must not pass for silence."""
    if rows and all(r.clips == r.failed for r in rows):
        clips = sum(r.clips for r in rows)
        err.print(f"error: {corpus}: every clip failed ({clips} of {clips}); no speaker is answered", markup=False,
                  soft_wrap=True)
        raise typer.Exit(1)


def _write(rows, fmt: str, out_file: Path | None) -> None:
    """The speakers as JSON lines or CSV, to --out (replaced atomically) or stdout. A name that is not valid UTF-8
    is written with its bytes as \\udcff escapes (:func:`voicegender.fileio.readable`; JSON's own
    escapes read back as the name), so the text is always UTF-8 and nothing computed is lost to it at the end."""
    import csv
    import io
    import json

    from ..fileio import atomic_write, readable
    from ..listen.speaker_answers import FIELDS

    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.DictWriter(buffer, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.as_dict() for r in rows)
    else:
        buffer.writelines(json.dumps(r.as_dict()) + "\n" for r in rows)
    text = readable(buffer.getvalue())
    if out_file is None:
        sys.stdout.write(text)
        return
    atomic_write(out_file, lambda f: f.write(text.encode("utf-8")))
    err.print(f"wrote {len(rows)} speaker(s) to {out_file}", markup=False, soft_wrap=True)


def _table(rows, title: str, caption: str | None = None) -> Table:
    """The speakers as a table; cells are plain text (a speaker named ``[/x]`` is no markup to rich), with a
    ``failed`` column when a clip failed."""
    from ..fileio import readable

    labelled = any(r.label is not None for r in rows)
    audited = any(r.verdict is not None for r in rows)
    columns = ["speaker", *(["verdict"] if audited else []), *(["label"] if labelled else []), "answer", "p_female",
               *(["p_label"] if labelled else []), "p_child", "pitch_hz", "agree", *(["against"] if labelled else []),
               *(["failed"] if any(r.failed for r in rows) else []), "speech_s"]
    if all(r.p_child is None for r in rows):
        columns.remove("p_child")
    table = Table(title=Text(title), caption=caption, caption_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in ("speaker", "verdict", "label", "answer") else "right")
    for r in rows:
        cells = {"speaker": readable(r.speaker), "verdict": r.verdict or "", "label": r.label or "", "answer": r.answer,
                 "p_female": _num(r.p_female, 3), "p_label": _num(r.p_label, 3), "p_child": _num(r.p_child, 2),
                 "pitch_hz": _num(r.pitch_hz, 0), "agree": f"{r.agree}/{r.answered}",
                 "against": "" if r.against_label is None else f"{r.against_label}/{r.answered}",
                 "failed": f"{r.failed}/{r.clips}", "speech_s": f"{r.speech_s:.1f}"}
        table.add_row(*(Text(cells[c]) for c in columns))
    return table


def _num(x: float | None, places: int) -> str:
    return "" if x is None else f"{x:.{places}f}"


Corpus = Annotated[Path, typer.Argument(help=_CORPUS_HELP, show_default=False)]
Model = Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP, show_default=False)]
Format = Annotated[str | None, typer.Option("--format", "-f", help=_FORMAT_HELP, show_default=False)]
OutFile = Annotated[Path | None, typer.Option(
    "--out", "-o", help="write the speakers to FILE.csv or FILE.jsonl", show_default=False)]
Force = Annotated[bool, typer.Option(
    "--force", help="replace an existing --out file (audit: and --html page; without it: an error)",
    show_default=False)]
Threshold = Annotated[float, typer.Option(help="p_female at or above this is 'female' (clips and speakers)")]
NoVad = Annotated[bool, typer.Option("--no-vad", help="classify whole clips (no speech detection)")]
NoPitch = Annotated[bool, typer.Option("--no-pitch", help="skip the median pitch (a second read of every clip)")]


@app.command("speakers")
def speakers_cmd(corpus: Corpus, model: Model = None, fmt: Format = None, out_file: OutFile = None,
                 force: Force = False, threshold: Threshold = 0.5, no_vad: NoVad = False,
                 no_pitch: NoPitch = False) -> None:
    """One answer per speaker of a corpus: its clips' log-odds averaged, weighted by speech, with p_child, median
    pitch and how many clips agree (and the label, when the corpus gives one)."""
    kind = _check_format(fmt, out_file, force)
    options = _options(threshold, no_vad)
    name, _, rows = _answers(corpus, model, options, not no_pitch)
    if kind != "table":
        _write(rows, kind, out_file)
    else:
        out.print(_table(rows, f"{name}: {len(rows)} speakers"))
    _every_clip_failed(corpus, rows)


@app.command("audit")
def audit_cmd(
    corpus: Corpus, model: Model = None, fmt: Format = None, out_file: OutFile = None, force: Force = False,
    html_dir: Annotated[Path | None, typer.Option(
        "--html", help="also write DIR/index.html: a player for each clip of the flagged speakers (and likely "
                       "children), to listen and decide", show_default=False)] = None,
    # the defaults are voicegender.listen.label_audit.AuditRule's (not imported here: --help stays instant)
    min_p: Annotated[float, typer.Option(
        help="flag when the speaker's clips together give the other gender at least this probability")] = 0.7,
    min_against: Annotated[float, typer.Option(
        help="... and at least this share of its clips are answered against the label", show_default="2/3")] = 2 / 3,
    show_all: Annotated[bool, typer.Option(
        "--all", help="list every speaker in the table (default: those that are not ok; csv/json list all)")] = False,
    max_clips: Annotated[int, typer.Option(help="clips per speaker on the --html page")] = 12,
    threshold: Threshold = 0.5, no_vad: NoVad = False, no_pitch: NoPitch = False,
) -> None:
    """Rank a labelled corpus's speakers by how strongly their audio contradicts their gender label, and flag the
    likely label errors (a likely child is reported, not flagged)."""
    from ..listen.audit_page import PAGE_NAME, write_audit_page
    from ..listen.label_audit import AuditRule, audit, summary

    kind = _check_format(fmt, out_file, force, html_dir)
    check_number(min_p, "--min-p", minimum=0, maximum=1)
    check_number(min_against, "--min-against", minimum=0, maximum=1)
    check_number(max_clips, "--max-clips", minimum=1)
    if html_dir is not None:
        check_output_folder(html_dir, "--html")
        page = html_dir / PAGE_NAME
        if page.is_file() and not force:
            raise VoiceGenderError(f"{page}: already exists; give --html another folder, or add --force to "
                                   "replace it")
    rule = AuditRule(min_p=min_p, min_against=min_against)
    options = _options(threshold, no_vad)
    name, loaded, rows = _answers(corpus, model, options, not no_pitch)
    ranked = audit(rows, rule)
    if kind != "table":
        _write(ranked, kind, out_file)
    else:
        shown = ranked if show_all else [r for r in ranked if r.verdict != "ok"]
        hidden = len(ranked) - len(shown)
        caption = f"{hidden} speaker(s) whose audio agrees with the label not shown (--all lists them)" if hidden \
            else None
        if shown:
            out.print(_table(shown, f"{name}: speakers ranked by how strongly the audio contradicts the label",
                             caption))
    if html_dir is not None:
        path = write_audit_page(ranked, html_dir, name, rule, f"{loaded.name} {loaded.version}".strip(), max_clips,
                                options.threshold)
        err.print(f"page: {path}", markup=False, soft_wrap=True)
    err.print(summary(ranked), markup=False, soft_wrap=True)
    _every_clip_failed(corpus, ranked)
