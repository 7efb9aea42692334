"""Training: ``train(cfg, corpus_paths) -> run_dir``, with the seed's recipe for the ResNets and a fast one for
SmallCNN.

A run folder holds everything needed to trust and reuse a run::

    config.json                     the resolved TrainConfig (+ the corpus paths)
    train.csv / val.csv / test.csv  the clips of each part (corpora.write_manifest): the record of the data
    log.jsonl                       one JSON line per epoch (stage, lr, train/val loss, val metrics, seconds)
    model.pt                        best checkpoint by validation loss (models.save_checkpoint; extra = corpus,
                                    split, metrics, config)
    state.pt                        last finished epoch (model + optimiser + scheduler) for resuming

A run is a short sequence of steps (``_train``): choose the clips (pool the corpora, split, cap), open the run
folder (fresh, or resumed), build the network (+ ImageNet weights), make the datasets, then the training stages
(``_train_one_cycle``, or ``_train_head`` and ``_train_unfrozen``), every epoch ending in the best checkpoint, a
log line and ``state.pt`` (``_Run.end_epoch``). The mechanics of an epoch (samplers, one training pass,
validation, optimiser and schedule, the frozen body's features) are in :mod:`voicegender.research.train_loop`, the run
folder's files and the resume checks in :mod:`voicegender.research.run_folder`.

Recipes
-------
``small_cnn``: AdamW + one-cycle (fastai's shape: 25 % warm-up, cosine, div 25, final div 1e5) for ``epochs``.

``resnet34``/``resnet50`` (the seed): ``head_epochs`` one-cycle epochs at ``lr`` (2e-3) on the head with the body
frozen, then ``epochs`` one-cycle epochs of the whole network with discriminative learning rates rising from
``finetune_lr/10`` (early layers) to ``finetune_lr`` (3e-3, head). Differences from fastai, on purpose:

* With ``cache_body=True`` (default) the frozen stage runs the body **once** in eval mode over the train and
  validation images and trains the head on the cached pooled features (the head's first op, concat pooling,
  is deterministic, so 1024/4096 numbers per image suffice). That is exact only because the body is frozen
  **and** its BatchNorm layers use their running statistics. fastai instead keeps body BatchNorm layers
  trainable and in train mode (``train_bn=True``: batch statistics, updated running stats, trained affine
  weights), which needs a full forward pass every step; ``cache_body=False`` does that (3-5× slower).
* Without ImageNet weights (no file on this machine, no network) the body is random. Frozen random features
  with BatchNorm running statistics at their initial 0/1 would be badly scaled, so the running statistics are
  first re-estimated on ``bn_calibration_batches`` training batches (forward only). The head stage then
  learns a probe of random features, and nearly all real learning happens in the unfrozen epoch(s): expect
  much worse results than the seed's pretrained model for the same number of epochs.

Speed on CPU: bfloat16 autocast (``bf16``; AMX on this CPU) and channels_last memory layout (``channels_last``)
for the ResNets; see benchmarks/model_speed.py.

Distributed training
--------------------
Under ``torchrun`` (or ``voicegender train --nproc N``, which starts it) every recipe runs with
DistributedDataParallel over gloo (:mod:`voicegender.research.distributed`). ``batch_size`` stays the **global** batch:
each of the W ranks takes ``batch_size / W`` clips of every step, through a ``DistributedSampler`` whose
permutation of epoch e is the one a single process uses (seeded ``seed·1000 + e``), so rank r's part of global
batch k is that batch's items r, r+W, ...; the union of the ranks' batches is the single-process batch. The
class-weighted loss is normalised by the weight sum of the global batch (one all-reduce), so the averaged
gradient equals the single-process gradient. What still differs from one process: BatchNorm layers normalise
each rank's part of the batch with its own statistics (SyncBatchNorm is GPU-only in torch), each rank draws its
own dropout masks, and sums run in another order; tests/test_distributed.py states the tolerance this gives.
Validation is split over the ranks and gathered, so every rank computes the same metrics; BatchNorm running
statistics are averaged over the ranks before validation, so every rank holds the model that rank 0 saves.
Rank 0 alone writes the run folder (config, manifests, log, checkpoints); the others stay quiet. Before the
datasets are built each rank computes the features of its share of the clips into the shared feature cache
(``FeatureCache`` writes atomically, so ranks may even write the same entry at once), then reads all of them.

Interrupted runs
----------------
``state.pt`` is written atomically at the end of every epoch, with the epoch's number. A run killed at any
moment (mid-epoch, or between the log line and ``state.pt``) resumes from the last finished epoch when started
again with the same settings: log lines of later epochs and a torn last line are dropped, the interrupted
epoch runs again from its start. Every epoch seeds its own random draws (shuffle, augmentation, dropout; per
rank), so a resumed run repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..corpora import LABELS, Clip, load_corpus
from ..errors import VoiceGenderError
from ..progress import set_progress
from . import distributed
from .dataset import Augment, ClipDataset, FeatureAugment, is_image, precompute
from .features import LogMelConfig, SeedMfccConfig, feature_config_dict
from .models import (
    ModelConfig,
    build_model,
    discriminative_lrs,
    freeze_body,
    load_imagenet_weights,
    param_groups,
    resolve_imagenet_weights,
    save_checkpoint,
)
from .run_folder import load_state, prepare_run_dir, save_state
from .splits import Split, make_split, n_folds
from .train_config import TrainConfig
from .train_loop import (
    adamw,
    class_weights,
    epoch_loader,
    frozen_body_features,
    one_cycle,
    seed_epoch,
    seed_everything,
    train_epoch,
    validate,
)

log = logging.getLogger(__name__)


@dataclass
class EpochLog:
    """One line of log.jsonl."""

    stage: str  # "head" (frozen body), "full" (unfrozen) or "train" (small_cnn)
    epoch: int  # 0-based over the whole run
    train_loss: float
    val_loss: float
    val: dict = field(default_factory=dict)  # validation Metrics as a dict
    seconds: float = 0.0
    best: bool = False


def train(cfg: TrainConfig, corpus_paths: list[str | Path]) -> Path:
    """Train one model on one fold of ``corpus_paths`` and write a run folder (see the module docstring).

    Under ``torchrun`` this process is one rank of a DDP run (see "Distributed training" above); every rank
    calls ``train`` with the same arguments and gets the run folder back, which rank 0 alone writes.

    Parameters
    ----------
    cfg : the run's settings (see :class:`TrainConfig`).
    corpus_paths : corpus folders or CSV manifests (corpora.load_corpus); several are pooled.

    Returns
    -------
    Path of the run folder (``cfg.out``), holding ``model.pt``, the best checkpoint by validation loss.
    """
    with distributed.process_group() as world, warnings.catch_warnings():
        if not world.is_main:  # rank 0 alone reports
            set_progress(False)
            logging.getLogger("voicegender").setLevel(logging.WARNING)
            warnings.simplefilter("ignore")  # rank 0 gives the same warnings
        run_dir = _train(cfg, corpus_paths, world)
        distributed.barrier()  # every rank returns once rank 0 has written the run folder
        return run_dir


def train_folds(cfg: TrainConfig, corpus_paths: list[str | Path], folds: list[int] | None = None) -> list[Path]:
    """Train every fold (or ``folds``) of ``cfg.split``: one run folder ``<cfg.out>/fold<k>`` each."""
    clips = load_clips(corpus_paths)
    folds = list(range(n_folds(clips, cfg.split, cfg.k))) if folds is None else folds
    runs = []
    with distributed.process_group():  # one group for all folds (under torchrun)
        for fold in folds:
            fold_cfg = TrainConfig(**{f.name: getattr(cfg, f.name) for f in fields(cfg)})
            fold_cfg.fold, fold_cfg.out = fold, str(Path(cfg.out) / f"fold{fold}")
            runs.append(train(fold_cfg, corpus_paths))
    return runs


def _train(cfg: TrainConfig, corpus_paths: list[str | Path], world: distributed.World) -> Path:
    """One run as a sequence of steps; every rank takes every step, rank 0 alone writes the run folder."""
    if cfg.batch_size % world.size:
        raise VoiceGenderError(f"--batch-size {cfg.batch_size} is the global batch: it must be a multiple of the "
                               f"{world.size} processes")
    _use_threads(cfg.threads, world)
    seed_everything(cfg.seed)
    corpus_paths = [str(Path(p)) for p in corpus_paths]
    data = _choose_clips(cfg, corpus_paths)  # 1. data: the fold's clips
    state = _open_run_dir(cfg, data, world)  # 2. run folder: config, manifests; an interrupted run's state
    net = _build_network(cfg, data.train, resumed=state is not None)  # 3. model (+ ImageNet weights)
    train_ds, val_ds = _datasets(cfg, net.feature_config, data, world)  # 4. features
    run = _Run(cfg, world, data, net, train_ds, val_ds, state)  # 5. loss, resumed state, checkpoint keeper
    # 6. training stages; every epoch ends in the best checkpoint, a log line and state.pt (_Run.end_epoch)
    if cfg.is_resnet:
        _train_head(run)
        _train_unfrozen(run)
    else:
        _train_one_cycle(run)
    return run.run_dir


# --- the steps --------------------------------------------------------------------------------------------------
@dataclass
class _Clips:
    """The clips of one run: a fold of the pooled corpora, capped by max_train_clips / max_val_clips."""

    corpus_paths: list[str]  # as given (the record in config.json and the checkpoint)
    split: Split  # the whole fold (split.test: the clips evaluate defaults to)
    train: list[Clip]  # the training clips (a stratified subset of split.train when capped)
    val: list[Clip]  # the validation clips (likewise)


@dataclass
class _Network:
    """The model of a run and the descriptions that rebuild it and its input."""

    model: nn.Module
    model_config: ModelConfig
    feature_config: dict  # features.feature_config_dict: how every clip becomes model input
    imagenet: Path | None  # the ImageNet weights loaded into a ResNet body (None: random body, or a resumed run)


def _use_threads(threads: int, world: distributed.World) -> None:
    threads = max(1, threads)
    if world.local_size > 1:  # processes on one machine share its cores
        threads = min(threads, max(1, (os.cpu_count() or 1) // world.local_size))
    torch.set_num_threads(threads)


def _choose_clips(cfg: TrainConfig, corpus_paths: list[str]) -> _Clips:
    """Step 1: pool the corpora, split them (``cfg.split``, fold ``cfg.fold``) and cap the parts."""
    clips = load_clips(corpus_paths)
    split = make_split(clips, cfg.split, cfg.fold, cfg.k, cfg.seed)
    train_clips = stratified_subset(split.train, cfg.max_train_clips, cfg.seed)
    val_clips = stratified_subset(split.val, cfg.max_val_clips, cfg.seed + 1)
    if not train_clips or not val_clips:
        raise VoiceGenderError(f"split {split.name}: {len(train_clips)} training and {len(val_clips)} validation "
                               "clips; need both")
    if len({c.label for c in train_clips}) < 2:
        raise VoiceGenderError(f"split {split.name}: the training part has only one gender")
    return _Clips(corpus_paths, split, train_clips, val_clips)


def _open_run_dir(cfg: TrainConfig, data: _Clips, world: distributed.World) -> dict | None:
    """Step 2: rank 0 prepares the run folder (fresh, or resumed from its ``state.pt``) and every rank gets its
    verdict and the resumed state (None for a fresh run)."""
    run_dir = Path(cfg.out).expanduser()
    state, problem = None, None
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            state = load_state(run_dir, cfg, data.corpus_paths)
        except VoiceGenderError as e:
            problem = str(e)
        if problem is None:
            prepare_run_dir(run_dir, cfg, data.corpus_paths, state, world.size,
                             (data.train, data.val, data.split.test))
    # the other ranks (maybe on machines without this folder) get rank 0's verdict and state
    state, problem = distributed.broadcast_object((state, problem))
    if problem is not None:
        raise VoiceGenderError(problem)
    log.info("%s: %d train / %d val / %d test clips", data.split.name, len(data.train), len(data.val),
             len(data.split.test))
    return state


def _build_network(cfg: TrainConfig, train_clips: list[Clip], resumed: bool = False) -> _Network:
    """Step 3: the feature and model configs of ``cfg`` and a fresh network; a ResNet body starts from ImageNet
    weights when they can be found (not for a resumed run: its state replaces them)."""
    fc = feature_config_for(cfg.features)
    if cfg.features == "seed_mfcc" and _feature_source(train_clips) == "image":
        fc["clip_to_image"] = True  # audio given to this model later must be clipped as the pictures were
    mc = model_config_for(cfg, fc)
    model = build_model(mc)
    imagenet = None
    if cfg.is_resnet and not resumed:
        imagenet = resolve_imagenet_weights(cfg.arch, cfg.weights)
        if imagenet is not None:
            load_imagenet_weights(model, imagenet)
    if cfg.is_resnet and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return _Network(model, mc, fc, imagenet)


def _datasets(cfg: TrainConfig, fc: dict, data: _Clips, world: distributed.World
              ) -> tuple[ClipDataset, ClipDataset]:
    """Step 4: the training and validation datasets (features computed once into ``cfg.cache_dir``)."""
    crop = int(round(cfg.crop_seconds / fc.get("hop_seconds", 0.01))) + 1  # frames of a centred STFT
    augment = Augment() if cfg.augment else None
    feature_augment = FeatureAugment() if cfg.augment and not cfg.is_resnet and cfg.features != "ge2e" else None
    if world.size > 1 and cfg.cache_dir is not None:
        # each rank computes its share of the features into the shared cache, then all read everyone's
        for part, part_augment, desc in ((data.train, augment, "train"), (data.val, None, "val")):
            if ClipDataset.precomputes(part, fc["kind"], part_augment):
                precompute(part[world.rank::world.size], fc, cfg.cache_dir, desc=f"{desc} features (share)")
        distributed.barrier()
    train_ds = ClipDataset(data.train, fc, train=True, augment=augment, feature_augment=feature_augment,
                           crop_frames=crop if cfg.features == "log_mel" else None, cache_dir=cfg.cache_dir,
                           seed=cfg.seed, desc="train features")
    val_ds = ClipDataset(data.val, fc, train=False, cache_dir=cfg.cache_dir, desc="val features")
    return train_ds, val_ds


class _Run:
    """What the training stages share: the network, its data and loss, and the end of every epoch (best
    checkpoint, log line, ``state.pt``)."""

    def __init__(self, cfg: TrainConfig, world: distributed.World, data: _Clips, net: _Network,
                 train_ds: ClipDataset, val_ds: ClipDataset, state: dict | None) -> None:
        self.cfg, self.world, self.net = cfg, world, net
        self.model = net.model
        self.run_dir = Path(cfg.out).expanduser()
        self.train_ds, self.val_ds = train_ds, val_ds
        self.loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_ds.labels) if cfg.balance == "loss" else None)
        self.extra = {  # the checkpoint's training metadata
            "corpus_paths": data.corpus_paths, "split": data.split.name, "split_method": cfg.split,
            "fold": cfg.fold, "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.split.test),
            "imagenet_weights": str(net.imagenet) if net.imagenet else None, "config": asdict(cfg),
            # "image": features came from the seed's pictures (seed_mfcc then means clip(MFCC, 0, 255); see dataset)
            "feature_source": _feature_source(data.train), "processes": world.size}
        if state is not None:  # a resumed run loads no ImageNet file: record the one the run was started with
            self.extra["imagenet_weights"] = cfg.weights
        self.state = state  # the interrupted run's state.pt, until the stage it belongs to has resumed from it
        self.best_val = state["best_val"] if state else math.inf
        self.done = state["epoch"] + 1 if state else 0  # epochs finished
        if state:
            self.model.load_state_dict(state["model"])

    def loader(self, ds: ClipDataset | TensorDataset, epoch: int, alone: bool = False) -> DataLoader:
        """This rank's batches of ``epoch`` (``alone``: whole batches, as one process)."""
        rank, size = (0, 1) if alone else (self.world.rank, self.world.size)
        cfg = self.cfg
        return epoch_loader(ds, cfg.batch_size, epoch, cfg.seed * 1000, cfg.balance == "sampler", rank, size)

    def end_epoch(self, entry: EpochLog, optimizer, scheduler) -> None:
        """Keep the best checkpoint (``model.pt``), append the log line, save ``state.pt`` (rank 0 writes)."""
        world, run_dir = self.world, self.run_dir
        if entry.val_loss < self.best_val or (world.is_main and not (run_dir / "model.pt").exists()):
            self.best_val = min(self.best_val, entry.val_loss)
            entry.best = True
            if world.is_main:
                save_checkpoint(run_dir / "model.pt", self.model, self.net.model_config, self.net.feature_config,
                                LABELS, extra={**self.extra, "epoch": entry.epoch, "stage": entry.stage,
                                               "val_loss": entry.val_loss, "val_metrics": entry.val})
        if not world.is_main:
            return
        with (run_dir / "log.jsonl").open("a") as f:
            f.write(json.dumps(asdict(entry)) + "\n")
        save_state(run_dir, self.model, optimizer, scheduler, entry.epoch, entry.stage, self.best_val)
        log.info("epoch %d (%s): train loss %.4f, val loss %.4f, val acc %.4f%s", entry.epoch, entry.stage,
                 entry.train_loss, entry.val_loss, entry.val.get("accuracy", float("nan")),
                 " (best)" if entry.best else "")

    def run_epochs(self, stage: str, last: int, optimizer, scheduler, channels_last: bool, desc: str = "epoch",
                   suffix: str = "") -> None:
        """Whole-network epochs ``done .. last - 1``: train, validate, end the epoch."""
        cfg, model = self.cfg, self.model
        net = distributed.wrap_ddp(model)  # after (un)freezing: DDP syncs the parameters that train now
        for epoch in range(self.done, last):
            t0 = time.perf_counter()
            self.train_ds.set_epoch(epoch)
            seed_epoch(cfg.seed, epoch, self.world.rank)
            train_loss = train_epoch(net, self.loader(self.train_ds, epoch), optimizer, scheduler, self.loss_fn,
                                     cfg.bf16, channels_last, f"{desc} {epoch + 1}/{last}{suffix}")
            distributed.average_buffers(model)
            val_loss, val = validate(model, self.val_ds, self.loss_fn, cfg.bf16, channels_last, cfg.batch_size)
            self.end_epoch(EpochLog(stage, epoch, train_loss, val_loss, val, time.perf_counter() - t0), optimizer,
                           scheduler)


