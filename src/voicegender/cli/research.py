"""Commands for researchers: corpus info, train, evaluate, explain, fit, export (ONNX)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ModelError, VoiceGenderError
from ..extras import require
from ..voice.model_files import check_checkpoint_file
from .common import (  # noqa: F401
    EXIT_USER_ERROR,
    REPLACE_OUT_HELP,
    app,
    check_number,
    check_output_folder,
    check_output_path,
    corpus_app,
    err,
    out,
    result,
)


# --- corpus ---------------------------------------------------------------------------------------------------
@corpus_app.command("info")
def corpus_info(
    path: Annotated[Path, typer.Argument(help="corpus folder or CSV manifest")],
) -> None:
    """Print clips, speakers and duration per gender."""
    from ..audio.decode import audio_duration
    from ..corpora import load_corpus, speaker_note, summarise
    from ..progress import progress

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
    note = speaker_note(corpus)
    if note:
        err.print(f"warning: {note}", markup=False, soft_wrap=True)


# --- serve ------------------------------------------------------------------------------------------------------

# --- train / evaluate -----------------------------------------------------------------------------------------
from ..research.train_config import TrainConfig as _TC  # noqa: E402  (torch-free: only the defaults, for --help)


def _metrics_line(name: str, m) -> str:
    return (f"{name}\tclips={m.n}\taccuracy={m.accuracy:.4f}\terror_rate={m.error_rate:.4f}\t"
            f"balanced_accuracy={m.balanced_accuracy:.4f}\tf1_female={m.f1_female:.4f}\troc_auc={m.roc_auc:.4f}")


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
    require("research", "voicegender train")
    cfg = _train_config(locals())  # every option checked before torch loads or a corpus is read
    check_output_folder(out_dir, "--out")
    from ..corpora import load_corpus, speaker_note

    for path in corpus:
        note = speaker_note(load_corpus(path))  # a bad corpus fails here, before torchrun starts its processes
        if note and cfg.split != "random":
            err.print(f"warning: {note}", markup=False, soft_wrap=True)
    from ..world import world_from_env

    world = world_from_env()
    if nproc > 1:
        if world.size > 1:
            raise VoiceGenderError("--nproc starts torchrun; under torchrun leave it out")
        raise typer.Exit(_run_under_torchrun(ctx, nproc))

    from ..research.evaluate import evaluate, summarise_folds
    from ..research.report import write_report
    from ..research.train import train, train_folds

    runs = train_folds(cfg, corpus) if all_folds else [train(cfg, corpus)]
    if not world.is_main:  # under torchrun: rank 0 evaluates and reports
        return
    reports = []
    for run in runs:
        report = evaluate(run, cache_dir=cache_dir)
        write_report(report, run)
        reports.append(report)
        result(_metrics_line(f"{run}\t{report.split}", report.metrics))
    if all_folds:
        summary = summarise_folds(reports)
        write_report(summary, cfg.out)
        for line in _summary_lines(summary):
            result(line)
    err.print(f"runs and reports in {cfg.out}", markup=False, soft_wrap=True)


def _train_config(o: dict) -> _TC:
    """The TrainConfig of `train`'s options ``o``, each checked first (one line naming the option)."""
    from ..research.splits import SPLIT_METHODS

    if o["split"] not in SPLIT_METHODS:
        raise VoiceGenderError(f"--split {o['split']!r}: must be one of {', '.join(SPLIT_METHODS)}")
    check_number(o["nproc"], "--nproc", minimum=1)
    if not 0 <= o["seed"] <= 2**32 - 1:  # numpy's seed range
        raise VoiceGenderError(f"--seed {o['seed']}: must be 0..{2**32 - 1}")
    check_number(o["k"], "--k", minimum=3)  # speaker-kfold: a training, a validation and a test fold
    last_fold = {"audiomnist-4fold": 3, "speaker-kfold": o["k"] - 1}.get(o["split"])  # corpus-out: one per corpus
    check_number(o["fold"], "--fold", minimum=0, maximum=last_fold)
    resnet = o["arch"] in ("resnet34", "resnet50")
    check_number(o["head_epochs"], "--head-epochs", minimum=0)  # 0: no frozen-body stage
    if o["epochs"] is not None:
        check_number(o["epochs"], "--epochs", minimum=0)
        if o["epochs"] == 0 and not (resnet and o["head_epochs"] > 0):  # resnets: 0 trains the head stage only
            raise VoiceGenderError("--epochs 0: nothing would train (" + (
                "and --head-epochs 0" if resnet else f"{o['arch']} has no other stage") + "); give 1 or more")
    if o["lr"] is not None:
        check_number(o["lr"], "--lr", above=0)
    check_number(o["finetune_lr"], "--finetune-lr", above=0)
    check_number(o["batch_size"], "--batch-size", minimum=1)
    check_number(o["crop_seconds"], "--crop-seconds", above=0)
    check_number(o["threads"], "--threads", minimum=1)
    for option in ("max_train_clips", "max_val_clips"):
        if o[option] is not None:
            check_number(o[option], "--" + option.replace("_", "-"), minimum=1)
    if o["weights"] is not None and not Path(o["weights"]).is_file():
        raise VoiceGenderError(f"--weights {o['weights']}: no such file")
    return _TC(arch=o["arch"], features=o["features"], split=o["split"], fold=o["fold"], k=o["k"], seed=o["seed"],
               epochs=o["epochs"], head_epochs=o["head_epochs"], lr=o["lr"], finetune_lr=o["finetune_lr"],
               batch_size=o["batch_size"], balance=o["balance"], augment=o["augment"], crop_seconds=o["crop_seconds"],
               weights=str(o["weights"]) if o["weights"] else None, bf16=o["bf16"],
               max_train_clips=o["max_train_clips"], max_val_clips=o["max_val_clips"], threads=o["threads"],
               cache_dir=o["cache_dir"], out=str(o["out_dir"]))


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
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default)")] = _TC.threads,
    cache_dir: Annotated[str, typer.Option(help="feature cache folder")] = _TC.cache_dir,
    explain_clips: Annotated[int, typer.Option(
        "--explain-clips", help="add class maps + per-band occlusion for a class-balanced sample of this many "
                                "clips to each report (see `voicegender explain`); 0: none")] = 0,
) -> None:
    """Score a trained model: metrics.json + report.html (mean ± std when given a folder of folds)."""
    require("research", "voicegender evaluate")
    check_number(top_k, "--top-k", minimum=0)
    check_number(batch_size, "--batch-size", minimum=1)
    check_number(threads, "--threads", minimum=0)  # evaluate(): 0 leaves torch's thread count as it is
    check_number(explain_clips, "--explain-clips", minimum=0)
    if out_dir is not None:
        check_output_folder(out_dir, "--out")
    from ..corpora import load_corpus
    from ..research.evaluate import evaluate, resolve_checkpoint, summarise_folds
    from ..research.report import write_report

    folds = sorted(p for p in run.glob("fold*") if (p / "model.pt").is_file()) if run.is_dir() else []
    targets = folds if folds and not (run / "model.pt").is_file() else [run]
    for target in targets:  # every model and its clips, before the first one is scored
        check_checkpoint_file(resolve_checkpoint(target), "evaluate takes a run folder or a .pt checkpoint")
        if not corpus and not ((target if target.is_dir() else target.parent) / "test.csv").is_file():
            raise VoiceGenderError(f"{target}: no test.csv next to the checkpoint; give the corpus to evaluate on")
        if out_dir is None:
            check_output_folder(target if target.is_dir() else target.parent, "--out (default: the run folder)")
    for path in corpus or []:
        load_corpus(path)  # a bad manifest fails now, not after the first model's scores
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
        result(_metrics_line(f"{target}\t{report.split}", report.metrics))
    if len(reports) > 1:
        summary = summarise_folds(reports)
        write_report(summary, out_dir or run)
        for line in _summary_lines(summary):
            result(line)
    if failed:
        raise typer.Exit(1)


