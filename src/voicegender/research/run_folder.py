"""The run folder of ``voicegender train`` (see :mod:`voicegender.research.train`): its config and manifests, the
state of the last finished epoch, and the checks that let an interrupted run resume where it stopped."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..corpora import Clip, write_manifest
from ..errors import VoiceGenderError
from ..fileio import atomic_write
from .train_config import TrainConfig

log = logging.getLogger(__name__)


def save_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler, epoch: int,
                stage: str, best_val: float) -> None:
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
               "scheduler": scheduler.state_dict() if scheduler else None, "epoch": epoch, "stage": stage,
               "best_val": best_val}
    atomic_write(run_dir / "state.pt", lambda f: torch.save(payload, f))


def trim_log(log_path: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs up to ``last_epoch``: a run killed after logging an epoch but before saving
    its state runs that epoch again, and a run killed while writing leaves a torn last line."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= last_epoch:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            log.warning("%s: dropping an unreadable line (interrupted write)", log_path)
    atomic_write(log_path, lambda f: f.write("".join(kept).encode()))


def same_config(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str]) -> bool:
    """Whether ``run_dir`` was made by a resumable run with the same settings (threads and paths aside)."""
    config_path = run_dir / "config.json"
    if not (cfg.resume and config_path.is_file()):
        return False
    saved = json.loads(config_path.read_text())
    current = {**asdict(cfg), "corpus_paths": corpus_paths}
    ignore = {"resume", "threads", "out", "processes"}
    return {k: v for k, v in saved.items() if k not in ignore} == {k: v for k, v in current.items() if k not in ignore}


def load_state(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str]) -> dict | None:
    if not (cfg.resume and (run_dir / "state.pt").is_file()):
        return None
    if not same_config(run_dir, cfg, corpus_paths):
        raise VoiceGenderError(f"{run_dir}: holds an interrupted run with a different config; "
                               "choose another --out or delete it")
    log.info("resuming %s", run_dir)
    return torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, corpus_paths: list[str], state: dict | None, processes: int,
                     parts: tuple[list[Clip], list[Clip], list[Clip]]) -> None:
    """Rank 0: clear what an earlier run left (a fresh run) or trim the log to the resumed state, then write the
    config and the manifests of the three parts."""
    if state is None:  # a fresh run: forget what an earlier run left here
        for stale in ("state.pt", "body_features.pt", "log.jsonl", "model.pt"):
            if stale != "body_features.pt" or not same_config(run_dir, cfg, corpus_paths):
                (run_dir / stale).unlink(missing_ok=True)
    else:
        trim_log(run_dir / "log.jsonl", state["epoch"])
    config = json.dumps({**asdict(cfg), "corpus_paths": corpus_paths, "processes": processes}, indent=2)
    atomic_write(run_dir / "config.json", lambda f: f.write(config.encode()))
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        write_manifest(part, run_dir / f"{name}.csv")
