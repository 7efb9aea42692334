"""The voice head file: numpy-only scoring, duration-band calibration, safe loading."""

from __future__ import annotations

import numpy as np
import pytest

from voicegender.errors import ModelError
from voicegender.voice.head import DURATION_BANDS, LinearLayer, VoiceHead, duration_band


def small_head(child: bool = True) -> VoiceHead:
    layer = LinearLayer(impute=np.array([0.0, 5.0]), mean=np.array([1.0, 5.0]), scale=np.array([2.0, 1.0]),
                        coef=np.array([1.0, -0.5]), bias=0.25)
    child_layer = LinearLayer(np.zeros(2), np.zeros(2), np.ones(2), np.array([0.0, 1.0]), -3.0) if child else None
    return VoiceHead("pitch", ["f0_median_st", "voiced_share"], layer, child_layer,
                     temperatures=[4.0, 2.0, 1.5, 1.0, 1.0], metadata={"name": "test-head"})


def test_linear_layer_standardises_and_imputes():
    head = small_head()
    x = np.array([[3.0, 6.0], [np.nan, np.nan]])
    # row 0: (3-1)/2 * 1 + (6-5)/1 * -0.5 + 0.25 = 0.75; row 1 imputed (0, 5): (0-1)/2 + 0 + 0.25 = -0.25
    assert head.gender.logit(x) == pytest.approx([0.75, -0.25])
    assert head.female_logit(x) == pytest.approx([-0.75, 0.25])


def test_duration_bands_soften_short_speech():
    head = small_head()
    x = np.array([[3.0, 6.0]] * 3)
    p = head.p_female(x, np.array([0.2, 0.8, 5.0]))
    assert duration_band(np.array([0.2, 0.8, 5.0])).tolist() == [0, 2, 4]
    assert p == pytest.approx(1 / (1 + np.exp(0.75 / np.array([4.0, 1.5, 1.0]))))
    assert len(head.temperatures) == len(DURATION_BANDS)


def test_save_load_roundtrip(tmp_path):
    head = small_head()
    path = head.save(tmp_path / "head.npz")
    back = VoiceHead.load(path)
    x = np.array([[3.0, 6.0], [0.5, np.nan]])
    assert back.p_female(x, np.array([1.0, 0.1])) == pytest.approx(head.p_female(x, np.array([1.0, 0.1])))
    assert back.p_child(x) == pytest.approx(head.p_child(x))
    assert back.metadata == {"name": "test-head"} and back.feature_names == ["f0_median_st", "voiced_share"]
    no_child = small_head(child=False).save(tmp_path / "nochild.npz")
    assert VoiceHead.load(no_child).p_child(x) is None


def test_child_layer_over_hidden_means_reads_them_and_survives_a_roundtrip(tmp_path):
    head = small_head(child=False)
    head.child = LinearLayer(np.zeros(3), np.zeros(3), np.ones(3), np.array([1.0, 0.0, -1.0]), 0.5)
    head.child_features = "hidden"
    x = np.array([[3.0, 6.0], [0.5, 5.0]])
    hidden = np.array([[1.0, 9.0, 0.0], [0.0, 9.0, 2.0]])
    # logits 1 + 0.5 = 1.5 and -2 + 0.5 = -1.5: the main inputs x play no part
    want = 1 / (1 + np.exp(-np.array([1.5, -1.5])))
    assert head.needs_hidden and head.p_child(x, hidden) == pytest.approx(want)
    back = VoiceHead.load(head.save(tmp_path / "child_hidden.npz"))
    assert back.child_features == "hidden" and back.p_child(x, hidden) == pytest.approx(want)
    with pytest.raises(ModelError, match="hidden means"):
        back.p_child(x)
    with pytest.raises(ModelError, match="3 hidden means"):
        back.p_child(x, hidden[:, :2])
    assert not small_head().needs_hidden  # a child layer over the main inputs needs no hidden means


def test_loading_garbage_names_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match="bad.npz"):
        VoiceHead.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array('{"format": "something else"}'))
    with pytest.raises(ModelError, match="not a voicegender voice head"):
        VoiceHead.load(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"a": 1}], dtype=object))  # object arrays need pickle: refused
    with pytest.raises(ModelError, match="pickled.npz"):
        VoiceHead.load(pickled)


def test_inputs_pick_the_measures_the_head_reads():
    from voicegender.voice.acoustic import FEATURE_NAMES, N_FEATURES

    head = small_head()
    assert head.voice_columns == [FEATURE_NAMES.index("f0_median_st"), FEATURE_NAMES.index("voiced_share")]
    voice = np.arange(2 * N_FEATURES, dtype=float).reshape(2, N_FEATURES)
    assert head.inputs(None, voice).tolist() == voice[:, head.voice_columns].tolist()
    with pytest.raises(ModelError, match="voice measures"):
        head.inputs(None, np.zeros((1, 3)))


