"""Reports: metrics as JSON and a self-contained HTML page (plots and audio embedded as base64).

The page has no external resources: matplotlib PNGs (confusion matrix, per-speaker accuracy, ROC) and the
top-loss clips (playable ``<audio>`` for recordings, the MFCC picture for the seed's image set) are inlined.

Hook for other modules (explain.py's class-activation maps): pass ``extra_sections``, a list of
:class:`Section` (title + ready-made HTML), to :func:`render_html` / :func:`write_report`; they are appended
after the built-in sections, in order.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..corpora import LABELS
from ..metrics import Metrics, roc_curve
from .evaluate import SUMMARY_FIELDS, ClipResult, FoldSummary, Report, SpeakerScore

MAX_EMBED_BYTES = 2_000_000  # larger top-loss audio files are linked by path instead of embedded
_AUDIO_MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".webm": "audio/webm"}
_IMAGE_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@dataclass(frozen=True)
class Section:
    """An extra block of the HTML report (the hook for explain.py and others)."""

    title: str
    html: str  # trusted HTML fragment, inserted as is


# --- JSON -------------------------------------------------------------------------------------------------
def _clean(obj):
    """NaN/inf → None so the JSON is standard."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def report_json(report: Report | FoldSummary, per_clip: bool = False) -> str:
    """The report as JSON (NaN as null). Per-clip scores (y_true, p_female) only with ``per_clip``."""
    data = report.to_dict()
    if not per_clip:
        data.pop("y_true", None)
        data.pop("p_female", None)
    return json.dumps(_clean(data), indent=2, default=str)


# --- plots ------------------------------------------------------------------------------------------------
def _png(fig, alt: str) -> str:
    """The figure as an inlined PNG ``<img>``; ``alt`` says what it shows (screen readers, text-only checks)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def confusion_png(metrics: Metrics, title: str = "Confusion matrix") -> str:
    """An <img> of the confusion matrix (rows: true, columns: predicted), counts and row shares."""
    cm = np.array(metrics.confusion)
    fig, ax = _figure(3.6, 3.2)
    ax.imshow(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            share = cm[i, j] / max(cm[i].sum(), 1)
            ax.text(j, i, f"{cm[i, j]}\n{share:.1%}", ha="center", va="center",
                    color="white" if share > 0.5 else "black")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return _png(fig, confusion_alt(cm, title))


def confusion_alt(cm: np.ndarray, title: str = "Confusion matrix") -> str:
    """The confusion matrix in words: each actual class, how many of its clips were called what."""
    rows = []
    for i, actual in enumerate(LABELS):
        calls = ", ".join(f"{cm[i, j]} called {predicted}" for j, predicted in enumerate(LABELS))
        rows.append(f"of {cm[i].sum()} {actual} clips, {calls}")
    return f"{title}: " + "; ".join(rows) + "."


def roc_png(y_true: list[int], p_female: list[float], auc: float) -> str:
    """An <img> of the ROC curve of P(female)."""
    fpr, tpr = roc_curve(np.asarray(y_true) == 0, np.asarray(p_female))
    fig, ax = _figure(3.6, 3.2)
    ax.plot(fpr, tpr, lw=2, label=f"AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate (male called female)")
    ax.set_ylabel("true positive rate (female)")
    ax.legend(loc="lower right")
    ax.set_title("ROC, female positive")
    n_female = int(np.sum(np.asarray(y_true) == 0))
    return _png(fig, f"ROC curve of P(female), female positive: AUC {_fmt(auc)} over {len(y_true)} clips "
                     f"({n_female} female, {len(y_true) - n_female} male).")


def speakers_png(report: Report) -> str:
    """An <img> of per-speaker accuracy bars (female red, male blue), worst first."""
    scores = report.per_speaker
    fig, ax = _figure(max(4.0, 0.22 * len(scores) + 1), 3.0)
    colours = ["#c0392b" if s.gender == "female" else "#2471a3" for s in scores]
    ax.bar(range(len(scores)), [s.accuracy for s in scores], color=colours)
    ax.set_xticks(range(len(scores)), [s.speaker.split("/")[-1] for s in scores], rotation=90, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title("Per-speaker accuracy (red: female, blue: male)")
    return _png(fig, speakers_alt(scores))


def speakers_alt(scores: list[SpeakerScore]) -> str:
    """The per-speaker bars in words: how many speakers, how many fully right, the worst few."""
    if not scores:
        return "Per-speaker accuracy: no speakers."
    perfect = sum(s.accuracy >= 1.0 for s in scores)
    worst = ", ".join(f"{s.speaker.split('/')[-1]} ({s.gender}) {s.accuracy:.0%}"
                      for s in sorted(scores, key=lambda s: s.accuracy)[:3] if s.accuracy < 1.0)
    return (f"Per-speaker accuracy bars of {len(scores)} speakers, worst first: {perfect} of {len(scores)} at 100 %"
            + (f"; lowest {worst}." if worst else "."))


# --- HTML -------------------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
code{background:#f6f6f6;padding:0 .2em}.small{font-size:85%;color:#555}img.mfcc{width:224px;height:auto}"""


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f} %" if pct else f"{value:.4f}"


