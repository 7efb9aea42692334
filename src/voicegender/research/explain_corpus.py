"""Explaining a model over a set of clips: class-mean maps, per-band occlusion and their agreement, pictures and
an HTML section (``voicegender explain``, ``evaluate --explain-clips``). The maps are
:mod:`voicegender.research.explain`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..corpora import LABELS, Clip
from ..errors import VoiceGenderError
from .explain import (
    CLIP_FRAMES,
    DEFAULT_METHODS,
    OCCLUSION_BANDS,
    REPORT_TITLE,
    as_checkpoint,
    band_occlusion,
    band_profile,
    band_slices,
    cam,
    class_mean_maps,
    clip_feature,
    display_grid,
    explainable_model,
    feature_axes,
    model_input,
    parse_method,
    profile_agreement,
    row_profile,
    to_grid,
)

log = logging.getLogger(__name__)


@dataclass
class ExplainResult:
    """What :func:`explain_corpus` found and wrote."""

    out_dir: Path
    files: list[Path]  # PNGs, explain.html, summary.json
    summary: dict[str, Any]  # JSON-able numbers (also in summary.json)
    html: str  # a <section> with the pictures inlined (base64): report.Section(REPORT_TITLE, result.html)
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # method → class → mean map
    occlusion: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # class → mean drop per band


def _json_safe(obj: Any) -> Any:
    """NaN (e.g. ρ of a flat profile) → None, so summary.json is standard JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _balanced_sample(clips: Sequence[Clip], max_clips: int | None, seed: int) -> list[Clip]:
    if max_clips is None or len(clips) <= max_clips:
        return list(clips)
    rng = np.random.default_rng(seed)
    out = []
    for k, gender in enumerate(LABELS):
        pool = [c for c in clips if c.gender == gender]
        want = max_clips // 2 + (max_clips % 2 if k == 0 else 0)
        out += [pool[i] for i in sorted(rng.choice(len(pool), min(want, len(pool)), replace=False))]
    return out


def _band_labels(slices: Sequence[slice], hz: np.ndarray | None) -> list[str]:
    if hz is None:
        return [f"{s.start}" if s.stop - s.start == 1 else f"{s.start}-{s.stop - 1}" for s in slices]
    return [f"{hz[s][0]:.0f}" if s.stop - s.start == 1 else f"{hz[s][0]:.0f}-{hz[s][-1]:.0f}" for s in slices]


