"""Commands for people labelling recordings: predict, merge, segment, record, serve."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import VoiceGenderError
from ..extras import require
from ..fileio import atomic_write
from .common import (  # noqa: F401
    EXIT_USER_ERROR,
    MODEL_HELP,
    REPLACE_OUT_HELP,
    app,
    check_number,
    check_output_folder,
    check_output_path,
    check_threshold,
    err,
    first_missing_folder,
    out,
    result,
)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    model: Annotated[Path | None, typer.Option(
        help="model to serve: a voice head (.npz) from `voicegender fit` or a checkpoint (.pt) from `voicegender "
             "train` (default: the model shipped with the package)", show_default=False)] = None,
    max_upload_mb: Annotated[float, typer.Option(help="largest accepted upload in MB; bigger gets 413")] = 25.0,
    token: Annotated[str | None, typer.Option(
        envvar="VOICEGENDER_TOKEN", show_default=False,
        help="access token: API requests must send 'Authorization: Bearer TOKEN' (the page: open /?token=TOKEN "
             "once). Prefer the environment variable: other users can read command lines")] = None,
) -> None:
    """Start the web page and JSON API (POST /api/predict, GET /api/health); needs the web extra."""
    check_number(port, "--port", minimum=0, maximum=65535)
    check_number(max_upload_mb, "--max-upload-mb", above=0)
    require("web", "voicegender serve")
    import uvicorn

    from ..web.app import create_app, is_loopback
    if not is_loopback(host):
        if token is None:
            err.print(f"warning: serving on {host} without an access token: anyone who can reach this address "
                      "can use the page and the API; set --token or VOICEGENDER_TOKEN", markup=False, soft_wrap=True)
        else:
            err.print(f"warning: serving on {host}: other machines can reach the page; API requests need the "
                      "access token, which plain http sends unencrypted", markup=False, soft_wrap=True)
    try:
        web_app = create_app(model=model, max_upload_mb=max_upload_mb, token=token)
    except ValueError as e:  # a bad --max-upload-mb or --token: one line, like every other input error
        raise VoiceGenderError(str(e)) from e
    shown = f"{'[' + host + ']' if ':' in host else host}:{port}"
    _check_can_listen(host, port, shown)
    extra = " with ?token=<your token> once" if token is not None else ""
    err.print(f"voicegender: open http://{shown}/{extra} (Ctrl+C to stop)", markup=False, soft_wrap=True)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


def _check_can_listen(host: str, port: int, shown: str) -> None:
    """One line, before the "open http://..." line, when the address is taken or cannot be bound here."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a socket in TIME_WAIT is fine
            probe.bind(infos[0][4])
    except OSError as e:
        raise VoiceGenderError(f"cannot serve on {shown}: {e.strerror or e}") from e


# --- predict / segment / record -------------------------------------------------------------------------------
def _predict_options(threshold: float, min_speech: float, no_vad: bool):
    from ..listen.predict import PredictOptions

    check_threshold(threshold)
    check_number(min_speech, "--min-speech", minimum=0)
    return PredictOptions(threshold=threshold, min_speech_s=min_speech, vad=not no_vad)


# how many speakers a recording holds, when the user knows (segment, and predict's speakers of long recordings)
NumSpeakers = Annotated[int | None, typer.Option(
    "--num-speakers", help="how many speakers there are, when you know (else found from the audio)",
    show_default=False)]
MinSpeakers = Annotated[int | None, typer.Option("--min-speakers", help="at least this many speakers",
                                                 show_default=False)]
MaxSpeakers = Annotated[int | None, typer.Option("--max-speakers", help="at most this many speakers",
                                                 show_default=False)]


