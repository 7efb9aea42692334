"""Calibration of the head's log-odds and the measures that judge it.

The map: ``p_female = floor + (1 − 2·floor) · sigmoid(logit / T)`` (:class:`Calibration`): a temperature ``T`` per
speech-duration band (:data:`~voicegender.voice.head.DURATION_BANDS`) and a **confidence floor** — no answer is
surer than ``1 − floor``. They are fitted on held-out logits (leave-one-corpus-out, or speaker k-fold with one corpus)
by :func:`fit_calibration`, which gives every held-out cell (a held-out corpus through one channel: clean,
telephone, codec) the same weight, so an easy corpus counts as much as a hard or a large one. One temperature
serves every band but the shortest (:data:`SOFTENED_BANDS`: under 0.6 s of speech, single short words), whose own
temperatures, fitted on the held-out short crops, may only be softer.

Why this form and this fit (measured in docs/DEFAULT_MODEL.md, "Calibration"): one temperature fitted on the
pooled held-out clips was too soft on the easy corpora (BAVED, Common Voice: right 0.98 of the time at 0.91 mean
confidence) and too sharp where a few speakers are answered against their label on every clip (speechocean762,
AudioMNIST-AZ: most of those labels are likely wrong). A sharper temperature fixes the first; the floor stops the
second from pulling the temperature soft again. The sharper temperature made words under 0.6 s over-confident;
their own softer temperatures fix that without touching longer speech (a temperature for every band made the easy
corpora under-confident again).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .head import DURATION_BANDS, Calibration, calibrated, duration_band
from .layers import balanced_weights
from .model import sigmoid
from .training_set import FeatureTable

MIN_TEMPERATURE = 0.1  # sharpest calibration allowed: separable held-out data would otherwise drive T to 0
MAX_TEMPERATURE = 20.0  # softest: held-out logits that say nothing would otherwise drive T to infinity
MAX_FLOOR = 0.1  # the floor's bound: never claim less than 0.9 at best
CELL_KINDS = ("clean", "tel", "codec")  # the held-out copies calibration is fitted and judged on (a cell each)
BAND_KINDS = ("short", "short_tel")  # short crops: judged per speech-duration band; the short bands' temperatures
SOFTENED_BANDS = 2  # the first bands of DURATION_BANDS (under 0.6 s of speech) get their own, softer temperature
MIN_BAND_CLIPS = 30  # a cell's clips in a band below this do not count for that band's temperature


def log_loss(p_female: np.ndarray, is_female: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean (weighted) log-loss of probabilities of *female*."""
    p = np.clip(np.asarray(p_female, np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(is_female, np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, np.float64)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log1p(-p))).sum() / w.sum()) if len(p) else 0.0


def _golden_min(f, lo: float, hi: float, steps: int = 60) -> float:
    """The minimiser of a unimodal ``f`` on [lo, hi] (golden section)."""
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


