import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice
from voicegender.errors import VoiceGenderError
from voicegender.research.evaluate import evaluate, predict_dataset, read_run_manifest
from voicegender.research.models import load_checkpoint, save_checkpoint
from voicegender.research.train import TrainConfig, class_weights, stratified_subset, train, train_folds


def write_corpus(root: Path, speakers: int = 12, clips: int = 5, seconds: float = 0.6) -> Path:
    """A manifest corpus of synthetic voices: half female (~220 Hz), half male (~120 Hz), with ages."""
    rows = ["path,speaker,gender,age"]
    for s in range(speakers):
        gender = "female" if s % 2 == 0 else "male"
        f0 = (FEMALE_F0 if gender == "female" else MALE_F0) * (1 + 0.04 * (s % 3 - 1))
        for i in range(clips):
            rel = f"{gender}/s{s}_{i}.wav"
            (root / gender).mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, synth_voice(f0, seconds, 16_000, seed=100 * s + i), 16_000, subtype="PCM_16")
            rows.append(f"{rel},spk{s},{gender},{10 if s < 4 else 30}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("synthetic"))


def small_config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(arch="small_cnn", features="log_mel", split="speaker-kfold", k=3, epochs=8, batch_size=4,
                crop_seconds=0.5, threads=1, cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


def test_end_to_end_train_checkpoint_evaluate(corpus: Path, tmp_path: Path):
    # 12 epochs: with 8, batch 4 and BatchNorm, 1 seed in 8 (seed 0 with numpy 2.4 / librosa 0.11) ended near chance
    run = train(small_config(tmp_path, epochs=12), [corpus])
    for name in ("model.pt", "config.json", "train.csv", "val.csv", "test.csv", "log.jsonl", "state.pt"):
        assert (run / name).is_file(), name
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 12 and any(e["best"] for e in log)
    train_speakers = {c.speaker for c in read_run_manifest(run / "train.csv")}
    test_speakers = {c.speaker for c in read_run_manifest(run / "test.csv")}
    assert train_speakers and test_speakers and not train_speakers & test_speakers
    loaded = load_checkpoint(run / "model.pt")
    assert loaded.extra["split"] == "speaker-kfold3/0" and loaded.feature_config["kind"] == "log_mel"
    assert loaded.extra["config"]["arch"] == "small_cnn" and "val_metrics" in loaded.extra
    assert loaded.extra["feature_source"] == "audio"
    report = evaluate(run, cache_dir=tmp_path / "cache")
    assert report.metrics.n == len(read_run_manifest(run / "test.csv"))
    assert report.metrics.accuracy >= 0.9, report.metrics  # 120 Hz vs 220 Hz voices are easy
    assert report.metrics.roc_auc >= 0.95
    assert {"child", "adult"} <= set(report.groups)


def test_checkpoint_round_trip_gives_identical_predictions(corpus: Path, tmp_path: Path):
    run = train(small_config(tmp_path, epochs=1), [corpus])
    from voicegender.research.dataset import ClipDataset

    first = load_checkpoint(run / "model.pt")
    ds = ClipDataset(read_run_manifest(run / "test.csv"), first.feature_config, cache_dir=tmp_path / "cache")
    p1, y1, _ = predict_dataset(first.model, ds)
    save_checkpoint(tmp_path / "copy.pt", first.model, first.model_config, first.feature_config, first.labels,
                    first.extra)
    p2, y2, _ = predict_dataset(load_checkpoint(tmp_path / "copy.pt").model, ds)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(y1, y2)


def test_resume_continues_after_the_last_finished_epoch(corpus: Path, tmp_path: Path):
    cfg = small_config(tmp_path, epochs=2)
    run = train(cfg, [corpus])
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["epoch"] == 1
    train(cfg, [corpus])  # nothing left to do: no new epochs
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    with pytest.raises(VoiceGenderError, match="different config"):
        train(small_config(tmp_path, epochs=2, lr=1e-2), [corpus])


def test_folds_and_seed_image_resnet_smoke(corpus: Path, tmp_path: Path):
    runs = train_folds(small_config(tmp_path, epochs=1, out=str(tmp_path / "folds")), [corpus], folds=[0, 2])
    assert [r.name for r in runs] == ["fold0", "fold2"]
    # the seed recipe end to end on a handful of clips (frozen-body head on cached features, then unfrozen)
    cfg = small_config(tmp_path, arch="resnet34", features="seed_image", epochs=1, head_epochs=1, batch_size=4,
                       max_train_clips=8, max_val_clips=4, bn_calibration_batches=1, out=str(tmp_path / "resnet"))
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        run = train(cfg, [corpus])
    stages = [json.loads(line)["stage"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert stages == ["head", "full"] and (run / "body_features.pt").is_file()


def test_cached_body_features_feed_the_head_exactly_like_the_full_forward(voice_pair, tmp_path: Path):
    """The frozen-stage head trains on pooled body features; they must be what model(x) computes (same
    normalisation, eval-mode BatchNorm), or the saved checkpoint would not behave as validated."""
    from torch.utils.data import DataLoader

    from voicegender.corpora import Clip
    from voicegender.research.dataset import ClipDataset
    from voicegender.research.models import ModelConfig, build_model
    from voicegender.research.train import feature_config_for
    from voicegender.research.train_loop import calibrate_batchnorm, pooled_body_features

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="resnet34")).eval()
    clips = [Clip(voice_pair["female"], "f", "female"), Clip(voice_pair["male"], "m", "male")]
    ds = ClipDataset(clips, feature_config_for("seed_image"), cache_dir=None)
    calibrate_batchnorm(model, DataLoader(ds, batch_size=2), 1, bf16=False, channels_last=False)
    pooled = pooled_body_features(model, ds, 2, bf16=False, channels_last=False, desc="test")
    x = torch.stack([ds[i][0] for i in range(2)])
    with torch.no_grad():
        torch.testing.assert_close(model.head[1:](pooled.tensors[0]), model(x), rtol=1e-4, atol=1e-4)


def test_config_validation_and_helpers():
    with pytest.raises(VoiceGenderError, match="takes --features"):
        TrainConfig(arch="resnet34", features="log_mel")
    with pytest.raises(VoiceGenderError, match="unknown --arch"):
        TrainConfig(arch="vgg")
    w = class_weights(np.array([0] * 12 + [1] * 48))
    assert w.tolist() == pytest.approx([60 / 24, 60 / 96])  # each class contributes equally
    from voicegender.corpora import Clip

    clips = [Clip(Path(f"{i}.wav"), str(i), "female" if i < 20 else "male") for i in range(100)]
    sub = stratified_subset(clips, 10, seed=0)
    assert len(sub) == 10 and sum(c.gender == "female" for c in sub) == 2


def test_seed_mfcc_model_trained_on_pictures_clips_new_audio(tmp_path: Path):
    """A model trained on the seed's 8-bit pictures saw MFCCs clipped to 0..255; its checkpoint must say so, so
    that audio given to it later (predict --model) is clipped the same way."""
    from PIL import Image

    from voicegender.research.features import featurize, seed_features, seed_mfcc_image

    rows = ["path,speaker,gender"]
    for s in range(6):
        gender = "female" if s % 2 else "male"
        wave = synth_voice((FEMALE_F0 if s % 2 else MALE_F0) * (1 + 0.03 * s), 0.8, 16_000, seed=s)
        Image.fromarray(seed_mfcc_image(seed_features(wave, 16_000))).save(tmp_path / f"{s}.jpg")
        rows.append(f"{s}.jpg,spk{s},{gender}")
    (tmp_path / "pictures.csv").write_text("\n".join(rows) + "\n")
    run = train(small_config(tmp_path, features="seed_mfcc", epochs=1), [tmp_path / "pictures.csv"])
    fc = load_checkpoint(run / "model.pt").feature_config
    assert fc["kind"] == "seed_mfcc" and fc["clip_to_image"] is True
    x = featurize(synth_voice(MALE_F0, 0.8, 16_000), 16_000, fc)
    assert x.min() >= 0 and x.max() <= 255


def _log_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same training: the same epochs, losses and final weights."""
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in _log_lines(a)]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in _log_lines(b)]
    wa = torch.load(a / "state.pt", weights_only=True)["model"]
    wb = torch.load(b / "state.pt", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


def test_run_interrupted_mid_epoch_resumes_from_its_last_checkpoint(corpus: Path, tmp_path: Path, monkeypatch):
    """An exception in the middle of epoch 1 stands for a kill; the log then also gets the line of an epoch
    whose state was never saved and a torn line (a kill between the log and state.pt). Started again, the run
    goes on from epoch 0's state and ends exactly where the uninterrupted run ends."""
    from voicegender.research.dataset import ClipDataset

    whole = train(small_config(tmp_path, epochs=3, out=str(tmp_path / "whole")), [corpus])
    cfg = small_config(tmp_path, epochs=3, out=str(tmp_path / "cut"))
    per_epoch = 5 * 4  # 20 training clips (4 speakers x 5) in batches of 4
    calls = {"n": 0}
    getitem = ClipDataset.__getitem__

    def dying_getitem(self, index):
        if self.train:
            calls["n"] += 1
            if calls["n"] == per_epoch + 6:  # the second batch of epoch 1
                raise KeyboardInterrupt("killed")
        return getitem(self, index)

    monkeypatch.setattr(ClipDataset, "__getitem__", dying_getitem)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, [corpus])
    monkeypatch.setattr(ClipDataset, "__getitem__", getitem)
    run = Path(cfg.out)
    assert torch.load(run / "state.pt", weights_only=True)["epoch"] == 0 and len(_log_lines(run)) == 1
    with (run / "log.jsonl").open("a") as f:
        f.write(json.dumps({**_log_lines(run)[0], "epoch": 1}) + "\n" + '{"stage": "train", "ep')
    train(cfg, [corpus])
    assert [e["epoch"] for e in _log_lines(run)] == [0, 1, 2]
    _assert_same_run(whole, run)


def test_training_killed_with_sigkill_resumes(corpus: Path, tmp_path: Path):
    """A real kill (SIGKILL, no clean-up) of `voicegender train` while it trains; the same command again
    finishes the run as if nothing had happened."""
    import os
    import signal
    import subprocess
    import sys
    import time

    epochs = 6
    whole = train(small_config(tmp_path, epochs=epochs, out=str(tmp_path / "whole")), [corpus])
    run = tmp_path / "killed"
    args = [str(corpus), "--k", "3", "--epochs", str(epochs), "--batch-size", "4", "--crop-seconds", "0.5",
            "--threads", "1", "--cache-dir", str(tmp_path / "cache"), "-o", str(run)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "voicegender", "-q", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (run / "state.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(run / "state.pt", weights_only=True)["epoch"]
    assert saved < epochs - 1  # killed with epochs left to do
    train(small_config(tmp_path, epochs=epochs, out=str(run)), [corpus])
    assert [e["epoch"] for e in _log_lines(run)] == list(range(epochs))
    _assert_same_run(whole, run)
