"""Training: ``train(cfg, corpus_paths) -> run_dir``, with the seed's recipe for the ResNets and a fast one for
SmallCNN.

A run folder holds everything needed to trust and reuse a run::

    config.json                     the resolved TrainConfig (+ the corpus paths)
    train.csv / val.csv / test.csv  the clips of each part (corpora.write_manifest): the record of the data
    log.jsonl                       one JSON line per epoch (stage, lr, train/val loss, val metrics, seconds)
    model.pt                        best checkpoint by validation loss (models.save_checkpoint; extra = corpus,
                                    split, metrics, config)
    state.pt                        last finished epoch (model + optimiser + scheduler) for resuming

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
DistributedDataParallel over gloo (:mod:`voicegender.distributed`). ``batch_size`` stays the **global** batch:
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
import random
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from . import distributed
from .corpora import LABELS, Clip, load_corpus, write_manifest
from .dataset import Augment, ClipDataset, FeatureAugment, is_image, pad_collate, precompute
from .errors import VoiceGenderError
from .evaluate import predict_dataset
from .features import LogMelConfig, SeedMfccConfig, feature_config_dict
from .fileio import atomic_write
from .metrics import compute_metrics
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
from .progress import progress, set_progress
from .splits import make_split, n_folds
from .train_config import TrainConfig

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


# --- small helpers ----------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch's global generator (dropout) for one epoch of one rank: a resumed run draws what the
    uninterrupted run drew, and ranks draw different masks."""
    torch.manual_seed(int(np.random.SeedSequence((seed, epoch, rank)).generate_state(1)[0]))


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


def class_weights(labels: np.ndarray, n_classes: int = len(LABELS)) -> torch.Tensor:
    """Inverse-frequency weights n / (classes · count), so each class contributes equally to the loss."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def one_cycle(optimizer: torch.optim.Optimizer, max_lrs: float | list[float], steps: int
              ) -> torch.optim.lr_scheduler.OneCycleLR:
    """fastai's fit_one_cycle schedule: 25 % warm-up from max/25, cosine down to max/(25·1e5), β1 0.95→0.85.

    At least 8 steps (torch divides by the warm-up length); tiny runs stop before the end of the cycle.
    """
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=max(8, steps), pct_start=0.25,
                                               div_factor=25.0, final_div_factor=1e5, anneal_strategy="cos",
                                               cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)


def adamw(params: list, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, betas=(0.9, 0.99), eps=1e-5, weight_decay=weight_decay)  # fastai's Adam


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


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


# --- training loops ---------------------------------------------------------------------------------------
def _train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, loss_fn: nn.Module, bf16: bool,
                 channels_last: bool, desc: str) -> float:
    """One pass over ``loader``; returns the mean training loss per clip of the whole (global) epoch.

    The loss of a step is the class-weighted mean over the global batch: under DDP each rank sums its part's
    weighted losses and divides by the weight sum of all parts (all-reduced), times the world size because DDP
    averages gradients over the ranks. The gradient is then the single-process one.
    """
    model.train()
    weight = getattr(loss_fn, "weight", None)
    world = distributed.current().size
    total, count = 0.0, 0.0
    bar = progress(loader, desc=desc, unit="batch")
    for x, y in bar:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            logits = model(x)
        w = weight[y] if weight is not None else torch.ones(len(y))
        weighted = (F.cross_entropy(logits.float(), y, reduction="none") * w).sum()
        # global weight sum, weighted loss sum and clip count of this step (over the ranks)
        sums = distributed.all_reduce_sum(torch.stack([w.sum(), weighted.detach(), torch.tensor(float(len(y)))]))
        loss = weighted * (world / sums[0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(sums[1] / sums[0]) * float(sums[2])
        count += float(sums[2])
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1.0)


def _shard_indices(n: int) -> np.ndarray:
    """This rank's items of a dataset of ``n`` for work split over the ranks: r, r + W, r + 2W, ..."""
    world = distributed.current()
    return np.arange(world.rank, n, world.size)