@app.command("predict")
def predict_cmd(
    paths: Annotated[list[str], typer.Argument(help="audio files, folders (searched recursively) or globs")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json (one object per line) | csv")] = "table",
    threshold: Annotated[float, typer.Option(help="p_female at or above this is 'female'")] = 0.5,
    min_speech: Annotated[float, typer.Option(help="seconds of speech below which the answer is no_speech")] = 0.15,
    no_vad: Annotated[bool, typer.Option("--no-vad", help="classify the whole file (no speech detection)")] = False,
    explain_dir: Annotated[Path | None, typer.Option(
        "--explain", help="also write a picture of each answer as DIR/<name>.png: the spectrogram, coloured where "
                          "the model heard the answer (the loudest 20 s of a longer file; none without speech)",
        show_default=False)] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", "-o", help="write the results to FILE.jsonl or FILE.csv, a batch at a time; FILE appears when "
                            "every file has its line (until then: FILE.partial). Safe to interrupt: see --resume",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="with --out: skip the files that already have a line (in FILE.partial, or else FILE)",
        show_default=False)] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="with --out: replace a finished FILE (without it, an existing FILE is an error: its "
                        "results are never lost silently)", show_default=False)] = False,
    shard: Annotated[str | None, typer.Option(
        help="K/N: only shard K (0..N-1) of the inputs, split by a hash of each path; --out FILE then writes "
             "FILE-stem.part-K-of-N.ext (join the parts with `voicegender merge`). Default under torchrun: "
             "RANK/WORLD_SIZE", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="files decoded and scored together, and written at a time with --out (default 32)",
        show_default=False)] = None,
    num_speakers: NumSpeakers = None,
    min_speakers: MinSpeakers = None,
    max_speakers: MaxSpeakers = None,
) -> None:
    """Predict the speaker gender (female / male / no_speech) of recordings. Exit code 1 if any file failed.

    A recording with more than 8 s of speech also gets its speakers when it holds more than one voice;
    --num-speakers (or --min-speakers / --max-speakers) says how many each recording holds, e.g. 2 for calls.

    Large jobs: --out results.jsonl --resume, split over machines with --shard K/N (SLURM arrays, Kubernetes
    indexed jobs, torchrun), then `voicegender merge -o results.jsonl`. SIGINT/SIGTERM stop cleanly (exit code
    130/143) with the finished lines kept in results.jsonl.partial."""
    import dataclasses

    from ..listen.jobs import Shard, result_format
    from ..listen.predict import expand_paths, iter_predictions
    from ..listen.writers import prediction_csv_header, prediction_line
    from ..voice.loading import load_model
    from ..world import world_from_env

    if fmt not in ("table", "json", "csv"):
        raise VoiceGenderError(f"--format must be table, json or csv, got {fmt!r}")
    if resume and out_file is None:
        raise VoiceGenderError("--resume continues an output file: give it with --out FILE")
    if force and out_file is None:
        raise VoiceGenderError("--force replaces an output file: give it with --out FILE")
    if force and resume:
        raise VoiceGenderError("--force replaces FILE and --resume continues it: choose one")
    if batch_size is not None and batch_size < 1:
        raise VoiceGenderError(f"--batch-size must be at least 1, got {batch_size}")
    for path in paths:
        if not path.strip():
            raise VoiceGenderError(f"{path!r}: empty path (an unset shell variable?)")
        if path == "-":
            raise VoiceGenderError("-: reading standard input is not supported; give files, folders or globs "
                                   "(e.g. xargs for a list of files)")
    part = Shard.parse(shard) if shard is not None else Shard.from_env()
    options = dataclasses.replace(_predict_options(threshold, min_speech, no_vad),
                                  speaker_options=_speaker_options(num_speakers, min_speakers, max_speakers, True))
    if out_file is not None:
        check_output_path(out_file)
    if explain_dir is not None:
        require("research", "voicegender predict --explain")
        check_output_folder(explain_dir, "--explain")
    if batch_size is not None:
        options = dataclasses.replace(options, batch_size=batch_size)
    try:
        local = world_from_env().local_size
    except ValueError as e:  # a variable a launcher sets is wrong: said even with --shard (it sets the workers)
        raise VoiceGenderError(str(e)) from e
    if local > 1 and options.workers == 0:  # processes on one machine share its cores
        options = dataclasses.replace(options, workers=max(1, min(4, (os.cpu_count() or 1) // local)))
    files = expand_paths(paths)
    if not files:
        raise VoiceGenderError(f"no audio files found in {', '.join(paths)}")
    if shard is None and part.count > 1:  # set by a launcher, or left in the shell: a share is never taken unsaid
        err.print(f"shard {part.index}/{part.count} from RANK/WORLD_SIZE: {len(part.select(files))} of {len(files)} "
                  "file(s)", markup=False, soft_wrap=True)
    if out_file is not None:
        _predict_to_file(files, out_file, result_format(out_file, None if fmt == "table" else fmt), model, options,
                         resume, part, explain_dir, force)
        return
    files = part.select(files)
    loaded = load_model(model)
    rows, failed = [], 0
    if fmt == "csv":
        sys.stdout.write(prediction_csv_header() + "\n")
    pictures = _PictureWriter(explain_dir, loaded) if explain_dir is not None else None
    for p in iter_predictions(files, loaded, options):
        if p.label == "error":
            failed += 1
            err.print(f"error: {p.error}", markup=False, soft_wrap=True)
        elif pictures is not None:
            pictures.write(p)
        if fmt == "table":
            rows.append(p)
            continue
        sys.stdout.write(prediction_line(p.as_dict(), fmt) + "\n")
        sys.stdout.flush()
    if fmt == "table" and rows:
        out.print(_prediction_table(rows))
    if failed:
        err.print(f"{failed} of {len(files)} file(s) failed")
        raise typer.Exit(1)


def _prediction_table(rows: list) -> Table:
    """The predictions as a table: paths relative to the folder they share (named below it) so that it stays narrow,
    unless that folder is the file system's root (then paths as they are); female_s / male_s when a file holds both
    a female and a male voice (with a note saying where who speaks when is)."""
    full = [os.path.abspath(p.path) for p in rows]
    folder = os.path.commonpath([os.path.dirname(f) for f in full])
    shown = [os.path.relpath(f, folder) for f in full]
    if os.path.dirname(folder) == folder:  # e.g. /data/a.wav and /srv/b.wav: "in /" says nothing
        folder, shown = None, full
    numbers = ["p_female", "p_child", "duration_s", "speech_s"]
    if all(p.p_child is None for p in rows):  # the model does not estimate it
        numbers.remove("p_child")
    both = [p for p in rows if (p.female_s or 0) > 0 and (p.male_s or 0) > 0]
    if both:
        numbers += ["female_s", "male_s"]
    notes = [f"in {folder}"] if folder else []
    if both:
        notes.append(f"{len(both)} file{'s' if len(both) > 1 else ''} with a female and a male voice: female_s / "
                     "male_s split the speech between them (`voicegender segment FILE`: who speaks when)")
    table = Table(caption="\n".join(notes) or None, caption_justify="left")
    for column in ("path", "label", *numbers):
        table.add_column(column, justify="left" if column in ("path", "label") else "right", overflow="fold")
    for p, path in zip(rows, shown, strict=True):
        d = p.as_dict()
        table.add_row(path, d["label"], *("" if d[k] is None else f"{d[k]:.3f}" for k in numbers))
    return table


def _predict_to_file(files: list[str], out_file: Path, fmt: str, model, options, resume: bool, part,
                     explain_dir: Path | None, force: bool = False) -> None:
    """`predict --out`: a resumable, interruptible job (voicegender.listen.jobs.run_predictions)."""
    import signal

    from ..listen.jobs import ResultsFile, run_predictions
    from ..voice.loading import load_model

    ResultsFile(part.output(out_file), fmt, resume, force).check()  # before the model loads
    loaded = load_model(model)
    pictures = _PictureWriter(explain_dir, loaded) if explain_dir is not None else None

    def on_batch(batch) -> None:
        for p in batch:
            if p.label == "error":
                err.print(f"error: {p.error}", markup=False, soft_wrap=True)
            elif pictures is not None:
                pictures.write(p)

    job = run_predictions(files, out_file, loaded, options, fmt=fmt, resume=resume, shard=part, on_batch=on_batch,
                          force=force)
    shard_note = f" (shard {part.index}/{part.count})" if part.count > 1 else ""
    if job.interrupted is not None:
        err.print(f"interrupted by {signal.Signals(job.interrupted).name} with {job.remaining} of {job.total} "
                  f"file(s){shard_note} to go: the {job.skipped + job.written} finished line(s) are in "
                  f"{job.partial}; run the same command with --resume to finish", markup=False, soft_wrap=True)
        raise typer.Exit(128 + job.interrupted)
    skipped = f", {job.skipped} already there" if job.skipped else ""
    retried = f" ({job.retried} error line(s) from before tried again)" if job.retried else ""
    err.print(f"wrote {job.written} line(s) to {job.out}{shard_note}{skipped}{retried}", markup=False,
              soft_wrap=True)
    failed = [f"{job.failed} of {job.written} file(s) failed"] if job.failed else []
    if job.failed_kept:  # the file's own error lines count: its exit code says whether the file is all answers
        failed.append(f"{job.failed_kept} error line(s) from before kept in {job.out} (files not given this time)")
    if failed:
        err.print("; ".join(failed), markup=False, soft_wrap=True)
        raise typer.Exit(1)


_LISTED = 20  # names listed per kind of problem by `merge`


@app.command("merge")
def merge_cmd(
    parts: Annotated[list[Path] | None, typer.Argument(
        help="result files to combine (default: the shards of --out, OUT-stem.part-K-of-N.jsonl|csv next to it)",
        show_default=False)] = None,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="the combined file (.jsonl or .csv)")] = ...,
    expect: Annotated[list[str] | None, typer.Option(
        help="the inputs the shards were given (files, folders, globs; repeatable): report files without a line",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help=REPLACE_OUT_HELP, show_default=False)] = False,
) -> None:
    """Combine the result files of sharded `predict --out` runs into one; report missing shards and files without
    a line or with several (exit code 1 if there are any). Nothing is written while shards or files are missing."""
    from ..listen.merge import merge_results
    from ..listen.predict import expand_paths

    # the place is checked before the parts are read, but a missing folder is made only when there is a merge to
    # write (a failed merge leaves no empty folder behind)
    made = None
    if out_file.parent.is_dir():
        check_output_path(out_file, force=force)  # creates nothing: its folder is there
    else:
        check_output_folder(out_file.parent, "--out")
        made = first_missing_folder(out_file.parent)
    expected = expand_paths(expect) if expect else None
    report = merge_results(out_file, parts or None, expected, force=force)
    if report.written:
        if made is not None:
            err.print(f"created the folder {made} for --out {out_file}", markup=False, soft_wrap=True)
        err.print(f"merged {report.rows} line(s) from {len(report.parts)} file(s) into {report.out}", markup=False,
                  soft_wrap=True)
    else:
        err.print(f"{report.out}: not written, the merge is incomplete ({report.rows} line(s) from "
                  f"{len(report.parts)} file(s)); merge again when the shards have finished, or name the parts to "
                  "merge (without --expect) to keep what there is", markup=False, soft_wrap=True)
    for what, names in (("missing shard", report.missing_parts), ("no line for", report.missing),
                        ("several lines for (first kept)", report.duplicated),
                        ("not among the expected inputs (kept)", report.unexpected)):
        for name in names[:_LISTED]:
            err.print(f"{what}: {name}", markup=False, soft_wrap=True)
        if len(names) > _LISTED:
            err.print(f"{what}: ... and {len(names) - _LISTED} more", markup=False, soft_wrap=True)
    if not report.complete:
        raise typer.Exit(1)


class _PictureWriter:
    """Writes one overlay PNG per predicted file (``predict --explain DIR``) as DIR/<name>.png, or <name>_2.png, ...
    when that is taken (by another file of the run, or a picture already there: nothing in DIR is replaced)."""

    def __init__(self, folder: Path, loaded) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.loaded = folder, loaded

    def write(self, prediction) -> None:
        """The picture of one answer, or a line saying why there is none (no speech: nothing to explain)."""
        from ..audio.decode import PICTURE_READ_S, SAMPLE_RATE, loudest_span, read_first_seconds
        from ..research.explain import explain_clip_png

        if prediction.label not in ("female", "male"):
            if prediction.label == "no_speech":
                err.print(f"map: none for {prediction.path} (no speech: nothing to explain)", markup=False,
                          soft_wrap=True)
            return
        stem = Path(prediction.path).stem
        name, n = f"{stem}.png", 1
        while (self.folder / name).exists():  # a picture there (this run's or an earlier one's) is kept
            n += 1
            name = f"{stem}_{n}.png"
        samples = read_first_seconds(prediction.path, PICTURE_READ_S)  # bounded, however long the file (audio.py)
        start, end = loudest_span(samples)
        span = picture_span(start / SAMPLE_RATE, end / SAMPLE_RATE, prediction.duration_s)
        title = f"Why '{prediction.label}' (p_female {prediction.p_female:.2f}): where the model heard it{span}"
        png = explain_clip_png(samples[start:end], SAMPLE_RATE, self.loaded, title=title, target=prediction.label)
        atomic_write(self.folder / name, lambda f: f.write(png))
        err.print(f"map: {self.folder / name}{span}", markup=False, soft_wrap=True)


def picture_span(start_s: float, end_s: float, duration_s: float | None) -> str:
    """What a map covers when it is not the whole recording (it covers the loudest
    :data:`voicegender.audio.decode.MAP_MAX_S` seconds), as words for its title and the "map:" line; "" when whole."""
    if duration_s is None or (start_s <= 0.05 and end_s >= duration_s - 0.05):
        return ""
    return f", in {start_s:.1f}-{end_s:.1f} s of {duration_s:.1f} s (the loudest {end_s - start_s:.0f} s)"


@app.command("segment")
def segment_cmd(
    file: Annotated[Path, typer.Argument(help="audio file of any length")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="write x.csv, x.json, x.TextGrid or "
                                                                      "x.rttm")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="csv | json | textgrid | rttm (default: from "
                                                                   "--out; a table without --out)")] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    threshold: Annotated[float, typer.Option(help="p_female at or above this is 'female'")] = 0.5,
    min_segment: Annotated[float, typer.Option(help="seconds: shorter female/male runs are merged")] = 1.0,
    speakers: Annotated[bool, typer.Option(
        "--speakers/--no-speakers",
        help="tell the speakers apart (S1, S2, ...) and give each one a gender from all of its speech. The best "
             "speaker encoder needs `voicegender models fetch` once; without it the gender model's own "
             "embeddings tell them apart")] = True,
    num_speakers: NumSpeakers = None,
    min_speakers: MinSpeakers = None,
    max_speakers: MaxSpeakers = None,
    overlaps: Annotated[bool, typer.Option(
        "--overlaps/--no-overlaps",
        help="with speakers: mark where two voices speak at once and name them (JSON, TextGrid, the table and "
             "summary); --no-overlaps saves its network's time, which a second core mostly hides")] = True,
    force: Annotated[bool, typer.Option("--force", help=REPLACE_OUT_HELP, show_default=False)] = False,
) -> None:
    """Split a recording into a timeline of female / male / no_speech segments, with who speaks when."""
    from ..listen.segment import SegmentOptions, timeline_file
    from ..listen.writers import timeline_format, timeline_text, write_timeline

    check_threshold(threshold)
    check_number(min_segment, "--min-segment", minimum=0)
    if out_file is not None and out_file.is_dir():  # before its (missing) extension is taken for a format
        check_output_path(out_file)
    try:
        kind = timeline_format(out_file, fmt) if out_file is not None else (fmt and timeline_format("-", fmt))
    except ValueError as e:
        raise VoiceGenderError(str(e)) from e
    if out_file is not None:
        check_output_path(out_file, force=force)
    elif force:
        raise VoiceGenderError("--force replaces an output file: give it with --out FILE")
    options = SegmentOptions(threshold=threshold, min_segment_s=min_segment, speakers=speakers, overlaps=overlaps,
                             speaker_options=_speaker_options(num_speakers, min_speakers, max_speakers, speakers))
    timeline = timeline_file(file, model, options)
    if out_file is not None:
        write_timeline(timeline, out_file, kind, str(file))
        err.print(f"wrote {len(timeline.segments)} segments ({timeline.duration_s:.1f} s) to {out_file}",
                  markup=False, soft_wrap=True)
    elif kind:
        sys.stdout.write(timeline_text(timeline, kind, str(file)))
    else:
        _print_timeline(timeline, f"{file} ({timeline.duration_s:.1f} s)")
    err.print(_timeline_summary(timeline), markup=False, soft_wrap=True)  # the summary, whatever the format


