"""Tests for voicegender.research.models: torchvision-compatible ResNets, ImageNet weights, SmallCNN, checkpoints."""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from voicegender.errors import ModelError
from voicegender.research import models as M
from voicegender.research.models import weights

# A few torchvision key names and shapes (from torchvision.models.resnet34/resnet50 state dicts).
TORCHVISION_KEYS = {
    "resnet34": {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "bn1.num_batches_tracked": (),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer2.0.downsample.1.running_mean": (128,),
        "layer3.5.bn2.weight": (256,),
        "layer4.2.conv2.weight": (512, 512, 3, 3),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    },
    "resnet50": {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.running_mean": (1024,),
        "layer4.0.downsample.1.weight": (2048,),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
    },
}
TORCHVISION_PARAMS = {"resnet34": 21_797_672, "resnet50": 25_557_032}  # incl. the 1000-class fc
TORCHVISION_STATE_LEN = {"resnet34": 218, "resnet50": 320}  # state_dict entries incl. num_batches_tracked


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_resnet_matches_torchvision_names_and_counts(arch: str) -> None:
    net = M.ResNet(arch, num_classes=1000)
    sd = net.state_dict()
    for k, shape in TORCHVISION_KEYS[arch].items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, k
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_PARAMS[arch]
    assert len(sd) == TORCHVISION_STATE_LEN[arch]
    trunk = M.ResNet(arch, num_classes=None)
    assert set(trunk.state_dict()) == {k for k in sd if not k.startswith("fc.")}


def test_seed_resnet_shapes_groups_and_freeze() -> None:
    model = M.build_model(M.ModelConfig(arch="resnet34"))
    assert isinstance(model, M.SeedResNet)
    # fastai head layout
    kinds = [type(m).__name__ for m in model.head]
    assert kinds == [
        "AdaptiveConcatPool2d",
        "Flatten",
        "BatchNorm1d",
        "Dropout",
        "Linear",
        "ReLU",
        "BatchNorm1d",
        "Dropout",
        "Linear",
    ]
    assert model.head[2].num_features == 1024 and model.head[4].out_features == 512
    assert model.head[3].p == 0.25 and model.head[7].p == 0.5
    assert model.head[4].bias is None and model.head[8].bias is None
    assert model.cam_layer is model.body.layer4 and list(model.cam_layers) == [f"layer{i}" for i in range(1, 5)]
    # normalisation is internal and not persisted
    assert "mean" not in model.state_dict()
    model.eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        out = model(x)
        feat = model.body((x - model.mean) / model.std)
    assert out.shape == (1, 2) and feat.shape == (1, 512, 7, 7)

    groups = M.param_groups(model)
    assert len(groups) == 3
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    assert groups[2][0] is model.head[2].weight
    M.freeze_body(model, True)
    assert not model.body.conv1.weight.requires_grad
    assert not model.body.layer4[0].conv1.weight.requires_grad
    assert model.body.bn1.weight.requires_grad and model.body.layer3[0].bn2.bias.requires_grad  # fastai train_bn
    assert all(p.requires_grad for p in model.head.parameters())
    M.freeze_body(model, False)
    assert all(p.requires_grad for p in model.parameters())
    lrs = M.discriminative_lrs(3e-3, 3)
    assert lrs[0] == pytest.approx(3e-4) and lrs[-1] == pytest.approx(3e-3)


def _write_torchvision_style(tmp_path: Path, arch: str = "resnet34", rename: bool = True) -> tuple[Path, dict]:
    torch.manual_seed(0)
    sd = M.ResNet(arch, num_classes=1000).state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # old torchvision files lack them
    raw = tmp_path / "raw.pth"
    torch.save(sd, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    if not rename:
        return raw, sd
    path = tmp_path / f"{arch}-{digest[:8]}.pth"
    raw.rename(path)
    return path, sd


def test_load_imagenet_weights(tmp_path: Path) -> None:
    path, sd = _write_torchvision_style(tmp_path)
    model = M.SeedResNet("resnet34")
    M.load_imagenet_weights(model, path)
    assert torch.equal(model.body.layer4[2].conv2.weight, sd["layer4.2.conv2.weight"])
    assert torch.equal(model.body.bn1.running_var, sd["bn1.running_var"])
    # full hash given explicitly
    M.load_imagenet_weights(model, path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def test_load_imagenet_weights_errors(tmp_path: Path) -> None:
    path, _ = _write_torchvision_style(tmp_path)
    model = M.SeedResNet("resnet34")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        M.load_imagenet_weights(model, path, sha256="0" * 64)
    bad_name = tmp_path / "resnet34-00000000.pth"
    bad_name.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="resnet34-00000000.pth"):
        M.load_imagenet_weights(model, bad_name)
    with pytest.raises(ModelError, match="not found"):
        M.load_imagenet_weights(model, tmp_path / "nope.pth")
    with pytest.raises(ModelError, match="missing keys"):  # resnet34 weights into a resnet50
        M.load_imagenet_weights(M.SeedResNet("resnet50"), path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pth"):
        M.load_imagenet_weights(model, junk)


def test_resolve_imagenet_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dst: Path, timeout: float) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(weights, "_download", offline)  # the module that downloads
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        assert M.resolve_imagenet_weights("resnet34", cache_dir=tmp_path) is None
    fname = M.IMAGENET_WEIGHTS["resnet34"][0]
    (tmp_path / fname).write_bytes(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.resolve_imagenet_weights("resnet34", cache_dir=tmp_path) == tmp_path / fname
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert M.resolve_imagenet_weights("resnet34", explicit) == explicit
    with pytest.raises(ModelError):
        M.resolve_imagenet_weights("resnet34", tmp_path / "missing.pth")


@pytest.mark.parametrize("rows", [12, 64])
@pytest.mark.parametrize("frames", [50, 98, 301])
def test_small_cnn_shapes(rows: int, frames: int) -> None:
    model = M.build_model(M.ModelConfig(arch="small_cnn", in_rows=rows)).eval()
    feats: list[torch.Tensor] = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: feats.append(o))
    with torch.no_grad():
        out = model(torch.randn(3, 1, rows, frames))
    handle.remove()
    assert out.shape == (3, 2)
    assert feats[0].shape[2] >= rows / 4
    assert set(model.cam_layers) == {"stage1", "stage2", "stage3", "stage4"}


def test_small_cnn_is_small_and_checks_input() -> None:
    model = M.SmallCNN(in_rows=64)
    assert sum(p.numel() for p in model.parameters()) <= 350_000
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(2, 1, 12, 100))
    groups = M.param_groups(model)
    assert len(groups) == 3 and sum(map(len, groups)) == len(list(model.parameters()))
    M.freeze_body(model, True)
    assert not model.stage4.conv1.weight.requires_grad and model.stage4.bn1.weight.requires_grad


