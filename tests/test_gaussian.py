"""The per-covariance maths checked against independent references."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm._gaussian import (
    COVARIANCE_STRUCTURES,
    CollapsedComponentError,
    collapsed_components,
    get_covariance_structure,
    sample_mixture,
)

from .conftest import COVARIANCE_TYPES

K, D = 3, 4


def random_parameters(cov_type, rng):
    structure = get_covariance_structure(cov_type)
    means = rng.normal(size=(K, D)) * 3
    A = rng.normal(size=(K, D, D))
    full = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(D)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.2, 3, (K, D)),
        "spherical": rng.uniform(0.2, 3, K),
    }[cov_type]
    return structure, means, covariances


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_log_density_equals_scipy(cov_type):
    rng = np.random.default_rng(1)
    structure, means, covariances = random_parameters(cov_type, rng)
    X = rng.normal(size=(50, D)) * 4
    chol = structure.precisions_cholesky(covariances)
    full_cov = structure.to_full(covariances, K, D)
    expected = np.column_stack(
        [stats.multivariate_normal(means[k], full_cov[k]).logpdf(X) for k in range(K)]
    )
    # the reference formulation
    np.testing.assert_allclose(structure.log_prob(X, means, chol), expected, rtol=1e-10)
    # the feature expansion used by the engines
    coef = structure.coefficients(means, chol)
    expanded = -0.5 * structure.quad_features(X) @ coef.quad.T + X @ coef.lin.T + coef.const
    np.testing.assert_allclose(expanded, expected, rtol=1e-9)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_m_step_covariances_equal_weighted_scatter(cov_type):
    """The moment formula equals the two-pass weighted covariance per structure."""
    rng = np.random.default_rng(2)
    structure = get_covariance_structure(cov_type)
    X = rng.normal(size=(200, D)) * [1, 2, 3, 4]
    resp = rng.dirichlet(np.ones(K), size=200)
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    reg = 1e-3
    scatter = np.stack([(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(K)])
    expected = {
        "full": scatter / nk[:, None, None] + reg * np.eye(D),
        "tied": scatter.sum(axis=0) / nk.sum() + reg * np.eye(D),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg,
        "spherical": np.trace(scatter, axis1=1, axis2=2) / nk / D + reg,
    }[cov_type]
    got = structure.covariances(nk, means, resp.T @ structure.quad_features(X), reg)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_precision_factors_invert_covariances(cov_type):
    rng = np.random.default_rng(3)
    structure, means, covariances = random_parameters(cov_type, rng)
    chol = structure.to_full(structure.precisions_cholesky(covariances), K, D)
    precision = chol @ np.swapaxes(chol, 1, 2)
    np.testing.assert_allclose(
        precision @ structure.to_full(covariances, K, D), np.broadcast_to(np.eye(D), (K, D, D)),
        atol=1e-10,
    )
    precisions = np.linalg.inv(covariances) if cov_type in ("full", "tied") else 1 / covariances
    np.testing.assert_allclose(structure.covariances_from_precisions(precisions), covariances)
    chol2 = structure.to_full(structure.precisions_cholesky_from_precisions(precisions), K, D)
    np.testing.assert_allclose(chol2 @ np.swapaxes(chol2, 1, 2), precision, rtol=1e-10)
    # the same (upper-triangular) factor as the M-step's, as scikit-learn's, not numpy's
    # lower Cholesky factor
    np.testing.assert_allclose(chol2, chol, rtol=1e-9, atol=1e-12)
    assert np.all(np.tril(chol2, -1) == 0)
    np.testing.assert_allclose(
        structure.precisions_from_cholesky(structure.precisions_cholesky(covariances)),
        precisions, rtol=1e-9)


# Pinned: covariance, mean and weight parameters (scikit-learn's and mclust's counts).
@pytest.mark.parametrize(
    ("cov_type", "n_components", "n_features", "expected"),
    [
        ("full", 3, 2, 3 * 3 + 6 + 2),  # 17
        ("tied", 3, 2, 3 + 6 + 2),  # 11, mclust EEE G=3 on faithful
        ("diag", 3, 2, 6 + 6 + 2),  # 14
        ("spherical", 3, 2, 3 + 6 + 2),  # 11
        ("full", 8, 10, 8 * 55 + 80 + 7),  # 527
        ("tied", 8, 10, 55 + 80 + 7),  # 142
        ("diag", 8, 10, 80 + 80 + 7),  # 167
        ("spherical", 8, 10, 8 + 80 + 7),  # 95
        ("full", 1, 1, 1 + 1 + 0),
        ("spherical", 4, 1, 4 + 4 + 3),
    ],
)
def test_parameter_counts(cov_type, n_components, n_features, expected):
    structure = get_covariance_structure(cov_type)
    assert structure.n_parameters(n_components, n_features) == expected


@pytest.mark.parametrize(("mclust", "sklearn"), [("VVV", "full"), ("EEE", "tied"),
                                                 ("VVI", "diag"), ("VII", "spherical")])
def test_mclust_names_are_aliases(mclust, sklearn):
    assert get_covariance_structure(mclust) is COVARIANCE_STRUCTURES[sklearn]
    assert COVARIANCE_STRUCTURES[sklearn].mclust_name == mclust


def test_unknown_covariance_type_lists_valid_names():
    with pytest.raises(ValueError, match=r"one of \['full', 'tied', 'diag', 'spherical', 'EII'"
                                         r".*'EVV', 'E', 'V', 'VVV', 'EEE', 'VVI', 'VII'\]"):
        get_covariance_structure("VEV-ish")


def test_non_positive_definite_covariance_names_the_component():
    structure = get_covariance_structure("full")
    covs = np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]]), np.eye(2)])
    with pytest.raises(CollapsedComponentError, match="component 1 collapsed") as info:
        structure.precisions_cholesky(covs, reg_covar=1e-6)
    assert info.value.components == [1]
    assert "reg_covar" in str(info.value)
    with pytest.raises(CollapsedComponentError, match="components 0, 2 collapsed"):
        get_covariance_structure("spherical").precisions_cholesky(np.array([0.0, 1.0, -1.0]))


def test_collapsed_components_relative_to_data_spread():
    structure = get_covariance_structure("diag")
    data_variance = np.array([1.0, 1e6])
    covs = np.array([[0.5, 5e5], [1e-7, 1e5], [0.5, 1e-2]])
    # component 1 is tiny along feature 0; component 2 along feature 1 (1e-8 of its spread)
    assert collapsed_components(structure, covs, data_variance) == [1, 2]


def test_no_covariance_name_outside_the_registry():
    """Only ``_gaussian.py`` spells a structure's name: everything else asks the
    registry (docstrings may name them). A new family then cannot fall into some
    other module's ``else`` branch."""
    import ast
    from pathlib import Path

    import bayesgmm
    from bayesgmm._gaussian import valid_covariance_names

    names = set(valid_covariance_names())
    found = []
    for path in sorted(Path(bayesgmm.__file__).parent.glob("*.py")):
        if path.name == "_gaussian.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.name}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names
                  and id(node) not in docstrings]
    assert found == []


