"""Agglomerative clustering of weighted vectors by cosine distance (average linkage), in numpy.

Why not scipy or scikit-learn: the listening tool installs without them (numpy, onnxruntime and the audio readers
are all it needs), and the clustering a recording needs is small: speaker turns, at most
:data:`BLOCK_ITEMS` at a time (longer recordings are clustered block by block, then the blocks' clusters together).
The loop merges the closest pair and updates one row of the distance matrix: O(n²) memory and, with cached row
minima, about O(n²) time (800 turns: a few MB and well under a second).
"""

from __future__ import annotations

import numpy as np

# items clustered at once; more are clustered in blocks of this many, then their clusters. A block's distance
# matrix and its working copies are a few n x n float32 arrays: 800 turns (20-40 min of conversation) about 13 MB
BLOCK_ITEMS = 800


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between the rows of ``x`` (n, d): (n, n) float32, 0 on the diagonal."""
    x = np.asarray(x, np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    d = x @ x.T
    np.subtract(1.0, d, out=d)
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0, out=d)


def average_linkage(distances: np.ndarray, weights: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels (0..k-1, in order of first appearance) from average-linkage agglomeration that stops when
    the closest pair of clusters is ``threshold`` or further apart.

    ``distances`` (n, n) symmetric; ``weights`` (n,) > 0: an item's share in the average distance between clusters
    (e.g. its seconds of speech), so one long turn counts for more than a word. Inf distances never merge.
    """
    n = len(weights)
    if n == 0:
        return np.zeros(0, np.int64)
    d = np.array(distances, np.float32, copy=True)
    np.fill_diagonal(d, np.inf)
    w = np.asarray(weights, np.float64).copy()
    active = np.ones(n, bool)
    members = [[i] for i in range(n)]
    row_min = d.min(axis=1)
    row_arg = d.argmin(axis=1)
    for _ in range(n - 1):
        a = int(np.argmin(np.where(active, row_min, np.inf)))
        if not np.isfinite(row_min[a]) or row_min[a] >= threshold:
            break
        b = int(row_arg[a])
        # average linkage: the weighted mean of the two rows is the new cluster's distance to every other one
        merged = (w[a] * d[a] + w[b] * d[b]) / (w[a] + w[b])
        merged[[a, b]] = np.inf
        merged[~active] = np.inf
        d[a], d[:, a] = merged, merged
        d[b], d[:, b] = np.inf, np.inf
        w[a] += w[b]
        members[a] += members[b]
        members[b] = []
        active[b] = False
        row_min[b] = np.inf
        # rows whose nearest was a or b, and row a itself, need their minimum again; the others can only have
        # come closer to a (through its new row), which the update below checks
        stale = np.flatnonzero(active & ((row_arg == a) | (row_arg == b)))
        for r in (*stale, a):
            row_arg[r] = int(np.argmin(d[r]))
            row_min[r] = d[r, row_arg[r]]
        closer = active & (merged < row_min)
        row_min[closer] = merged[closer]
        row_arg[closer] = a
    labels = np.empty(n, np.int64)
    order = sorted((min(m), m) for m in members if m)
    for k, (_, m) in enumerate(order):
        labels[m] = k
    return labels


def gender_penalty(logits: np.ndarray, penalty: float, sure: float = 1.0) -> np.ndarray:
    """(n, n) distance added between items whose gender log-odds (``logits``, > 0 female) disagree: ``penalty`` x
    how far the less sure of the two is beyond ``sure`` (log-odds), 0 where they agree or either is unsure."""
    z = np.asarray(logits, np.float32)
    conf = np.maximum(np.abs(z) - sure, 0.0)
    out = np.minimum(conf[:, None], conf[None, :])
    out[np.sign(z)[:, None] == np.sign(z)[None, :]] = 0.0
    out *= penalty
    return out


def cluster(vectors: np.ndarray, weights: np.ndarray, threshold: float, genders: np.ndarray | None = None,
            penalty: float = 0.0, block: int = BLOCK_ITEMS) -> np.ndarray:
    """Cluster labels (0..k-1, in order of first appearance) of ``vectors`` (n, d) by cosine distance, average
    linkage, stopping at ``threshold``; ``weights`` (n,) as in :func:`average_linkage`.

    ``genders`` (n,), optional: each item's gender log-odds; :func:`gender_penalty` with ``penalty`` is added to the
    distances (different voices' genders keep speakers apart). More than ``block`` items: each block of
    consecutive items is clustered on its own, then the blocks' clusters (weighted mean vectors and log-odds) are
    clustered together with the same threshold — memory O(block²).
    """
    vectors = np.asarray(vectors, np.float32)  # 20,000 turns (10 h of conversation) x 192: 15 MB
    weights = np.asarray(weights, np.float64)
    n = len(vectors)
    if n <= block:
        d = cosine_distances(vectors)
        if genders is not None and penalty:
            d += gender_penalty(genders, penalty)
        return average_linkage(d, weights, threshold)
    local = np.empty(n, np.int64)
    centroids, masses, logits, offset = [], [], [], 0
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        z = None if genders is None else np.asarray(genders, np.float64)[sl]
        lab = cluster(vectors[sl], weights[sl], threshold, z, penalty, block)
        for k in range(lab.max() + 1):
            m = lab == k
            w = weights[sl][m]
            v = (vectors[sl][m] * w[:, None]).sum(0)
            centroids.append(v / max(np.linalg.norm(v), 1e-12))
            masses.append(w.sum())
            logits.append(0.0 if z is None else float(np.average(z[m], weights=w)))
        local[sl] = lab + offset
        offset += lab.max() + 1
    top = cluster(np.array(centroids), np.array(masses), threshold, None if genders is None else np.array(logits),
                  penalty, block)
    labels = top[local]
    _, first = np.unique(labels, return_index=True)  # renumber in order of first appearance
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[labels]