def fit_temperature(logit_female: np.ndarray, is_female: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature T in [:data:`MIN_TEMPERATURE`, :data:`MAX_TEMPERATURE`] minimising the weighted log-loss of
    ``sigmoid(logit / T)`` (no floor)."""
    z = np.asarray(logit_female, np.float64)
    if len(z) == 0:
        return 1.0
    log_t = _golden_min(lambda lt: log_loss(sigmoid(z / np.exp(lt)), is_female, weights),
                        np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE), 80)
    return float(np.exp(log_t))


Cell = tuple[np.ndarray, np.ndarray, np.ndarray]  # held-out log-odds of female, is-female, speech seconds


def _cell_loss(parts: list[tuple[np.ndarray, np.ndarray]], temperature: float, floor: float) -> float:
    """The mean over ``parts`` ((log-odds, is-female) pairs) of each one's mean log-loss under the map."""
    return float(np.mean([log_loss(calibrated(z, temperature, floor), y) for z, y in parts]))


def _best_temperature(parts: list[tuple[np.ndarray, np.ndarray]], floor: float) -> float:
    """The temperature minimising :func:`_cell_loss` at ``floor`` (golden section over log T)."""
    log_t = _golden_min(lambda lt: _cell_loss(parts, np.exp(lt), floor), np.log(MIN_TEMPERATURE),
                        np.log(MAX_TEMPERATURE))
    return float(np.exp(log_t))


def _fit_one(cells: list[Cell]) -> tuple[float, float]:
    """(temperature, floor) minimising the mean over ``cells`` of each cell's mean log-loss; the floor on a 0.0025
    grid up to :data:`MAX_FLOOR`, the temperature by golden section for each floor."""
    parts = [(z, y) for z, y, _ in cells]
    best = (np.inf, 1.0, 0.0)
    for floor in np.arange(0.0, MAX_FLOOR + 1e-9, 0.0025):
        temperature = _best_temperature(parts, float(floor))
        c = _cell_loss(parts, temperature, float(floor))
        if c < best[0]:
            best = (c, temperature, float(floor))
    return best[1], best[2]


def fit_calibration(cells: Iterable[Cell], short_cells: Iterable[Cell] = ()) -> Calibration:
    """The shipped :class:`Calibration` from held-out cells, each weighted equally: the temperature and floor
    minimising the mean of the ``cells``' log-losses (one per held-out corpus and copy: clean, telephone, codec);
    then, for each of the first :data:`SOFTENED_BANDS` bands, the temperature minimising the mean log-loss of the
    clips of that band in every cell (``cells`` and ``short_cells``, the held-out short crops) with at least
    :data:`MIN_BAND_CLIPS` of them — never sharper than the next longer band's."""
    cells = [tuple(np.asarray(a, np.float64) for a in c) for c in cells if len(c[0])]
    if not cells:
        return Calibration()
    temperature, floor = _fit_one(cells)
    temps = [temperature] * len(DURATION_BANDS)
    every = cells + [tuple(np.asarray(a, np.float64) for a in c) for c in short_cells if len(c[0])]
    for b in range(SOFTENED_BANDS - 1, -1, -1):
        parts = [(z[m], y[m]) for z, y, s in every if (m := duration_band(s) == b).sum() >= MIN_BAND_CLIPS]
        if parts:
            temps[b] = max(_best_temperature(parts, floor), temps[b + 1])
        else:
            temps[b] = temps[b + 1]
    return Calibration(tuple(temps), floor)


# --- judging it ---------------------------------------------------------------------------------------------
def reliability(p_female: np.ndarray, is_female: np.ndarray, n_bins: int = 10) -> list[dict]:
    """The reliability diagram: per equal-width bin of the answer's confidence (0.5…1), its clips, their mean
    confidence and how often the answer was right (empty bins left out)."""
    p = np.asarray(p_female, np.float64)
    y = np.asarray(is_female, bool)
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == y
    which = np.clip(((confidence - 0.5) * 2 * n_bins).astype(int), 0, n_bins - 1)
    return [{"lo": 0.5 + b / (2 * n_bins), "hi": 0.5 + (b + 1) / (2 * n_bins), "n": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
            for b in range(n_bins) if (which == b).any()]


def _ece_of(bins: list[dict]) -> float:
    """The clip-weighted mean gap between each :func:`reliability` bin's mean confidence and accuracy."""
    total = sum(b["n"] for b in bins)
    return float(sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total) if total else 0.0


def expected_calibration_error(p_female: np.ndarray, is_female: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-width bins of the predicted class's confidence (0.5…1): the clip-weighted mean gap between
    each bin's mean confidence and accuracy (:func:`reliability`)."""
    return _ece_of(reliability(p_female, is_female, n_bins))


def calibration_summary(p_female: np.ndarray, is_female: np.ndarray) -> dict:
    """ECE, log-loss, accuracy, mean confidence, their gap (> 0: over-confident) and the reliability bins."""
    p = np.asarray(p_female, np.float64)
    y = np.asarray(is_female, np.float64)
    if not len(p):
        return {"n": 0}
    accuracy = float(((p >= 0.5) == (y == 1)).mean())
    confidence = float(np.maximum(p, 1 - p).mean())
    bins = reliability(p, y)
    return {"n": int(len(p)), "ece": _ece_of(bins), "log_loss": log_loss(p, y), "accuracy": accuracy,
            "confidence": confidence, "gap": confidence - accuracy, "reliability": bins}


def stacked_logits(table: FeatureTable, oof: dict[str, np.ndarray], kinds, rows: np.ndarray):
    """Out-of-fold female log-odds, is-female, speech seconds and balanced weights of ``rows`` over ``kinds``."""
    zs, ys, ss, ws = [], [], [], []
    w0 = balanced_weights(table.y[rows], table.speaker[rows]) if len(rows) else np.zeros(0)
    for k in kinds:
        ok = np.isfinite(oof[k][rows])
        zs.append(oof[k][rows[ok]])
        ys.append((table.y[rows[ok]] == 0).astype(float))
        ss.append(table.speech_seconds(k)[rows[ok]])
        ws.append(w0[ok])
    return tuple(np.concatenate(a) for a in (zs, ys, ss, ws))


def held_out_cells(table: FeatureTable, oof: dict[str, np.ndarray], units: dict[str, np.ndarray],
                   kinds: tuple[str, ...] = CELL_KINDS + BAND_KINDS) -> dict[tuple[str, str], Cell]:
    """(unit, kind) → the adult clips' out-of-fold log-odds of *female*, is-female and speech seconds, for each
    held-out unit's rows (``units``: name → rows) and each copy in ``kinds`` present in ``oof``."""
    out = {}
    for name, rows in units.items():
        adults = rows[~table.child[rows]]
        for k in kinds:
            if k in oof:
                z, y, s, _ = stacked_logits(table, oof, [k], adults)
                out[(name, k)] = (z, y, s)
    return out


def fit_held_out(cells: dict[tuple[str, str], Cell], leave_out: str | None = None) -> Calibration:
    """:func:`fit_calibration` on :func:`held_out_cells`' cells (without unit ``leave_out``: cross-fitting)."""
    mine = {key: c for key, c in cells.items() if key[0] != leave_out}
    return fit_calibration([c for (_, k), c in mine.items() if k in CELL_KINDS],
                           [c for (_, k), c in mine.items() if k not in CELL_KINDS])
