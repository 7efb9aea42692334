"""Clustering of weighted vectors by cosine distance, in numpy: average-linkage agglomeration stopped at a
threshold, and spectral clustering that finds the number of clusters from the eigengap of the affinity graph
(NME-SC: Park et al., "Auto-Tuning Spectral Clustering for Speaker Diarization Using Normalized Maximum
Eigengap", IEEE SPL 2020; what NVIDIA NeMo's diarizer uses).

Why not scipy or scikit-learn: the listening tool installs without them (numpy, onnxruntime and the audio readers
are all it needs), and the clustering a recording needs is small: speaker turns, at most
:data:`BLOCK_ITEMS` at a time (longer recordings are clustered block by block, then the blocks' clusters together).
The loop merges the closest pair and updates one row of the distance matrix: O(n²) memory and, with cached row
minima, about O(n²) time (800 turns: a few MB and well under a second).
"""

from __future__ import annotations

import numpy as np

# items clustered at once; more are clustered in blocks of this many, then their clusters. A block's distance
# matrix and its working copies are a few n x n float32 arrays: 800 turns (20-40 min of conversation) about 13 MB;
# spectral clustering's graph and eigenvectors (float32) add about 10 MB while it runs
BLOCK_ITEMS = 800

# spectral clustering (NME-SC), NeMo's defaults: each item keeps its p most similar neighbours, p searched up to a
# quarter of the items, and at most 8 clusters are looked for
MAX_CLUSTERS = 8
P_FRACTION = 0.25
P_STEPS = 10  # values of p tried (evenly spaced); 30 gave the same clusters on the development conversations
SPECTRAL_MIN_ITEMS = 10  # fewer items: the threshold alone decides
KMEANS_RESTARTS = 10
RITZ_EXTRA = 8  # smallest_eigenvectors: vectors iterated beyond those asked for (faster convergence)
RITZ_STEPS = 50  # ... at most this many steps, then numpy's eigh
RITZ_SHIFT = 1e-3  # ... the shift below the smallest eigenvalue, relative to the largest
RITZ_TOLERANCE = 1e-4  # ... done when every vector's residual is below this, relative to the largest eigenvalue
NEAREST_ROWS = 64  # rows of the affinity sorted at a time
JOIN_SAMPLE = 32  # turns of each block's cluster (evenly spread) whose distances join the blocks' clusters
# spectral clusters closer than this share of the threshold (mean distance between their items, with the gender
# penalty) are joined again: the eigengap splits one voice that sounds different from turn to turn, mostly through
# a telephone line (development mixes: speaker count exact 73 -> 77 %, DER 11.6 -> 10.3 %, only the telephone
# mixes changed; 0.85 joined distinct voices as well, 1.0 more so: exact 75 and 69 %)
REJOIN_SHARE = 0.7


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between the rows of ``x`` (n, d): (n, n) float32, 0 on the diagonal."""
    x = np.asarray(x, np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    d = x @ x.T
    np.subtract(1.0, d, out=d)
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0, out=d)


def average_linkage(distances: np.ndarray, weights: np.ndarray, threshold: float, min_clusters: int = 1,
                    max_clusters: int | None = None) -> np.ndarray:
    """Cluster labels (0..k-1, in order of first appearance) from average-linkage agglomeration that stops when
    the closest pair of clusters is ``threshold`` or further apart.

    ``distances`` (n, n) symmetric; ``weights`` (n,) > 0: an item's share in the average distance between clusters
    (e.g. its seconds of speech), so one long turn counts for more than a word. Inf distances never merge.
    ``min_clusters`` / ``max_clusters``: merging stops at ``min_clusters`` clusters whatever the distance, and goes
    on past the threshold while there are more than ``max_clusters`` (a number of speakers known beforehand).
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
    count = n
    for _ in range(n - 1):
        a = int(np.argmin(np.where(active, row_min, np.inf)))
        if not np.isfinite(row_min[a]) or count <= min_clusters:
            break
        if row_min[a] >= threshold and (max_clusters is None or count <= max_clusters):
            break
        count -= 1
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


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = KMEANS_RESTARTS, iterations: int = 100) -> np.ndarray:
    """Labels (0..k-1) of the rows of ``x`` by k-means (k-means++ starts; the best of ``restarts`` by inertia);
    deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    best, best_inertia = np.zeros(len(x), np.int64), np.inf
    for _ in range(restarts):
        centres = [x[rng.integers(len(x))]]
        for _ in range(1, k):
            d2 = np.min([((x - c) ** 2).sum(axis=1) for c in centres], axis=0)
            total = d2.sum()
            centres.append(x[rng.choice(len(x), p=d2 / total)] if total > 0 else x[rng.integers(len(x))])
        c = np.array(centres)
        labels = np.full(len(x), -1)
        for _ in range(iterations):
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(axis=2)
            new = d2.argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            c = np.array([x[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)])
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def spectral_labels(vectors: np.ndarray, min_clusters: int = 1, max_clusters: int | None = None) -> np.ndarray | None:
    """Cluster labels by NME-SC, or None when there are fewer than :data:`SPECTRAL_MIN_ITEMS` items or the eigengap
    points at one cluster or at :data:`MAX_CLUSTERS` (there may be more; one
    cluster is also what more clusters than the cap often look like): then let the threshold decide.
    ``min_clusters`` / ``max_clusters``: how many clusters there are, when it is known beforehand. The eigengap is
    looked for as without them and its number taken only within them (a noise gap inside the bounds is no
    answer): None otherwise. When both are the same number, that many clusters, from the graph whose gap after
    that many eigenvalues is largest.

    The cosine similarities, scaled to [0, 1], are made a graph in which each item keeps its ``p`` most similar
    ones; of the ``p`` tried, the one whose Laplacian has the largest eigengap for its sparsity (the normalised
    maximum eigengap, ``(p / n) / (gap / largest eigenvalue)`` smallest) is kept, the number of clusters is where
    that gap is, and k-means on the Laplacian's first eigenvectors gives the clusters.
    """
    n = len(vectors)  # float32 throughout: 800 items take ~10 MB, not ~40
    if n < SPECTRAL_MIN_ITEMS:
        return None
    affinity = cosine_distances(vectors)
    np.subtract(1.0, affinity, out=affinity)  # cosine similarity
    low, span = affinity.min(), affinity.max() - affinity.min()
    affinity -= low
    affinity /= span if span > 0 else 1.0
    p_max = max(3, int(n * P_FRACTION))
    nearest = np.empty((n, p_max), np.int32)  # each row's p_max most similar, the most first
    for a in range(0, n, NEAREST_ROWS):  # a few rows at a time: a full argsort would be n x n int64
        nearest[a:a + NEAREST_ROWS] = np.argsort(-affinity[a:a + NEAREST_ROWS], axis=1, kind="stable")[:, :p_max]
    del affinity
    rows = np.arange(n)[:, None]

    def laplacian(p: int) -> np.ndarray:
        graph = np.zeros((n, n), np.float32)
        graph[rows, nearest[:, :p]] = 1.0
        graph += graph.T
        graph *= -0.5
        graph[np.diag_indices(n)] -= graph.sum(axis=1)  # the diagonal was 0.5 + 0.5 = 1: now the degree
        return graph

    cap = max(MAX_CLUSTERS, min_clusters)  # the eigengap is looked for among the first cap + 1 eigenvalues
    search = min(cap, n - 1)
    exact = max_clusters is not None and max_clusters == min_clusters
    if exact and min_clusters > search:
        return None
    best = None
    for p in np.unique(np.linspace(2, p_max, P_STEPS).astype(int)):
        eigenvalues = np.linalg.eigvalsh(laplacian(int(p)))
        gaps = np.diff(eigenvalues[:search + 1])  # gaps[j]: after the (j + 1)-th eigenvalue
        at = min_clusters - 1 if exact else int(np.argmax(gaps))
        ratio = (p / n) / (gaps[at] / max(eigenvalues[-1], 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, int(p), at + 1, eigenvalues)
    _, p, k, eigenvalues = best
    if not exact and (k == 1 or k >= cap or k < min_clusters or (max_clusters is not None and k > max_clusters)):
        return None  # one, maybe more than the cap, or outside the bounds: the (bounded) threshold decides
    return kmeans(smallest_eigenvectors(laplacian(p), eigenvalues, k), k)


def smallest_eigenvectors(matrix: np.ndarray, eigenvalues: np.ndarray, k: int) -> np.ndarray:
    """(n, k) orthonormal eigenvectors of the ``k`` smallest eigenvalues of the symmetric ``matrix``, whose
    ascending ``eigenvalues`` are given (:func:`numpy.linalg.eigvalsh`).

    By subspace iteration with the inverse of the matrix shifted just below its smallest eigenvalue (each step a
    :func:`numpy.linalg.solve` and a Rayleigh-Ritz step on :data:`RITZ_EXTRA` more vectors than asked): the
    same span as :func:`numpy.linalg.eigh`'s first ``k`` (k-means on their rows does not see a rotation within it),
    in a few n x n float32 arrays where eigh's divide and conquer takes ~22 MB more at n = 800 (most of what
    clustering a long recording added to its peak memory). Falls back to eigh when the k-th eigenvalue is not
    apart from the next (no one span to find) or the iteration has not converged after :data:`RITZ_STEPS` steps.
    """
    n = len(matrix)
    m = min(n, k + RITZ_EXTRA)
    scale = max(float(abs(eigenvalues[-1])), 1e-6)
    if k >= n or eigenvalues[k] - eigenvalues[k - 1] < RITZ_TOLERANCE * scale:  # no gap: no one span to converge to
        return np.linalg.eigh(matrix)[1][:, :k]
    shifted = np.array(matrix, np.float32, copy=True)
    shifted[np.diag_indices(n)] -= np.float32(eigenvalues[0] - RITZ_SHIFT * scale)
    x = np.random.default_rng(0).standard_normal((n, m)).astype(np.float32)
    for _ in range(RITZ_STEPS):
        x, _ = np.linalg.qr(np.linalg.solve(shifted, x))
        mx = matrix @ x  # the one product with the matrix a step needs: rotated below with x
        projected = (x.T @ mx).astype(np.float64)
        theta, rotation = np.linalg.eigh((projected + projected.T) / 2)
        rotation = rotation.astype(np.float32)
        x, mx = x @ rotation, mx @ rotation
        residual = np.linalg.norm(mx[:, :k] - x[:, :k] * theta[:k].astype(np.float32), axis=0).max()
        if residual <= RITZ_TOLERANCE * scale:
            return x[:, :k]
    return np.linalg.eigh(matrix)[1][:, :k]


def _mean_distances(vectors: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """(g, g) mean cosine distance between the items of each pair of groups (rows of ``vectors``), 0 on the
    diagonal; one group's distances to all at a time (memory: its items x all items)."""
    every = np.concatenate(groups)
    x = np.asarray(vectors[every], np.float32)  # only the groups' items (not all of a long recording's turns)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sizes = np.array([len(g) for g in groups], np.float64)
    starts = np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64)
    out = np.zeros((len(groups), len(groups)), np.float32)
    for a in range(len(groups)):
        mine = x[starts[a]:starts[a] + len(groups[a])]
        sums = np.add.reduceat((1.0 - mine @ x.T).sum(axis=0), starts)
        out[a] = sums / (len(mine) * sizes)
    np.fill_diagonal(out, 0.0)
    return out