def with_short_layer(head: VoiceHead) -> VoiceHead:
    """``head`` plus a short-speech layer over two hidden means: logit of *male* = h0 - h1."""
    head.short = LinearLayer(np.zeros(2), np.zeros(2), np.ones(2), np.array([1.0, -1.0]), 0.0)
    head.short_max_s = 1.0
    return head


def test_short_speech_is_answered_by_the_short_layer():
    head = with_short_layer(small_head())
    x = np.array([[3.0, 6.0]] * 3)  # the main layer's female log-odds: -0.75 for every row
    hidden = np.array([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]])  # the short layer's female log-odds: +2
    seconds = np.array([0.2, 0.99, 1.0])
    assert head.female_logit(x, seconds, hidden) == pytest.approx([2.0, 2.0, -0.75])
    assert head.female_logit(x) == pytest.approx([-0.75] * 3)  # without hidden means: the main layer
    p = head.p_female(x, seconds, hidden)
    assert p == pytest.approx(1 / (1 + np.exp(-np.array([2.0 / 4.0, 2.0 / 1.5, -0.75 / 1.0]))))
    with pytest.raises(ModelError, match="hidden means"):
        head.female_logit(x, seconds, np.zeros((3, 5)))


def test_short_layer_survives_save_and_load(tmp_path):
    head = with_short_layer(small_head())
    back = VoiceHead.load(head.save(tmp_path / "short.npz"))
    assert back.short_max_s == 1.0 and back.uses_hidden
    x, seconds, hidden = np.array([[3.0, 6.0], [0.0, 5.0]]), np.array([0.5, 2.0]), np.array([[1.0, 0.0], [0.0, 3.0]])
    assert back.p_female(x, seconds, hidden) == pytest.approx(head.p_female(x, seconds, hidden))
    plain = VoiceHead.load(small_head().save(tmp_path / "plain.npz"))  # a file without the layer (v2.0)
    assert plain.short is None and not plain.uses_hidden
    assert plain.female_logit(x, seconds, hidden) == pytest.approx(plain.female_logit(x))


def test_speech_check_layer_survives_save_and_load(tmp_path):
    head = small_head()
    head.speech = LinearLayer(np.zeros(2), np.zeros(2), np.ones(2), np.array([1.0, 0.0]), 0.0)  # log-odds = e0
    head.speech_min_logit = -1.0
    ge2e = np.array([[2.0, 0.0], [-0.5, 0.0], [-1.5, 0.0]])
    assert head.is_speech(ge2e).tolist() == [True, True, False]
    back = VoiceHead.load(head.save(tmp_path / "speech.npz"))
    assert back.is_speech(ge2e).tolist() == [True, True, False] and back.speech_min_logit == -1.0
    assert VoiceHead.load(small_head().save(tmp_path / "none.npz")).is_speech(ge2e) is None


def test_a_main_layer_over_hidden_means_reads_them(tmp_path):
    """`fit --features ge2e+hidden`: the main layer reads embedding then hidden means (fit.design's order)."""
    layer = LinearLayer(np.zeros(4), np.zeros(4), np.ones(4), np.array([1.0, 0.0, 0.0, 2.0]), 0.0)
    head = VoiceHead("ge2e+hidden", ["ge2e_0", "ge2e_1", "hidden_0", "hidden_1"], layer)
    x = head.inputs(np.array([[1.0, 9.0]]), None, np.array([[9.0, 0.5]]))
    assert x.tolist() == [[1.0, 9.0, 9.0, 0.5]] and head.gender.logit(x) == pytest.approx([2.0])
    with pytest.raises(ModelError, match="hidden means"):
        head.inputs(np.array([[1.0, 9.0]]), None)
    unknown = VoiceHead("?", ["unknown_0"], LinearLayer(np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), 0.0))
    with pytest.raises(ModelError, match="unknown features: unknown_0"):
        unknown.inputs(None, None)
    nothing = VoiceHead("", [], LinearLayer(np.zeros(0), np.zeros(0), np.ones(0), np.zeros(0), 0.0))
    with pytest.raises(ModelError, match="reads no features"):
        nothing.inputs(None, None)


def test_a_layer_of_the_wrong_size_is_refused_on_load(tmp_path):
    path = small_head().save(tmp_path / "head.npz")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["gender.coef"] = np.zeros(3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelError, match="bad.npz.*gender"):
        VoiceHead.load(bad)
