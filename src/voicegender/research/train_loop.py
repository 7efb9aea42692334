"""The mechanics of training epochs, the same in one process and under DDP: samplers that split every global batch
over the ranks, one training pass, validation scored in shares and gathered, the optimiser and its one-cycle
schedule, and the frozen body's pooled features for the seed's head stage. :mod:`voicegender.research.train` puts
them in
order (see its docstring for the recipes and the DDP arithmetic).
"""

from __future__ import annotations

import logging
import random
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from ..corpora import LABELS
from ..fileio import atomic_write
from ..metrics import compute_metrics
from ..progress import progress
from . import distributed
from .dataset import ClipDataset, pad_collate
from .evaluate import predict_dataset
from .train_config import TrainConfig

log = logging.getLogger(__name__)


# --- seeds, loss weights, optimiser -------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch's global generator (dropout) for one epoch of one rank: a resumed run draws what the
    uninterrupted run drew, and ranks draw different masks."""
    torch.manual_seed(int(np.random.SeedSequence((seed, epoch, rank)).generate_state(1)[0]))


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


# --- batches: one permutation per epoch, split over the ranks ---------------------------------------------
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


def _collate(ds):
    return pad_collate if isinstance(ds, ClipDataset) else None



# --- one training pass, validation ------------------------------------------------------------------------
def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
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


def shard_indices(n: int) -> np.ndarray:
    """This rank's items of a dataset of ``n`` for work split over the ranks: r, r + W, r + 2W, ..."""
    world = distributed.current()
    return np.arange(world.rank, n, world.size)


def subset(dataset: ClipDataset | TensorDataset, indices: np.ndarray) -> ClipDataset | TensorDataset:
    if isinstance(dataset, ClipDataset):
        return dataset.subset(indices)
    return TensorDataset(*(t[torch.as_tensor(indices)] for t in dataset.tensors))


def gather_rows(indices: np.ndarray, n: int, parts: tuple) -> tuple:
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


def validate(model: nn.Module, dataset: ClipDataset | TensorDataset, loss_fn: nn.Module, bf16: bool,
              channels_last: bool, batch_size: int) -> tuple[float, dict]:
    """Validation loss (class-weighted mean) and metrics; under DDP each rank scores its share and all ranks
    get the same numbers."""
    idx = shard_indices(len(dataset))
    part = subset(dataset, idx) if distributed.is_initialized() else dataset
    p_female, labels, losses = predict_dataset(model, part, batch_size=batch_size, bf16=bf16,
                                               channels_last=channels_last, desc="validating")
    p_female, labels, losses = gather_rows(idx, len(dataset), (p_female, labels, losses))
    weights = loss_fn.weight.numpy() if getattr(loss_fn, "weight", None) is not None else np.ones(len(LABELS))
    w = weights[labels]
    val_loss = float((losses * w).sum() / w.sum()) if len(labels) else float("nan")
    return val_loss, compute_metrics(labels, p_female).to_dict()


# --- the frozen body (the seed's head stage) ----------------------------------------------------------------
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


def frozen_body_features(model: nn.Module, cached: Path, train_ds: ClipDataset, val_ds: ClipDataset,
                         calibration_loader, cfg: TrainConfig, imagenet,
                         world: distributed.World) -> tuple[TensorDataset, TensorDataset]:
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
        idx = shard_indices(len(ds))
        part = subset(ds, idx) if world.size > 1 else ds
        pooled = pooled_body_features(model, part, cfg.batch_size, bf16, channels_last, f"body features ({name})")
        feats.append(TensorDataset(*gather_rows(idx, len(ds), pooled.tensors)))
    if world.is_main:
        payload = {"body": model.body.state_dict(), "train_x": feats[0].tensors[0], "train_y": feats[0].tensors[1],
                   "val_x": feats[1].tensors[0], "val_y": feats[1].tensors[1]}
        atomic_write(cached, lambda f: torch.save(payload, f))
    return feats[0], feats[1]