def _batched(fn, x: Tensor, y: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def explain_corpus(loaded: Any, clips: Sequence[Clip], out_dir: str | Path, methods: Sequence[str] | None = None,
                   max_clips: int | None = 200, bands: int | None = None, baseline: str = "mean",
                   batch_size: int = 32, seed: int = 0, frames: int = CLIP_FRAMES) -> ExplainResult:
    """Class-mean maps, per-row profiles, per-band occlusion and their agreement over a set of clips.

    Parameters
    ----------
    loaded : a ``models.LoadedModel`` whose feature kind is log_mel, seed_mfcc or seed_image.
    clips : labelled clips (audio, or the seed's MFCC JPEGs for seed_* models).
    out_dir : where the PNGs, ``explain.html`` and ``summary.json`` go (created).
    methods : CAM method specs (:func:`parse_method`), default :data:`DEFAULT_METHODS`; maps target each clip's
        true class. A GE2E model gets
        ``ig`` only (Integrated Gradients over the encoder's log-mel; occlusion likewise over its 40 bands).
    max_clips : a class-balanced random sample of at most this many clips (None: all).
    bands : occlusion band groups (default :data:`OCCLUSION_BANDS` for the feature kind).
    baseline : occlusion mask value, see :func:`band_occlusion`.
    frames : log-mel frames per clip (its loudest window), so maps of clips can be averaged.
    """
    from ..progress import progress
    from . import plots

    loaded = as_checkpoint(loaded)
    fc = loaded.feature_config
    kind = fc["kind"]
    model = explainable_model(loaded)
    if kind == "ge2e":
        if methods and any(parse_method(m)[0] != "ig" for m in methods):
            log.warning("a GE2E model has no convolutional layers: using Integrated Gradients (ig) for its maps")
        methods = ["ig"]
    methods = list(methods or DEFAULT_METHODS)
    if baseline not in ("mean", "min"):
        raise VoiceGenderError(f"occlusion baseline must be 'mean' or 'min', got {baseline!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = _balanced_sample(clips, max_clips, seed)
    feats, labels, used = [], [], []
    for clip in progress(chosen, desc="features", unit="clip"):
        try:
            feats.append(clip_feature(clip, fc, frames))
        except VoiceGenderError as e:  # a bad file: say which and carry on
            log.warning("skipped %s", e)
            continue
        labels.append(LABELS.index(clip.gender))
        used.append(clip)
    if not feats or len(set(labels)) < 2:
        raise VoiceGenderError(f"need readable clips of both genders to explain; got {len(feats)} clip(s) "
                               f"of {sorted({LABELS[k] for k in labels})}")
    x = torch.cat([model_input(f, kind) for f in feats])
    y = np.array(labels)
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(x[i:i + batch_size]), 1) for i in range(0, len(x), batch_size)])
    pred = probs.argmax(1).numpy()
    frame_s, hz = feature_axes(fc)
    grid = display_grid(feats[0], kind).shape
    n_bands = bands or OCCLUSION_BANDS[kind]
    occl_slices = band_slices(x.shape[-2], n_bands)  # over input rows (224 for the seed image)
    grid_slices = band_slices(grid[0], n_bands)  # the same bands over the map grid's rows
    band_names = _band_labels(grid_slices, hz)
    row_names = [f"{h:.0f}" for h in hz] if hz is not None else [str(i) for i in range(grid[0])]
    axis_name = "band centres (Hz)" if hz is not None else "MFCC coefficient"

    drops = _batched(lambda xb, yb: band_occlusion(model, xb, yb, occl_slices, baseline), x, y, batch_size)
    occl = {LABELS[k]: drops[y == k].mean(0) for k in (0, 1)}
    summary: dict[str, Any] = {
        "feature_kind": kind, "arch": loaded.model_config.arch, "clips": len(y),
        "clips_per_class": {LABELS[k]: int((y == k).sum()) for k in (0, 1)},
        "balanced_accuracy": float(np.mean([(pred[y == k] == k).mean() for k in (0, 1)])),
        "bands": band_names, "occlusion_baseline": baseline,
        "occlusion_drop": {c: v.round(4).tolist() for c, v in occl.items()},
        "occlusion_top_band": {c: band_names[int(v.argmax())] for c, v in occl.items()},
        "methods": {},
    }
    files: list[Path] = []
    pictures: list[tuple[str, str, bytes, str]] = []  # (file name, caption, png, alt text: what it shows)
    unit, row_kind = ("Hz", "mel band") if hz is not None else ("coefficient", "MFCC coefficient")

    def save(name: str, caption: str, png: bytes, alt: str) -> None:
        (out_dir / name).write_bytes(png)
        files.append(out_dir / name)
        pictures.append((name, caption, png, alt))

    class_maps: dict[str, dict[str, np.ndarray]] = {}
    curves = {c: {f"occlusion ({baseline})": occl[c]} for c in occl}
    first = {k: int(np.flatnonzero((y == k) & (pred == k))[0]) if ((y == k) & (pred == k)).any() else None
             for k in (0, 1)}
    for spec in methods:
        name, layer = parse_method(spec)
        maps = _batched(lambda xb, yb, n=name, la=layer: cam(model, xb, yb, la, n), x, y, batch_size)
        if kind == "seed_image":
            maps = to_grid(maps, grid)
        means = class_mean_maps(maps, y)
        class_maps[spec] = means
        profiles = {c: row_profile(m) for c, m in means.items()}
        per_clip = [profile_agreement(band_profile(row_profile(maps[i]), grid_slices), drops[i])
                    for i in range(len(y))]
        agree = {c: profile_agreement(band_profile(profiles[c], grid_slices), occl[c]) for c in occl}
        summary["methods"][spec] = {
            "row_profile": {c: v.round(4).tolist() for c, v in profiles.items()},
            "top_row": {c: row_names[int(v.argmax())] for c, v in profiles.items()},
            "spearman_vs_occlusion_class_mean": {c: round(v, 3) for c, v in agree.items()},
            "spearman_vs_occlusion_per_clip_median": {
                LABELS[k]: round(float(np.nanmedian(np.array(per_clip)[y == k])), 3) for k in (0, 1)},
        }
        for c in occl:
            curves[c][spec] = band_profile(profiles[c], grid_slices)
        slug = spec.replace("@", "_")
        top = summary["methods"][spec]["top_row"]
        strongest = f"strongest row: female {top['female']}, male {top['male']} ({unit})"
        save(f"{slug}_class_maps.png", f"{spec}: mean map per class (true-class target)",
             plots.class_maps_png(means, frame_s, hz, f"{spec} class-mean maps ({len(y)} clips)"),
             f"{spec} relevance maps averaged per class over {len(y)} clips (time across, {row_kind}s up); "
             f"{strongest}.")
        save(f"{slug}_row_profile.png", f"{spec}: mean over time per row (the seed's bar plot)",
             plots.grouped_bars_png(profiles, row_names, axis_name, "mean relevance", f"{spec}: row profile"),
             f"Bars of {spec}'s mean relevance per {row_kind}, female and male side by side; {strongest}.")
        for k, idx in first.items():
            if idx is not None:
                save(f"{slug}_example_{LABELS[k]}.png", f"{spec}: one correctly classified {LABELS[k]} clip",
                     plots.clip_overlay_png(display_grid(feats[idx], kind), maps[idx], frame_s, hz,
                                            f"{spec}: {used[idx].path.name} ({LABELS[k]})"),
                     f"{spec} map over the features of {used[idx].path.name}, a {LABELS[k]} clip the model got "
                     f"right (P({LABELS[k]}) {float(probs[idx, k]):.2f}).")
    top_band = summary["occlusion_top_band"]
    save("occlusion.png", f"drop in true-class probability when a band is masked (baseline: {baseline})",
         plots.grouped_bars_png(occl, band_names, axis_name, "drop in p(true class)", "band occlusion"),
         f"Bars of the drop in the true class's probability when each of {len(band_names)} bands is masked; "
         f"largest for female clips at {top_band['female']}, for male clips at {top_band['male']} ({unit}).")
    for c in occl:
        rho = {spec: summary["methods"][spec]["spearman_vs_occlusion_class_mean"][c] for spec in methods}
        named = {(k if k not in rho else f"{k} (ρ={rho[k]:+.2f})"): v for k, v in curves[c].items()}
        agreement = ", ".join(f"{spec} ρ {r:+.2f}" for spec, r in rho.items())
        save(f"profiles_{c}.png", f"{c}: band profile of each map vs occlusion (ρ: Spearman)",
             plots.profiles_png(named, band_names, axis_name, f"{c} clips: maps vs occlusion"),
             f"Lines of each map's band profile against the occlusion drops for {c} clips, each scaled to its "
             f"maximum; rank agreement with occlusion: {agreement}.")
    html = plots.html_section(pictures, summary)
    page = plots.html_section(pictures, summary, REPORT_TITLE)
    (out_dir / "explain.html").write_text(f"<!doctype html><meta charset='utf-8'><title>{REPORT_TITLE}</title>{page}")
    (out_dir / "summary.json").write_text(json.dumps(_json_safe(summary), indent=1))
    files += [out_dir / "explain.html", out_dir / "summary.json"]
    return ExplainResult(out_dir, files, summary, html, class_maps, occl)
