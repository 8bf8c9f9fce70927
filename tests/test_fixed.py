"""Known parameters held fixed through EM (GaussianMixtureEM(fixed=...), bayesgmm._fixed).

References: the fixed values themselves (never move), a direct numerical maximisation
of the log-likelihood over the free parameters only (scipy.optimize, densities by
scipy.stats), and hand-counted free parameters.
"""

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

from bayesgmm import GaussianMixtureEM, datasets
from bayesgmm.priors import ConjugatePrior

from .conftest import seed

nan = np.nan


@pytest.fixture(scope="module")
def faithful():
    return datasets.load_faithful().to_numpy()


def fit(X, family="VVV", K=3, **options):
    options = {"tol": 1e-10, "max_iter": 20_000, "random_state": 0, **options}
    return GaussianMixtureEM(K, covariance_type=family, **options).fit(X)


def full(model):
    K, D = model.means_.shape
    return model._structure.to_full(model.covariances_, K, D)


@pytest.mark.parametrize("family", ["VVV", "EEE", "VVI", "VII", "EII", "EEV", "VEV", "EVE"])
def test_fixed_values_never_move(family, faithful):
    """Weights of one component, the mean of another, and (all, or one component's)
    covariances: exactly the given values after EM, at every family."""
    free = fit(faithful, family, tol=1e-6)
    covariances = np.array(free.covariances_) * 1.2
    if family in ("VVV", "VVI", "VII"):
        covariances[1:] = nan  # one component's covariance
    fixed = {"weights": [0.25, nan, nan], "means": [[nan, nan], [2.0, 55.0], [nan, nan]],
             "covariances": covariances}
    model = fit(faithful, family, fixed=fixed)
    assert model.weights_[0] == 0.25
    np.testing.assert_array_equal(model.means_[1], [2.0, 55.0])
    known = ~np.isnan(covariances)
    np.testing.assert_array_equal(np.asarray(model.covariances_)[known], covariances[known])
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-12)
    trace = model.log_likelihood_trace_
    assert np.all(np.diff(trace) >= -1e-8 * np.abs(trace[1:]))


# ------------------------------------------------------ the reduced problem, directly
def _log_likelihood(X, weights, means, covariances):
    joint = [np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
             for w, m, c in zip(weights, means, covariances)]
    return logsumexp(joint, axis=0).sum()


def _cholesky_parameters(c):
    L = np.linalg.cholesky(c)
    L[np.diag_indices(len(c))] = np.log(np.diag(L))
    return L[np.tril_indices(len(c))]


def _covariance(theta, D):
    L = np.zeros((D, D))
    L[np.tril_indices(D)] = theta
    L[np.diag_indices(D)] = np.exp(np.diag(L))
    return L @ L.T


def test_free_parameters_maximise_the_likelihood_given_the_fixed():
    """Two full components, component 0's weight and mean known: EM's free parameters
    (component 1's mean, both covariances) equal a quasi-Newton maximisation of the
    log-likelihood over those alone, from a perturbed start, to 1e-6 in it."""
    rng = np.random.default_rng(seed("fixed-direct"))
    X = np.vstack([rng.normal([0, 0], 1.0, size=(40, 2)) @ [[1, 0.5], [0, 1]],
                   rng.normal([3, 2], 0.7, size=(40, 2))])
    fixed = {"weights": [0.45, nan], "means": [[0.2, -0.1], [nan, nan]]}
    em = fit(X, "VVV", 2, reg_covar=0.0, fixed=fixed)
    m = 3  # Cholesky entries per 2x2 covariance

    def negative(theta):
        means = np.array([[0.2, -0.1], theta[:2]])
        covariances = [_covariance(theta[2:2 + m], 2), _covariance(theta[2 + m:], 2)]
        return -_log_likelihood(X, [0.45, 0.55], means, covariances)

    at_em = np.concatenate([em.means_[1], *(_cholesky_parameters(c) for c in full(em))])
    start = at_em + 0.05 * rng.standard_normal(len(at_em))
    direct = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-7})
    assert abs(-direct.fun - em.log_likelihood_) < 1e-6
    np.testing.assert_allclose(direct.x[:2], em.means_[1], atol=1e-4)
    assert em.n_parameters() == 2 + 2 * m


def test_a_fixed_shared_covariance_leaves_weights_and_means():
    """EEE with its covariance known: the weights and means EM finds maximise the
    likelihood over weights and means alone."""
    rng = np.random.default_rng(seed("fixed-shared"))
    X = np.vstack([rng.normal([0, 0], 1.0, size=(50, 2)), rng.normal([3, 1], 1.0, size=(30, 2))])
    covariance = np.array([[1.1, 0.2], [0.2, 0.9]])
    em = fit(X, "EEE", 2, reg_covar=0.0, fixed={"covariances": covariance})
    np.testing.assert_array_equal(em.covariances_, covariance)

    def negative(theta):
        weights = softmax([0.0, theta[0]])
        return -_log_likelihood(X, weights, theta[1:].reshape(2, 2), [covariance] * 2)

    at_em = np.r_[np.log(em.weights_[1] / em.weights_[0]), em.means_.ravel()]
    direct = optimize.minimize(negative, at_em + 0.05 * rng.standard_normal(5), method="BFGS",
                               options={"gtol": 1e-7})
    assert abs(-direct.fun - em.log_likelihood_) < 1e-6
    assert em.n_parameters() == 1 + 4