def in_order_of_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in the order their first item appears."""
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(labels.max() + 1, np.int64)
    rank[np.unique(labels)[np.argsort(first)]] = np.arange(len(first))
    return rank[labels]


def join_clusters(vectors: np.ndarray, members: list[np.ndarray], masses: np.ndarray, logits: np.ndarray | None,
                  threshold: float, penalty: float = 0.0, min_clusters: int = 1,
                  max_clusters: int | None = None) -> np.ndarray:
    """Labels (0..k-1) of groups of items joined by average linkage: a pair's distance is the mean cosine distance
    between ``members`` (each group's item indices into ``vectors``), plus :func:`gender_penalty` on the groups'
    mean gender log-odds ``logits`` (None: no penalty); ``masses``: each group's weight."""
    d = _mean_distances(vectors, members)
    if logits is not None and penalty:
        d += gender_penalty(np.asarray(logits, np.float64), penalty)
    return average_linkage(d, np.asarray(masses, np.float64), threshold, min_clusters, max_clusters)


def _groups(labels: np.ndarray, weights: np.ndarray, genders: np.ndarray | None, sample: int | None = None
            ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """Each label's items (up to ``sample`` of them, evenly spread), its total weight and mean log-odds."""
    members, masses, logits = [], [], []
    for k in range(labels.max() + 1):
        idx = np.flatnonzero(labels == k)
        w = weights[idx]
        members.append(idx if sample is None else idx[np.linspace(0, len(idx) - 1, min(len(idx), sample)).astype(int)])
        masses.append(w.sum())
        logits.append(0.0 if genders is None else float(np.average(genders[idx], weights=w)))
    return members, np.array(masses), None if genders is None else np.array(logits)


def cluster(vectors: np.ndarray, weights: np.ndarray, threshold: float, genders: np.ndarray | None = None,
            penalty: float = 0.0, block: int = BLOCK_ITEMS, spectral: bool = False, min_clusters: int = 1,
            max_clusters: int | None = None) -> np.ndarray:
    """Cluster labels (0..k-1, in order of first appearance) of ``vectors`` (n, d) by cosine distance, average
    linkage, stopping at ``threshold``; ``weights`` (n,) as in :func:`average_linkage`.

    ``genders`` (n,), optional: each item's gender log-odds; :func:`gender_penalty` with ``penalty`` is added to the
    distances (different voices' genders keep speakers apart). More than ``block`` items: each block of
    consecutive items is clustered on its own, then the blocks' clusters are joined by average linkage with the
    same threshold, a pair's distance the mean distance between up to :data:`JOIN_SAMPLE` of their items each (the
    distance the threshold is meant for: between centroids of many items it would be smaller) plus the penalty
    on their mean log-odds — memory O(block²).

    ``spectral``: within a block, the clusters are :func:`spectral_labels`'s unless the threshold finds a single
    cluster (one voice: spectral clustering always splits) or the eigengap reaches :data:`MAX_CLUSTERS`. The
    spectral clusters count every item alike; those closer than :data:`REJOIN_SHARE` of the threshold are then
    joined by :func:`join_clusters` (``weights``, ``genders`` and ``penalty`` count there, in the threshold's check
    and in the joining of blocks).

    ``min_clusters`` / ``max_clusters``: how many clusters there are, when it is known beforehand (a number of
    speakers given by the user): the threshold and the eigengap then decide only between these bounds. A long
    recording's blocks are each clustered with at most ``max_clusters``, and their clusters joined within both
    bounds (so fewer than ``min_clusters`` come out only when the blocks found fewer in all).
    """
    vectors = np.asarray(vectors, np.float32)  # 20,000 turns (10 h of conversation) x 192: 15 MB
    weights = np.asarray(weights, np.float64)
    genders = None if genders is None else np.asarray(genders, np.float64)
    n = len(vectors)
    if n <= block:
        d = cosine_distances(vectors)
        if genders is not None and penalty:
            d += gender_penalty(genders, penalty)
        labels = average_linkage(d, weights, threshold, min_clusters, max_clusters)
        del d  # before the spectral clustering's own matrices
        if spectral and labels.max() > 0:
            found = spectral_labels(vectors, min_clusters, max_clusters)
            if found is not None:
                members, masses, logits = _groups(found, weights, genders)
                joined = join_clusters(vectors, members, masses, logits, threshold * REJOIN_SHARE, penalty,
                                       min_clusters, max_clusters)
                labels = in_order_of_appearance(joined[found])
        return labels
    local = np.empty(n, np.int64)
    members, masses, logits, offset = [], [], [], 0
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        z = None if genders is None else genders[sl]
        lab = cluster(vectors[sl], weights[sl], threshold, z, penalty, block, spectral, max_clusters=max_clusters)
        found, mass, logit = _groups(lab, weights[sl], z, JOIN_SAMPLE)
        members += [start + idx for idx in found]
        masses.append(mass)
        logits.append(logit)  # None throughout when there are no genders
        local[sl] = lab + offset
        offset += lab.max() + 1
    top = join_clusters(vectors, members, np.concatenate(masses), None if genders is None else np.concatenate(logits),
                        threshold, penalty, min_clusters, max_clusters)
    return in_order_of_appearance(top[local])
