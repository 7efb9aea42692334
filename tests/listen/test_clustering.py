"""Average-linkage clustering of weighted vectors (voicegender.listen.clustering) against known groups."""

import numpy as np
import pytest

from voicegender.listen.clustering import average_linkage, cluster, cosine_distances, gender_penalty


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
