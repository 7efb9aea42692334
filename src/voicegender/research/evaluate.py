"""Evaluation: run a checkpoint over clips and score it (``evaluate(...) -> Report``), and summarise folds.

``evaluate(run_dir)`` scores a run's own test part (``test.csv`` written by training); give clips or corpus
paths to score anything else. Clips that cannot be read are logged, listed in ``Report.failed`` and skipped.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..corpora import LABELS, Clip, load_corpus, normalise_gender
from ..errors import ModelError, VoiceGenderError
from ..metrics import Metrics, compute_metrics, mean_std
from ..progress import progress
from .dataset import DEFAULT_CACHE_DIR, ClipDataset, pad_collate, precompute

log = logging.getLogger(__name__)

CHILD_MAX_AGE = 12  # years; speakers this age or younger count as children (voices not yet broken)
SUMMARY_FIELDS = ("accuracy", "error_rate", "balanced_accuracy", "f1_female", "roc_auc")


@dataclass(frozen=True)
class SpeakerScore:
    """Accuracy over one speaker's clips."""

    speaker: str  # corpus/speaker
    gender: str
    n: int
    accuracy: float
    mean_p_female: float


@dataclass(frozen=True)
class ClipResult:
    """One scored clip (used for the top losses)."""

    path: str
    speaker: str
    gender: str
    predicted: str
    p_female: float
    loss: float  # cross-entropy of the true class (natural log)


@dataclass
class Report:
    """Scores of one checkpoint on one set of clips."""

    checkpoint: str
    split: str  # what the clips are (e.g. "audiomnist-4fold/0 test" or the corpus paths)
    metrics: Metrics
    per_speaker: list[SpeakerScore]
    groups: dict[str, Metrics]  # "child"/"adult" (when ages are known), "corpus:<name>" (several corpora)
    top_losses: list[ClipResult]
    y_true: list[int] = field(repr=False)  # per clip, for the ROC plot
    p_female: list[float] = field(repr=False)
    failed: list[str] = field(default_factory=list)  # "path: reason" of clips that could not be read
    training: dict = field(default_factory=dict)  # the checkpoint's training metadata (extra)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FoldSummary:
    """Mean ± sample std over folds of the headline metrics."""

    reports: list[Report]
    mean: dict[str, float]
    std: dict[str, float]

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "folds": [
            {"checkpoint": r.checkpoint, "split": r.split, **{k: getattr(r.metrics, k) for k in SUMMARY_FIELDS},
             "n": r.metrics.n} for r in self.reports]}


# --- prediction -------------------------------------------------------------------------------------------
def _widths(dataset: Dataset) -> list[int] | None:
    feats = getattr(dataset, "_features", None)
    if isinstance(dataset, ClipDataset) and feats is not None and dataset.kind == "log_mel":
        return [f.shape[-1] for f in feats]
    return None


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: Dataset, batch_size: int = 64, bf16: bool = False,
                    channels_last: bool = False, desc: str = "predicting"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(female), true labels and per-clip cross-entropy of every item of ``dataset``, in dataset order.

    Variable-width inputs (whole log-mel clips) are batched in order of width so padding stays small.
    """
    model.eval()
    order = np.arange(len(dataset))
    widths = _widths(dataset)
    if widths is not None:
        order = np.argsort(widths, kind="stable")
    collate = pad_collate if isinstance(dataset, ClipDataset) else None
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, shuffle=False, collate_fn=collate)
    probs, labels, losses = [], [], []
    for x, y in progress(loader, desc=desc, unit="batch"):
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        logits = logits.float()
        probs.append(F.softmax(logits, dim=1)[:, 0])
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        labels.append(y)
    p_female, y, loss = np.zeros(len(order)), np.zeros(len(order), np.int64), np.zeros(len(order))
    if probs:  # undo the width ordering
        p_female[order], y[order], loss[order] = (torch.cat(a).numpy() for a in (probs, labels, losses))
    return p_female, y, loss


# --- run folders and clip lists --------------------------------------------------------------------------
def read_run_manifest(csv_path: str | Path) -> list[Clip]:
    """Clips of a manifest written by corpora.write_manifest (absolute paths, corpus column kept)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise VoiceGenderError(f"{csv_path}: manifest not found")
    clips = []
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), 2):
                if None in (row.get("path"), row.get("speaker"), row.get("gender")):
                    raise VoiceGenderError(f"{csv_path}: line {n} has no path, speaker or gender; a damaged run "
                                           "manifest (written by `voicegender train`)")
                extra = {k: v for k, v in row.items()
                         if k not in ("path", "speaker", "gender", "corpus") and v not in ("", None)}
                clips.append(Clip(Path(row["path"]), row["speaker"], normalise_gender(row["gender"], str(csv_path)),
                                  row.get("corpus", ""), extra))
    except (UnicodeDecodeError, csv.Error) as e:
        raise VoiceGenderError(f"{csv_path}: not a readable CSV manifest ({type(e).__name__}); damaged?") from e
    return clips


def resolve_checkpoint(checkpoint_or_run: str | Path) -> Path:
    """A run folder's ``model.pt`` or the checkpoint file itself."""
    path = Path(checkpoint_or_run).expanduser()
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise ModelError(f"{path}: run folder without model.pt (training not finished?)")
        return path / "model.pt"
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint or run folder")
    return path


def _clips_from(clips_or_corpora: list | None, run: Path) -> tuple[list[Clip], str]:
    if not clips_or_corpora:
        test_csv = (run if run.is_dir() else run.parent) / "test.csv"
        if not test_csv.is_file():
            raise VoiceGenderError(f"{run}: no test.csv next to the checkpoint; give the corpus to evaluate on")
        return read_run_manifest(test_csv), "test"
    if all(isinstance(c, Clip) for c in clips_or_corpora):
        return list(clips_or_corpora), "clips"
    clips: list[Clip] = []
    for path in clips_or_corpora:
        clips += load_corpus(path).clips
    return clips, " + ".join(str(p) for p in clips_or_corpora)


