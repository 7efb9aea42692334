"""Networks for ``voicegender train`` checkpoints, their ImageNet weights, checkpoints and ONNX export.

One module per concern; every public name is re-exported here, so ``from voicegender.research.models import X`` is the
import to use:

============================  ==================================================================================
``resnet.py``                 torchvision-compatible ResNet-34/50 trunk; :class:`SeedResNet` (trunk + fastai head),
                              the original system's model on ``(B, 3, 224, 224)`` images scaled to 0…1
``heads.py``                  fastai's concat-pooling head (:func:`create_head`); :class:`EmbeddingHead` (MLP over a
                              GE2E speaker embedding)
``small_cnn.py``              :class:`SmallCNN`, a small residual CNN over native-resolution MFCC / log-mel features
``config.py``                 :class:`ModelConfig` and :func:`build_model`, the one way to construct a network
``layer_groups.py``           fastai-style layer groups, discriminative learning rates, :func:`freeze_body`
``weights.py``                torchvision's ImageNet weights: resolve (file, cache, download), hash-check, load
``checkpoint.py``             :func:`save_checkpoint` / :func:`load_checkpoint` (the only place trained weights load),
                              :class:`LoadedModel`
``onnx.py``                   :func:`export_onnx`
============================  ==================================================================================

Every network exposes ``cam_layer`` (the last convolutional block, for Grad-CAM hooks) and ``cam_layers`` (every
stage by name, for finer maps), except :class:`EmbeddingHead`, which has no spatial input. Imports go one way:
these modules import nothing of voicegender but ``errors``, ``fileio`` and ``__version__``.
"""

from .checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from .config import ARCHS, ModelConfig, build_model
from .heads import AdaptiveConcatPool2d, EmbeddingHead, create_head
from .layer_groups import discriminative_lrs, freeze_body, param_groups
from .onnx import export_onnx, onnx_available
from .resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESNET_LAYERS,
    BasicBlock,
    Bottleneck,
    ResNet,
    SeedResNet,
    resnet34,
    resnet50,
)
from .small_cnn import SMALL_CNN_STEM_STRIDE, SMALL_CNN_STRIDES, SmallCNN
from .weights import (
    DEFAULT_WEIGHTS_DIR,
    DOWNLOAD_TIMEOUT,
    IMAGENET_WEIGHTS,
    file_sha256,
    load_imagenet_weights,
    resolve_imagenet_weights,
)

__all__ = [
    "ARCHS",
    "DEFAULT_WEIGHTS_DIR",
    "DOWNLOAD_TIMEOUT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_WEIGHTS",
    "RESNET_LAYERS",
    "SMALL_CNN_STEM_STRIDE",
    "SMALL_CNN_STRIDES",
    "AdaptiveConcatPool2d",
    "BasicBlock",
    "Bottleneck",
    "EmbeddingHead",
    "LoadedModel",
    "ModelConfig",
    "ResNet",
    "SeedResNet",
    "SmallCNN",
    "build_model",
    "create_head",
    "discriminative_lrs",
    "export_onnx",
    "file_sha256",
    "freeze_body",
    "load_checkpoint",
    "load_imagenet_weights",
    "onnx_available",
    "param_groups",
    "resolve_imagenet_weights",
    "resnet34",
    "resnet50",
    "save_checkpoint",
]
