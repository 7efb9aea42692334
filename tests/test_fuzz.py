"""Fuzzing as a test: mutated files each get exactly one answer; the decode watchdog gives up stuck decoders."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_voice
from fuzzing import fuzz_cases, write_fuzz_files

import voicegender.listen.recording as recording
import voicegender.listen.workers as workers_mod
from voicegender.listen.predict import PredictOptions, predict_files
from voicegender.listen.prediction import LABELS

FUZZ_FILES = 200
FUZZ_SEED = 13


def feature_scorer(waves) -> np.ndarray:
    """A stand-in model that reads log-mel features like the real ones (so it meets extreme values too)."""
    from voicegender.research.features import LogMelConfig, log_mel

    out = []
    for w in waves:
        mel = log_mel(np.asarray(w, np.float32), LogMelConfig())
        out.append(1 / (1 + np.exp(-(float(np.mean(mel[:10])) - float(np.mean(mel[30:]))) / 10)))
    return np.array(out)


def test_fuzz_cases_are_seeded():
    a, b = list(fuzz_cases(20, seed=1)), list(fuzz_cases(20, seed=1))
    assert [c.data for c in a] == [c.data for c in b]
    assert [c.data for c in a] != [c.data for c in fuzz_cases(20, seed=2)]
    assert {c.suffix for c in fuzz_cases(60, seed=1)} == {".wav", ".flac", ".mp3", ".opus", ".m4a"}


def test_fuzzed_files_each_get_exactly_one_answer(tmp_path, capfd):
    files = write_fuzz_files(tmp_path, FUZZ_FILES, seed=FUZZ_SEED)
    paths = [str(p) for p, _ in files]
    t0 = time.monotonic()
    preds = predict_files(paths, feature_scorer, PredictOptions(decode_timeout_s=20.0), show_progress=False)
    elapsed = time.monotonic() - t0
    assert [p.path for p in preds] == paths  # one answer per file, in order
    for p, (_, case) in zip(preds, files, strict=True):
        assert p.label in LABELS, case.name
        if p.label == "error":
            assert p.error.startswith(p.path) and "\n" not in p.error and "Traceback" not in p.error, case.name
            assert (p.p_female, p.female_s, p.male_s) == (None, None, None)
        elif p.label == "no_speech":
            assert p.p_female is None and (p.female_s, p.male_s) == (0.0, 0.0)
        else:
            assert math.isfinite(p.p_female) and 0 <= p.p_female <= 1, case.name
            assert p.female_s + p.male_s == pytest.approx(p.speech_s), case.name
    labels = {p.label for p in preds}
    assert "error" in labels and labels & {"female", "male"}, labels  # the mutations break some files, not all
    assert "Traceback" not in capfd.readouterr().err
    print(f"{FUZZ_FILES} fuzzed files in {elapsed:.1f} s")


@pytest.fixture
def voices(tmp_path) -> list[Path]:
    return [write_voice(tmp_path / f"{name}.wav", "female", seed=i)
            for i, name in enumerate(("ok1", "stuck_c", "ok2", "stuck_py", "ok3"))]


def _decode_threads() -> int:
    return sum(t.name == "voicegender-decode" for t in threading.enumerate())


def _stuck_decoder(monkeypatch, release: threading.Event) -> None:
    """stuck_c.wav blocks without reporting progress (a decoder stuck in C) until ``release``; stuck_py.wav
    loops, reporting that it is alive but decodes nothing (it stops once given up)."""
    real = recording.analyse_file

    def analyse(path, loaded, options, watch):
        name = Path(path).stem
        if name == "stuck_c":
            release.wait(60)
        while name == "stuck_py":
            watch.progress(0)
            time.sleep(0.01)
        return real(path, loaded, options, watch)

    monkeypatch.setattr(recording, "analyse_file", analyse)


def test_watchdog_turns_stuck_decoders_into_error_rows(voices, monkeypatch):
    release = threading.Event()
    _stuck_decoder(monkeypatch, release)
    before = _decode_threads()
    options = PredictOptions(workers=2, batch_size=2, decode_timeout_s=0.5, vad=False)
    try:
        t0 = time.monotonic()
        preds = predict_files(voices, feature_scorer, options, show_progress=False)
        assert time.monotonic() - t0 < 20
    finally:
        release.set()
    assert [p.path for p in preds] == [str(v) for v in voices]
    labels = {Path(p.path).stem: p.label for p in preds}
    assert labels["stuck_c"] == labels["stuck_py"] == "error"
    assert all(labels[k] in ("female", "male") for k in ("ok1", "ok2", "ok3"))
    for p in preds:
        if p.label == "error":
            assert p.error.startswith(p.path) and "no progress for 0.5 s" in p.error
    deadline = time.monotonic() + 10  # the replaced threads leave once their work returns: nothing leaks
    while _decode_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _decode_threads() == before


def test_files_waiting_behind_stuck_decoders_are_answered(voices, monkeypatch):
    release = threading.Event()
    _stuck_decoder(monkeypatch, release)
    monkeypatch.setattr(workers_mod, "MAX_STUCK_DECODES", 0)  # no replacement thread: the one worker is lost
    options = PredictOptions(workers=1, batch_size=8, decode_timeout_s=0.5, vad=False)
    try:
        preds = predict_files(voices, feature_scorer, options, show_progress=False)
    finally:
        release.set()
    assert preds[0].label in ("female", "male")
    assert preds[1].label == "error" and "no progress" in preds[1].error
    assert all(p.label == "error" and "every decoder thread is stuck" in p.error for p in preds[2:])
