"""Clustering of weighted vectors (voicegender.listen.clustering), average linkage and spectral, against known
groups."""

import numpy as np
import pytest

from voicegender.listen.clustering import (
    MAX_CLUSTERS,
    average_linkage,
    cluster,
    cosine_distances,
    gender_penalty,
    join_clusters,
    kmeans,
    smallest_eigenvectors,
    spectral_labels,
)


def _groups(n_groups: int = 4, per: int = 30, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 16))
    x = np.concatenate([c + spread * rng.normal(size=(per, 16)) for c in centres])
    truth = np.repeat(np.arange(n_groups), per)
    order = rng.permutation(len(x))
    return x[order], truth[order]


def _pure(labels, truth) -> bool:
    """Every cluster holds one group and every group one cluster."""
    return all(len(set(truth[labels == k])) == 1 for k in set(labels)) and len(set(labels)) == len(set(truth))


def test_finds_the_groups_and_numbers_them_by_first_appearance():
    x, truth = _groups()
    labels = cluster(x, np.ones(len(x)), threshold=0.5)
    assert _pure(labels, truth)
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(labels.max() + 1)]
    assert first == sorted(first) and labels[0] == 0


def test_matches_scipys_average_linkage():
    scipy_hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    from scipy.spatial.distance import squareform

    x, _ = _groups(n_groups=5, per=12, spread=0.8, seed=3)
    d = cosine_distances(x)
    for threshold in (0.2, 0.5, 0.9):
        ours = average_linkage(d, np.ones(len(x)), threshold)
        theirs = scipy_hierarchy.fcluster(scipy_hierarchy.linkage(squareform(d, checks=False), "average"),
                                          threshold, "distance")
        # the same partition (labels may differ): each pair together in one iff together in the other
        assert np.array_equal(ours[:, None] == ours[None, :], theirs[:, None] == theirs[None, :]), threshold


def test_weights_make_an_item_count_for_more():
    d = np.array([[0.0, 0.2, 0.6], [0.2, 0.0, 0.3], [0.6, 0.3, 0.0]])
    # items 0 and 1 merge first (0.2); the pair's distance to 2 is the weighted mean of 0.6 and 0.3
    assert average_linkage(d, np.array([1.0, 1.0, 1.0]), 0.46).tolist() == [0, 0, 0]  # (0.6 + 0.3) / 2 = 0.45
    assert average_linkage(d, np.array([3.0, 1.0, 1.0]), 0.46).tolist() == [0, 0, 1]  # (1.8 + 0.3) / 4 = 0.525


def test_blocks_give_the_partition_of_one_pass():
    x, truth = _groups(n_groups=3, per=40, spread=0.2, seed=1)
    assert _pure(cluster(x, np.ones(len(x)), 0.5, block=25), truth)


def test_gender_penalty_keeps_sure_opposite_genders_apart():
    z = np.array([3.0, -3.0, 0.5, -0.5])
    p = gender_penalty(z, penalty=0.2, sure=1.0)
    assert p[0, 1] == pytest.approx(0.4) and p[0, 2] == 0 and p[2, 3] == 0 and p[0, 0] == 0
    x = np.array([[1.0, 0.0], [0.95, 0.05]])  # one voice by the embedding, but surely different genders
    assert cluster(x, np.ones(2), 0.3).tolist() == [0, 0]
    assert cluster(x, np.ones(2), 0.3, genders=np.array([3.0, -3.0]), penalty=0.2).tolist() == [0, 1]


def test_empty_and_single():
    assert cluster(np.zeros((0, 3)), np.zeros(0), 0.5).tolist() == []
    assert cluster(np.ones((1, 3)), np.ones(1), 0.5).tolist() == [0]


