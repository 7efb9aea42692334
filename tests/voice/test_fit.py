"""`voicegender fit`: training copies, cache, head, calibration and the model file, end to end on espeak voices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import espeak, requires_espeak

from voicegender.cli import main
from voicegender.voice import calibration, layers
from voicegender.voice.head import VoiceHead

SENTENCES = ("Seven four one nine.", "The cat sat on the mat.", "Where is the station?")


def espeak_corpus(root: Path, name: str, speakers: list[tuple[str, str, int, int]]) -> Path:
    """A manifest corpus of espeak voices: (speaker, gender, espeak pitch, age) rows, one clip per sentence."""
    rows = ["path,speaker,gender,age"]
    for speaker, gender, pitch, age in speakers:
        voice = "en+f3" if gender == "female" else "en+m3"
        for i, text in enumerate(SENTENCES):
            rel = f"{speaker}/{i}.wav"
            (root / name / speaker).mkdir(parents=True, exist_ok=True)
            sf.write(root / name / rel, espeak(text, voice, pitch), 16_000)
            rows.append(f"{rel},{speaker},{gender},{age}")
    (root / name / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / name


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("fitdata")
    return [espeak_corpus(root, "alpha", [("a1", "female", 70, 30), ("a2", "female", 60, 8), ("a3", "male", 30, 40),
                                          ("a4", "male", 20, 35)]),
            espeak_corpus(root, "beta", [("b1", "female", 80, 25), ("b2", "male", 25, 50), ("b3", "male", 35, 9)])]


def test_balanced_weights_equalise_genders_and_speakers():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    spk = np.array(["f1", "f1", "f2", "m1", "m1", "m1", "m1", "m2"])
    w = layers.balanced_weights(y, spk)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w[spk == "f1"].sum() == pytest.approx(w[spk == "f2"].sum())
    assert w.mean() == pytest.approx(1.0)


def _cell(rng, n, scale, wrong_share=0.0, seconds=2.0):
    """A held-out cell (log-odds of *female*, is-female, speech seconds) from a calibrated model whose log-odds
    were multiplied by ``scale``, with ``wrong_share`` of the labels flipped (as a mislabelled speaker would be)."""
    true = rng.standard_normal(n) * 3
    y = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(float)
    flip = rng.random(n) < wrong_share
    return true * scale, np.where(flip, 1 - y, y), np.full(n, seconds)


def test_calibration_recovers_temperature_and_floor_from_label_noise():
    rng = np.random.default_rng(2)
    cells = [_cell(rng, 6000, 0.5, 0.03) for _ in range(3)]
    cal = calibration.fit_calibration(cells)
    assert cal.temperatures == pytest.approx([cal.temperatures[0]] * 5)  # no short crops: one temperature
    assert cal.temperatures[0] == pytest.approx(0.5, rel=0.15)
    assert cal.floor == pytest.approx(0.03, abs=0.01)
    p = cal.p_female(np.array([-100.0, 0.0, 100.0]), np.full(3, 2.0))
    assert p == pytest.approx([cal.floor, 0.5, 1 - cal.floor])
    clean = calibration.fit_calibration([_cell(rng, 6000, 2.0) for _ in range(3)])
    assert clean.floor <= 0.005 and clean.temperatures[0] == pytest.approx(2.0, rel=0.15)


def test_short_words_get_their_own_softer_temperature_only():
    rng = np.random.default_rng(4)
    cells = [_cell(rng, 4000, 1.0) for _ in range(3)]  # calibrated long speech
    z, y, _ = _cell(rng, 3000, 4.0)  # words under 0.3 s four times over-confident
    short = [(z, y, np.full(len(z), 0.2))]
    cal = calibration.fit_calibration(cells, short)
    assert cal.temperatures[0] == pytest.approx(4.0, rel=0.2)
    assert cal.temperatures[1:] == pytest.approx([cal.temperatures[2]] * 4)  # 0.3-0.6 s: no clips, the next one's
    assert cal.temperatures[2] == pytest.approx(1.0, rel=0.15)
    sharp = calibration.fit_calibration(cells, [(z / 16, y, np.full(len(z), 0.2))])  # short words *under*-confident
    assert sharp.temperatures[0] == pytest.approx(sharp.temperatures[2])  # never sharper than longer speech


def test_calibration_weighs_cells_equally_not_clips():
    rng = np.random.default_rng(3)
    big, small = _cell(rng, 20_000, 3.0), _cell(rng, 1_000, 1.0)
    pooled = calibration.fit_temperature(np.r_[big[0], small[0]], np.r_[big[1], small[1]])
    per_cell = calibration.fit_calibration([big, small]).temperatures[0]
    assert pooled > 2.5  # the big cell decides alone
    assert 1.1 < per_cell < 2.0  # both count


def test_reliability_and_ece_of_known_answers():
    p = np.array([0.95] * 10 + [0.3] * 10)  # confidences 0.95 and 0.7
    y = np.array([1] * 9 + [0] + [0] * 5 + [1] * 5)  # right 0.9 and 0.5 of the time
    bins = calibration.reliability(p, y)
    assert [(b["n"], round(b["confidence"], 2), b["accuracy"]) for b in bins] == [(10, 0.7, 0.5), (10, 0.95, 0.9)]
    assert calibration.expected_calibration_error(p, y) == pytest.approx((0.2 + 0.05) / 2)
    summary = calibration.calibration_summary(p, y)
    assert summary["gap"] == pytest.approx(0.825 - 0.7)  # over-confident


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    true = rng.standard_normal(20_000) * 3
    y = (rng.random(len(true)) < 1 / (1 + np.exp(-true))).astype(float)
    assert calibration.fit_temperature(true * 2.5, y) == pytest.approx(2.5, rel=0.1)


@requires_espeak
def test_fit_command_end_to_end(two_corpora, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(layers, "NONSPEECH_SOUNDS", 600)  # the speech check's negatives (4,000 for the shipped model)
    out = tmp_path / "model.npz"
    cache = tmp_path / "cache"
    assert main(["fit", *map(str, two_corpora), "--out", str(out), "--cache-dir", str(cache), "--workers", "1",
                 "--name", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "leave-one-corpus-out\talpha" in printed and "calibration\tece_before=" in printed
    head = VoiceHead.load(out)
    assert head.features == "ge2e" and len(head.temperatures) == 5
    assert head.child is not None  # ages with children and adults were given
    assert head.child_features == "hidden" and len(head.child.coef) == 256  # the child layer reads hidden means
    # each corpus has a child, so each held-out corpus gets the shares its children and adults are flagged at
    flag_lines = [line.split("\t") for line in printed.splitlines() if line.startswith("child_flag_heldout\t")]
    assert {(f[1], f[2]) for f in flag_lines} == {(c, k) for c in ("alpha", "beta") for k in ("clean", "tel", "codec")}
    assert all(f[5].startswith("children=") and f[5] != "children=n/a" for f in flag_lines)
    assert head.metadata["name"] == "tiny" and head.metadata["training_corpora"] == ["alpha", "beta"]
    assert head.metadata["n_speakers"] == 5  # the two children are left out of the gender head
    assert len(list(cache.glob("*/done.json"))) == 2
    assert head.short is not None and head.short_max_s == 1.0 and len(head.short.coef) == 256  # short speech
    assert head.speech is not None and head.metadata["speech_check"]["speech_rejected"] < 0.2  # the speech check
    # a cache written before the hidden means existed gets them from its stored speech, as a fresh run computes them
    from voicegender.voice import training_set

    folder = next(cache.glob("alpha-*"))
    fresh = {p.name: np.load(p) for p in folder.glob("*.hidden.npy")}
    assert len(fresh) == len(training_set.COPY_KINDS)
    for name in fresh:
        (folder / name).unlink()
    training_set.add_hidden_means(folder)
    assert {p.name for p in folder.glob("*.hidden.npy")} == set(fresh)
    for kind in ("clean", "tel", "codec"):  # whole clips at speaking level: within the stored speech's 16-bit
        # rounding (the fresh run saw float samples; a quiet 0.15 s crop, normalised to -30 dBFS, moves more)
        np.testing.assert_allclose(np.load(folder / f"{kind}.hidden.npy"), fresh[f"{kind}.hidden.npy"], atol=5e-4)

    # the model answers through predict, with the child-voice estimate
    female = tmp_path / "f.wav"
    male = tmp_path / "m.wav"
    sf.write(female, espeak("Good morning, how are you today?", "en+f3", 75), 16_000)
    sf.write(male, espeak("Good morning, how are you today?", "en+m3", 25), 16_000)
    assert main(["predict", str(female), str(male), "--model", str(out), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["female", "male"]
    assert all(0 <= r["p_child"] <= 1 for r in rows)


@requires_espeak
def test_fit_without_corpora_or_shared_data_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    assert main(["fit"]) == 2
    assert "give the corpora" in capsys.readouterr().err


@requires_espeak
def test_features_computed_by_two_ranks_equal_one_process(two_corpora, tmp_path, monkeypatch):
    """Issue 12: every rank caches its share of the chunks, rank 0 waits for the others and assembles them."""
    import threading

    from voicegender.corpora import load_corpus
    from voicegender.voice import training_set

    monkeypatch.setattr(training_set, "CHUNK", 4)  # several chunks per corpus, so both ranks get work
    corpus = load_corpus(two_corpora[0])
    pool = training_set.babble_pool([corpus])
    single = training_set.cache_corpus(corpus, tmp_path / "one", pool, workers=1)
    results = {}

    def run(rank: int) -> None:
        results[rank] = training_set.cache_corpus(corpus, tmp_path / "two", pool, workers=1, rank=rank,
                                                  world_size=2, wait_s=120)

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]  # rank 0 starts first and has to wait
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[1] is None and results[0] is not None
    chunks = sorted(p.name for p in (results[0] / "chunks").glob("*.npz"))
    assert len(chunks) == 3  # 12 clips in chunks of 4, split 2 + 1 between the ranks
    for kind in ("clean", "tel", "short"):
        for name in ("ge2e", "lengths"):
            a = np.load(single / f"{kind}.{name}.npy")
            b = np.load(results[0] / f"{kind}.{name}.npy")
            np.testing.assert_allclose(a, b, atol=1e-6)


@requires_espeak
def test_a_cache_interrupted_before_hidden_means_existed_resumes(two_corpora, tmp_path):
    """Chunks written by 2.0 hold no hidden means: assembling them still works, and the means are added."""
    from voicegender.corpora import load_corpus
    from voicegender.voice import training_set

    corpus = load_corpus(two_corpora[1])
    pool = training_set.babble_pool([corpus])
    folder = training_set.cache_corpus(corpus, tmp_path / "cache", pool, workers=1)
    fresh = np.load(folder / "clean.hidden.npy")
    for chunk in (folder / "chunks").glob("*.npz"):  # as 2.0 wrote them
        with np.load(chunk) as data:
            old = {k: v for k, v in data.items() if not k.endswith(".hidden")}
        np.savez(chunk, **old)
    for p in list(folder.glob("*.npy")) + [folder / "done.json"]:
        p.unlink()
    again = training_set.cache_corpus(corpus, tmp_path / "cache", pool, workers=1)
    assert again == folder and (folder / "done.json").exists()
    np.testing.assert_allclose(np.load(folder / "clean.hidden.npy"), fresh, atol=5e-4)
    assert {p.name for p in folder.glob("*.hidden.npy")} == {f"{k}.hidden.npy" for k in training_set.COPY_KINDS}


# --- what fit can make of a corpus, said before any audio is read (issue 22) ------------------------------------
def gender_folders(root: Path, files: dict[str, list[str]]) -> Path:
    """``root/female/...`` and ``root/male/...`` with a tiny synthetic voice per relative path."""
    from conftest import write_voice

    for gender, names in files.items():
        for i, name in enumerate(names):
            write_voice(root / gender / name, gender, seed=i, seconds=0.3)
    return root


@pytest.fixture
def no_features(monkeypatch):
    """Fail the command where fit would start computing features (the checks must come first)."""
    from voicegender.errors import VoiceGenderError
    from voicegender.voice import training_set

    def stop(*args, **kwargs):
        raise VoiceGenderError("features: reached")

    monkeypatch.setattr(training_set, "load_feature_table", stop)


def _fit_err(capsys, *args) -> tuple[int, list[str]]:
    code = main(["fit", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.strip()]


def test_fit_on_one_gender_is_a_one_line_error_before_any_work(tmp_path, capsys, no_features):
    corpus = gender_folders(tmp_path / "onlyf", {"female": ["a/1.wav", "a/2.wav", "b/1.wav"]})
    code, lines = _fit_err(capsys, corpus, "-o", tmp_path / "m.npz")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == ("error: onlyf: only female voices (3 clips); fit tells female from male and needs both: add "
                        "male recordings (a male/ folder, or manifest rows with gender male)")
    assert not (tmp_path / "m.npz").exists()


def test_fit_with_one_speaker_of_a_gender_or_a_corpus_per_gender_says_what_to_do(tmp_path, capsys, no_features):
    one_man = gender_folders(tmp_path / "c", {"female": ["a/1.wav", "b/1.wav"], "male": ["m/1.wav", "m/2.wav"]})
    code, lines = _fit_err(capsys, one_man, "-o", tmp_path / "m.npz")
    assert code == 2 and len(lines) == 1 and "only 1 male speaker (c/m)" in lines[0], lines
    assert "at least 2 female and male speakers" in lines[0]
    women = gender_folders(tmp_path / "women", {"female": ["a/1.wav", "b/1.wav"]})
    men = gender_folders(tmp_path / "men", {"male": ["c/1.wav", "d/1.wav"]})
    code, lines = _fit_err(capsys, women, men, "-o", tmp_path / "m.npz")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: holding out men ") and lines[0].endswith("--join all=men,women"), lines
    # held out together, they are one corpus: speaker folds, and the checks pass (fit gets to its features)
    code, lines = _fit_err(capsys, women, men, "-o", tmp_path / "m.npz", "--join", "all=men,women")
    assert code == 2 and lines[-1] == "error: features: reached", lines


def test_fit_warns_about_a_tiny_or_speakerless_corpus_before_the_work(tmp_path, capsys, no_features):
    corpus = gender_folders(tmp_path / "tiny", {"female": ["1.wav", "2.wav", "3.wav"], "male": ["4.wav", "5.wav"]})
    code, lines = _fit_err(capsys, corpus, "-o", tmp_path / "m.npz")
    assert lines[-1] == "error: features: reached", lines  # the warnings come before the work
    warned = [line for line in lines if line.startswith("warning: ")]
    assert len(warned) == 2, lines
    assert "5 of 5 files lie directly in female/ or male/, so each counts as its own speaker" in warned[0]
    assert "female/<speaker>/" in warned[0]
    assert "only 3 female and 2 male speakers (5 clips)" in warned[1]


def test_speaker_note_counts_only_files_without_a_speaker_folder(tmp_path):
    from voicegender.corpora import load_corpus, speaker_note

    named = load_corpus(gender_folders(tmp_path / "a", {"female": ["s1/1.wav"], "male": ["s2/1.wav"]}))
    assert named.speaker_from_file == 0 and speaker_note(named) is None
    mixed = load_corpus(gender_folders(tmp_path / "b", {"female": ["s1/1.wav", "x.wav"], "male": ["y.wav"]}))
    assert mixed.speaker_from_file == 2 and "2 of 3 files" in speaker_note(mixed)


def test_report_warnings_name_folds_without_a_score_and_a_temperature_at_its_bound():
    from voicegender.voice.fit import report_warnings

    fine = {"protocol": "speaker 5-fold", "temperatures": [0.9] * 5,
            "corpora": {f"fold{i}": {"clean": {"bacc": 0.9}} for i in range(5)}}
    assert report_warnings(fine) == []
    tiny = {"protocol": "speaker 5-fold", "temperatures": [calibration.MAX_TEMPERATURE] * 5,
            "corpora": {f"fold{i}": {"clean": {"bacc": float("nan") if i else 1.0}} for i in range(5)}}
    said = report_warnings(tiny)
    assert len(said) == 2
    assert said[0].startswith("balanced accuracy is n/a for 4 of 5 folds (fold1, fold2, fold3, fold4)")
    assert "is at its bound" in said[1] and "not calibrated" in said[1]


def test_fit_stores_the_models_own_version(tmp_path, capsys, monkeypatch):
    """--model-version reaches the file's metadata (what the page, /api/health and --version show)."""
    from voicegender.voice import fit

    given = {}

    def fake_fit(corpora, out, cfg, **kwargs):
        given.update(kwargs["metadata"])
        return None  # as a rank other than 0 answers

    monkeypatch.setattr(fit, "fit_corpora", fake_fit)
    corpus = gender_folders(tmp_path / "c", {"female": ["a/1.wav", "b/1.wav"], "male": ["c/1.wav", "d/1.wav"]})
    assert main(["fit", str(corpus), "-o", str(tmp_path / "m.npz"), "--model-version", "1.2.0", "--name", "mine"]) == 0
    assert given["version"] == "1.2.0" and given["name"] == "mine"
    assert main(["fit", str(corpus), "-o", str(tmp_path / "m.npz"), "--model-version", " "]) == 2
    assert "--model-version: empty" in capsys.readouterr().err