def _speaker_options(num: int | None, least: int | None, most: int | None, speakers: bool):
    """:class:`voicegender.listen.speakers.SpeakerOptions` with the number of speakers the user gave (one-line
    errors for counts that cannot be)."""
    from ..listen.speakers import SpeakerOptions

    given = {"--num-speakers": num, "--min-speakers": least, "--max-speakers": most}
    for option, value in given.items():
        if value is not None:
            check_number(value, option, minimum=1)
    if num is not None and (least is not None or most is not None):
        raise VoiceGenderError("--num-speakers says how many there are: give it without --min-speakers/--max-speakers")
    if not speakers and any(v is not None for v in given.values()):
        raise VoiceGenderError("--no-speakers does not tell speakers apart: drop the number of speakers")
    least, most = (num, num) if num is not None else (least or 1, most)
    try:
        return SpeakerOptions(min_speakers=least, max_speakers=most)
    except ValueError as e:
        raise VoiceGenderError(f"--min-speakers/--max-speakers: {e}") from e


def _print_timeline(timeline, title: str) -> None:
    """The segments as a table, then one row per speaker (when speakers were told apart) and the stretches where
    two voices speak at once."""
    from ..voice.default_model import CHILD_FLAG

    table = Table(title=title)
    for column in ("start_s", "end_s", "label", "p_female", "speaker"):
        table.add_column(column, justify="left" if column in ("label", "speaker") else "right")
    for s in timeline.segments:
        table.add_row(f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label,
                      "" if s.p_female is None else f"{s.p_female:.3f}", s.speaker or "")
    out.print(table)
    if not timeline.speakers:
        return
    total = sum(s.speech_s for s in timeline.speakers)
    speakers = Table(title="speakers")
    for column in ("speaker", "gender", "p_female", "speech_s", "share", "turns"):
        speakers.add_column(column, justify="left" if column in ("speaker", "gender") else "right")
    for s in timeline.speakers:
        child = " (child?)" if s.p_child is not None and s.p_child >= CHILD_FLAG else ""
        speakers.add_row(s.id, s.label + child, f"{s.p_female:.3f}", f"{s.speech_s:.1f}",
                         f"{100 * s.speech_s / total:.0f} %" if total > 0 else "", str(s.turns))
    out.print(speakers)
    if timeline.overlaps:
        both = Table(title="two voices at once")
        for column in ("start_s", "end_s", "speakers"):
            both.add_column(column, justify="left" if column == "speakers" else "right")
        for o in timeline.overlaps:
            heard = " + ".join(f"{k} ({label})" for k, label in zip(o.speakers, o.labels, strict=True))
            both.add_row(f"{o.start_s:.2f}", f"{o.end_s:.2f}", heard if len(o.speakers) > 1 else
                         f"{heard} + another voice")
        out.print(both)