# --------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("family, fixed, expected", [
    # VVV, K=3, D=2: 2 weights + 6 means + 9 covariance parameters = 17
    ("VVV", {"weights": [0.3, nan, nan]}, 16),
    ("VVV", {"weights": [0.3, 0.3, nan]}, 15),  # the last weight is determined
    ("VVV", {"weights": [0.3, 0.3, 0.4]}, 15),
    ("VVV", {"means": [[1, 50], [nan, nan], [nan, nan]]}, 15),
    ("VVV", {"covariances": [[[1, 0], [0, 30]], [[nan] * 2] * 2, [[nan] * 2] * 2]}, 14),
    # EEE: 2 + 6 + 3 = 11; its covariance only as a whole
    ("EEE", {"covariances": [[1, 0], [0, 30]]}, 8),
    # VII: 2 + 6 + 3
    ("VII", {"covariances": [nan, 4.0, nan], "means": [[1, 50], [nan, nan], [nan, nan]]}, 8),
    # EEV: 2 + 6 + (1 + 1 + 3 * 1) = 13, covariances all together
    ("EEV", {"weights": [0.2, 0.3, 0.5]}, 11),
])
def test_parameter_counts_and_criteria_drop(family, fixed, expected, faithful):
    model = fit(faithful, family, tol=1e-4, fixed=fixed)
    assert model.n_parameters() == expected
    n = len(faithful)
    assert model.bic(faithful) == pytest.approx(-2 * model.log_likelihood_
                                               + expected * np.log(n), rel=1e-12)
    assert model.aic(faithful) == pytest.approx(-2 * model.log_likelihood_ + 2 * expected,
                                               rel=1e-12)


# -------------------------------------------------------------- with other options
def test_fixed_with_standardize_missing_entries_and_a_start(faithful, tmp_path):
    fixed = {"means": [[2.0, 54.0], [nan, nan]], "weights": [0.35, nan]}
    plain = fit(faithful, "VVV", 2, fixed=fixed)
    scaled = fit(faithful, "VVV", 2, fixed=fixed, standardize=True)
    assert scaled.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(scaled.means_[0], [2.0, 54.0], rtol=1e-12)
    started = fit(faithful, "VVV", 2, fixed=fixed, means_init=[[1.0, 50.0], [4.0, 80.0]],
                  weights_init=[0.5, 0.5])
    np.testing.assert_array_equal(started.means_[0], [2.0, 54.0])
    assert started.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-6)
    rng = np.random.default_rng(seed("fixed-missing"))
    X = faithful.copy()
    X[rng.random(len(X)) < 0.2, 1] = nan
    missing = fit(X, "VVV", 2, fixed=fixed)
    np.testing.assert_array_equal(missing.means_[0], [2.0, 54.0])
    plain.save(tmp_path / "fixed.nc")
    loaded = GaussianMixtureEM.load(tmp_path / "fixed.nc")
    assert loaded.n_parameters() == plain.n_parameters()
    np.testing.assert_array_equal(loaded.fixed["means"], np.array(fixed["means"]))


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("family, fixed, message", [
    ("VVV", [0.5, 0.5], "fixed must be None or a dict"),
    ("VVV", {"mean": [[0, 0]] * 2}, r"fixed has unknown keys \['mean'\]"),
    ("VVV", {"weights": [0.5, 0.6]}, "fixed weights must sum to 1 when all are fixed"),
    ("VVV", {"weights": [1.0, nan]}, "leaving nothing for the free components"),
    ("VVV", {"weights": [-0.1, nan]}, r"fixed weights must lie in \[0, 1\]"),
    ("VVV", {"weights": [0.5, 0.2, 0.3]}, r"fixed weights must have shape \(2,\)"),
    ("VVV", {"means": [[1.0, nan], [nan, nan]]}, "fixed whole or estimated whole"),
    ("VVV", {"means": [[1.0, np.inf], [nan, nan]]}, "fixed means must be finite"),
    ("VVV", {"means": [[nan, nan], [nan, nan]]}, "all NaN, i.e. nothing fixed"),
    ("VVV", {"covariances": [[[1, 2], [2, 1]], [[nan] * 2] * 2]},
     "fixed covariances must be positive definite"),
    ("VVV", {"covariances": [[[1, 0.5], [0, 1]], [[nan] * 2] * 2]},
     "fixed covariances must be symmetric"),
    ("EEV", {"covariances": [[[1, 0], [0, 1]], [[nan] * 2] * 2]},
     "'EEV' are fixed all together"),
    ("VII", {"covariances": [1.0, 1.0], "means": [[0, 0], [1, 1]], "weights": [0.5, 0.5]},
     "fixes every parameter"),
    ("VVV", {"means": [["a", "b"], [nan, nan]]}, "fixed means must be numbers"),
])
def test_bad_fixed_values_are_refused_before_fitting(family, fixed, message, monkeypatch):
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(2, covariance_type=family, fixed=fixed).fit(X)


def test_fixed_and_prior_are_refused_together():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="fixed and prior cannot be combined"):
        GaussianMixtureEM(2, fixed={"weights": [0.5, nan]}, prior=ConjugatePrior()).fit(X)