def _close_groups(n_groups: int, per: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Groups whose members are so spread that a threshold of 0.75 splits each into several (as short turns in
    noise are to a speaker encoder), while each item is still nearest its own group."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=64)
    centres = [shared + 1.2 * rng.normal(size=64) for _ in range(n_groups)]
    x = np.concatenate([c + 2.0 * rng.normal(size=(per, 64)) for c in centres])
    truth = np.repeat(np.arange(n_groups), per)
    order = rng.permutation(len(x))
    return x[order], truth[order]


@pytest.mark.parametrize("n_groups", [2, 3, 5])
def test_spectral_clustering_finds_how_many_groups_where_a_threshold_cannot(n_groups: int):
    x, truth = _close_groups(n_groups)
    labels = spectral_labels(x)
    assert labels is not None and _pure(labels, truth)
    assert _pure(cluster(x, np.ones(len(x)), 0.75, spectral=True), truth)
    assert len(set(cluster(x, np.ones(len(x)), 0.75))) > n_groups  # the threshold alone splits them


def test_spectral_clustering_leaves_one_voice_small_sets_and_more_groups_than_its_cap_to_the_threshold():
    x, _ = _close_groups(1, per=40)
    assert cluster(x, np.ones(len(x)), 0.95, spectral=True).tolist() == [0] * len(x)  # the threshold says one
    assert spectral_labels(x[:5]) is None  # too few items
    many, truth = _groups(n_groups=MAX_CLUSTERS + 1, per=25)
    assert spectral_labels(many) is None  # more groups than it looks for
    assert spectral_labels(many, max_clusters=MAX_CLUSTERS + 1) is None  # nor where there may be one more
    assert _pure(spectral_labels(many, MAX_CLUSTERS + 1, MAX_CLUSTERS + 1), truth)  # told how many: found


def test_average_linkage_stops_within_the_number_of_clusters_given():
    x, truth = _groups()
    d = cosine_distances(x)
    assert _pure(average_linkage(d, np.ones(len(x)), 0.5), truth)
    two = average_linkage(d, np.ones(len(x)), 0.5, max_clusters=2)  # merges on past the threshold: whole groups
    assert len(set(two)) == 2 and all(len(set(two[truth == g])) == 1 for g in set(truth))
    six = average_linkage(d, np.ones(len(x)), 5.0, min_clusters=6)  # stops short of it: parts of groups
    assert len(set(six)) == 6 and all(len(set(truth[six == k])) == 1 for k in set(six))


@pytest.mark.parametrize("spectral", [False, True])
def test_cluster_gives_the_number_of_clusters_it_is_told(spectral: bool):
    x, truth = _close_groups(5)
    for k in (2, 3, 5, 7):
        labels = cluster(x, np.ones(len(x)), 0.75, spectral=spectral, min_clusters=k, max_clusters=k)
        assert len(set(labels)) == k, k
    assert len(set(cluster(x, np.ones(len(x)), 0.75, spectral=spectral, max_clusters=3))) == 3
    if spectral:  # the eigengap between the bounds finds the five
        assert _pure(cluster(x, np.ones(len(x)), 0.75, spectral=True, min_clusters=2, max_clusters=8), truth)


def test_blocks_keep_to_the_number_of_clusters_given():
    x, truth = _close_groups(3, per=60)
    assert _pure(cluster(x, np.ones(len(x)), 0.75, spectral=True, block=90, min_clusters=3, max_clusters=3), truth)
    assert len(set(cluster(x, np.ones(len(x)), 0.75, spectral=True, block=90, max_clusters=2))) == 2


def test_kmeans_finds_separated_groups():
    x, truth = _groups(n_groups=3, per=20, spread=0.1, seed=4)
    assert _pure(kmeans(x, 3), truth)


def test_spectral_clustering_in_blocks_keeps_the_groups():
    x, truth = _close_groups(3, per=60)
    assert _pure(cluster(x, np.ones(len(x)), 0.75, spectral=True, block=90), truth)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_smallest_eigenvectors_span_what_eigh_gives(k: int):
    rng = np.random.default_rng(k)
    basis, _ = np.linalg.qr(rng.normal(size=(120, 120)))
    values = np.sort(np.concatenate([rng.uniform(0, 0.5, k), rng.uniform(2, 40, 120 - k)]))  # a gap after the k-th
    matrix = ((basis * values) @ basis.T).astype(np.float32)
    got = smallest_eigenvectors(matrix, np.linalg.eigvalsh(matrix), k)
    want = basis[:, :k]
    assert got.shape == (120, k) and np.allclose(got.T @ got, np.eye(k), atol=1e-4)
    assert np.linalg.norm(want @ (want.T @ got) - got) < 1e-3  # the same span


def test_smallest_eigenvectors_without_a_gap_are_eighs():
    matrix = np.diag(np.array([0.0, 0.0, 0.0, 5.0, 6.0], np.float32))  # three equal: no one span of two
    got = smallest_eigenvectors(matrix, np.linalg.eigvalsh(matrix), 2)
    assert np.allclose(np.abs(got), np.abs(np.linalg.eigh(matrix)[1][:, :2]))


def test_bounds_that_hold_the_true_number_change_nothing_and_a_noise_gap_is_no_answer():
    """A loose bound leaves the eigengap's answer as it is; a bound the eigengap's answer is outside of (one voice
    told "at least 2") leaves it to the threshold clustering, which stops at the bound."""
    x, truth = _close_groups(2, per=30)
    free = cluster(x, np.ones(len(x)), 0.75, spectral=True)
    assert _pure(free, truth)
    for bounds in [(1, 3), (1, 15), (2, 8), (1, 30)]:
        assert np.array_equal(cluster(x, np.ones(len(x)), 0.75, spectral=True, min_clusters=bounds[0],
                                      max_clusters=bounds[1]), free), bounds
    one, _ = _close_groups(1, per=40, seed=41)
    assert spectral_labels(one, min_clusters=2) is None
    assert len(set(cluster(one, np.ones(len(one)), 0.95, spectral=True, min_clusters=2))) == 2


def test_join_clusters_joins_the_close_groups_and_keeps_opposite_genders_apart():
    """Groups 0 and 1 point the same way (one voice split in two), group 2 elsewhere: 0 and 1 are joined at a
    threshold above their mean distance, nothing at one below it; a sure gender difference keeps 0 and 1 apart."""
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=16), rng.normal(size=16)
    x = np.concatenate([base + 0.2 * rng.normal(size=(6, 16)), base + 0.2 * rng.normal(size=(6, 16)),
                        other + 0.2 * rng.normal(size=(6, 16))])
    members = [np.arange(0, 6), np.arange(6, 12), np.arange(12, 18)]
    masses = np.array([6.0, 6.0, 6.0])
    within = cosine_distances(x)[:6, 6:12].mean()
    assert 0.0 < within < 0.2 < cosine_distances(x)[:12, 12:].min()
    assert join_clusters(x, members, masses, None, 0.3).tolist() == [0, 0, 1]
    assert join_clusters(x, members, masses, None, within / 2).tolist() == [0, 1, 2]
    assert join_clusters(x, members, masses, np.array([4.0, -4.0, 0.0]), 0.3, penalty=0.15).tolist() == [0, 1, 2]
    assert join_clusters(x, members, masses, None, 0.3, min_clusters=3).tolist() == [0, 1, 2]  # as told