@pytest.mark.parametrize("cfg", [M.ModelConfig(arch="small_cnn", in_rows=12), M.ModelConfig(arch="resnet34")])
def test_checkpoint_round_trip(tmp_path: Path, cfg: M.ModelConfig) -> None:
    torch.manual_seed(1)
    model = M.build_model(cfg)
    model.train()
    x = torch.rand(2, 1, 12, 98) if cfg.arch == "small_cnn" else torch.rand(2, 3, 64, 64)  # small: fast
    model(x)  # move BN running stats away from their initial values
    model.eval()
    with torch.no_grad():
        expected = model(x)
    feature_config = {"kind": "mfcc", "n_mfcc": 12, "sr": 48000}
    path = M.save_checkpoint(
        tmp_path / "sub" / "m.pt", model, cfg, feature_config, ["female", "male"], extra={"val_error": 0.01}
    )
    assert not [p for p in path.parent.iterdir() if p.name != "m.pt"]  # no temporary file left
    loaded = M.load_checkpoint(path)
    assert not loaded.model.training
    assert loaded.model_config == cfg and loaded.labels == ["female", "male"]
    assert loaded.feature_config == feature_config and loaded.extra == {"val_error": 0.01}
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), expected, rtol=0, atol=0)


def test_checkpoint_errors(tmp_path: Path) -> None:
    cfg = M.ModelConfig(arch="small_cnn", in_rows=12)
    model = M.build_model(cfg)
    with pytest.raises(ModelError, match="not found"):
        M.load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="corrupt.pt"):
        M.load_checkpoint(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelError, match="not a voicegender checkpoint"):
        M.load_checkpoint(other)
    good = M.save_checkpoint(tmp_path / "good.pt", model, cfg, {}, ["female", "male"])
    ckpt = torch.load(good, weights_only=True)
    ckpt["model_config"]["in_rows"] = 64  # weights no longer fit the config
    torch.save(ckpt, other)
    with pytest.raises(ModelError, match="do not match"):
        M.load_checkpoint(other)
    with pytest.raises(TypeError, match="JSON"):
        M.save_checkpoint(tmp_path / "x.pt", model, cfg, {"bad": object()}, ["female", "male"])


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx/onnxruntime not installed",
)
def test_onnx_export_small_cnn(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    torch.manual_seed(2)
    model = M.SmallCNN(in_rows=64)
    model.train()
    model(torch.randn(4, 1, 64, 100))
    model.eval()
    path = M.export_onnx(model, torch.randn(1, 1, 64, 100), tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 64, 100), (3, 1, 64, 157)]:  # dynamic batch and time
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = sess.run(["logits"], {"features": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_model_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        M.ModelConfig(arch="vgg")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        M.ModelConfig.from_dict({"arch": "small_cnn", "colour": 3})
    assert isinstance(M.build_model(M.ModelConfig(arch="resnet50")), nn.Module)


def test_models_import_one_way():
    """voicegender.research.models imports nothing above it (predict, train, cli, web, ...): only errors, fileio,
    model_files (what a model file holds), the Model interface it implements, __version__ and their packages."""
    import json
    import subprocess
    import sys

    script = ("import json, sys, voicegender.research.models\n"
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('voicegender'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    ours = {m for m in json.loads(done.stdout.splitlines()[-1]) if not m.startswith("voicegender.research.models")}
    allowed = {"voicegender", "voicegender.errors", "voicegender.fileio", "voicegender.research", "voicegender.voice",
               "voicegender.voice.model", "voicegender.voice.model_files"}
    assert ours <= allowed, sorted(ours)
