"""The seed's network: a torchvision-compatible ResNet-34/50 trunk and :class:`SeedResNet` (trunk + fastai head).

The trunk is plain torch with torchvision's exact parameter names, so torchvision's ImageNet ``.pth`` files load by
name (:mod:`voicegender.research.models.weights`). Input: ``(B, 3, 224, 224)`` images scaled to 0…1; :class:`SeedResNet`
applies the ImageNet mean/std normalisation itself (a non-persistent buffer step at the start of ``forward``), so
callers never normalise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import create_head

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per-channel RGB mean of ImageNet, for images scaled to 0…1
IMAGENET_STD = (0.229, 0.224, 0.225)  # per-channel RGB standard deviation of ImageNet, same scale


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