# --- scoring ----------------------------------------------------------------------------------------------
def per_speaker(clips: list[Clip], y_pred: np.ndarray, p_female: np.ndarray) -> list[SpeakerScore]:
    """Accuracy of every speaker, worst first."""
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_speaker[clip.speaker_key].append(i)
    scores = []
    for key, idx in by_speaker.items():
        labels = np.array([clips[i].label for i in idx])
        scores.append(SpeakerScore(key, clips[idx[0]].gender, len(idx), float((y_pred[idx] == labels).mean()),
                                   float(p_female[idx].mean())))
    return sorted(scores, key=lambda s: (s.accuracy, s.speaker))


def group_metrics(clips: list[Clip], y_true: np.ndarray, p_female: np.ndarray) -> dict[str, Metrics]:
    """Metrics of children vs adults (age ≤ CHILD_MAX_AGE, when clips carry ages) and of each corpus."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        if clip.age is not None:
            groups["child" if clip.age <= CHILD_MAX_AGE else "adult"].append(i)
    corpora = {c.corpus for c in clips}
    if len(corpora) > 1:
        for i, clip in enumerate(clips):
            groups[f"corpus:{clip.corpus}"].append(i)
    return {name: compute_metrics(y_true[idx], p_female[idx]) for name, idx in sorted(groups.items())}


def score(clips: list[Clip], p_female: np.ndarray, losses: np.ndarray | None = None, checkpoint: str = "",
          split: str = "", top_k: int = 20) -> Report:
    """A Report from predictions ``p_female`` of ``clips`` (pure: no model, no I/O)."""
    y_true = np.array([c.label for c in clips], dtype=np.int64)
    p_female = np.asarray(p_female, dtype=np.float64)
    if losses is None:
        p_true = np.where(y_true == 0, p_female, 1 - p_female)
        losses = -np.log(np.clip(p_true, 1e-12, 1.0))
    y_pred = np.where(p_female >= 0.5, 0, 1)
    worst = np.argsort(-losses, kind="stable")[:top_k]
    top = [ClipResult(str(clips[i].path), clips[i].speaker_key, clips[i].gender, LABELS[y_pred[i]],
                      float(p_female[i]), float(losses[i])) for i in worst]
    return Report(checkpoint, split, compute_metrics(y_true, p_female), per_speaker(clips, y_pred, p_female),
                  group_metrics(clips, y_true, p_female), top, y_true.tolist(), p_female.tolist())


def evaluate(checkpoint_or_run: str | Path, clips: list[Clip] | list[str | Path] | None = None,
             batch_size: int = 64, top_k: int = 20, cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
             threads: int | None = None) -> Report:
    """Score a checkpoint on clips.

    Parameters
    ----------
    checkpoint_or_run : a checkpoint file or a run folder (its model.pt).
    clips : Clip objects or corpus paths; None scores the run's own test part (test.csv).
    batch_size : clips per forward pass.
    top_k : how many highest-loss clips to keep.
    cache_dir : feature cache (None: none).
    threads : torch intra-op threads (None: leave as is).
    """
    from .models import load_checkpoint  # the one place weights are loaded

    if threads:
        torch.set_num_threads(threads)
    source = Path(checkpoint_or_run).expanduser()
    ckpt_path = resolve_checkpoint(source)
    loaded = load_checkpoint(ckpt_path)
    if list(loaded.labels) != list(LABELS):
        raise ModelError(f"{ckpt_path}: labels {loaded.labels} are not {list(LABELS)}")
    clip_list, what = _clips_from(clips, source)
    if not clip_list:
        raise VoiceGenderError(f"{source}: no clips to evaluate")
    fc = loaded.feature_config
    features, good, failed = None, clip_list, []
    if not (fc["kind"] == "seed_image" and all(c.path.suffix.lower() in (".jpg", ".jpeg", ".png")
                                                for c in clip_list)):
        features, failed = precompute(clip_list, fc, cache_dir, desc="features", skip_errors=True)
        good = [c for c, f in zip(clip_list, features, strict=True) if f is not None]
        features = [f for f in features if f is not None]
        for message in failed:
            log.warning("skipped %s", message)
    if not good:
        raise VoiceGenderError(f"{source}: none of the {len(clip_list)} clips could be read")
    dataset = ClipDataset(good, fc, train=False, cache_dir=cache_dir, features=features)
    resnet = loaded.model_config.arch != "small_cnn"
    bf16 = bool(loaded.extra.get("config", {}).get("bf16", resnet))  # predict the way the model was trained
    p_female, _, losses = predict_dataset(loaded.model, dataset, batch_size, bf16=bf16, channels_last=resnet,
                                          desc="evaluating")
    split = loaded.extra.get("split", "")
    report = score(good, p_female, losses, str(ckpt_path), f"{split} {what}".strip(), top_k)
    report.failed = failed
    report.training = loaded.extra
    return report


def summarise_folds(reports: list[Report]) -> FoldSummary:
    """Mean ± std (ddof=1) over folds of accuracy, error rate, balanced accuracy, F1 (female) and ROC-AUC."""
    if not reports:
        raise ValueError("no fold reports to summarise")
    mean, std = {}, {}
    for name in SUMMARY_FIELDS:
        mean[name], std[name] = mean_std([getattr(r.metrics, name) for r in reports])
    return FoldSummary(reports, mean, std)