@pytest.mark.parametrize("name", list(COVARIANCE_STRUCTURES))
def test_structure_layout_owns_shapes_and_per_component_views(name):
    structure = COVARIANCE_STRUCTURES[name]
    K, D = 3, 2
    rng = np.random.default_rng(0)
    A = rng.normal(size=(K, D, D))
    full = A @ np.swapaxes(A, 1, 2) + np.eye(D)
    if "component" not in structure.layout:
        full = np.broadcast_to(full[:1], full.shape).copy()
    values = structure.from_full(structure.to_full(structure.from_full(full), K, D))
    assert values.shape == structure.covariance_shape(K, D)
    assert structure.signature.count(",") == len(structure.layout) - 1
    distinct = structure.full_matrices(values, D)
    assert len(distinct) == (K if "component" in structure.layout else 1)
    # a batch of two draws, viewed per component, gives the same densities
    per_component, batch = structure.per_component(np.stack([values, values]), K)
    assert "component" in per_component.layout
    np.testing.assert_allclose(per_component.to_full(batch[1], K, D),
                               structure.to_full(values, K, D))
    # the one sampler: draws with the structure's covariances
    X, labels = sample_mixture(np.full(K, 1 / K), np.zeros((K, D)),
                               np.linalg.cholesky(structure.to_full(values, K, D)), 40000, rng)
    for k in range(K):
        np.testing.assert_allclose(np.cov(X[labels == k].T), structure.to_full(values, K, D)[k],
                                   atol=0.1 * np.abs(full).max())