def _timeline_summary(timeline) -> str:
    """The speaking time, and with speakers: how many, women and men, women's share of the speaking time."""
    line = str(timeline.speaking_time())
    if not timeline.speakers:
        return line
    n = len(timeline.speakers)
    women = sum(1 for s in timeline.speakers if s.label == "female")
    men = sum(1 for s in timeline.speakers if s.label == "male")
    share = timeline.speaking_time().female_share
    said = f"; {n} speaker{'s' if n != 1 else ''} ({women} wom{'e' if women != 1 else 'a'}n, " \
           f"{men} m{'e' if men != 1 else 'a'}n)"
    return (line + said + ("" if share is None else f", women {100 * share:.0f} % of speaking time")
            + (f"; two voices at once for {timeline.overlap_s:.1f} s" if timeline.overlaps else ""))


@app.command("record")
def record_cmd(
    seconds: Annotated[float, typer.Option(help="how long to record")] = 1.0,
    rate: Annotated[int, typer.Option(help="sample rate in Hz")] = 48_000,
    device: Annotated[str | None, typer.Option(help="input device index or name (see --list-devices)")] = None,
    list_devices: Annotated[bool, typer.Option("--list-devices", help="list audio devices and exit")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="WAV to save "
                                                  "(default: recording-YYYYmmdd-HHMMSS.wav)")] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing --out WAV (without it: an error)",
                                        show_default=False)] = False,
) -> None:
    """Count down, record your voice from the microphone, save a WAV and print the predicted gender."""
    from ..listen import record as rec

    if list_devices:
        out.print(rec.list_devices(), markup=False, highlight=False)
        return
    check_number(seconds, "--seconds", above=0)
    if out_file is not None:  # before the countdown: a recording must not be lost to a bad path
        if out_file.suffix.lower() != ".wav":
            raise VoiceGenderError(f"{out_file}: --out is a WAV file; name it .wav")
        check_output_path(out_file, force=force)
    else:  # the default name goes in the current folder
        check_output_folder(Path.cwd(), "--out (default: a WAV in the current folder)")
    path, p = rec.record_and_predict(seconds, rate, device, out_file, model,
                                     say=lambda text: err.print(text, markup=False, soft_wrap=True))
    err.print(f"saved {path}", markup=False, soft_wrap=True)
    if p.label == "no_speech":
        out.print(f"{path}: no speech detected ({p.speech_s:.2f} s of speech) - speak louder or longer",
                  markup=False, soft_wrap=True)
    else:
        out.print(f"{path}: {p.label} (p_female {p.p_female:.3f}, {p.speech_s:.2f} s of speech)",
                  markup=False, soft_wrap=True)
        from ..voice.default_model import CHILD_FLAG

        if p.p_child is not None and p.p_child >= CHILD_FLAG:
            out.print(f"possibly a child's voice (p_child {p.p_child:.2f}): the answer above is unreliable",
                      markup=False, soft_wrap=True)