# --- the stages ------------------------------------------------------------------------------------------------
def _train_one_cycle(run: _Run) -> None:
    """SmallCNN and the GE2E head: ``epochs`` one-cycle epochs of the whole network."""
    cfg = run.cfg
    epochs = cfg.resolved_epochs()
    optimizer = adamw([p for p in run.model.parameters()], cfg.weight_decay)
    scheduler = one_cycle(optimizer, cfg.resolved_lr(), epochs * len(run.loader(run.train_ds, 0)))
    _restore(run.state, optimizer, scheduler)
    run.run_epochs("train", epochs, optimizer, scheduler, False)


def _train_head(run: _Run) -> None:
    """The seed's first stage: ``head_epochs`` one-cycle epochs of the head, the body frozen (skipped when a
    resumed run is past it)."""
    cfg, model = run.cfg, run.model
    if run.done >= cfg.head_epochs:
        return
    t0 = time.perf_counter()
    freeze_body(model, True)
    if cfg.cache_body:
        _train_head_on_body_features(run, t0)
    else:
        optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg.weight_decay)
        scheduler = one_cycle(optimizer, cfg.resolved_lr(), cfg.head_epochs * len(run.loader(run.train_ds, 0)))
        _restore(run.state, optimizer, scheduler)
        run.run_epochs("head", cfg.head_epochs, optimizer, scheduler, cfg.channels_last, desc="head epoch")
    run.done = cfg.head_epochs
    run.state = None  # the optimiser state above belongs to the head stage