def _explain_sections(target: Path, corpus: list[Path] | None, dest: Path, max_clips: int) -> list:
    """The explain section of an evaluation report: maps and occlusion over the evaluated clips."""
    from ..corpora import load_corpus
    from ..research.evaluate import read_run_manifest
    from ..research.explain import REPORT_TITLE, resolve_model
    from ..research.explain_corpus import explain_corpus
    from ..research.report import Section

    loaded, run_dir = resolve_model(target)
    if corpus:
        clips = [clip for path in corpus for clip in load_corpus(path).clips]
    else:
        clips = read_run_manifest((run_dir or target) / "test.csv")
    explained = explain_corpus(loaded, clips, dest / "explain", max_clips=max_clips)
    return [Section(REPORT_TITLE, explained.html)]


# --- explain ----------------------------------------------------------------------------------------------------
@app.command("explain")
def explain_cmd(
    model: Annotated[Path | None, typer.Argument(
        help="run folder or checkpoint (.pt) from `voicegender train`, or a voice head (.npz) from `voicegender fit` "
             "(default: the shipped model)")] = None,
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
    force: Annotated[bool, typer.Option("--force", help="replace the pictures of an earlier explain in --out "
                                                        "(without it: an error)", show_default=False)] = False,
) -> None:
    """Class-activation maps per class, per-band occlusion and their agreement, as pictures."""
    require("research", "voicegender explain")
    check_number(max_clips, "--max-clips", minimum=1)
    if bands is not None:  # at most the model's feature rows (checked once it is loaded)
        check_number(bands, "--bands", minimum=1)
    if baseline not in ("mean", "min"):
        raise VoiceGenderError(f"--baseline {baseline!r}: must be mean or min")
    check_number(threads, "--threads", minimum=1)
    check_output_folder(out_dir, "--out")
    if not force and (out_dir / "summary.json").is_file():  # an earlier explain's pictures are there
        raise VoiceGenderError(f"{out_dir}: holds an earlier explain (summary.json); give --out another folder, or "
                               "add --force to replace it")
    import torch

    from ..corpora import load_corpus
    from ..research.explain import parse_method, resolve_model
    from ..research.explain_corpus import explain_corpus

    specs = [m.strip() for m in methods.split(",") if m.strip()]
    try:
        for spec in specs:
            parse_method(spec)
    except VoiceGenderError as e:
        raise VoiceGenderError(f"--methods: {e}") from e
    if model is not None and not model.exists():  # before the run folder's test.csv is looked for beside it
        raise ModelError(f"{model}: no such file or folder (a run folder, a checkpoint .pt or a voice head .npz)")
    if model is not None and model.suffix.lower() != ".npz":  # the model is checked before the clips are looked for
        candidate = model / "model.pt" if model.is_dir() else model
        if candidate.is_file():
            check_checkpoint_file(candidate, "explain takes it only with its own name ending in .npz")
    if corpus is None:  # the run's test.csv (resolve_model's run folder)
        run_dir = None if model is None else model if model.is_dir() else model.parent
        if run_dir is None or not (run_dir / "test.csv").is_file():
            raise VoiceGenderError("give --corpus (a corpus folder or CSV manifest): there is no run test.csv")
        corpus = run_dir / "test.csv"
    clips = load_corpus(corpus).clips
    torch.set_num_threads(threads)

    loaded, _ = resolve_model(model)
    fc = loaded.feature_config
    rows = {"log_mel": fc.get("n_mels", 64), "seed_mfcc": fc.get("n_mfcc", 12), "seed_image": 12,
            "ge2e": 40}.get(fc.get("kind"))  # occlusion bands group the rows of the map (explain.band_slices)
    if bands is not None and rows and bands > rows:
        raise VoiceGenderError(f"--bands {bands}: must be 1..{rows} for this model's {fc['kind']} features")
    explained = explain_corpus(loaded, clips, out_dir, specs or None, max_clips=max_clips, bands=bands,
                               baseline=baseline)
    for spec, m in explained.summary["methods"].items():
        rho = m["spearman_vs_occlusion_class_mean"]
        out.print(f"{spec}\ttop row female={m['top_row']['female']} male={m['top_row']['male']}\t"
                  f"spearman vs occlusion female={rho['female']:+.2f} male={rho['male']:+.2f}", soft_wrap=True)
    top = explained.summary["occlusion_top_band"]
    out.print(f"occlusion\ttop band female={top['female']} male={top['male']}", soft_wrap=True)
    err.print(f"{len(explained.files)} files in {explained.out_dir} (open explain.html)", markup=False, soft_wrap=True)


