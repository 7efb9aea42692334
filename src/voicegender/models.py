"""Network definitions, ImageNet weights, checkpoints and ONNX export.

Two families of models live here:

* :class:`SeedResNet` — the original system's model: a torchvision ResNet-34/50 trunk (defined here in plain
  torch with torchvision's exact parameter names, so torchvision's ImageNet ``.pth`` files load by name)
  followed by fastai's classification head. Input: ``(B, 3, 224, 224)`` images scaled to 0…1; the model
  applies the ImageNet mean/std normalisation itself (a non-persistent buffer step at the start of
  ``forward``), so callers never normalise.
* :class:`SmallCNN` — a small residual CNN (≈0.3 M parameters) over native-resolution features
  ``(B, 1, F, T)`` (F = 12 MFCC rows or 64 log-mel bands, any T ≥ ~50 frames) that trains on a couple of CPU
  cores in minutes and keeps enough frequency resolution in its last block for useful class-activation maps.

Both expose ``cam_layer`` (the last convolutional block, for Grad-CAM hooks) and ``cam_layers`` (every stage
by name, for finer maps). :func:`build_model` turns a :class:`ModelConfig` into a network, and
:func:`save_checkpoint` / :func:`load_checkpoint` are the only places trained weights are written and read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voicegender import __version__
from voicegender.errors import ModelError
from voicegender.fileio import atomic_write

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per-channel RGB mean of ImageNet, for images scaled to 0…1
IMAGENET_STD = (0.229, 0.224, 0.225)  # per-channel RGB standard deviation of ImageNet, same scale

ARCHS = ("resnet34", "resnet50", "small_cnn", "ge2e_head")

# torchvision's ImageNet checkpoints: file name (its 8 hex digits start the file's SHA-256) and URL.
IMAGENET_WEIGHTS: dict[str, tuple[str, str]] = {
    "resnet34": ("resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
    "resnet50": ("resnet50-11ad3fa6.pth", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"),
}
DEFAULT_WEIGHTS_DIR = Path("~/.cache/voicegender/weights")  # first place resolve_imagenet_weights looks
DOWNLOAD_TIMEOUT = 10.0  # seconds to wait for download.pytorch.org before giving up (offline machines)

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torchvision style: name-<sha256 prefix>.pth


# ----------------------------------------------------------------------------------------------------
# ResNet trunk with torchvision's module names
# ----------------------------------------------------------------------------------------------------


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's two-conv residual block (ResNet-18/34); same attribute names."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's 1x1-3x3-1x1 bottleneck block (ResNet-50, "v1.5": stride on the 3x3); same names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# arch -> (block type, blocks per stage), as in torchvision.models.resnet
RESNET_LAYERS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """A torchvision-compatible ResNet.

    Parameter and buffer names and shapes are exactly torchvision's (``conv1``, ``bn1``, ``layer1``…``layer4``
    with ``downsample.0/.1``, ``fc``), so ``torchvision`` ImageNet state dicts load by name.

    Parameters
    ----------
    arch : str
        ``"resnet34"`` or ``"resnet50"``.
    num_classes : int or None
        Size of the ``fc`` layer (1000 for ImageNet). ``None`` builds the trunk only (no ``avgpool``/``fc``);
        ``forward`` then returns the last feature map ``(B, C, H/32, W/32)``.
    """

    def __init__(self, arch: str = "resnet34", num_classes: int | None = 1000) -> None:
        super().__init__()
        if arch not in RESNET_LAYERS:
            raise ValueError(f"unknown ResNet arch {arch!r}; expected one of {sorted(RESNET_LAYERS)}")
        block, layers = RESNET_LAYERS[arch]
        self.arch = arch
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.num_features = 512 * block.expansion  # channels of the last feature map
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(self.num_features, num_classes)
        else:
            self.avgpool = None
            self.fc = None
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.fc is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet34(num_classes: int | None = 1000) -> ResNet:
    """torchvision-compatible ResNet-34 (``num_classes=None``: trunk only)."""
    return ResNet("resnet34", num_classes)


def resnet50(num_classes: int | None = 1000) -> ResNet:
    """torchvision-compatible ResNet-50 (``num_classes=None``: trunk only)."""
    return ResNet("resnet50", num_classes)


# ----------------------------------------------------------------------------------------------------
# fastai head and the seed model
# ----------------------------------------------------------------------------------------------------


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


class SeedResNet(nn.Module):
    """The original system's network: torchvision ResNet trunk + fastai head.

    Input: ``(B, 3, 224, 224)`` float images **scaled to 0…1** (an 8-bit image divided by 255). When
    ``normalize`` is true (the default) ``forward`` subtracts :data:`IMAGENET_MEAN` and divides by
    :data:`IMAGENET_STD` itself (non-persistent buffers, not in the state dict); with ``normalize=False``
    callers pass already-normalised images. Output: ``(B, n_classes)`` logits.

    Attributes
    ----------
    body : ResNet
        The trunk without ``avgpool``/``fc``; torchvision parameter names (``body.layer4.2.conv2.weight``…).
    head : nn.Sequential
        fastai's head (see :func:`create_head`).
    """

    def __init__(
        self,
        arch: str = "resnet34",
        n_classes: int = 2,
        hidden: int = 512,
        dropout: float = 0.5,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.normalize = normalize
        self.body = ResNet(arch, num_classes=None)
        self.head = create_head(self.body.num_features, n_classes, hidden=hidden, ps=dropout)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.head(self.body(x))

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolutional block (``body.layer4``: a 7×7 map for 224×224 input)."""
        return self.body.layer4

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Every residual stage by name (``layer1`` 56×56 … ``layer4`` 7×7 for 224×224 input)."""
        return {f"layer{i}": getattr(self.body, f"layer{i}") for i in range(1, 5)}

    def layer_groups(self) -> list[list[nn.Module]]:
        """fastai's three layer groups: body-early, body-late, head."""
        b = self.body
        return [[b.conv1, b.bn1, b.layer1, b.layer2], [b.layer3, b.layer4], [self.head]]


