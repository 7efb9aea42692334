"""Cross-module behaviour: the shipped model through predict, then explain, in one process."""

import numpy as np

from voicegender.audio.synth import synth_voice
from voicegender.examples import example_paths


def test_map_after_prediction_with_the_default_model():
    # Regression: predictions under torch.inference_mode left inference tensors cached in the GE2E encoder,
    # and the next attribution map failed with "Inference tensors cannot be saved for backward".
    from voicegender.listen.predict import load_model, predict_waveform
    from voicegender.research import explain

    model = load_model(None)
    wave = synth_voice(220, 2.0, 16_000)
    assert predict_waveform(wave, 16_000, model).label in ("female", "male")
    png = explain.explain_clip_png(wave, 16_000, model)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_bundled_examples_are_decodable_and_named_by_gender():
    from voicegender.audio.decode import load_audio

    paths = example_paths()
    assert {p.stem.split("_")[1] for p in paths if p.stem.startswith("espeak_")} == {"female", "male"}
    assert {p.stem.split("_")[1] for p in paths if p.stem.startswith("commonvoice_")} == {"female", "male"}
    credits = (paths[0].parent / "README.md").read_text()  # every recording is credited (package data too)
    for path in paths:
        audio = load_audio(path)
        assert audio.duration_s > 1.0 and np.abs(audio.samples).max() > 0.01
        assert path.stat().st_size <= 100_000 and path.name in credits, path


def test_the_real_example_voices_get_clear_right_answers():
    from voicegender.examples import EXAMPLES_DIR
    from voicegender.listen.predict import predict_files

    paths = [EXAMPLES_DIR / "commonvoice_female_en.ogg", EXAMPLES_DIR / "commonvoice_male_en.ogg"]
    female, male = predict_files(paths)
    assert female.label == "female" and female.p_female > 0.9, female
    assert male.label == "male" and male.p_female < 0.1, male


def test_the_examples_readme_quotes_the_shipped_models_answers():
    """Issue 22: the examples' README quoted probabilities of an older model."""
    import re

    from voicegender.examples import EXAMPLES_DIR
    from voicegender.listen.predict import predict_files
    from voicegender.voice.default_model import DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION

    text = (EXAMPLES_DIR / "README.md").read_text()
    assert f"(`{DEFAULT_MODEL_NAME}` {DEFAULT_MODEL_VERSION})" in text
    quoted = {name: (label, float(p) if p else None) for name, label, p in
              re.findall(r"^\| `([^`]+\.ogg)` \|.*\| (female|male|no_speech)(?:, p_female ([\d.]+))? \|$", text, re.M)}
    assert set(quoted) == {p.name for p in example_paths()}
    for answer in predict_files([EXAMPLES_DIR / name for name in sorted(quoted)], show_progress=False):
        label, p = quoted[answer.path.rsplit("/", 1)[-1]]
        assert answer.label == label, answer
        assert p is None if label == "no_speech" else abs(answer.p_female - p) <= 0.006, (answer, p)
    child = max(a.p_child for a in predict_files([EXAMPLES_DIR / "commonvoice_female_en.ogg",
                                                   EXAMPLES_DIR / "commonvoice_male_en.ogg"], show_progress=False))
    assert child < 0.02 and "p_child below 0.02" in text


def test_predict_explain_writes_a_map_per_classified_file(tmp_path, capsys):
    from voicegender.cli import main
    from voicegender.examples import EXAMPLES_DIR

    files = [str(EXAMPLES_DIR / "espeak_male_de.ogg"), str(EXAMPLES_DIR / "noise.ogg")]
    assert main(["-q", "predict", *files, "--format", "json", "--explain", str(tmp_path / "maps")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.count('"label"') for line in lines] == [1, 1]
    written = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert written == ["espeak_male_de.png"]  # no map for the no_speech file
    assert (tmp_path / "maps" / written[0]).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_report_gets_the_explain_section(tmp_path, capsys):
    import json

    import soundfile as sf

    from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice
    from voicegender.cli import main

    rows = ["path,speaker,gender"]
    for s in range(6):
        gender = "female" if s % 2 else "male"
        for i in range(3):
            f0 = (FEMALE_F0 if gender == "female" else MALE_F0) * (1 + 0.03 * s)
            sf.write(tmp_path / f"s{s}_{i}.wav", synth_voice(f0, 1.0, 16_000, seed=10 * s + i), 16_000)
            rows.append(f"s{s}_{i}.wav,spk{s},{gender}")
    (tmp_path / "corpus.csv").write_text("\n".join(rows) + "\n")
    cache = str(tmp_path / "cache")
    assert main(["train", str(tmp_path / "corpus.csv"), "--out", str(tmp_path / "run"), "--split", "speaker-kfold",
                 "--k", "3", "--epochs", "1", "--batch-size", "8", "--crop-seconds", "0.5", "--threads", "1",
                 "--cache-dir", cache]) == 0
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "ev"), "--cache-dir", cache,
                 "--explain-clips", "4"]) == 0
    capsys.readouterr()
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "What the model listens to" in html and html.count("data:image/png;base64") >= 3
    summary = json.loads((tmp_path / "ev" / "explain" / "summary.json").read_text())
    assert summary["methods"]  # maps were computed for the evaluated (test) clips


def test_export_onnx_matches_torch(tmp_path, capsys):
    import pytest

    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    from voicegender.cli import main
    from voicegender.research.features import LogMelConfig, feature_config_dict
    from voicegender.research.models import ModelConfig, build_model, load_checkpoint, save_checkpoint

    cfg = ModelConfig(arch="small_cnn", in_rows=64)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg, feature_config_dict("log_mel", LogMelConfig()),
                    ["female", "male"])
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "m.onnx" in capsys.readouterr().out
    x = torch.randn(3, 1, 64, 140)  # another batch size and length than the export example
    expected = load_checkpoint(tmp_path / "m.pt").model(x).detach().numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    np.testing.assert_allclose(session.run(None, {"features": x.numpy()})[0], expected, atol=1e-4)
    assert main(["export", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