def metrics_table(rows: dict[str, Metrics]) -> str:
    """An HTML table with one row per named Metrics."""
    head = ("<tr><th class=l>set</th><th>clips</th><th>accuracy</th><th>error rate</th><th>balanced acc.</th>"
            "<th>F1 (female)</th><th>ROC-AUC</th></tr>")
    body = "".join(
        f"<tr><td class=l>{html.escape(name)}</td><td>{m.n}</td><td>{_fmt(m.accuracy, True)}</td>"
        f"<td>{_fmt(m.error_rate, True)}</td><td>{_fmt(m.balanced_accuracy, True)}</td>"
        f"<td>{_fmt(m.f1_female)}</td><td>{_fmt(m.roc_auc)}</td></tr>" for name, m in rows.items())
    return f"<table>{head}{body}</table>"


def _media(path: str, alt: str = "MFCC image of the clip") -> str:
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        return "<span class=small>(file not found)</span>"
    if p.stat().st_size > MAX_EMBED_BYTES:
        return f"<span class=small>(too large to embed: {html.escape(str(p))})</span>"
    data = base64.b64encode(p.read_bytes()).decode()
    if suffix in _IMAGE_MIME:
        return f'<img class=mfcc alt="{html.escape(alt)}" src="data:{_IMAGE_MIME[suffix]};base64,{data}">'
    mime = _AUDIO_MIME.get(suffix, "application/octet-stream")
    return f'<audio controls preload="none" src="data:{mime};base64,{data}"></audio>'


def _clip_alt(clip: ClipResult) -> str:
    return (f"MFCC image of a {clip.gender} speaker's clip, predicted {clip.predicted} "
            f"(P(female) {clip.p_female:.3f})")


def top_losses_table(report: Report, embed: bool = True) -> str:
    """The highest-loss clips with their media embedded (audio playable, MFCC pictures shown)."""
    rows = "".join(
        f"<tr><td>{i + 1}</td><td class=l>{html.escape(c.speaker)}</td><td class=l>{c.gender}</td>"
        f"<td class=l>{c.predicted}</td><td>{c.p_female:.3f}</td><td>{c.loss:.3f}</td>"
        f"<td class=l>{_media(c.path, _clip_alt(c)) if embed else ''}"
        f"<br><span class=small>{html.escape(c.path)}</span></td></tr>"
        for i, c in enumerate(report.top_losses))
    return ("<table><tr><th>#</th><th class=l>speaker</th><th class=l>actual</th><th class=l>predicted</th>"
            f"<th>P(female)</th><th>loss</th><th class=l>clip</th></tr>{rows}</table>")


def render_html(report: Report, title: str = "voicegender evaluation", extra_sections: list[Section] = (),
                embed_media: bool = True) -> str:
    """The whole report page as one self-contained HTML string.

    ``extra_sections`` (the hook for explain.py): more :class:`Section`s appended after the built-in ones.
    """
    m = report.metrics
    training = report.training or {}
    cfg = training.get("config", {})
    about = (f"<p>Checkpoint <code>{html.escape(report.checkpoint)}</code>; clips: {html.escape(report.split)}."
             f" Model <code>{html.escape(str(cfg.get('arch', '?')))}</code> on "
             f"<code>{html.escape(str(cfg.get('features', '?')))}</code>, trained on split "
             f"<code>{html.escape(str(training.get('split', '?')))}</code> "
             f"({training.get('n_train', '?')} train / {training.get('n_val', '?')} val clips).</p>")
    failed = ""
    if report.failed:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in report.failed)
        failed = f"<h2>Clips that could not be read ({len(report.failed)})</h2><ul>{items}</ul>"
    sections = [
        ("Metrics", metrics_table({"all": m, **report.groups})
         + "<p class=small>F1, precision and ROC-AUC take female as the positive class (as the seed did). "
           "Balanced accuracy is the mean of the female and male recalls.</p>"),
        ("Plots", "<div class=plots>" + confusion_png(m) + roc_png(report.y_true, report.p_female, m.roc_auc)
         + "</div>" + speakers_png(report)),
        ("Top losses", top_losses_table(report, embed_media)),
    ]
    sections += [(s.title, s.html) for s in extra_sections]
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{about}{failed}{body}</body></html>")


def render_summary_html(summary: FoldSummary, title: str = "voicegender cross-validation") -> str:
    """A page with mean ± std over folds and one row and confusion matrix per fold."""
    head = "<tr><th class=l>fold</th><th>clips</th>" + "".join(f"<th>{f}</th>" for f in SUMMARY_FIELDS) + "</tr>"
    rows = "".join(
        f"<tr><td class=l>{html.escape(r.split)}</td><td>{r.metrics.n}</td>"
        + "".join(f"<td>{_fmt(getattr(r.metrics, f))}</td>" for f in SUMMARY_FIELDS) + "</tr>"
        for r in summary.reports)
    mean = ("<tr><th class=l>mean ± std</th><th></th>" + "".join(
        f"<th>{_fmt(summary.mean[f])} ± {_fmt(summary.std[f])}</th>" for f in SUMMARY_FIELDS) + "</tr>")
    plots = "".join(confusion_png(r.metrics, r.split) for r in summary.reports)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><table>{head}{rows}{mean}</table>"
            f"<div class=plots>{plots}</div></body></html>")


def write_report(report: Report | FoldSummary, out_dir: str | Path, extra_sections: list[Section] = (),
                 title: str | None = None) -> dict[str, Path]:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir``; returns their paths.

    ``extra_sections`` is the hook for explain.py (ignored for a FoldSummary).
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "html": out / "report.html"}
    paths["json"].write_text(report_json(report))
    if isinstance(report, FoldSummary):
        page = render_summary_html(report, title or "voicegender cross-validation")
    else:
        page = render_html(report, title or "voicegender evaluation", list(extra_sections))
    paths["html"].write_text(page, encoding="utf-8")
    return paths
