"""ONNX export of a network (``voicegender export``): input ``"features"`` → output ``"logits"``."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from voicegender.errors import ModelError

from .small_cnn import SmallCNN

log = logging.getLogger(__name__)

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