# --- export (ONNX) ---------------------------------------------------------------------------------------------
DEFAULT_DATA = Path("../shared/data")  # where `voicegender fit` looks for corpora when none are given


@app.command("fit")
def fit_cmd(
    corpus: Annotated[list[Path] | None, typer.Argument(
        help="labelled corpora (folders or CSV manifests); default: the shipped model's corpora in ../shared/data")
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="model file to write (.npz)")] = Path("model.npz"),
    features: Annotated[str, typer.Option(
        help="'+'-joined: ge2e (embedding), hidden (the encoder's hidden means), pitch, hnr, formants, voice (all "
             "measures), e.g. ge2e+pitch")] = "ge2e",
    c: Annotated[float, typer.Option("--c", help="inverse L2 strength of the logistic regression")] = 3e-4,
    voice_weight: Annotated[float, typer.Option(help="weight of the pitch/formant measures against the embedding")
                            ] = 1.0,
    with_children: Annotated[bool, typer.Option("--with-children", help="train the gender head on children too")
                             ] = False,
    short_max_s: Annotated[float, typer.Option(
        help="speech shorter than this (s) is answered by a second layer over the encoder's hidden means; 0: none")
    ] = 1.0,
    join: Annotated[list[str] | None, typer.Option(
        help="corpora held out together in leave-one-corpus-out, as NAME=C1,C2 (repeatable)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="feature cache (default: the user cache folder)")] = None,
    workers: Annotated[int, typer.Option(help="processes computing features")] = 2,
    name: Annotated[str | None, typer.Option(help="model name stored in the file (default: --out's stem)")] = None,
    model_version: Annotated[str | None, typer.Option(
        help="the model's own version stored in the file (shown by the web page, /api/health and --version); "
             "default: the voicegender version that fitted it", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help=REPLACE_OUT_HELP, show_default=False)] = False,
) -> None:
    """Fit the shipped model's kind of head (GE2E embedding [+ pitch, formants] -> gender, child voice) on labelled
    corpora, calibrated on held-out corpora; prints the report. Use the file with --model FILE.

    Under torchrun (several processes sharing --cache-dir) every rank computes its share of the features and
    rank 0 fits the model."""
    require("fit", "voicegender fit")
    check_number(c, "--c", above=0)
    check_number(voice_weight, "--voice-weight", minimum=0)
    if not short_max_s >= 0:  # also NaN
        raise VoiceGenderError(f"--short-max-s {short_max_s}: must be 0 (no short-speech layer) or more")
    check_number(workers, "--workers", minimum=1)
    check_output_path(out_path, "--out", force=force)
    if model_version is not None and not model_version.strip():
        raise VoiceGenderError("--model-version: empty; give a version such as 1.0.0, or leave the option out")
    import json

    from ..corpora import load_corpus
    from ..voice.fit import DEFAULT_CORPORA, DEFAULT_GROUPS, fit_corpora
    from ..voice.layers import HeadConfig

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
    from ..voice.layers import parse_features

    try:
        parse_features(features)
    except ValueError as e:
        raise VoiceGenderError(f"--features: {e}") from e
    corpora = [load_corpus(p) for p in corpus]
    cfg = HeadConfig(features=features, c=c, voice_weight=voice_weight, exclude_children=not with_children,
                     short_max_s=short_max_s)
    command = "voicegender fit " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "voicegender fit"
    from ..world import world_from_env

    try:
        world = world_from_env()
    except ValueError as e:
        raise VoiceGenderError(str(e)) from e
    fitted = fit_corpora(corpora, out_path, cfg, cache_dir=cache_dir, groups=groups, workers=workers,
                         metadata={"name": name or out_path.stem, "command": command,
                                   **({"version": model_version.strip()} if model_version else {})}, rank=world.rank,
                         world_size=world.size,
                         warn=lambda message: err.print(f"warning: {message}", markup=False, soft_wrap=True))
    if fitted is None:
        err.print(f"rank {world.rank} of {world.size}: features cached; rank 0 fits the model")
        return
    head, report = fitted
    for group, rows in report["corpora"].items():
        result(f"{report['protocol']}\t{group}\t" + "\t".join(
            f"{k}_bacc={_number(v['bacc'])}" for k, v in rows.items()))
    cal = report["calibration"]
    result(f"calibration\tece_before={cal['ece_before']:.4f}\tece_after={cal['ece_shipped']:.4f}\t"
            f"worst_cell_ece={cal['worst_cell']['shipped']:.4f}\t"
            f"temperatures={json.dumps([round(t, 3) for t in report['temperatures']])}\t"
            f"confidence_floor={report['confidence_floor']:.4f}")
    if report.get("child") and report["child"].get("auc") is not None:
        result(f"child_voice\tauc={report['child']['auc']:.4f}")
    for group, kinds in (report.get("child_flag_heldout") or {}).items():
        for kind, shares in kinds.items():
            result(f"child_flag_heldout\t{group}\t{kind}\t" + "\t".join(
                f"{who}={'n/a' if v is None else format(v, '.4f')}" for who, v in shares.items()))
    if report.get("speech_check"):
        sc = report["speech_check"]
        accepted = "n/a" if sc["nonspeech_accepted"] is None else f"{sc['nonspeech_accepted']:.4f}"
        result(f"speech_check\tnonspeech_accepted={accepted} of {sc['nonspeech_asked']} asked "
                f"({sc['nonspeech_sounds']} sounds)\tspeech_rejected={sc['speech_rejected']:.4f}")
    err.print(f"wrote {out_path}")


def _number(value: float | None) -> str:
    """A score to 4 decimals, or n/a (NaN: e.g. balanced accuracy of a held-out set holding one gender)."""
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint or run folder from `voicegender train`")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="the .onnx file to write")] = Path("model.onnx"),
    force: Annotated[bool, typer.Option("--force", help=REPLACE_OUT_HELP, show_default=False)] = False,
) -> None:
    """Export a trained network to ONNX (input "features", output "logits"; dynamic batch, and time for CNNs)."""
    require("research", "voicegender export")
    check_output_path(out_path, "--out", force=force)
    import torch

    from ..research.evaluate import resolve_checkpoint
    from ..research.models import export_onnx, load_checkpoint

    path = check_checkpoint_file(resolve_checkpoint(checkpoint),
                                 "only networks from `voicegender train` export to ONNX")
    loaded = load_checkpoint(path)
    fc = loaded.feature_config
    shapes = {"log_mel": (1, 1, fc.get("n_mels", 64), 100), "seed_mfcc": (1, 1, fc.get("n_mfcc", 12), 98),
              "seed_image": (1, 3, 224, 224)}
    if fc["kind"] not in shapes:
        raise VoiceGenderError(f"{checkpoint}: a {fc['kind']!r} model is a head over resemblyzer's encoder; only "
                               "networks over log_mel / seed_mfcc / seed_image features export to ONNX")
    written = export_onnx(loaded.model, torch.zeros(shapes[fc["kind"]]), out_path)
    out.print(f"{written}\tinput features {list(shapes[fc['kind']])} ({fc['kind']}, batch dynamic)\tlabels "
              f"{','.join(loaded.labels)}", soft_wrap=True)
