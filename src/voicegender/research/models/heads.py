"""Classification heads: fastai's concat-pooling head (the seed's) and the MLP over a speaker embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: global max and global average, concatenated (max first) → ``(B, 2C, 1, 1)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], dim=1)


def _fastai_bn1d(n: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(n)  # fastai's BatchNorm(): weight 1, bias 1e-3
    nn.init.ones_(bn.weight)
    nn.init.constant_(bn.bias, 1e-3)
    return bn


def create_head(nf: int, n_classes: int, hidden: int = 512, ps: float = 0.5) -> nn.Sequential:
    """fastai's ``create_head`` (concat pooling, first BN on, no final BN, ``lin_ftrs=[hidden]``).

    Layers: AdaptiveConcatPool2d → Flatten → BatchNorm1d(2nf) → Dropout(ps/2) → Linear(2nf, hidden, no bias) →
    ReLU → BatchNorm1d(hidden) → Dropout(ps) → Linear(hidden, n_classes, no bias). Linear weights are
    Kaiming-normal initialised, as fastai's ``create_cnn_model`` does for the head.

    Parameters
    ----------
    nf : int
        Channels of the body's last feature map (512 for ResNet-34, 2048 for ResNet-50).
    n_classes : int
        Number of outputs (logits).
    hidden : int
        Width of the hidden linear layer.
    ps : float
        Dropout of the last layer; the first dropout is ``ps / 2`` (fastai's rule).
    """
    head = nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.Flatten(),
        _fastai_bn1d(2 * nf),
        nn.Dropout(ps / 2),
        nn.Linear(2 * nf, hidden, bias=False),
        nn.ReLU(inplace=True),
        _fastai_bn1d(hidden),
        nn.Dropout(ps),
        nn.Linear(hidden, n_classes, bias=False),
    )
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
    return head


class EmbeddingHead(nn.Module):
    """A small MLP over a fixed-size embedding (e.g. resemblyzer's 256-d GE2E vector): ``(B, D)`` → logits.

    BatchNorm (learned standardisation of each dimension) → Linear(D, hidden) → ReLU → Dropout →
    Linear(hidden, n_classes). Used by the shipped default model (see ``voicegender.voice.default_model``).
    """

    def __init__(self, in_features: int = 256, hidden: int = 64, n_classes: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_features = in_features
        self.input_norm = nn.BatchNorm1d(in_features)
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 2 or x.shape[1] != self.in_features):
            raise ValueError(f"EmbeddingHead expects input (batch, {self.in_features}); got {tuple(x.shape)}")
        return self.head(self.body(self.input_norm(x)))
