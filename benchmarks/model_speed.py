"""CPU speed of the networks in voicegender.research.models: forward and forward+backward time per image.

Rows: the seed ResNet-34 (+ fastai head) on (B, 3, 224, 224) images, fp32 vs bf16 autocast, NCHW vs
channels_last; SmallCNN on (B, 1, 64, 100) log-mel and (B, 1, 12, 98) MFCC inputs, fp32 vs bf16. Ratios are
against the fp32 NCHW ResNet-34 forward. The last column extrapolates forward+backward to one pass over 18,000
images (the seed corpus), to plan training time. "frozen" rows train the head (and, as fastai does, the body's
BatchNorm layers) with the rest of the body frozen: the first two epochs of the seed recipe.

Usage::

    python benchmarks/model_speed.py [--threads 2] [--batch 32] [--repeats 3] [--resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from voicegender.research.models import ModelConfig, build_model, freeze_body

N_IMAGES = 18_000  # images in the seed corpus (repetitions 0-29 of AudioMNIST)


def _time(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(model: nn.Module, x: torch.Tensor, bf16: bool, channels_last: bool, repeats: int) -> tuple[float, float]:
    """Seconds per batch for (forward in eval mode without grad, forward+backward in train mode)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 2, (x.shape[0],))
    loss_fn = nn.CrossEntropyLoss()

    def ctx():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def fwd() -> None:
        with torch.no_grad(), ctx():
            model(x)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        with ctx():
            loss = loss_fn(model(x).float(), target)
        loss.backward()

    model.eval()
    t_fwd = _time(fwd, repeats)
    model.train()
    t_train = _time(fwd_bwd, repeats)
    return t_fwd, t_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed batches per row (median reported)")
    ap.add_argument("--resnet50", action="store_true", help="also time ResNet-50")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b = args.batch

    # (model, input, bf16, channels_last, body frozen as in fastai's first epochs, network, batch)
    rows: list[tuple[str, str, bool, bool, bool, nn.Module, torch.Tensor]] = []
    archs = ["resnet34"] + (["resnet50"] if args.resnet50 else [])
    for arch in archs:
        net = build_model(ModelConfig(arch=arch))
        img = torch.rand(b, 3, 224, 224)
        for cl in (False, True):
            for bf16 in (False, True):
                rows.append((arch, "3x224x224", bf16, cl, False, net, img))
        for cl, bf16 in ((False, False), (True, True)):
            rows.append((arch, "3x224x224", bf16, cl, True, net, img))
    for f, t in ((64, 100), (12, 98)):
        net = build_model(ModelConfig(arch="small_cnn", in_rows=f))
        for bf16 in (False, True):
            rows.append(("small_cnn", f"1x{f}x{t}", bf16, False, False, net, torch.randn(b, 1, f, t)))

    print(f"torch {torch.__version__}, {args.threads} threads, batch {b}, median of {args.repeats} batches")
    header = (
        f"{'model':<10} {'input':<10} {'dtype':<5} {'layout':<13} {'body':<6} "
        f"{'fwd ms/img':>10} {'fwd+bwd ms/img':>14} {'fwd ratio':>9} {'train ratio':>11} {'18k fwd+bwd':>11}"
    )
    print(header)
    print("-" * len(header))
    ref = None
    for arch, shape, bf16, cl, frozen, net, x in rows:
        freeze_body(net, frozen)
        t_fwd, t_train = measure(net, x, bf16, cl, args.repeats)
        freeze_body(net, False)
        f_ms, t_ms = 1000 * t_fwd / b, 1000 * t_train / b
        if ref is None:  # the first row is fp32 NCHW ResNet-34
            ref = f_ms
        epoch_min = t_ms * N_IMAGES / 1000 / 60
        print(
            f"{arch:<10} {shape:<10} {'bf16' if bf16 else 'fp32':<5} "
            f"{'channels_last' if cl else 'NCHW':<13} {'frozen' if frozen else 'train':<6} {f_ms:>10.2f} {t_ms:>14.2f} "
            f"{f_ms / ref:>9.3f} {t_ms / ref:>11.3f} {epoch_min:>9.1f} m",
            flush=True,
        )
        net.to(memory_format=torch.contiguous_format)


if __name__ == "__main__":
    main()
