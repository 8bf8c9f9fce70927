"""mclust's start: model-based agglomerative hierarchical clustering (and quantile
classes in 1-D), held against R mclust's own partitions and against the criterion
evaluated by definition."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesgmm._hierarchical import hierarchical_classes, quantile_classes, svd_transform

DATA = Path(__file__).parent / "data" / "mclust"
STARTS = pd.read_csv(DATA / "mclust_start_classes.csv")


def same_partition(a, b):
    """True when the labellings a and b group the points identically."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("dataset", ["faithful", "iris", "diabetes", "galaxies"])
def test_partitions_are_mclusts(dataset):
    """hclass(hc(X, "VVV", use = "SVD"), G), or qclass(x, G) in 1-D, for G = 1..6:
    the same partitions, ties included (faithful and iris have duplicated points and
    many equal distances)."""
    X = pd.read_csv(DATA / f"{dataset}.csv").to_numpy(dtype=float)
    for G in range(1, 7):
        cell = STARTS[(STARTS.dataset == dataset) & (STARTS.G == G)].sort_values("row")
        ours = (quantile_classes(X[:, 0], G) if X.shape[1] == 1
                else hierarchical_classes(svd_transform(X), G))
        assert np.bincount(ours).size == G
        assert same_partition(ours, cell["class"].to_numpy()), (dataset, G)


def term(points, alpha):
    """mclust's regularised VVV classification cost of one cluster, by definition."""
    n, p = points.shape
    W = (points - points.mean(axis=0)).T @ (points - points.mean(axis=0))
    t = np.trace(W)
    det = np.linalg.det(W / n) if n > p and t > 0 else 0.0
    return n * np.log(max(det, 0.0) + (t + alpha) / n)


def brute_force(Z, n_clusters):
    """Agglomerate by recomputing every pair's cost from the points at every step."""
    n, p = Z.shape
    alpha = np.sum((Z - Z.mean(axis=0)) ** 2) / (n * p)
    clusters = [[i] for i in range(n)]
    while len(clusters) > n_clusters:
        costs = {(a, b): term(Z[clusters[a] + clusters[b]], alpha)
                 - term(Z[clusters[a]], alpha) - term(Z[clusters[b]], alpha)
                 for a in range(len(clusters)) for b in range(a)}
        (a, b), best = min(costs.items(), key=lambda item: item[1])
        ties = sorted(pair for pair, value in costs.items() if value <= best + 1e-9 * abs(best))
        assert len(ties) == 1, "the brute force is only a reference without ties"
        clusters[b] = clusters[b] + clusters[a]
        del clusters[a]
    labels = np.empty(n, dtype=int)
    for k, members in enumerate(clusters):
        labels[members] = k
    return labels


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(4, 14), st.integers(2, 3)),
              elements=st.floats(-10, 10, allow_nan=False)),
       st.integers(1, 4), st.randoms(use_true_random=False))
def test_kernel_equals_the_criterion_evaluated_by_definition(X, n_clusters, random):
    # continuous jitter: distinct points, no exact ties in the criterion
    rng = np.random.default_rng(random.randrange(2**32))
    X = X + rng.normal(scale=1e-3, size=X.shape)
    n_clusters = min(n_clusters, len(X))
    try:
        reference = brute_force(X, n_clusters)
    except AssertionError:  # a near tie: no unique reference
        return
    assert same_partition(hierarchical_classes(X, n_clusters), reference)


def test_start_is_invariant_to_units_and_feature_order():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(60, 3)), rng.normal(4, 1, size=(40, 3))])
    labels = hierarchical_classes(svd_transform(X), 3)
    assert same_partition(hierarchical_classes(svd_transform(X * [1e-4, 1.0, 1e5] + 7), 3),
                          labels)
    assert same_partition(hierarchical_classes(svd_transform(X[:, [2, 0, 1]]), 3), labels)


def test_quantile_classes_are_ordered_intervals():
    x = np.random.default_rng(0).normal(size=101)
    labels = quantile_classes(x, 4)
    assert np.all(np.diff(labels[np.argsort(x)]) >= 0)
    assert np.bincount(labels).tolist() == [25, 25, 25, 26]


def test_too_many_clusters_is_refused():
    with pytest.raises(ValueError, match="n_clusters must be between 1 and 3"):
        hierarchical_classes(np.zeros((3, 2)), 4)
