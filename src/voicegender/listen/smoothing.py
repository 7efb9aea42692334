"""Gender decisions along a timeline: per-frame evidence from overlapping scored windows, 2-state Viterbi
decoding, and runs of equal labels (merging the too-short ones). :mod:`voicegender.listen.segment` builds its
timeline from these; they know nothing of audio, models or segments.
"""

from __future__ import annotations

import numpy as np


def frame_scores(scored, n_frames: int, threshold_logit: float,
                  cap: float = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, from the windows covering it (``scored``: rows of start frame, frames covered, weight, logit; a
    (windows, 4) array or a list of 4-tuples), weighted by their speech fraction: the vote in [-1, 1]
    (+1: all say female), the mean logit, and the mean of ``logit - threshold_logit`` clipped to [-cap, cap];
    NaN where no window covers the frame.

    Votes, not mean logits, decide the label of the median smoothing: a confident window must not pull a
    boundary into the neighbouring speaker's turn (with mean logits a male window at p=0.05 outweighs a female
    one at p=0.8 and moves a female->male change ~1 s early); with votes the change falls where half the windows
    flip. The capped logits are the Viterbi's evidence: between votes (small cap) and logits (no cap).
    """
    rows = np.asarray(scored, np.float64).reshape(-1, 4)
    start = rows[:, 0].astype(np.int64)
    end = np.minimum(start + rows[:, 1].astype(np.int64), n_frames)
    w, logit = rows[:, 2], rows[:, 3]
    v = np.where(logit >= threshold_logit, 1.0, -1.0)
    c = np.clip(logit - threshold_logit, -cap, cap)

    def difference(values: np.ndarray) -> np.ndarray:  # +value at each window's start, -value at its end
        out = (np.bincount(start, w * values, minlength=n_frames + 1)
               - np.bincount(end, w * values, minlength=n_frames + 1))[:n_frames + 1]
        return out.astype(np.float64, copy=False)  # bincount of no window gives integers

    vote, num, capped = difference(v), difference(logit), difference(c)
    den = difference(np.ones(len(rows)))
    # in place: 4 float64 arrays per frame at the peak (10 h of audio: 36 MB), not 10
    den = np.cumsum(den, out=den)[:n_frames]
    covered = den > 1e-9
    np.copyto(den, 1.0, where=~covered)
    out = []
    for x in (vote, num, capped):
        x = np.cumsum(x, out=x)[:n_frames]
        x /= den
        x[~covered] = np.nan
        out.append(x)
    return tuple(out)


def viterbi_2state(evidence: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Most likely female/male state sequence of a 2-state HMM; returns 1 where male, 0 where female.

    Parameters
    ----------
    evidence : per step, the log-odds for female over male that the step contributes (> 0 favours female), e.g.
        a frame's mean window logit times its duration in seconds. NaN counts as 0 (no information).
    switch_penalty : log-odds every change of state costs (the log of the transition probability, negated);
        0 follows the sign of each step. A run of contrary steps is kept only if its summed
        |evidence| exceeds the penalties of entering and leaving it (2 x ``switch_penalty`` inside a sequence).

    Emissions are log p(state | step): with a uniform prior, log sigmoid(e) for female and log sigmoid(-e) for
    male differ by e, so +-e/2 per step gives the same path. Of equally good paths the one changing earliest is
    returned, and female is preferred at the end (as ``p_female >= threshold`` does). O(steps) time; two bytes
    per step for the back-pointers.
    """
    e = np.nan_to_num(np.asarray(evidence, np.float64), nan=0.0) / 2
    n = len(e)
    if n == 0:
        return np.zeros(0, np.int64)
    pen = float(switch_penalty)
    from_other = bytearray(2 * n)  # [2t + s]: state s at step t came from the other state
    female, male = float(e[0]), -float(e[0])
    for t in range(1, n):  # a plain loop: 0.06 s per hour of audio (measured), < 1 % of segment_file
        et = float(e[t])
        f_switch = male - pen > female
        m_switch = female - pen > male
        new_female = (male - pen if f_switch else female) + et
        new_male = (female - pen if m_switch else male) - et
        from_other[2 * t] = f_switch
        from_other[2 * t + 1] = m_switch
        female, male = new_female, new_male
    state = 1 if male > female else 0
    path = np.empty(n, np.int64)
    for t in range(n - 1, -1, -1):
        path[t] = state
        if from_other[2 * t + state]:
            state = 1 - state
    return path


def fill_nearest(values: np.ndarray, ok: np.ndarray | None = None, span: tuple[int, int] | None = None
                  ) -> np.ndarray:
    """Replace NaNs by the nearest finite value (all-NaN stays NaN).

    ``ok``: the indices of the finite values, if known; ``span`` (a, b): only ``result[a:b]`` is computed and
    returned (memory and time of the span, not of ``values``).
    """
    if ok is None:
        ok = np.flatnonzero(np.isfinite(values))
    a, b = span if span is not None else (0, len(values))
    if len(ok) == 0 or len(ok) == len(values):
        return values[a:b]
    idx = np.arange(a, b)
    pos = np.clip(np.searchsorted(ok, idx), 1, len(ok) - 1)
    left, right = ok[pos - 1], ok[pos]
    nearest = np.where(np.abs(idx - left) <= np.abs(right - idx), left, right)
    return values[nearest]


def runs_of(labels: np.ndarray) -> list[list[int]]:
    """[start, end, label] runs of equal values."""
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(labels)]
    return [[int(s), int(e), int(labels[s])] for s, e in zip(starts, ends, strict=True)]


def merge_short_runs(runs: list[list[int]], min_frames: int) -> list[list[int]]:
    """Merge runs shorter than ``min_frames`` into their longer neighbour until none is left (or one run)."""
    runs = [r[:] for r in runs]
    while len(runs) > 1:
        lengths = [e - s for s, e, _ in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_frames:
            break
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < len(runs) else -1
        j = i - 1 if left >= right else i + 1
        lo, hi = min(i, j), max(i, j)
        keep = runs[j][2]
        runs[lo:hi + 1] = [[runs[lo][0], runs[hi][1], keep]]
        # joining may make two neighbours with the same label adjacent
        merged: list[list[int]] = []
        for r in runs:
            if merged and merged[-1][2] == r[2]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        runs = merged
    return runs


def median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.median_filter(x, size=size, mode="nearest")`` of a 1-d array, in numpy (the light install has
    no scipy): the element of rank ``size // 2`` in each window (for even sizes the upper of the two middle values,
    as scipy's rank filter), the edges repeated."""
    x = np.asarray(x)
    if size <= 1 or x.size == 0:
        return x.copy()
    left = size // 2
    padded = np.pad(x, (left, size - 1 - left), mode="edge")
    return np.sort(np.lib.stride_tricks.sliding_window_view(padded, size), axis=1)[:, left].astype(x.dtype)
