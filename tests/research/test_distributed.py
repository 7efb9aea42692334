"""Distributed training under torchrun (DDP over gloo, 2 processes on localhost) and the feature cache under
concurrent writers.

Tolerance of the 2-process vs 1-process comparison: the two runs see the same global batches and, through the
globally normalised loss, the same gradient formula (test_ddp_gradient_steps_equal_one_process_exactly checks
that to 1e-5 on a model without BatchNorm or dropout). The SmallCNN's BatchNorm layers, however, normalise each
rank's half of a batch with that half's statistics, and each rank draws its own dropout masks, so the runs
follow different (equally valid) paths. On the synthetic corpus both converge: final validation accuracy and
ROC AUC within 0.05, final validation and training loss within 0.05 (measured: accuracy and AUC 1.0 both,
validation loss 0.005 vs 0.006, training loss 0.002 vs 0.013).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import write_corpus

from voicegender.corpora import load_corpus
from voicegender.research.dataset import precompute
from voicegender.research.train import TrainConfig, epoch_loader, feature_config_for, train
from voicegender.world import World, world_from_env

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _torchrun(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_world_from_env():
    assert world_from_env({}) == World(0, 1, 0, 1)
    w = world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (w.rank, w.size, w.local_rank, w.local_size, w.is_main) == (3, 4, 1, 2, False)
    with pytest.raises(ValueError, match="RANK"):
        world_from_env({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.mark.parametrize("balanced", [False, True])
def test_ranks_split_each_global_batch_of_one_process(balanced: bool):
    """Rank r's k-th batch holds items r, r+W, ... of the single process's k-th batch: same global batches."""
    from torch.utils.data import TensorDataset

    ds = TensorDataset(torch.arange(23).float()[:, None], torch.tensor([0] * 7 + [1] * 16))
    for epoch in (0, 1):
        alone = [set(x[:, 0].int().tolist()) for x, _ in epoch_loader(ds, 6, epoch, 1000, balanced)]
        ranks = [[x[:, 0].int().tolist() for x, _ in epoch_loader(ds, 6, epoch, 1000, balanced, r, 2)]
                 for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == len(alone) == 3  # 23 // 6 full batches each epoch
        if balanced:  # drawn with replacement: compare as multisets
            full = [sorted(x[:, 0].int().tolist()) for x, _ in epoch_loader(ds, 6, epoch, 1000, True)]
            assert [sorted(a + b) for a, b in zip(*ranks, strict=True)] == full
        else:
            assert [set(a) | set(b) for a, b in zip(*ranks, strict=True)] == alone
    first = [x[:, 0].tolist() for x, _ in epoch_loader(ds, 6, 0, 1000)]
    assert first != [x[:, 0].tolist() for x, _ in epoch_loader(ds, 6, 1, 1000)]  # a new order every epoch


_EXACT_SCRIPT = textwrap.dedent('''
    import json, sys
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from voicegender.research import distributed
    from voicegender.research.train_loop import class_weights, epoch_loader, train_epoch

    def run(out=None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(50, 6, generator=g)
        y = (x[:, 0] + 0.3 * torch.randn(50, generator=g) > 0.6).long()  # imbalanced: class weights matter
        ds = TensorDataset(x, y)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
        loss_fn = nn.CrossEntropyLoss(weight=class_weights(y.numpy()))
        world = distributed.current()
        net = distributed.wrap_ddp(model)
        opt = torch.optim.AdamW(model.parameters(), lr=0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        losses = []
        for epoch in range(3):
            loader = epoch_loader(ds, 10, epoch, 7, balanced=epoch == 2, rank=world.rank, world_size=world.size)
            losses.append(train_epoch(net, loader, opt, sched, loss_fn, False, False, "t"))
        params = [p.detach().flatten().tolist() for p in model.parameters()]
        if out is not None and world.is_main:
            json.dump({"losses": losses, "params": params}, open(out, "w"))
        return losses, params

    if __name__ == "__main__":
        with distributed.process_group():
            run(sys.argv[1])
''')


def test_ddp_gradient_steps_equal_one_process_exactly(tmp_path: Path):
    """Without BatchNorm and dropout, 2 DDP ranks make exactly the single process's steps (class-weighted loss
    normalised over the global batch; class-balanced sampling in the last epoch)."""
    script = tmp_path / "exact.py"
    script.write_text(_EXACT_SCRIPT)
    _torchrun([str(script), str(tmp_path / "two.json")], tmp_path)
    two = json.loads((tmp_path / "two.json").read_text())
    namespace: dict = {}
    exec(compile(_EXACT_SCRIPT, str(script), "exec"), namespace)  # the same code in this process, alone
    losses, params = namespace["run"]()
    np.testing.assert_allclose(two["losses"], losses, rtol=1e-5)
    for a, b in zip(two["params"], params, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_two_process_training_matches_one_process(tmp_path: Path):
    corpus = write_corpus(tmp_path / "corpus", speakers=12, clips=12)
    cache = tmp_path / "cache"
    common = ["--k", "3", "--features", "seed_mfcc", "--epochs", "5", "--batch-size", "8", "--threads", "1",
              "--cache-dir", str(cache)]
    _torchrun(["-m", "voicegender", "-q", "train", str(corpus), *common, "-o", str(tmp_path / "two")], tmp_path)
    cfg = TrainConfig(features="seed_mfcc", k=3, epochs=5, batch_size=8, threads=1, cache_dir=str(cache),
                      out=str(tmp_path / "one"))
    one = train(cfg, [corpus])
    logs = {name: [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
            for name in ("one", "two")}
    assert [e["epoch"] for e in logs["two"]] == list(range(5))  # rank 0 alone wrote the log
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2
    a, b = logs["one"][-1], logs["two"][-1]
    for key in ("accuracy", "roc_auc"):
        assert abs(a["val"][key] - b["val"][key]) <= 0.05, (key, a["val"][key], b["val"][key])
    assert abs(a["val_loss"] - b["val_loss"]) <= 0.05 and abs(a["train_loss"] - b["train_loss"]) <= 0.05
    assert b["val"]["accuracy"] >= 0.95  # and both actually learned
    assert (one / "model.pt").is_file() and (tmp_path / "two" / "model.pt").is_file()
    assert not list(cache.rglob("*.tmp"))  # both ranks filled the cache; no temporary file left


# --- the feature cache under concurrent writers -------------------------------------------------------------
def _fill_cache(clips, feature_config, cache_dir, barrier, rounds, queue) -> None:
    try:
        for r in range(rounds):
            barrier.wait()  # both processes write the same entries at the same moment
            precompute(clips, feature_config, Path(cache_dir) / str(r))
        queue.put("ok")
    except BaseException as e:  # report, do not hang the parent
        queue.put(repr(e))


def test_feature_cache_is_safe_under_two_concurrent_writers(tmp_path: Path, caplog):
    """Two processes (like two ranks) compute and store the same features into one cache at once: no error, no
    lost or torn entry, no temporary file left, and the cached arrays equal freshly computed ones."""
    clips = load_corpus(write_corpus(tmp_path / "corpus", speakers=4, clips=4, seconds=0.3)).clips
    fc = feature_config_for("log_mel")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    rounds = 3
    procs = [ctx.Process(target=_fill_cache, args=(clips, fc, tmp_path / "cache", barrier, rounds, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok", "ok"]
    fresh = precompute(clips, fc, cache_dir=None)
    for r in range(rounds):
        root = tmp_path / "cache" / str(r)
        assert len(list(root.rglob("*.npy"))) == len(clips) and not list(root.rglob("*.tmp"))
        with caplog.at_level("DEBUG", logger="voicegender"):
            cached = precompute(clips, fc, root)
        assert "unreadable" not in caplog.text
        for a, b in zip(cached, fresh, strict=True):
            np.testing.assert_array_equal(a, b)