def _subset(dataset: ClipDataset | TensorDataset, indices: np.ndarray) -> ClipDataset | TensorDataset:
    if isinstance(dataset, ClipDataset):
        return dataset.subset(indices)
    return TensorDataset(*(t[torch.as_tensor(indices)] for t in dataset.tensors))


def _gather_rows(indices: np.ndarray, n: int, parts: tuple) -> tuple:
    """Every rank's ``parts`` (arrays or tensors, one row per index of its ``indices``), put back in dataset
    order (``n`` rows). Without a process group: ``parts`` as they are."""
    if not distributed.is_initialized():
        return parts
    gathered = distributed.all_gather_object((indices, parts))
    out = []
    for k, first in enumerate(parts):
        full = np.zeros((n, *first.shape[1:]), dtype=np.asarray(first[:0]).dtype) if isinstance(first, np.ndarray) \
            else torch.zeros((n, *first.shape[1:]), dtype=first.dtype)
        for idx, rank_parts in gathered:
            full[torch.as_tensor(idx) if isinstance(full, torch.Tensor) else idx] = rank_parts[k]
        out.append(full)
    return tuple(out)


def _validate(model: nn.Module, dataset: ClipDataset | TensorDataset, loss_fn: nn.Module, bf16: bool,
              channels_last: bool, batch_size: int) -> tuple[float, dict]:
    """Validation loss (class-weighted mean) and metrics; under DDP each rank scores its share and all ranks
    get the same numbers."""
    idx = _shard_indices(len(dataset))
    part = _subset(dataset, idx) if distributed.is_initialized() else dataset
    p_female, labels, losses = predict_dataset(model, part, batch_size=batch_size, bf16=bf16,
                                               channels_last=channels_last, desc="validating")
    p_female, labels, losses = _gather_rows(idx, len(dataset), (p_female, labels, losses))
    weights = loss_fn.weight.numpy() if getattr(loss_fn, "weight", None) is not None else np.ones(len(LABELS))
    w = weights[labels]
    val_loss = float((losses * w).sum() / w.sum()) if len(labels) else float("nan")
    return val_loss, compute_metrics(labels, p_female).to_dict()


def epoch_loader(ds: ClipDataset | TensorDataset, batch_size: int, epoch: int, seed: int, balanced: bool = False,
                 rank: int = 0, world_size: int = 1) -> DataLoader:
    """Rank ``rank``'s shuffled batches of epoch ``epoch``: ``batch_size / world_size`` items of every global batch.

    The global order is one permutation (or, ``balanced``, one class-balanced draw) seeded ``seed + epoch``
    whatever the number of ranks, and rank r takes its items r, r + W, ...; so the union of the ranks' k-th
    batches is the single process's k-th batch. Incomplete last batches are dropped (unless there is only one).
    """
    labels = ds.labels if isinstance(ds, ClipDataset) else ds.tensors[1].numpy()
    if balanced:
        sampler = WeightedShardSampler(class_weights(labels).numpy()[labels], rank, world_size, seed)
    else:
        sampler = DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return DataLoader(ds, batch_size=batch_size // world_size, sampler=sampler, collate_fn=_collate(ds),
                      drop_last=len(labels) > batch_size)


class WeightedShardSampler(Sampler[int]):
    """Class-balanced sampling with replacement (``balance="sampler"``), split over the ranks.

    Every rank draws the same global sample (``torch.multinomial`` seeded ``seed + epoch``, what
    ``WeightedRandomSampler`` does with such a generator) and keeps items r, r + W, ... of it, as
    ``DistributedSampler`` does with a permutation.
    """

    def __init__(self, weights: np.ndarray, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        self.total = len(self.weights) - len(self.weights) % world_size  # equal shares: the tail is dropped

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, len(self.weights), True, generator=g).tolist()
        return iter(drawn[:self.total][self.rank::self.world_size])

    def __len__(self) -> int:
        return self.total // self.world_size


