"""fastai-style layer groups: discriminative learning rates and freezing the body (the seed's fine-tuning recipe)."""

from __future__ import annotations

from torch import nn


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