# ----------------------------------------------------------------------------------------------------
# SmallCNN: a small native-resolution residual network
# ----------------------------------------------------------------------------------------------------


class _ResBlock(nn.Module):
    """Two 3×3 convs with BN, a 1×1 projection shortcut when the shape changes (per-axis strides)."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if cin != cout or stride != (1, 1):
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


# (frequency, time) stride of the stem and of each stage. Time is halved on the stem and on three stages
# (T/32 overall: 4 columns for 100 frames; stage3 keeps T/16 for finer maps); frequency is halved on two
# stages only, so the last block keeps F/4 rows (3 of 12 MFCC rows, 16 of 64 mel bands) for class-activation
# maps. Measured on 2 cores: batch 64 x (1, 64, 100) forward ~25 ms at width 16 (~40 ms if stage4 kept T/16).
SMALL_CNN_STEM_STRIDE = (1, 2)
SMALL_CNN_STRIDES = ((2, 2), (1, 2), (2, 2), (1, 2))


class SmallCNN(nn.Module):
    """Fast residual CNN over native-resolution features.

    Input ``(B, 1, F, T)`` with ``F == in_rows`` (12 MFCC rows or 64 log-mel bands) and any ``T`` (≥ ~50
    frames recommended; any T ≥ 1 runs). The first layer is a per-row BatchNorm (a learned per-coefficient /
    per-band standardisation over the training set), so raw MFCCs or dB log-mels can be fed as they are. Then
    a 5×5 stem and four residual stages of ``width × (1, 2, 4, 8)`` channels (see :data:`SMALL_CNN_STRIDES`),
    global mean + max pooling over frequency and time, dropout and a linear layer → ``(B, n_classes)`` logits.

    Parameters
    ----------
    in_rows : int
        Feature rows F (12 for MFCC, 64 for log-mel).
    n_classes : int
        Number of outputs.
    width : int
        Channels of the stem and first stage (16 gives ≈0.3 M parameters).
    dropout : float
        Dropout before the final linear layer.
    """

    def __init__(self, in_rows: int = 64, n_classes: int = 2, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.in_rows = in_rows
        self.input_norm = nn.BatchNorm1d(in_rows)
        # 5×5 stem: as cheap as 3×3 here (a 1-channel 3×3 strided conv hits a slow CPU path, ~6× slower)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 5, stride=SMALL_CNN_STEM_STRIDE, padding=2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        for i, stride in enumerate(SMALL_CNN_STRIDES):
            setattr(self, f"stage{i + 1}", _ResBlock(chans[i], chans[i + 1], stride))
        self.num_features = chans[-1]
        self.head = nn.Sequential(
            AdaptiveConcatPool2d(),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * self.num_features, n_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """The last block's feature map ``(B, 8·width, ⌈F/4⌉, ≈T/32)``."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.in_rows):
            raise ValueError(f"SmallCNN expects input (batch, 1, {self.in_rows}, frames); got {tuple(x.shape)}")
        x = self.input_norm(x.squeeze(1)).unsqueeze(1)
        x = self.stem(x)
        return self.stage4(self.stage3(self.stage2(self.stage1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolutional block (``stage4``; keeps F/4 rows)."""
        return self.stage4

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Every stage by name (``stage1`` F/2 rows, T/4 … ``stage3`` F/4, T/16; ``stage4`` F/4, T/32)."""
        return {f"stage{i}": getattr(self, f"stage{i}") for i in range(1, 5)}

    def layer_groups(self) -> list[list[nn.Module]]:
        """Three layer groups like the seed model's: early (input norm, stem, stages 1-2), late, head."""
        return [
            [self.input_norm, self.stem, self.stage1, self.stage2],
            [self.stage3, self.stage4],
            [self.head],
        ]


class EmbeddingHead(nn.Module):
    """A small MLP over a fixed-size embedding (e.g. resemblyzer's 256-d GE2E vector): ``(B, D)`` → logits.

    BatchNorm (learned standardisation of each dimension) → Linear(D, hidden) → ReLU → Dropout →
    Linear(hidden, n_classes). Used by the shipped default model (see ``voicegender.default_model``).
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


# ----------------------------------------------------------------------------------------------------
# Config and construction
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# fastai-style layer groups and freezing
# ----------------------------------------------------------------------------------------------------


def param_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameters split into fastai-like layer groups for discriminative learning rates.

    For :class:`SeedResNet`: ``[conv1, bn1, layer1, layer2]``, ``[layer3, layer4]``, ``[head]``. For
    :class:`SmallCNN`: ``[input_norm, stem, stage1, stage2]``, ``[stage3, stage4]``, ``[head]``. Any other
    module: a single group. Combine with :func:`discriminative_lrs` for
    ``torch.optim.AdamW([{"params": g, "lr": lr} for g, lr in zip(groups, lrs)])``.

    Parameters
    ----------
    model : nn.Module
        The network.

    Returns
    -------
    list of list of nn.Parameter
        Groups from input to output; every parameter appears exactly once.
    """
    if not hasattr(model, "layer_groups"):
        return [list(model.parameters())]
    groups = [[p for m in mods for p in m.parameters()] for mods in model.layer_groups()]
    grouped = {id(p) for g in groups for p in g}
    missing = [n for n, p in model.named_parameters() if id(p) not in grouped]
    if missing:  # a guard for future edits of layer_groups
        raise RuntimeError(f"parameters outside every layer group: {missing[:5]}")
    return groups


def discriminative_lrs(max_lr: float, n_groups: int = 3, div: float = 10.0) -> list[float]:
    """Learning rates rising geometrically from ``max_lr / div`` (first group) to ``max_lr`` (last group).

    fastai's ``slice(max_lr / div, max_lr)`` spread over layer groups (its ``even_mults``). ``div=1`` gives
    the same rate to every group (fastai's behaviour for a plain float ``max_lr``).
    """
    if n_groups == 1:
        return [max_lr]
    lo = max_lr / div
    step = (max_lr / lo) ** (1 / (n_groups - 1))
    return [lo * step**i for i in range(n_groups)]


def freeze_body(model: nn.Module, frozen: bool = True) -> None:
    """Freeze or unfreeze everything except the head, the way fastai's ``Learner.freeze`` does.

    When ``frozen`` is true, body parameters stop receiving gradients **except those of BatchNorm layers**,
    which stay trainable (fastai's ``train_bn=True`` default: their affine weights adapt to the new input
    distribution, and their running statistics keep updating in ``train()`` mode). The head is always
    trainable. ``frozen=False`` makes every parameter trainable.

    Parameters
    ----------
    model : nn.Module
        A :class:`SeedResNet` or :class:`SmallCNN` (the head is the last layer group).
    frozen : bool
        Freeze (True) or unfreeze (False).
    """
    if not hasattr(model, "layer_groups"):
        raise TypeError(f"{type(model).__name__} has no layer groups to freeze")
    *body_groups, head_group = model.layer_groups()
    for mods in body_groups:
        for mod in mods:
            for m in mod.modules():
                is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
                for p in m.parameters(recurse=False):
                    p.requires_grad_(not frozen or is_bn)
    for mod in head_group:
        for p in mod.parameters():
            p.requires_grad_(True)


# ----------------------------------------------------------------------------------------------------
# ImageNet weights
# ----------------------------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_hash(path: Path, sha256: str | None) -> None:
    expected = sha256.lower() if sha256 else None
    if expected is None:
        m = _HASH_IN_NAME.search(path.name)
        if m is None:
            log.info("%s: no SHA-256 given and none in the file name; not verified", path)
            return
        expected = m.group(1)
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise ModelError(
            f"{path}: SHA-256 mismatch (expected {expected}…, file has {actual[: len(expected)]}…); "
            "the file is corrupt or not the one its name says. Delete it and fetch it again."
        )


def _state_dict_from_file(path: Path) -> dict[str, Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: cannot read as a PyTorch weights file ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return obj


def load_imagenet_weights(model: nn.Module, path: str | os.PathLike[str], sha256: str | None = None) -> nn.Module:
    """Load a torchvision ImageNet ResNet checkpoint into a model's trunk.

    The file is read with ``torch.load(..., weights_only=True)``. Its SHA-256 is checked against ``sha256``
    when given, else against the hex prefix in a torchvision-style file name (``resnet34-b627a593.pth`` → the
    hash must start with ``b627a593``); a name without one is loaded unverified (logged). Every key except
    ``fc.*`` must match the trunk by name and shape (``num_batches_tracked`` may be absent, as in old files).

    Parameters
    ----------
    model : nn.Module
        A :class:`SeedResNet` (weights go into ``model.body``) or a :class:`ResNet`.
    path : path-like
        Local ``.pth`` file.
    sha256 : str, optional
        Full (or prefix of the) expected hex SHA-256.

    Returns
    -------
    nn.Module
        ``model`` itself, loaded in place.

    Raises
    ------
    ModelError
        Missing file, bad hash, unreadable file, or keys/shapes that do not match; the message names the file.
    """
    path = Path(path).expanduser()
    target = model.body if isinstance(model, SeedResNet) else model
    if not isinstance(target, ResNet):
        raise TypeError(f"ImageNet weights need a SeedResNet or ResNet, got {type(model).__name__}")
    if not path.is_file():
        raise ModelError(f"{path}: ImageNet weights file not found")
    _verify_hash(path, sha256)
    sd = {k: v for k, v in _state_dict_from_file(path).items() if not k.startswith("fc.")}
    own = {k: v for k, v in target.state_dict().items() if not k.startswith("fc.")}
    ignore = "num_batches_tracked"
    missing = sorted(k for k in own if k not in sd and not k.endswith(ignore))
    unexpected = sorted(k for k in sd if k not in own)
    if missing or unexpected:
        raise ModelError(
            f"{path}: not {target.arch} ImageNet weights: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if v.shape != own[k].shape]
    if bad:
        raise ModelError(f"{path}: shape mismatch for {target.arch}: {bad[:3]}")
    for k in own:
        if k.endswith(ignore) and k not in sd:
            sd[k] = torch.zeros_like(own[k])
    if target.fc is not None:
        sd.update({k: v for k, v in target.state_dict().items() if k.startswith("fc.")})
    target.load_state_dict(sd, strict=True)
    log.info("loaded ImageNet weights from %s into %s", path, target.arch)
    return model


def _default_weight_dirs() -> list[Path]:
    return [DEFAULT_WEIGHTS_DIR.expanduser(), Path(torch.hub.get_dir()) / "checkpoints"]


def _download(url: str, dst: Path, timeout: float) -> None:
    """Fetch ``url`` to ``dst`` (hash-prefix checked by torch.hub); fails fast when offline."""
    # torch.hub.download_url_to_file has no timeout: probe the server first so offline machines fail quickly.
    urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    m = _HASH_IN_NAME.search(dst.name)
    torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=False)


def resolve_imagenet_weights(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path | None:
    """Find torchvision's ImageNet checkpoint for ``arch``: a given file, a cached one, or a download.

    Order: ``weights`` if given (must exist); then torchvision's file name (e.g. ``resnet34-b627a593.pth``) in
    ``cache_dir`` if given, else in ``~/.cache/voicegender/weights`` and ``$TORCH_HOME/hub/checkpoints``; then
    a download from download.pytorch.org into ``cache_dir`` (or the first default folder). If nothing works
    (offline machine) a ``UserWarning`` says so and ``None`` is returned: the caller then trains from random
    initialisation.

    Parameters
    ----------
    arch : str
        ``"resnet34"`` or ``"resnet50"``.
    weights : path-like, optional
        An explicit local file; takes precedence and is never replaced by a download.
    cache_dir : path-like, optional
        Folder to look in and download to.
    download : bool
        Try the URL when no local file is found.
    timeout : float
        Seconds to wait for the server.

    Returns
    -------
    Path or None
        The weights file, or None (random init).

    Raises
    ------
    ModelError
        ``weights`` was given but does not exist.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise ModelError(f"{p}: ImageNet weights file not found")
        return p
    if arch not in IMAGENET_WEIGHTS:
        raise ValueError(f"no ImageNet weights for arch {arch!r}; expected one of {sorted(IMAGENET_WEIGHTS)}")
    fname, url = IMAGENET_WEIGHTS[arch]
    dirs = [Path(cache_dir).expanduser()] if cache_dir is not None else _default_weight_dirs()
    for d in dirs:
        if (d / fname).is_file():
            log.info("using cached ImageNet weights %s", d / fname)
            return d / fname
    if download:
        dst = dirs[0] / fname
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s to %s", url, dst)
            _download(url, dst, timeout)
            return dst
        except Exception as e:  # offline, DNS failure, HTTP error, hash mismatch…
            reason = f"download of {url} failed ({type(e).__name__}: {e})"
    else:
        reason = "downloads disabled"
    warnings.warn(
        f"No ImageNet weights for {arch}: {fname} is not in {', '.join(map(str, dirs))} and {reason}. "
        f"The model starts from RANDOM initialisation (much worse than the original system). Put the file in "
        f"one of those folders or pass its path.",
        UserWarning,
        stacklevel=2,
    )
    return None


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------

_CKPT_KEYS = ("model_state", "model_config", "feature_config", "labels", "extra", "voicegender_version")


@dataclass
class LoadedModel:
    """A network restored from a checkpoint, with everything needed to feed it."""

    model: nn.Module  # in eval mode, on the requested device
    model_config: ModelConfig  # how to rebuild the network
    feature_config: dict[str, Any]  # how its input features were made (owned by voicegender.features)
    labels: list[str]  # class names in logit order, e.g. ["female", "male"]
    extra: dict[str, Any] = field(default_factory=dict)  # training metadata (metrics, split, seed, …)
    voicegender_version: str = ""  # package version that wrote the file


def _check_jsonable(name: str, obj: Any) -> None:
    try:
        json.dumps(obj)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint {name} must be JSON-serialisable (plain dict/list/str/number): {e}") from e


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_config: ModelConfig,
    feature_config: dict[str, Any],
    labels: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``).

    The file is ``torch.save`` of a dict with ``model_state`` (tensors on CPU), ``model_config``
    (``asdict``), ``feature_config``, ``labels``, ``extra`` and ``voicegender_version``: everything but the
    tensors is JSON-able, so :func:`load_checkpoint` can use ``weights_only=True``.

    Parameters
    ----------
    path : path-like
        Destination (parent folders are created).
    model : nn.Module
        The trained network.
    model_config : ModelConfig
        The config it was built from.
    feature_config : dict
        JSON-able description of its input features.
    labels : sequence of str
        Class names in logit order.
    extra : dict, optional
        JSON-able metadata (metrics, split, seed, …).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path).expanduser()
    labels = [str(lab) for lab in labels]
    if len(labels) != model_config.n_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model_config.n_classes} outputs")
    extra = dict(extra or {})
    _check_jsonable("feature_config", feature_config)
    _check_jsonable("extra", extra)
    payload = {
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_config": asdict(model_config),
        "feature_config": dict(feature_config),
        "labels": labels,
        "extra": extra,
        "voicegender_version": __version__,
    }
    atomic_write(path, lambda f: torch.save(payload, f))
    log.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: runs no code from it).

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    device : str or torch.device, optional
        Where to put the model (default CPU).

    Returns
    -------
    LoadedModel
        The network in eval mode and its metadata.

    Raises
    ------
    ModelError
        The file is missing, unreadable, not a voicegender checkpoint, or its weights do not fit its config.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    device = torch.device(device) if device is not None else torch.device("cpu")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _CKPT_KEYS[:4]):
        have = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"{path}: not a voicegender checkpoint (needs keys {', '.join(_CKPT_KEYS[:4])}; has {have})")
    try:
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        model = build_model(cfg)
        model.load_state_dict(ckpt["model_state"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise ModelError(f"{path}: weights do not match the stored model config ({e})") from e
    model.to(device).eval()
    labels = [str(lab) for lab in ckpt["labels"]]
    return LoadedModel(
        model=model,
        model_config=cfg,
        feature_config=dict(ckpt["feature_config"]),
        labels=labels,
        extra=dict(ckpt.get("extra") or {}),
        voicegender_version=str(ckpt.get("voicegender_version", "")),
    )


# ----------------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------------


def onnx_available() -> bool:
    """True when the ``onnx`` package imports (needed by :func:`export_onnx`)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(
    model: nn.Module,
    example_input: Tensor,
    path: str | os.PathLike[str],
    *,
    dynamic_axes: Iterable[int] | None = None,
    opset: int = 17,
) -> Path:
    """Export a network to ONNX with a dynamic batch axis (and time axis for :class:`SmallCNN`).

    Uses torch's TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx`` package (the
    dynamo exporter would also need ``onnxscript``). The graph is input ``"features"`` → output ``"logits"``;
    the model is exported in eval mode and restored to its previous mode afterwards.

    Parameters
    ----------
    model : nn.Module
        The network.
    example_input : Tensor
        An input of the right shape, e.g. ``(1, 1, 64, 100)`` for SmallCNN or ``(1, 3, 224, 224)``.
    path : path-like
        Output ``.onnx`` file.
    dynamic_axes : iterable of int, optional
        Input axes to leave dynamic; default ``(0, 3)`` for SmallCNN (batch, time), ``(0,)`` otherwise.
    opset : int
        ONNX opset version.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ModelError
        The ``onnx`` package is not installed.
    """
    if not onnx_available():
        raise ModelError("ONNX export needs the 'onnx' package: pip install onnx onnxruntime")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    if dynamic_axes is None:
        dynamic_axes = (0, 3) if isinstance(model, SmallCNN) else (0,)
    names = {0: "batch", 1: "channels", 2: "rows", 3: "frames"}
    axes = {"features": {a: names.get(a, f"axis{a}") for a in dynamic_axes}, "logits": {0: "batch"}}
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
            torch.onnx.export(
                model,
                (example_input,),
                str(path),
                input_names=["features"],
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    log.info("exported ONNX model %s", path)
    return path