def _train_head_on_body_features(run: _Run, t0: float) -> None:
    """The head stage on the frozen body's pooled features, computed once (see the module docstring)."""
    cfg, model, world, head_epochs = run.cfg, run.model, run.world, run.cfg.head_epochs
    for p in model.body.parameters():  # eval-mode BN: nothing in the body trains (see module doc)
        p.requires_grad_(False)
    train_feats, val_feats = frozen_body_features(  # BatchNorm calibration (random bodies) on whole batches
        model, run.run_dir / "body_features.pt", run.train_ds, run.val_ds,
        lambda: run.loader(run.train_ds, 0, alone=True), cfg, run.net.imagenet, world)
    log.info("body features cached in %.0f s", time.perf_counter() - t0)
    head = model.head[1:]  # the head after its (deterministic) concat pooling
    net = distributed.wrap_ddp(head)
    optimizer = adamw(list(head.parameters()), cfg.weight_decay)
    scheduler = one_cycle(optimizer, cfg.resolved_lr(), head_epochs * len(run.loader(train_feats, 0)))
    _restore(run.state, optimizer, scheduler)
    first = run.done
    for epoch in range(first, head_epochs):
        t1 = time.perf_counter()
        seed_epoch(cfg.seed, epoch, world.rank)
        model.body.eval()
        train_loss = train_epoch(net, run.loader(train_feats, epoch), optimizer, scheduler, run.loss_fn, False,
                                 False, f"head epoch {epoch + 1}/{head_epochs}")
        distributed.average_buffers(head)
        val_loss, val = validate(head, val_feats, run.loss_fn, False, False, 512)
        seconds = time.perf_counter() - t1 + (t1 - t0 if epoch == first else 0)  # the first includes the features
        run.end_epoch(EpochLog("head", epoch, train_loss, val_loss, val, seconds), optimizer, scheduler)


