"""``ModelConfig`` (everything needed to rebuild a network, stored in checkpoints) and :func:`build_model`, the one
way to construct a network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from .heads import EmbeddingHead
from .resnet import SeedResNet
from .small_cnn import SmallCNN

ARCHS = ("resnet34", "resnet50", "small_cnn", "ge2e_head")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network (stored in checkpoints as a plain dict)."""

    arch: str = "resnet34"  # "resnet34" | "resnet50" (SeedResNet on 224×224 images) | "small_cnn" | "ge2e_head"
    n_classes: int = 2  # number of output logits (female, male)
    in_rows: int = 64  # small_cnn: feature rows F (12 for MFCC, 64 for log-mel); ge2e_head: embedding size
    width: int = 16  # small_cnn only: channels of the first stage (later stages: ×2, ×4, ×8)
    dropout: float | None = None  # final dropout; None → 0.5 for resnets (fastai ps), 0.3 for small_cnn
    hidden: int = 512  # resnets and ge2e_head: width of the head's hidden linear layer (fastai lin_ftrs)
    normalize: bool = True  # resnets only: apply ImageNet mean/std inside forward (callers pass 0…1 images)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of {', '.join(ARCHS)}")
        if self.n_classes < 1 or self.in_rows < 1 or self.width < 1 or self.hidden < 1:
            raise ValueError(f"ModelConfig sizes must be positive: {self}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from :func:`dataclasses.asdict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**d)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build a randomly initialised network from a config.

    Parameters
    ----------
    cfg : ModelConfig
        Architecture and sizes.

    Returns
    -------
    nn.Module
        A :class:`SeedResNet` for ``resnet34``/``resnet50`` (no ImageNet weights: see
        :func:`load_imagenet_weights`), a :class:`SmallCNN` for ``small_cnn``.
    """
    if cfg.arch == "ge2e_head":
        return EmbeddingHead(
            in_features=cfg.in_rows,
            hidden=cfg.hidden,
            n_classes=cfg.n_classes,
            dropout=0.2 if cfg.dropout is None else cfg.dropout,
        )
    if cfg.arch == "small_cnn":
        return SmallCNN(
            in_rows=cfg.in_rows,
            n_classes=cfg.n_classes,
            width=cfg.width,
            dropout=0.3 if cfg.dropout is None else cfg.dropout,
        )
    return SeedResNet(
        cfg.arch,
        n_classes=cfg.n_classes,
        hidden=cfg.hidden,
        dropout=0.5 if cfg.dropout is None else cfg.dropout,
        normalize=cfg.normalize,
    )