def body_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A SeedResNet's body on 0…1 images, with the ImageNet normalisation ``forward`` applies first."""
    if getattr(model, "normalize", False):
        x = (x - model.mean) / model.std
    return model.body(x)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, loader: DataLoader, batches: int, bf16: bool, channels_last: bool) -> None:
    """Re-estimate every body BatchNorm's running mean/var as the plain average over ``batches`` batches
    (forward only). Makes a randomly initialised, frozen body give well-scaled features in eval mode."""
    body = model.body
    bns = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    body.train()
    for i, (x, _) in enumerate(progress(loader, desc="calibrating BatchNorm", unit="batch", total=batches)):
        if i >= batches:
            break
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            body_forward(model, x)
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    body.eval()


@torch.no_grad()
def pooled_body_features(model: nn.Module, dataset: ClipDataset, batch_size: int, bf16: bool,
                         channels_last: bool, desc: str) -> TensorDataset:
    """Run the (frozen, eval-mode) body once and keep the head's concat-pooled input: (N, 2·C) float32."""
    model.eval()
    feats, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, y in progress(loader, desc=desc, unit="batch"):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            feats.append(model.head[0](body_forward(model, x)).flatten(1).float())
        labels.append(y)
    return TensorDataset(torch.cat(feats), torch.cat(labels))


# --- run folder ---------------------------------------------------------------------------------------------
def _save_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler, epoch: int,
                stage: str, best_val: float) -> None:
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
               "scheduler": scheduler.state_dict() if scheduler else None, "epoch": epoch, "stage": stage,
               "best_val": best_val}
    atomic_write(run_dir / "state.pt", lambda f: torch.save(payload, f))


def _trim_log(log_path: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs up to ``last_epoch``: a run killed after logging an epoch but before saving
    its state runs that epoch again, and a run killed while writing leaves a torn last line."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= last_epoch:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            log.warning("%s: dropping an unreadable line (interrupted write)", log_path)
    atomic_write(log_path, lambda f: f.write("".join(kept).encode()))


def _same_config(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str]) -> bool:
    """Whether ``run_dir`` was made by a resumable run with the same settings (threads and paths aside)."""
    config_path = run_dir / "config.json"
    if not (cfg.resume and config_path.is_file()):
        return False
    saved = json.loads(config_path.read_text())
    current = {**asdict(cfg), "corpus_paths": corpus_paths}
    ignore = {"resume", "threads", "out", "processes"}
    return {k: v for k, v in saved.items() if k not in ignore} == {k: v for k, v in current.items() if k not in ignore}


def _load_state(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str]) -> dict | None:
    if not (cfg.resume and (run_dir / "state.pt").is_file()):
        return None
    if not _same_config(run_dir, cfg, corpus_paths):
        raise VoiceGenderError(f"{run_dir}: holds an interrupted run with a different config; "
                               "choose another --out or delete it")
    log.info("resuming %s", run_dir)
    return torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)


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