def _train_unfrozen(run: _Run) -> None:
    """The seed's second stage: ``epochs`` one-cycle epochs of the whole network, learning rates rising from
    ``finetune_lr / 10`` (early layers) to ``finetune_lr`` (head)."""
    cfg, model = run.cfg, run.model
    freeze_body(model, False)
    groups = param_groups(model)
    lrs = discriminative_lrs(cfg.finetune_lr, len(groups))
    optimizer = adamw([{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)], cfg.weight_decay)
    full_epochs = cfg.resolved_epochs()
    scheduler = one_cycle(optimizer, lrs, full_epochs * len(run.loader(run.train_ds, 0)))
    state = run.state
    _restore(state if state and state["stage"] == "full" else None, optimizer, scheduler)
    run.run_epochs("full", cfg.head_epochs + full_epochs, optimizer, scheduler, cfg.channels_last,
                   suffix=" (unfrozen)")


# --- small helpers ----------------------------------------------------------------------------------------
def feature_config_for(kind: str) -> dict:
    """The feature description of a model input kind (features.feature_config_dict with default settings)."""
    if kind in ("seed_mfcc", "seed_image"):
        return feature_config_dict(kind, SeedMfccConfig())
    if kind == "log_mel":
        return feature_config_dict(kind, LogMelConfig())
    return feature_config_dict(kind)


