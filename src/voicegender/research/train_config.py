"""TrainConfig: the settings of a training run (torch-free, so the CLI can show its defaults instantly).

:mod:`voicegender.research.train` re-exports it; see that module for what the fields do to the recipes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VoiceGenderError

DEFAULT_CACHE_DIR = "~/.cache/voicegender/features"  # same folder as voicegender.research.dataset.DEFAULT_CACHE_DIR

RESNETS = ("resnet34", "resnet50")
FEATURES_OF_ARCH = {"resnet34": ("seed_image",), "resnet50": ("seed_image",), "small_cnn": ("seed_mfcc", "log_mel"),
                    "ge2e_head": ("ge2e",)}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as config.json and in the checkpoint)."""

    arch: str = "small_cnn"  # resnet34 | resnet50 (seed model, seed_image input) | small_cnn | ge2e_head
    features: str = "log_mel"  # seed_image (resnets) | seed_mfcc | log_mel (small_cnn) | ge2e (ge2e_head)
    split: str = "speaker-kfold"  # audiomnist-4fold | speaker-kfold | random (the seed's) | corpus-out
    fold: int = 0  # which fold is the test part (validation = the next one)
    k: int = 5  # folds for speaker-kfold
    seed: int = 0  # seeds weights, shuffling, augmentation and the speaker k-fold deal
    epochs: int | None = None  # small_cnn: all epochs (None: 15); resnets: unfrozen epochs (None: 1)
    head_epochs: int = 2  # resnets: one-cycle epochs of the head on the frozen body (seed: 2)
    lr: float | None = None  # max lr; None: 3e-3 for small_cnn, 2e-3 for the resnet head stage (seed)
    finetune_lr: float = 3e-3  # resnets: max lr of the unfrozen stage (last group; first group gets /10)
    batch_size: int = 64  # clips per step (seed: 64)
    weight_decay: float = 0.01  # AdamW decoupled weight decay (fastai's default)
    balance: str = "loss"  # class imbalance: "loss" (class-weighted CE) | "sampler" (balanced batches) | "none"
    augment: bool = False  # audio: gain, noise, band-limit, offset (uncached); small_cnn: + time shift/masks
    crop_seconds: float = 2.0  # log_mel: width of training crops (evaluation uses whole clips)
    weights: str | None = None  # ImageNet .pth for the resnets; None: look in the cache / download / random init
    cache_body: bool = True  # resnets: train the frozen-body stage on cached body features (see module doc)
    bn_calibration_batches: int = 20  # resnets without ImageNet weights: batches to re-estimate BN statistics
    bf16: bool = True  # bfloat16 autocast on CPU (AMX: ~2-3x faster training on this machine)
    channels_last: bool = True  # channels_last memory layout (resnets)
    max_train_clips: int | None = None  # cap the training part (stratified random subset) to fit a time budget
    max_val_clips: int | None = None  # cap the validation part the same way
    width: int = 16  # small_cnn channel width
    threads: int = 2  # torch intra-op threads
    cache_dir: str | None = DEFAULT_CACHE_DIR  # feature cache folder (None: no disk cache)
    out: str = "runs/train"  # run folder (train_folds adds fold<k>/ per fold)
    resume: bool = True  # continue an interrupted run found in ``out`` (same config)

    def __post_init__(self) -> None:
        if self.arch not in FEATURES_OF_ARCH:
            raise VoiceGenderError(f"unknown --arch {self.arch!r}; one of {', '.join(FEATURES_OF_ARCH)}")
        if self.features not in FEATURES_OF_ARCH[self.arch]:
            raise VoiceGenderError(f"--arch {self.arch} takes --features "
                                   f"{' or '.join(FEATURES_OF_ARCH[self.arch])}, not {self.features}")
        if self.balance not in ("loss", "sampler", "none"):
            raise VoiceGenderError(f"--balance must be loss, sampler or none, got {self.balance!r}")
        if self.batch_size < 1 or (self.epochs is not None and self.epochs < 0) or self.head_epochs < 0:
            raise VoiceGenderError("--batch-size must be >= 1 and epochs >= 0")

    @property
    def is_resnet(self) -> bool:
        return self.arch in RESNETS

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (1 if self.is_resnet else 15)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (2e-3 if self.is_resnet else 3e-3)
