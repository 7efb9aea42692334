"""Pictures for explanations: PNG bytes from arrays (matplotlib's object API, no pyplot global state).

Every picture has time in seconds across and frequency (Hz, mel-spaced rows) or MFCC coefficient index up,
with a colour bar. Rows are drawn bottom-up (row 0 = lowest band / coefficient 0 at the bottom).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CLASS_COLOURS = {"female": "tab:red", "male": "tab:blue"}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _row_axis(ax, n_rows: int, row_labels_hz: Sequence[float] | None, axis: str = "y") -> None:
    """Label rows in Hz (a few ticks) or as coefficient indices."""
    set_ticks, set_labels, set_label = ((ax.set_yticks, ax.set_yticklabels, ax.set_ylabel) if axis == "y"
                                        else (ax.set_xticks, ax.set_xticklabels, ax.set_xlabel))
    if row_labels_hz is None:
        step = max(1, n_rows // 12)
        ticks = list(range(0, n_rows, step))
        set_ticks(ticks)
        set_labels([str(t) for t in ticks])
        set_label("MFCC coefficient")
    else:
        ticks = np.unique(np.linspace(0, n_rows - 1, min(n_rows, 8)).round().astype(int))
        set_ticks(ticks)
        set_labels([f"{row_labels_hz[t]:.0f}" for t in ticks])
        set_label("frequency (Hz, mel-spaced bands)")


def _tick_labels(ax, labels: Sequence[str]) -> None:
    """Category labels under bars / points, slanted when they would overlap (many, or Hz ranges)."""
    slanted = len(labels) > 12 or max(len(str(lab)) for lab in labels) > 5
    ax.set_xticklabels(labels, rotation=45 if slanted else 0, ha="right" if slanted else "center", fontsize=8)


def _image(ax, array: np.ndarray, frame_seconds: float, **kw):
    n_rows, n_frames = array.shape
    extent = (0.0, n_frames * frame_seconds, -0.5, n_rows - 0.5)
    im = ax.imshow(array, origin="lower", aspect="auto", extent=extent, interpolation="nearest", **kw)
    ax.set_xlabel("time (s)")
    return im


# the colour scale of a map: 1 is the strongest evidence (its 99th percentile: a few extreme cells do not wash the rest
# out), and cells below 0.15 of it are left clear
MAP_SCALE_LABEL = "evidence for the answer (1 = strongest)"


def clip_overlay_png(spectrogram: np.ndarray, cam_map: np.ndarray, frame_seconds: float = 0.01,
                     row_labels_hz: Sequence[float] | None = None, title: str = "", alpha: float = 0.5) -> bytes:
    """One clip: the feature (grey) with its class-activation map on top (colour), as PNG bytes.

    spectrogram, cam_map : (rows, frames) arrays of the same shape (log-mel or the 12×98 MFCC, and its map).
    frame_seconds : hop between frames in s (0.01 for log-mel and the seed MFCC).
    row_labels_hz : centre frequency of each row for log-mel (``LogMelConfig.band_centres_hz()``); None: MFCC.
    """
    spectrogram, cam_map = np.asarray(spectrogram), np.asarray(cam_map)
    if spectrogram.shape != cam_map.shape:
        raise ValueError(f"spectrogram {spectrogram.shape} and map {cam_map.shape} differ in shape")
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    _image(ax, spectrogram, frame_seconds, cmap="gray")
    # Attribution maps are spiky (integrated gradients especially): scale the colours to the 99th percentile so
    # a few extreme cells do not leave the rest invisible, and leave cells below 15 % of it transparent so the
    # spectrogram shows where the model did not look.
    positive = cam_map[cam_map > 0]
    vmax = float(np.percentile(positive, 99)) if positive.size else 1e-12
    shown = np.ma.masked_less(cam_map, 0.15 * vmax)
    im = _image(ax, shown, frame_seconds, cmap="jet", alpha=alpha, vmin=0, vmax=max(vmax, 1e-12))
    _row_axis(ax, spectrogram.shape[0], row_labels_hz)
    fig.colorbar(im, ax=ax, label=MAP_SCALE_LABEL)
    ax.set_title(title)
    return _png(fig)


def class_maps_png(maps: dict[str, np.ndarray], frame_seconds: float = 0.01,
                   row_labels_hz: Sequence[float] | None = None, title: str = "") -> bytes:
    """Class-mean maps side by side (one panel per class, shared colour scale), as PNG bytes."""
    fig = Figure(figsize=(5 * len(maps), 3.6))
    vmax = max(float(m.max()) for m in maps.values())
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (name, m) in zip(axes, maps.items(), strict=True):
        im = _image(ax, m, frame_seconds, cmap="jet", vmin=0, vmax=vmax)
        _row_axis(ax, m.shape[0], row_labels_hz)
        ax.set_title(f"{name}")
    fig.colorbar(im, ax=list(axes), label="mean relevance")
    fig.suptitle(title)
    return _png(fig)


def grouped_bars_png(values: dict[str, np.ndarray], labels: Sequence[str], xlabel: str, ylabel: str,
                     title: str = "") -> bytes:
    """One bar per row / band and per class (the seed's per-row bar plot; occlusion drops), as PNG bytes."""
    fig = Figure(figsize=(max(6, 0.28 * len(labels) * len(values)), 3.6))
    ax = fig.add_subplot()
    n = len(values)
    x = np.arange(len(labels))
    for k, (name, v) in enumerate(values.items()):
        ax.bar(x + (k - (n - 1) / 2) * 0.8 / n, v, 0.8 / n, label=name, color=CLASS_COLOURS.get(name))
    ax.set_xticks(x)
    _tick_labels(ax, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    ax.set_title(title)
    return _png(fig)


def profiles_png(curves: dict[str, np.ndarray], labels: Sequence[str], xlabel: str, title: str = "") -> bytes:
    """Band profiles scaled to a maximum of 1 (CAM methods vs occlusion), one line each, as PNG bytes."""
    fig = Figure(figsize=(7, 3.4))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for name, v in curves.items():
        v = np.asarray(v, float)
        peak = np.abs(v).max()
        ax.plot(x, v / peak if peak > 0 else v, marker="o", label=name,
                linewidth=2.5 if name.startswith("occlusion") else 1.2)
    ax.set_xticks(x)
    _tick_labels(ax, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("profile / its max")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _png(fig)


def html_section(pictures: Sequence[tuple[str, str, bytes, str]], summary: dict, heading: str | None = None) -> str:
    """An HTML ``<section>`` with the explain pictures inlined as base64 PNGs and the agreement numbers.

    ``pictures``: (file name, caption, png, alt text) each; the alt text says what the picture shows.

    ``heading`` adds an ``<h2>`` (the stand-alone page); the HTML report supplies its own from ``Section.title``.
    """
    import base64
    import html

    rows = "".join(
        f"<tr><td>{html.escape(spec)}</td>"
        + "".join(f"<td>{m['top_row'][c]}</td><td>{m['spearman_vs_occlusion_class_mean'][c]:+.2f}</td>"
                  f"<td>{m['spearman_vs_occlusion_per_clip_median'][c]:+.2f}</td>" for c in ("female", "male"))
        + "</tr>"
        for spec, m in summary["methods"].items())
    unit = "Hz" if summary["feature_kind"] in ("log_mel", "ge2e") else "coefficient"
    table = ("<table border='1' cellpadding='3'><tr><th rowspan='2'>map</th><th colspan='3'>female</th>"
             "<th colspan='3'>male</th></tr><tr>" + f"<th>top row ({unit})</th><th>ρ class mean</th>"
             "<th>ρ per clip (median)</th>" * 2 + f"</tr>{rows}</table>")
    top = summary["occlusion_top_band"]
    figs = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode(png).decode()}' alt='{html.escape(alt)}'>"
        f"<figcaption>{html.escape(caption)} — <code>{html.escape(name)}</code></figcaption></figure>"
        for name, caption, png, alt in pictures)
    return (
        "<section id='explain'>" + (f"<h2>{html.escape(heading)}</h2>" if heading else "") +
        f"<p>{summary['clips']} clips ({summary['feature_kind']}, {summary['arch']}), balanced accuracy "
        f"{summary['balanced_accuracy']:.3f}. Occlusion (ground truth): masking the band around "
        f"<b>{top['female']}</b> ({unit}) hurts female clips most, <b>{top['male']}</b> male clips. "
        "ρ: Spearman rank correlation between a map's band profile and the occlusion drops "
        "(1 = the map ranks bands as occlusion does).</p>" + table + figs + "</section>"
    )