def model_config_for(cfg: TrainConfig, feature_config: dict) -> ModelConfig:
    if cfg.is_resnet:
        return ModelConfig(arch=cfg.arch)
    if cfg.arch == "ge2e_head":
        return ModelConfig(arch="ge2e_head", in_rows=256)  # resemblyzer's GE2E embedding size
    rows = feature_config.get("n_mfcc") if cfg.features == "seed_mfcc" else feature_config.get("n_mels")
    return ModelConfig(arch="small_cnn", in_rows=int(rows), width=cfg.width)


def stratified_subset(clips: list[Clip], n: int | None, seed: int) -> list[Clip]:
    """A seeded random subset of ``n`` clips keeping the gender proportions (all clips when n is None or more)."""
    if n is None or n >= len(clips):
        return clips
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in range(len(LABELS)):
        idx = [i for i, c in enumerate(clips) if c.label == label]
        take = int(round(n * len(idx) / len(clips)))
        keep += list(rng.permutation(idx)[:take])
    return [clips[i] for i in sorted(keep)]


def load_clips(corpus_paths: list[str | Path]) -> list[Clip]:
    """The clips of every corpus (corpora.load_corpus each); names must be distinct."""
    if not corpus_paths:
        raise VoiceGenderError("no corpus given")
    clips: list[Clip] = []
    names = set()
    for path in corpus_paths:
        corpus = load_corpus(path)
        if corpus.name in names:
            raise VoiceGenderError(f"{path}: two corpora are named {corpus.name!r}; speakers would be merged")
        names.add(corpus.name)
        clips += corpus.clips
    return clips


def _restore(state: dict | None, optimizer, scheduler) -> None:
    """Resume the optimiser and lr schedule of an interrupted run (nothing for a fresh one)."""
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])


def _feature_source(clips: list[Clip]) -> str:
    kinds = {is_image(c) for c in clips}
    return "mixed" if len(kinds) > 1 else ("image" if kinds == {True} else "audio")