def _train(cfg: TrainConfig, corpus_paths: list[str | Path], world: distributed.World) -> Path:
    if cfg.batch_size % world.size:
        raise VoiceGenderError(f"--batch-size {cfg.batch_size} is the global batch: it must be a multiple of the "
                               f"{world.size} processes")
    threads = max(1, cfg.threads)
    if world.local_size > 1:  # processes on one machine share its cores
        threads = min(threads, max(1, (os.cpu_count() or 1) // world.local_size))
    torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    run_dir = Path(cfg.out).expanduser()
    corpus_paths = [str(Path(p)) for p in corpus_paths]
    clips = load_clips(corpus_paths)
    split = make_split(clips, cfg.split, cfg.fold, cfg.k, cfg.seed)
    train_clips = stratified_subset(split.train, cfg.max_train_clips, cfg.seed)
    val_clips = stratified_subset(split.val, cfg.max_val_clips, cfg.seed + 1)
    if not train_clips or not val_clips:
        raise VoiceGenderError(f"split {split.name}: {len(train_clips)} training and {len(val_clips)} validation "
                               "clips; need both")
    if len({c.label for c in train_clips}) < 2:
        raise VoiceGenderError(f"split {split.name}: the training part has only one gender")
    state, problem = None, None
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            state = _load_state(run_dir, cfg, corpus_paths)
        except VoiceGenderError as e:
            problem = str(e)
        if problem is None:
            _prepare_run_dir(run_dir, cfg, corpus_paths, state, world.size, (train_clips, val_clips, split.test))
    # the other ranks (maybe on machines without this folder) get rank 0's verdict and state
    state, problem = distributed.broadcast_object((state, problem))
    if problem is not None:
        raise VoiceGenderError(problem)
    log.info("%s: %d train / %d val / %d test clips", split.name, len(train_clips), len(val_clips), len(split.test))

    fc = feature_config_for(cfg.features)
    if cfg.features == "seed_mfcc" and _feature_source(train_clips) == "image":
        fc["clip_to_image"] = True  # audio given to this model later must be clipped as the pictures were
    mc = model_config_for(cfg, fc)
    model = build_model(mc)
    imagenet = None
    if cfg.is_resnet and state is None:
        imagenet = resolve_imagenet_weights(cfg.arch, cfg.weights)
        if imagenet is not None:
            load_imagenet_weights(model, imagenet)
    if cfg.is_resnet and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = cfg.bf16
    channels_last = cfg.channels_last and cfg.is_resnet

    crop = int(round(cfg.crop_seconds / fc.get("hop_seconds", 0.01))) + 1  # frames of a centred STFT
    augment = Augment() if cfg.augment else None
    feature_augment = FeatureAugment() if cfg.augment and not cfg.is_resnet and cfg.features != "ge2e" else None
    if world.size > 1 and cfg.cache_dir is not None:
        # each rank computes its share of the features into the shared cache, then all read everyone's
        for part, part_augment, desc in ((train_clips, augment, "train"), (val_clips, None, "val")):
            if ClipDataset.precomputes(part, fc["kind"], part_augment):
                precompute(part[world.rank::world.size], fc, cfg.cache_dir, desc=f"{desc} features (share)")
        distributed.barrier()
    train_ds = ClipDataset(train_clips, fc, train=True, augment=augment, feature_augment=feature_augment,
                           crop_frames=crop if cfg.features == "log_mel" else None, cache_dir=cfg.cache_dir,
                           seed=cfg.seed, desc="train features")
    val_ds = ClipDataset(val_clips, fc, train=False, cache_dir=cfg.cache_dir, desc="val features")
    weights = class_weights(train_ds.labels) if cfg.balance == "loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights)

    def loader(ds, epoch: int, alone: bool = False) -> DataLoader:
        rank, size = (0, 1) if alone else (world.rank, world.size)  # alone: whole batches, as one process
        return epoch_loader(ds, cfg.batch_size, epoch, cfg.seed * 1000, cfg.balance == "sampler", rank, size)

    extra = {"corpus_paths": corpus_paths, "split": split.name, "split_method": cfg.split, "fold": cfg.fold,
             "n_train": len(train_clips), "n_val": len(val_clips), "n_test": len(split.test),
             "imagenet_weights": str(imagenet) if imagenet else None, "config": asdict(cfg),
             # "image": features came from the seed's pictures (seed_mfcc then means clip(MFCC, 0, 255); see dataset)
             "feature_source": _feature_source(train_clips), "processes": world.size}
    if state is not None:  # a resumed run loads no ImageNet file: record the one the run was started with
        extra["imagenet_weights"] = cfg.weights
    best_val = state["best_val"] if state else math.inf
    done = state["epoch"] + 1 if state else 0
    if state:
        model.load_state_dict(state["model"])
    log_path = run_dir / "log.jsonl"

    def finish_epoch(entry: EpochLog, optimizer, scheduler) -> None:
        nonlocal best_val
        if entry.val_loss < best_val or (world.is_main and not (run_dir / "model.pt").exists()):
            best_val = min(best_val, entry.val_loss)
            entry.best = True
            if world.is_main:
                save_checkpoint(run_dir / "model.pt", model, mc, fc, LABELS,
                                extra={**extra, "epoch": entry.epoch, "stage": entry.stage,
                                       "val_loss": entry.val_loss, "val_metrics": entry.val})
        if not world.is_main:
            return
        with log_path.open("a") as f:
            f.write(json.dumps(asdict(entry)) + "\n")
        _save_state(run_dir, model, optimizer, scheduler, entry.epoch, entry.stage, best_val)
        log.info("epoch %d (%s): train loss %.4f, val loss %.4f, val acc %.4f%s", entry.epoch, entry.stage,
                 entry.train_loss, entry.val_loss, entry.val.get("accuracy", float("nan")),
                 " (best)" if entry.best else "")

    def run_epochs(stage: str, last: int, optimizer, scheduler, layout_channels_last: bool, desc: str = "epoch",
                   suffix: str = "") -> None:
        """Whole-network epochs ``done .. last - 1``: train, validate, log, keep the best checkpoint."""
        net = distributed.wrap_ddp(model)  # after (un)freezing: DDP syncs the parameters that train now
        for epoch in range(done, last):
            t0 = time.perf_counter()
            train_ds.set_epoch(epoch)
            seed_epoch(cfg.seed, epoch, world.rank)
            train_loss = _train_epoch(net, loader(train_ds, epoch), optimizer, scheduler, loss_fn, bf16,
                                      layout_channels_last, f"{desc} {epoch + 1}/{last}{suffix}")
            distributed.average_buffers(model)
            val_loss, val = _validate(model, val_ds, loss_fn, bf16, layout_channels_last, cfg.batch_size)
            finish_epoch(EpochLog(stage, epoch, train_loss, val_loss, val, time.perf_counter() - t0), optimizer,
                         scheduler)

    if not cfg.is_resnet:
        epochs = cfg.resolved_epochs()
        optimizer = adamw([p for p in model.parameters()], cfg.weight_decay)
        scheduler = one_cycle(optimizer, cfg.resolved_lr(), epochs * len(loader(train_ds, 0)))
        _restore(state, optimizer, scheduler)
        run_epochs("train", epochs, optimizer, scheduler, False)
        return run_dir

    # --- the seed's recipe: frozen-body head stage, then the unfrozen network -------------------------------
    head_epochs, full_epochs = cfg.head_epochs, cfg.resolved_epochs()
    if done < head_epochs:
        t0 = time.perf_counter()
        freeze_body(model, True)
        if cfg.cache_body:
            for p in model.body.parameters():  # eval-mode BN: nothing in the body trains (see module doc)
                p.requires_grad_(False)
            train_feats, val_feats = _body_features(model, run_dir / "body_features.pt", train_ds, val_ds,
                                                    lambda: loader(train_ds, 0, alone=True), cfg, imagenet, world)
            log.info("body features cached in %.0f s", time.perf_counter() - t0)
            head = model.head[1:]  # the head after its (deterministic) concat pooling
            net = distributed.wrap_ddp(head)
            optimizer = adamw(list(head.parameters()), cfg.weight_decay)
            scheduler = one_cycle(optimizer, cfg.resolved_lr(), head_epochs * len(loader(train_feats, 0)))
            _restore(state, optimizer, scheduler)
            for epoch in range(done, head_epochs):
                t1 = time.perf_counter()
                seed_epoch(cfg.seed, epoch, world.rank)
                model.body.eval()
                train_loss = _train_epoch(net, loader(train_feats, epoch), optimizer, scheduler, loss_fn, False,
                                          False, f"head epoch {epoch + 1}/{head_epochs}")
                distributed.average_buffers(head)
                val_loss, val = _validate(head, val_feats, loss_fn, False, False, 512)
                finish_epoch(EpochLog("head", epoch, train_loss, val_loss, val,
                                      time.perf_counter() - t1 + (t1 - t0 if epoch == done else 0)), optimizer,
                             scheduler)
            del net
        else:
            optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg.weight_decay)
            scheduler = one_cycle(optimizer, cfg.resolved_lr(), head_epochs * len(loader(train_ds, 0)))
            _restore(state, optimizer, scheduler)
            run_epochs("head", head_epochs, optimizer, scheduler, channels_last, desc="head epoch")
        done = max(done, head_epochs)
        state = None  # the optimiser state above belongs to the head stage

    freeze_body(model, False)
    groups = param_groups(model)
    lrs = discriminative_lrs(cfg.finetune_lr, len(groups))
    optimizer = adamw([{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)], cfg.weight_decay)
    scheduler = one_cycle(optimizer, lrs, full_epochs * len(loader(train_ds, 0)))
    _restore(state if state and state["stage"] == "full" else None, optimizer, scheduler)
    run_epochs("full", head_epochs + full_epochs, optimizer, scheduler, channels_last, " (unfrozen)")
    return run_dir


def _prepare_run_dir(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str], state: dict | None, processes: int,
                     parts: tuple[list[Clip], list[Clip], list[Clip]]) -> None:
    """Rank 0: clear what an earlier run left (a fresh run) or trim the log to the resumed state, then write the
    config and the manifests of the three parts."""
    if state is None:  # a fresh run: forget what an earlier run left here
        for stale in ("state.pt", "body_features.pt", "log.jsonl", "model.pt"):
            if stale != "body_features.pt" or not _same_config(run_dir, cfg, corpus_paths):
                (run_dir / stale).unlink(missing_ok=True)
    else:
        _trim_log(run_dir / "log.jsonl", state["epoch"])
    config = json.dumps({**asdict(cfg), "corpus_paths": corpus_paths, "processes": processes}, indent=2)
    atomic_write(run_dir / "config.json", lambda f: f.write(config.encode()))
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        write_manifest(part, run_dir / f"{name}.csv")


