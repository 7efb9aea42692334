"""The page's picture: a log-mel spectrogram, optionally with an attribution map over it, as PNG bytes (Pillow).

Pillow comes with the web extra (about 22 MB installed, against matplotlib's ~100 MB with its dependencies), so the
page draws its picture without the research extras. Time runs across in seconds, frequency up (mel-spaced rows
labelled in Hz), with a colour bar: the spectrogram's level relative to its loudest cell, or how much the answer
relied on each region. The research bench's own pictures (``voicegender explain``, ``predict --explain``) stay
matplotlib's (:mod:`voicegender.research.plots`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PLOT_WIDTH = 760  # pixels of the spectrogram across (any number of frames is resampled to it)
ROW_PIXELS = 6  # pixels per mel band (40 bands: 240 px)
LEFT, RIGHT, TOP, BOTTOM = 66, 100, 10, 50  # margins: Hz labels, colour bar and its labels, time labels
RANGE_NEPERS = 16.0  # log-power range shown: 16 nepers of power = 69.5 dB below the loudest cell
MAP_ALPHA = 0.55  # opacity of the map's colours over the grey spectrogram
MAP_FLOOR = 0.15  # map cells below this share of its 99th percentile stay transparent
# colour maps as anchor colours from low to high, interpolated linearly (after matplotlib's magma and jet)
MAGMA = ((0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (254, 159, 109), (252, 253, 191))
JET = ((0, 0, 143), (0, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0), (128, 0, 0))


def _colours(values: np.ndarray, anchors: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """RGB uint8 (..., 3) of ``values`` in 0…1 through the anchor colours."""
    stops = np.linspace(0.0, 1.0, len(anchors))
    table = np.asarray(anchors, np.float64)
    v = np.clip(values, 0.0, 1.0)
    return np.stack([np.interp(v, stops, table[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError):  # older Pillow or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _time_step(seconds: float) -> float:
    """A round tick step giving 4-10 ticks over ``seconds``."""
    for step in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0):
        if seconds / step <= 10:
            return step
    return 600.0


def picture_png(log_mel: np.ndarray, frame_s: float, band_hz: Sequence[float], relevance: np.ndarray | None = None,
                ) -> bytes:
    """PNG bytes of a (bands, frames) natural-log mel power spectrogram (row 0 the lowest band), drawn in colour;
    with ``relevance`` (same shape), the spectrogram in grey and the map's positive part in colour over it.

    frame_s : seconds per column; band_hz : centre frequency of each row (tick labels).
    """
    log_mel = np.asarray(log_mel, np.float64)
    bands, frames = log_mel.shape
    top = float(log_mel.max())
    level = (log_mel - (top - RANGE_NEPERS)) / RANGE_NEPERS  # 0…1: 70 dB below the loudest cell … the loudest
    if relevance is None:
        rgb = _colours(level, MAGMA)
    else:
        relevance = np.asarray(relevance, np.float64)
        if relevance.shape != log_mel.shape:
            raise ValueError(f"spectrogram {log_mel.shape} and map {relevance.shape} differ in shape")
        grey = (np.clip(level, 0, 1) * 255).round()
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        positive = relevance[relevance > 0]
        vmax = float(np.percentile(positive, 99)) if positive.size else 0.0
        if vmax > 0:  # maps are spiky: scale to the 99th percentile, leave the weakest cells transparent
            shown = relevance >= MAP_FLOOR * vmax
            colour = _colours(relevance / vmax, JET).astype(np.float64)
            rgb[shown] = (1 - MAP_ALPHA) * rgb[shown] + MAP_ALPHA * colour[shown]
        rgb = rgb.round().astype(np.uint8)
    height = bands * ROW_PIXELS
    plot = Image.fromarray(np.ascontiguousarray(rgb[::-1]), "RGB").resize((PLOT_WIDTH, height), Image.NEAREST)
    canvas = Image.new("RGB", (LEFT + PLOT_WIDTH + RIGHT, TOP + height + BOTTOM), "white")
    canvas.paste(plot, (LEFT, TOP))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(15), _font(13)
    ink = (40, 40, 40)
    draw.rectangle((LEFT - 1, TOP - 1, LEFT + PLOT_WIDTH, TOP + height), outline=ink)
    # frequency ticks: a few bands, labelled with their centre in Hz
    for row in np.unique(np.linspace(0, bands - 1, min(bands, 7)).round().astype(int)):
        y = TOP + height - (row + 0.5) * ROW_PIXELS
        draw.line((LEFT - 5, y, LEFT - 1, y), fill=ink)
        draw.text((LEFT - 8, y), f"{band_hz[row]:.0f}", fill=ink, font=small, anchor="rm")
    label = Image.new("RGB", (height, 16), "white")
    ImageDraw.Draw(label).text((height // 2, 8), "frequency (Hz, mel bands)", fill=ink, font=small, anchor="mm")
    canvas.paste(label.rotate(90, expand=True), (2, TOP))
    # time ticks
    seconds = frames * frame_s
    step = _time_step(seconds)
    for k in range(int(seconds / step + 1e-9) + 1):
        t = k * step
        x = LEFT + t / seconds * PLOT_WIDTH
        draw.line((x, TOP + height, x, TOP + height + 4), fill=ink)
        draw.text((x, TOP + height + 6), f"{t:g}", fill=ink, font=small, anchor="mt")
    draw.text((LEFT + PLOT_WIDTH // 2, TOP + height + 24), "time (s)", fill=ink, font=font, anchor="mt")
    # colour bar
    bar_x = LEFT + PLOT_WIDTH + 14
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(12, axis=1)
    bar = _colours(ramp, MAGMA if relevance is None else JET)
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar), "RGB"), (bar_x, TOP))
    draw.rectangle((bar_x - 1, TOP - 1, bar_x + 12, TOP + height), outline=ink)
    high, low = ("loudest", "-70 dB") if relevance is None else ("relied on", "little")
    draw.text((bar_x + 16, TOP), high, fill=ink, font=small, anchor="lt")
    draw.text((bar_x + 16, TOP + height), low, fill=ink, font=small, anchor="lb")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
