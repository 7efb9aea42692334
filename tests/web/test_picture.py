"""The page's picture drawn with Pillow (no matplotlib): size, the map over the spectrogram, and which map each model
gets from the backend (occlusion for the shipped model; a note when a map needs the research extras)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="the page's picture needs pillow (web extra)")

from voicegender.audio.synth import synth_voice  # noqa: E402
from voicegender.voice.model import ScorerModel  # noqa: E402
from voicegender.web import backend, picture  # noqa: E402


def _image(png: bytes):
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_plain_and_mapped_pictures_have_the_plot_and_its_margins():
    rng = np.random.default_rng(0)
    log_mel = rng.normal(-5, 2, (40, 300))
    hz = np.linspace(30, 7500, 40)
    plain = _image(picture.picture_png(log_mel, 0.01, hz))
    relevance = np.zeros_like(log_mel)
    relevance[:4, 100:200] = 1.0  # the lowest band group, 1-2 s
    mapped = _image(picture.picture_png(log_mel, 0.01, hz, relevance))
    width = picture.LEFT + picture.PLOT_WIDTH + picture.RIGHT
    height = picture.TOP + 40 * picture.ROW_PIXELS + picture.BOTTOM
    assert plain.size == mapped.size == (width, height)
    # the map colours its cell (dark red at its maximum) and leaves the rest grey
    pixels = np.asarray(mapped).astype(int)
    bottom = picture.TOP + 40 * picture.ROW_PIXELS - 2
    x_in, x_out = picture.LEFT + int(1.5 / 3 * picture.PLOT_WIDTH), picture.LEFT + int(0.5 / 3 * picture.PLOT_WIDTH)
    red, green, blue = pixels[bottom, x_in]
    assert red > green + 40 and red > blue + 40
    assert len(set(pixels[bottom, x_out])) == 1  # grey: r == g == b
    with pytest.raises(ValueError, match="differ in shape"):
        picture.picture_png(log_mel, 0.01, hz, relevance[:, :10])


def test_the_shipped_model_gets_the_occlusion_map():
    served = backend.load()
    png, has_map, note = backend.picture_png(synth_voice(220, 2.0, seed=1), served)
    assert has_map is True and note is None and _image(png).size[0] > picture.PLOT_WIDTH
    assert backend.unmapped_below_s(served) == served.loaded.head.short_max_s


def test_other_models_without_the_research_extras_get_the_plain_picture_and_why(monkeypatch: pytest.MonkeyPatch):
    served = backend.ServedModel(ScorerModel(lambda waves: np.full(len(waves), 0.7)), "scorer", "1")
    monkeypatch.setitem(sys.modules, "captum", None)  # as if the research extras were not installed
    png, has_map, note = backend.picture_png(synth_voice(220, 2.0, seed=1), served)
    assert has_map is False and _image(png)
    assert note == "a map of this model needs the research extras: pip install 'voicegender[research]'"
    assert backend.unmapped_below_s(served) == 0.0
