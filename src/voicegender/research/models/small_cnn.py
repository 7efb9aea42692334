"""SmallCNN: a small residual CNN (≈0.3 M parameters) over native-resolution features ``(B, 1, F, T)``.

F = 12 MFCC rows or 64 log-mel bands, any T ≥ ~50 frames. It trains on a couple of CPU cores in minutes and keeps
enough frequency resolution in its last block for useful class-activation maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import AdaptiveConcatPool2d


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