def _body_features(model: nn.Module, cached: Path, train_ds: ClipDataset, val_ds: ClipDataset, calibration_loader,
                   cfg: TrainConfig, imagenet, world: distributed.World) -> tuple[TensorDataset, TensorDataset]:
    """The frozen body's pooled features of the train and validation parts, computed once per run folder.

    Rank 0 re-estimates the BatchNorm statistics (random bodies) on whole batches and sends the body to the
    others; each rank then pools its share of the clips and all ranks gather the lot. Rank 0 keeps it in
    ``cached`` (atomically: a run killed while writing recomputes it) for resumed runs.
    """
    saved = None
    if world.is_main and cached.is_file():
        try:
            saved = torch.load(cached, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            log.warning("%s: unreadable (%s); computing the body features again", cached, e)
    saved = distributed.broadcast_object(saved)
    if saved is not None:
        model.body.load_state_dict(saved["body"])  # the calibrated BN statistics the features came from
        return TensorDataset(saved["train_x"], saved["train_y"]), TensorDataset(saved["val_x"], saved["val_y"])
    bf16, channels_last = cfg.bf16, cfg.channels_last and cfg.is_resnet
    if imagenet is None and cfg.bn_calibration_batches > 0:
        if world.is_main:
            calibrate_batchnorm(model, calibration_loader(), cfg.bn_calibration_batches, bf16, channels_last)
        model.body.load_state_dict(distributed.broadcast_object(model.body.state_dict()))
    feats = []
    for ds, name in ((train_ds, "train"), (val_ds, "val")):
        idx = _shard_indices(len(ds))
        part = _subset(ds, idx) if world.size > 1 else ds
        pooled = pooled_body_features(model, part, cfg.batch_size, bf16, channels_last, f"body features ({name})")
        feats.append(TensorDataset(*_gather_rows(idx, len(ds), pooled.tensors)))
    if world.is_main:
        payload = {"body": model.body.state_dict(), "train_x": feats[0].tensors[0], "train_y": feats[0].tensors[1],
                   "val_x": feats[1].tensors[0], "val_y": feats[1].tensors[1]}
        atomic_write(cached, lambda f: torch.save(payload, f))
    return feats[0], feats[1]


def _restore(state: dict | None, optimizer, scheduler) -> None:
    """Resume the optimiser and lr schedule of an interrupted run (nothing for a fresh one)."""
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])


def _feature_source(clips: list[Clip]) -> str:
    kinds = {is_image(c) for c in clips}
    return "mixed" if len(kinds) > 1 else ("image" if kinds == {True} else "audio")


def _collate(ds):
    return pad_collate if isinstance(ds, ClipDataset) else None


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
