"""Command line: a thin layer that parses arguments, calls one library function and formats its result.

Heavy modules (torch, librosa) are imported inside the commands so that ``voicegender --help`` is instant.
Errors caused by the user's input print as one line (``error: <file>: <problem>``) with exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import VoiceGenderError
from .progress import set_progress

app = typer.Typer(
    name="voicegender",
    help="Speaker gender (female / male / no speech) from recordings, with maps that show why.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
corpus_app = typer.Typer(help="Inspect corpora (AudioMNIST layout, CSV manifests, female/ male/ folders).",
                         no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

out = Console(highlight=False)  # results (stdout)
err = Console(stderr=True, highlight=False)  # messages (stderr)
EXIT_USER_ERROR = 2  # bad input: a file, an argument, a corpus


def _version(value: bool) -> None:
    if value:
        out.print(f"voicegender {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log what is happening")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or info messages")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    if quiet:
        set_progress(False)
        logging.getLogger().setLevel(logging.ERROR)


# --- corpus ---------------------------------------------------------------------------------------------------
@corpus_app.command("info")
def corpus_info(
    path: Annotated[Path, typer.Argument(help="corpus folder or CSV manifest")],
) -> None:
    """Print clips, speakers and duration per gender."""
    from .audio import audio_duration
    from .corpora import load_corpus, summarise
    from .progress import progress

    corpus = load_corpus(path)
    durations = {}
    if corpus.kind == "audio":
        unknown = [c for c in corpus.clips if c.extra.get("duration_s") in (None, "")]
        for clip in progress(unknown, desc="reading durations", unit="file"):
            try:
                durations[clip.path] = audio_duration(clip.path)
            except VoiceGenderError as e:
                err.print(f"warning: {e}")
    table = Table(title=f"{corpus.name} ({corpus.kind}, {corpus.root})")
    for column in ("gender", "clips", "speakers", "hours"):
        table.add_column(column, justify="left" if column == "gender" else "right")
    for row in summarise(corpus, durations):
        hours = "n/a" if row.seconds is None else f"{row.seconds / 3600:.3f}"
        table.add_row(row.gender, f"{row.clips:,}", str(row.speakers), hours)
    out.print(table)


# --- serve ------------------------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    model: Annotated[Path | None, typer.Option(help="checkpoint to serve (default: the shipped model)")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="largest accepted upload in MB; bigger gets 413")] = 25.0,
    token: Annotated[str | None, typer.Option(
        envvar="VOICEGENDER_TOKEN", show_default=False,
        help="access token: API requests must send 'Authorization: Bearer TOKEN' (the page: open /?token=TOKEN "
             "once). Prefer the environment variable: other users can read command lines")] = None,
) -> None:
    """Start the web page and JSON API (POST /api/predict, GET /api/health); needs the web extra."""
    try:
        import uvicorn

        from .web.app import create_app, is_loopback
    except ImportError as e:
        raise VoiceGenderError(f"the web page needs the web extra: pip install 'voicegender[web]' ({e})") from e
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
    extra = " with ?token=<your token> once" if token is not None else ""
    err.print(f"voicegender: open http://{shown}/{extra} (Ctrl+C to stop)", markup=False, soft_wrap=True)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


# --- predict / segment / record -------------------------------------------------------------------------------
def _predict_options(threshold: float, min_speech: float, no_vad: bool):
    from .predict import PredictOptions

    if not 0.0 < threshold < 1.0:
        raise VoiceGenderError(f"--threshold must be between 0 and 1, got {threshold}")
    return PredictOptions(threshold=threshold, min_speech_s=min_speech, vad=not no_vad)


_MODEL_HELP = "checkpoint from `voicegender train` (default: the model shipped with the package)"


@app.command("predict")
def predict_cmd(
    paths: Annotated[list[str], typer.Argument(help="audio files, folders (searched recursively) or globs")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help=_MODEL_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json (one object per line) | csv")] = "table",
    threshold: Annotated[float, typer.Option(help="p_female at or above this is 'female'")] = 0.5,
    min_speech: Annotated[float, typer.Option(help="seconds of speech below which the answer is no_speech")] = 0.15,
    no_vad: Annotated[bool, typer.Option("--no-vad", help="classify the whole file (no speech detection)")] = False,
    explain_dir: Annotated[Path | None, typer.Option(
        "--explain", help="also write each file's spectrogram + attribution map as DIR/<name>.png")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", "-o", help="write the results to FILE.jsonl or FILE.csv, a batch at a time; FILE appears when "
                            "every file has its line (until then: FILE.partial). Safe to interrupt: see --resume",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="with --out: skip the files that already have a line (in FILE.partial, or else FILE)")
    ] = False,
    shard: Annotated[str | None, typer.Option(
        help="K/N: only shard K (0..N-1) of the inputs, split by a hash of each path; --out FILE then writes "
             "FILE-stem.part-K-of-N.ext (join the parts with `voicegender merge`). Default under torchrun: "
             "RANK/WORLD_SIZE", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="files decoded and scored together, and written at a time with --out (default 32)",
        show_default=False)] = None,
) -> None:
    """Predict the speaker gender (female / male / no_speech) of recordings. Exit code 1 if any file failed.

    Large jobs: --out results.jsonl --resume, split over machines with --shard K/N (SLURM arrays, Kubernetes
    indexed jobs, torchrun), then `voicegender merge -o results.jsonl`. SIGINT/SIGTERM stop cleanly (exit code
    130/143) with the finished lines kept in results.jsonl.partial."""
    import dataclasses

    from .distributed import world_from_env
    from .jobs import Shard, result_format
    from .predict import expand_paths, iter_predictions, load_model
    from .writers import prediction_csv_header, prediction_csv_row, prediction_json

    if fmt not in ("table", "json", "csv"):
        raise VoiceGenderError(f"--format must be table, json or csv, got {fmt!r}")
    if resume and out_file is None:
        raise VoiceGenderError("--resume continues an output file: give it with --out FILE")
    if batch_size is not None and batch_size < 1:
        raise VoiceGenderError(f"--batch-size must be at least 1, got {batch_size}")
    part = Shard.parse(shard) if shard is not None else Shard.from_env()
    options = _predict_options(threshold, min_speech, no_vad)
    if batch_size is not None:
        options = dataclasses.replace(options, batch_size=batch_size)
    local = world_from_env().local_size
    if local > 1 and options.workers == 0:  # processes on one machine share its cores
        options = dataclasses.replace(options, workers=max(1, min(4, (os.cpu_count() or 1) // local)))
    files = expand_paths(paths)
    if not files:
        raise VoiceGenderError(f"no audio files found in {', '.join(paths)}")
    if out_file is not None:
        _predict_to_file(files, out_file, result_format(out_file, None if fmt == "table" else fmt), model, options,
                         resume, part, explain_dir)
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
        elif pictures is not None and p.label != "no_speech":
            pictures.write(p.path)
        if fmt == "table":
            rows.append(p)
            continue
        sys.stdout.write((prediction_json(p) if fmt == "json" else prediction_csv_row(p)) + "\n")
        sys.stdout.flush()
    if fmt == "table" and rows:
        # paths relative to the folder they share (named in the caption), so the table stays narrow
        full = [os.path.abspath(p.path) for p in rows]
        folder = os.path.commonpath([os.path.dirname(f) for f in full])
        table = Table(caption=f"in {folder}", caption_justify="left")
        numbers = ("p_female", "p_child", "duration_s", "speech_s")
        if all(p.p_child is None for p in rows):  # the model does not estimate it
            numbers = ("p_female", "duration_s", "speech_s")
        for column in ("path", "label", *numbers):
            table.add_column(column, justify="left" if column in ("path", "label") else "right",
                             overflow="fold")
        for p, path in zip(rows, full, strict=True):
            d = p.as_dict()
            table.add_row(os.path.relpath(path, folder), d["label"],
                          *("" if d[k] is None else f"{d[k]:.3f}" for k in numbers))
        out.print(table)
    if failed:
        err.print(f"{failed} of {len(files)} file(s) failed")
        raise typer.Exit(1)


def _predict_to_file(files: list[str], out_file: Path, fmt: str, model, options, resume: bool, part,
                     explain_dir: Path | None) -> None:
    """`predict --out`: a resumable, interruptible job (voicegender.jobs.run_predictions)."""
    import signal

    from .jobs import run_predictions
    from .predict import load_model

    loaded = load_model(model)
    pictures = _PictureWriter(explain_dir, loaded) if explain_dir is not None else None

    def on_batch(batch) -> None:
        for p in batch:
            if p.label == "error":
                err.print(f"error: {p.error}", markup=False, soft_wrap=True)
            elif pictures is not None and p.label != "no_speech":
                pictures.write(p.path)

    job = run_predictions(files, out_file, loaded, options, fmt=fmt, resume=resume, shard=part, on_batch=on_batch)
    shard_note = f" (shard {part.index}/{part.count})" if part.count > 1 else ""
    if job.interrupted is not None:
        err.print(f"interrupted by {signal.Signals(job.interrupted).name} with {job.remaining} of {job.total} "
                  f"file(s){shard_note} to go: the {job.skipped + job.written} finished line(s) are in "
                  f"{job.partial}; run the same command with --resume to finish", markup=False, soft_wrap=True)
        raise typer.Exit(128 + job.interrupted)
    skipped = f", {job.skipped} already there" if job.skipped else ""
    err.print(f"wrote {job.written} line(s) to {job.out}{shard_note}{skipped}", markup=False, soft_wrap=True)
    if job.failed:
        err.print(f"{job.failed} of {job.written} file(s) failed")
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
) -> None:
    """Combine the result files of sharded `predict --out` runs into one; report missing shards and files without
    a line or with several (exit code 1 if there are any)."""
    from .jobs import merge_results
    from .predict import expand_paths

    expected = expand_paths(expect) if expect else None
    report = merge_results(out_file, parts or None, expected)
    err.print(f"merged {report.rows} line(s) from {len(report.parts)} file(s) into {report.out}", markup=False,
              soft_wrap=True)
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
    """Writes one overlay PNG per predicted file (``predict --explain DIR``), never overwriting within a run."""

    def __init__(self, folder: Path, loaded) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.loaded, self.used = folder, loaded, set()

    def write(self, audio_path: str) -> None:
        from .audio import load_audio
        from .explain import explain_clip_png

        stem = Path(audio_path).stem
        name, n = f"{stem}.png", 1
        while name in self.used:
            n += 1
            name = f"{stem}_{n}.png"
        self.used.add(name)
        audio = load_audio(audio_path)
        (self.folder / name).write_bytes(explain_clip_png(audio.samples, audio.sample_rate, self.loaded))
        err.print(f"map: {self.folder / name}", markup=False, soft_wrap=True)


@app.command("segment")
def segment_cmd(
    file: Annotated[Path, typer.Argument(help="audio file of any length")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="write x.csv, x.json or x.TextGrid")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="csv | json | textgrid (default: from --out; "
                                                                   "a table without --out)")] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=_MODEL_HELP)] = None,
    threshold: Annotated[float, typer.Option(help="p_female at or above this is 'female'")] = 0.5,
    min_segment: Annotated[float, typer.Option(help="seconds: shorter female/male runs are merged")] = 1.0,
) -> None:
    """Split a recording into a timeline of female / male / no_speech segments."""
    import tempfile

    from .segment import SegmentOptions, segment_file, speaking_time
    from .writers import timeline_csv, timeline_format, timeline_json, write_textgrid, write_timeline

    if not 0.0 < threshold < 1.0:
        raise VoiceGenderError(f"--threshold must be between 0 and 1, got {threshold}")
    try:
        kind = timeline_format(out_file, fmt) if out_file is not None else (fmt and timeline_format("-", fmt))
    except ValueError as e:
        raise VoiceGenderError(str(e)) from e
    options = SegmentOptions(threshold=threshold, min_segment_s=min_segment)
    segments, duration = segment_file(file, model, options)
    if out_file is not None:
        write_timeline(segments, out_file, kind, str(file), duration)
        err.print(f"wrote {len(segments)} segments ({duration:.1f} s) to {out_file}", markup=False, soft_wrap=True)
    elif kind == "csv":
        sys.stdout.write(timeline_csv(segments))
    elif kind == "json":
        sys.stdout.write(timeline_json(segments, str(file), duration))
    elif kind == "textgrid":
        with tempfile.TemporaryDirectory() as tmp:
            sys.stdout.write(write_textgrid(segments, Path(tmp) / "t.TextGrid", duration).read_text())
    else:
        table = Table(title=f"{file} ({duration:.1f} s)")
        for column in ("start_s", "end_s", "label", "p_female"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for s in segments:
            table.add_row(f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label,
                          "" if s.p_female is None else f"{s.p_female:.3f}")
        out.print(table)
    err.print(str(speaking_time(segments)), markup=False, soft_wrap=True)  # the summary, whatever the format


@app.command("record")
def record_cmd(
    seconds: Annotated[float, typer.Option(help="how long to record")] = 1.0,
    rate: Annotated[int, typer.Option(help="sample rate in Hz")] = 48_000,
    device: Annotated[str | None, typer.Option(help="input device index or name (see --list-devices)")] = None,
    list_devices: Annotated[bool, typer.Option("--list-devices", help="list audio devices and exit")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="WAV to save "
                                                  "(default: recording-YYYYmmdd-HHMMSS.wav)")] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help=_MODEL_HELP)] = None,
) -> None:
    """Count down, record your voice from the microphone, save a WAV and print the predicted gender."""
    from . import record as rec

    if list_devices:
        out.print(rec.list_devices(), markup=False, highlight=False)
        return
    path, p = rec.record_and_predict(seconds, rate, device, out_file, model,
                                     say=lambda text: err.print(text, markup=False, soft_wrap=True))
    err.print(f"saved {path}", markup=False, soft_wrap=True)
    if p.label == "no_speech":
        out.print(f"{path}: no speech detected ({p.speech_s:.2f} s of speech) - speak louder or longer",
                  markup=False, soft_wrap=True)
    else:
        out.print(f"{path}: {p.label} (p_female {p.p_female:.3f}, {p.speech_s:.2f} s of speech)",
                  markup=False, soft_wrap=True)
        from .default_model import CHILD_FLAG

        if p.p_child is not None and p.p_child >= CHILD_FLAG:
            out.print(f"possibly a child's voice (p_child {p.p_child:.2f}): the answer above is unreliable",
                      markup=False, soft_wrap=True)


# --- train / evaluate -----------------------------------------------------------------------------------------
from .train_config import TrainConfig as _TC  # noqa: E402  (torch-free: only the defaults, for --help)


def _metrics_line(name: str, m) -> str:
    return (f"{name}\tclips={m.n}\taccuracy={m.accuracy:.4f}\terror_rate={m.error_rate:.4f}\t"
            f"balanced_accuracy={m.balanced_accuracy:.4f}\tf1_female={m.f1_female:.4f}\troc_auc={m.roc_auc:.4f}")


def _result(line: str) -> None:
    sys.stdout.write(line + "\n")  # tab-separated result lines, unwrapped, for scripts
    sys.stdout.flush()


def _summary_lines(summary) -> list[str]:
    return [f"mean±std\tfolds={len(summary.reports)}\t" + "\t".join(
        f"{k}={summary.mean[k]:.4f}±{summary.std[k]:.4f}" for k in summary.mean)]


@app.command("train")
def train_cmd(
    corpus: Annotated[list[Path], typer.Argument(help="corpus folders or CSV manifests (several are pooled)")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="run folder (with --all-folds: one fold<k>/ each)")
                       ] = Path(_TC.out),
    arch: Annotated[str, typer.Option(help="resnet34 | resnet50 (seed model) | small_cnn | ge2e_head")] = _TC.arch,
    features: Annotated[str, typer.Option(help="seed_image (resnets) | seed_mfcc | log_mel | ge2e")] = _TC.features,
    split: Annotated[str, typer.Option(help="audiomnist-4fold | speaker-kfold | random | corpus-out")] = _TC.split,
    fold: Annotated[int, typer.Option(help="test fold (validation is the next one)")] = _TC.fold,
    all_folds: Annotated[bool, typer.Option("--all-folds", help="train every fold, then mean ± std")] = False,
    k: Annotated[int, typer.Option(help="folds of speaker-kfold")] = _TC.k,
    epochs: Annotated[int | None, typer.Option(
        help="small_cnn: epochs (default 15); resnets: unfrozen epochs (default 1)")] = _TC.epochs,
    head_epochs: Annotated[int, typer.Option(help="resnets: frozen-body head epochs")] = _TC.head_epochs,
    lr: Annotated[float | None, typer.Option(help="max lr (default 3e-3 small_cnn, 2e-3 resnet head)")] = _TC.lr,
    finetune_lr: Annotated[float, typer.Option(help="resnets: max lr once unfrozen")] = _TC.finetune_lr,
    batch_size: Annotated[int, typer.Option(help="clips per step")] = _TC.batch_size,
    balance: Annotated[str, typer.Option(help="class imbalance: loss | sampler | none")] = _TC.balance,
    augment: Annotated[bool, typer.Option(help="audio augmentation (gain, noise, band-limit, offset)")] = _TC.augment,
    crop_seconds: Annotated[float, typer.Option(help="log_mel training crop (s)")] = _TC.crop_seconds,
    weights: Annotated[Path | None, typer.Option(help="ImageNet .pth for the resnets (default: cache/download)")
                       ] = _TC.weights,
    seed: Annotated[int, typer.Option(help="random seed")] = _TC.seed,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = _TC.threads,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast on CPU")] = _TC.bf16,
    max_train_clips: Annotated[int | None, typer.Option(help="cap the training part (stratified subset)")
                               ] = _TC.max_train_clips,
    max_val_clips: Annotated[int | None, typer.Option(help="cap the validation part (stratified subset)")
                             ] = _TC.max_val_clips,
    cache_dir: Annotated[str, typer.Option(help="feature cache folder")] = _TC.cache_dir,
    nproc: Annotated[int, typer.Option(
        "--nproc", help="processes on this machine: >1 starts the same command under torchrun (DDP, gloo); "
                        "--batch-size stays the global batch. Several machines: run torchrun yourself")] = 1,
    ctx: typer.Context = None,
) -> None:
    """Train a model (best checkpoint by validation loss) and report on the held-out test part.

    Distributed: `torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m voicegender train ...`
    (or --nproc N on one machine); rank 0 writes the run folder and the report."""
    from .distributed import world_from_env

    world = world_from_env()
    if nproc < 1:
        raise VoiceGenderError(f"--nproc must be at least 1, got {nproc}")
    if nproc > 1:
        if world.size > 1:
            raise VoiceGenderError("--nproc starts torchrun; under torchrun leave it out")
        raise typer.Exit(_run_under_torchrun(ctx, nproc))

    from .evaluate import evaluate, summarise_folds
    from .report import write_report
    from .train import TrainConfig, train, train_folds

    cfg = TrainConfig(arch=arch, features=features, split=split, fold=fold, k=k, seed=seed, epochs=epochs,
                      head_epochs=head_epochs, lr=lr, finetune_lr=finetune_lr, batch_size=batch_size,
                      balance=balance, augment=augment, crop_seconds=crop_seconds,
                      weights=str(weights) if weights else None, bf16=bf16, max_train_clips=max_train_clips,
                      max_val_clips=max_val_clips,
                      threads=threads, cache_dir=cache_dir, out=str(out_dir))
    runs = train_folds(cfg, corpus) if all_folds else [train(cfg, corpus)]
    if not world.is_main:  # under torchrun: rank 0 evaluates and reports
        return
    reports = []
    for run in runs:
        report = evaluate(run, cache_dir=cache_dir)
        write_report(report, run)
        reports.append(report)
        _result(_metrics_line(f"{run}\t{report.split}", report.metrics))
    if all_folds:
        summary = summarise_folds(reports)
        write_report(summary, cfg.out)
        for line in _summary_lines(summary):
            _result(line)
    err.print(f"runs and reports in {cfg.out}", markup=False, soft_wrap=True)


def _run_under_torchrun(ctx: typer.Context, nproc: int) -> int:
    """Run this `train` command again as ``nproc`` processes of torchrun on this machine; its exit code."""
    import subprocess

    args: list[str] = []
    for context in (ctx.parent, ctx):  # global options, then the command's own
        if context is None:
            continue
        if context is ctx:
            args.append("train")
        for param in context.command.params:
            value = context.params.get(param.name)
            if param.name in ("nproc", "version", "help") or value is None:
                continue
            if param.param_type_name == "argument":
                args += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            elif getattr(param, "is_flag", False):
                if value:
                    args.append(param.opts[0])
                elif param.secondary_opts:
                    args.append(param.secondary_opts[0])
            else:
                args += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "voicegender", *args]
    err.print(f"starting {nproc} processes: torchrun --standalone --nproc-per-node {nproc} -m voicegender "
              f"{' '.join(args)}", markup=False, soft_wrap=True)
    return subprocess.run(command, check=False).returncode


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="run folder, checkpoint, or a folder of fold<k>/ runs")],
    corpus: Annotated[list[Path] | None, typer.Argument(help="corpora to score (default: each run's test.csv)")
                      ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="report folder (default: the run folder)")
                       ] = None,
    top_k: Annotated[int, typer.Option(help="highest-loss clips listed in the report")] = 20,
    batch_size: Annotated[int, typer.Option(help="clips per forward pass")] = 64,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = _TC.threads,
    cache_dir: Annotated[str, typer.Option(help="feature cache folder")] = _TC.cache_dir,
    explain_clips: Annotated[int, typer.Option(
        "--explain-clips", help="add class maps + per-band occlusion for a class-balanced sample of this many "
                                "clips to each report (see `voicegender explain`); 0: none")] = 0,
) -> None:
    """Score a trained model: metrics.json + report.html (mean ± std when given a folder of folds)."""
    from .evaluate import evaluate, summarise_folds
    from .report import write_report

    folds = sorted(p for p in run.glob("fold*") if (p / "model.pt").is_file()) if run.is_dir() else []
    targets = folds if folds and not (run / "model.pt").is_file() else [run]
    reports, failed = [], 0
    for target in targets:
        report = evaluate(target, list(corpus) if corpus else None, batch_size=batch_size, top_k=top_k,
                          cache_dir=cache_dir, threads=threads)
        dest = (out_dir / target.name if len(targets) > 1 else out_dir) if out_dir else (
            target if target.is_dir() else target.parent)
        sections = _explain_sections(target, corpus, dest, explain_clips) if explain_clips > 0 else []
        write_report(report, dest, extra_sections=sections)
        reports.append(report)
        failed += len(report.failed)
        for message in report.failed:
            err.print(f"warning: skipped {message}", markup=False)
        _result(_metrics_line(f"{target}\t{report.split}", report.metrics))
    if len(reports) > 1:
        summary = summarise_folds(reports)
        write_report(summary, out_dir or run)
        for line in _summary_lines(summary):
            _result(line)
    if failed:
        raise typer.Exit(1)


def _explain_sections(target: Path, corpus: list[Path] | None, dest: Path, max_clips: int) -> list:
    """The explain section of an evaluation report: maps and occlusion over the evaluated clips."""
    from .corpora import load_corpus
    from .evaluate import read_run_manifest
    from .explain import REPORT_TITLE, resolve_model
    from .explain_corpus import explain_corpus
    from .report import Section

    loaded, run_dir = resolve_model(target)
    if corpus:
        clips = [clip for path in corpus for clip in load_corpus(path).clips]
    else:
        clips = read_run_manifest((run_dir or target) / "test.csv")
    result = explain_corpus(loaded, clips, dest / "explain", max_clips=max_clips)
    return [Section(REPORT_TITLE, result.html)]


# --- explain ----------------------------------------------------------------------------------------------------
@app.command("explain")
def explain_cmd(
    model: Annotated[Path | None, typer.Argument(help="run folder or checkpoint (default: the shipped model)")
                     ] = None,
    corpus: Annotated[Path | None, typer.Option(help="clips to explain: corpus folder or CSV manifest "
                                                     "(default: the run's test.csv)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder for the PNGs, explain.html, summary.json")
                       ] = Path("explain"),
    max_clips: Annotated[int, typer.Option(help="class-balanced random sample of at most this many clips")] = 200,
    methods: Annotated[str, typer.Option(help="comma-separated: gradcam | hirescam | layercam (optionally @stage, "
                                              "e.g. layercam@stage2) | ig (default: gradcam,hirescam,layercam; "
                                              "GE2E models: ig)")] = "",
    bands: Annotated[int | None, typer.Option(help="occlusion band groups (default 16 log-mel, 12 MFCC)")] = None,
    baseline: Annotated[str, typer.Option(help="masked band value: mean (clip set's average) | min")] = "mean",
    threads: Annotated[int, typer.Option(help="torch CPU threads (1 is fastest for these small batches and the "
                                              "GE2E LSTM, and on a shared CPU)")] = 1,
) -> None:
    """Class-activation maps per class, per-band occlusion and their agreement, as pictures."""
    import torch

    from .corpora import load_corpus
    from .explain import resolve_model
    from .explain_corpus import explain_corpus

    torch.set_num_threads(max(1, threads))

    loaded, run_dir = resolve_model(model)
    if corpus is None:
        if run_dir is None or not (run_dir / "test.csv").is_file():
            raise VoiceGenderError("give --corpus (a corpus folder or CSV manifest): there is no run test.csv")
        corpus = run_dir / "test.csv"
    result = explain_corpus(loaded, load_corpus(corpus).clips, out_dir, [m for m in methods.split(",") if m] or None,
                            max_clips=max_clips, bands=bands, baseline=baseline)
    for spec, m in result.summary["methods"].items():
        rho = m["spearman_vs_occlusion_class_mean"]
        out.print(f"{spec}\ttop row female={m['top_row']['female']} male={m['top_row']['male']}\t"
                  f"spearman vs occlusion female={rho['female']:+.2f} male={rho['male']:+.2f}", soft_wrap=True)
    top = result.summary["occlusion_top_band"]
    out.print(f"occlusion\ttop band female={top['female']} male={top['male']}", soft_wrap=True)
    err.print(f"{len(result.files)} files in {result.out_dir} (open explain.html)", markup=False, soft_wrap=True)


# --- export (ONNX) ---------------------------------------------------------------------------------------------
DEFAULT_DATA = Path("../shared/data")  # where `voicegender fit` looks for corpora when none are given


@app.command("fit")
def fit_cmd(
    corpus: Annotated[list[Path] | None, typer.Argument(
        help="labelled corpora (folders or CSV manifests); default: the shipped model's corpora in ../shared/data")
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="model file to write (.npz)")] = Path("model.npz"),
    features: Annotated[str, typer.Option(
        help="'+'-joined: ge2e (embedding), pitch, hnr, formants, voice (all measures), e.g. ge2e+pitch")] = "ge2e",
    c: Annotated[float, typer.Option("--c", help="inverse L2 strength of the logistic regression")] = 3e-4,
    voice_weight: Annotated[float, typer.Option(help="weight of the pitch/formant measures against the embedding")
                            ] = 1.0,
    with_children: Annotated[bool, typer.Option("--with-children", help="train the gender head on children too")
                             ] = False,
    join: Annotated[list[str] | None, typer.Option(
        help="corpora held out together in leave-one-corpus-out, as NAME=C1,C2 (repeatable)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="feature cache (default: the user cache folder)")] = None,
    workers: Annotated[int, typer.Option(help="processes computing features")] = 2,
    name: Annotated[str | None, typer.Option(help="model name stored in the file")] = None,
) -> None:
    """Fit the shipped model's kind of head (GE2E embedding [+ pitch, formants] -> gender, child voice) on labelled
    corpora, calibrated on held-out corpora; prints the report. Use the file with --model FILE.

    Under torchrun (several processes sharing --cache-dir) every rank computes its share of the features and
    rank 0 fits the model."""
    import json

    from .corpora import load_corpus
    from .fit import DEFAULT_CORPORA, DEFAULT_GROUPS, HeadConfig, fit_corpora

    if not corpus:
        if not DEFAULT_DATA.is_dir():
            raise VoiceGenderError(f"{DEFAULT_DATA}: not found; give the corpora to fit on (folders or manifests)")
        corpus = [DEFAULT_DATA / n for n in DEFAULT_CORPORA]
        groups = dict(DEFAULT_GROUPS)
    else:
        groups = {}
    for spec in join or []:
        group, _, members = spec.partition("=")
        if not group or not members:
            raise VoiceGenderError(f"--join {spec!r}: expected NAME=CORPUS1,CORPUS2")
        groups[group] = tuple(m.strip() for m in members.split(",") if m.strip())
    from .fit import parse_features

    try:
        parse_features(features)
    except ValueError as e:
        raise VoiceGenderError(f"--features: {e}") from e
    corpora = [load_corpus(p) for p in corpus]
    cfg = HeadConfig(features=features, c=c, voice_weight=voice_weight, exclude_children=not with_children)
    command = "voicegender fit " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "voicegender fit"
    from .distributed import world_from_env

    try:
        world = world_from_env()
    except ValueError as e:
        raise VoiceGenderError(str(e)) from e
    result = fit_corpora(corpora, out_path, cfg, cache_dir=cache_dir, groups=groups, workers=workers,
                         metadata={"name": name or out_path.stem, "command": command}, rank=world.rank,
                         world_size=world.size)
    if result is None:
        err.print(f"rank {world.rank} of {world.size}: features cached; rank 0 fits the model")
        return
    head, report = result
    for group, rows in report["corpora"].items():
        _result(f"{report['protocol']}\t{group}\t" + "\t".join(
            f"{k}_bacc={v['bacc']:.4f}" for k, v in rows.items()))
    cal = report["calibration"]
    _result(f"calibration\tece_before={cal['ece_before']:.4f}\tece_after={cal['ece_one_temperature']:.4f}\t"
            f"temperatures={json.dumps([round(t, 3) for t in report['temperatures']])}")
    if report.get("child") and report["child"].get("auc") is not None:
        _result(f"child_voice\tauc={report['child']['auc']:.4f}")
    err.print(f"wrote {out_path}")


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint or run folder from `voicegender train`")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="the .onnx file to write")] = Path("model.onnx"),
) -> None:
    """Export a trained network to ONNX (input "features", output "logits"; dynamic batch, and time for CNNs)."""
    import torch

    from .evaluate import resolve_checkpoint
    from .models import export_onnx, load_checkpoint

    loaded = load_checkpoint(resolve_checkpoint(checkpoint))
    fc = loaded.feature_config
    shapes = {"log_mel": (1, 1, fc.get("n_mels", 64), 100), "seed_mfcc": (1, 1, fc.get("n_mfcc", 12), 98),
              "seed_image": (1, 3, 224, 224)}
    if fc["kind"] not in shapes:
        raise VoiceGenderError(f"{checkpoint}: a {fc['kind']!r} model is a head over resemblyzer's encoder; only "
                               "networks over log_mel / seed_mfcc / seed_image features export to ONNX")
    written = export_onnx(loaded.model, torch.zeros(shapes[fc["kind"]]), out_path)
    out.print(f"{written}\tinput features {list(shapes[fc['kind']])} ({fc['kind']}, batch dynamic)\tlabels "
              f"{','.join(loaded.labels)}", soft_wrap=True)


# --- entry point ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # standalone mode: typer prints usage errors itself and exits through SystemExit
        app(args=args, prog_name="voicegender", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except VoiceGenderError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False, soft_wrap=True)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
