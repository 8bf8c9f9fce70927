"""EM with missing entries (GaussianMixtureEM(missing="marginalize"), bayesgmm._missing).

References: a direct numerical maximisation of the observed-data log-likelihood
(scipy.optimize over the parameters, densities by scipy.stats), brute-force marginal and
conditional Gaussians, the fit without NaN, and simulated truth (MCAR consistency, MAR
against complete-case analysis).
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from scipy.special import logsumexp, softmax

from bayesgmm import GaussianMixtureEM, datasets
from bayesgmm.priors import ConjugatePrior

from .conftest import seed

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None,
                             max_examples=30, suppress_health_check=[HealthCheck.too_slow])


def with_missing(X, fraction, rng):
    """X with MCAR entries set to NaN (no row entirely missing)."""
    X = np.array(X, dtype=float)
    mask = rng.random(X.shape) < fraction
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def observed_joint(X, weights, means, covariances):
    """log w_k + log N(x_O; mu_kO, Sigma_kOO), (n, K), by scipy.stats (the rows of one
    pattern of missing features at a time)."""
    out = np.empty((len(X), len(weights)))
    patterns, inverse = np.unique(np.isnan(X), axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        rows, o = np.flatnonzero(inverse.ravel() == p), ~pattern
        for k, (w, m, c) in enumerate(zip(weights, means, covariances)):
            out[rows, k] = np.log(w) + stats.multivariate_normal(
                m[o], c[np.ix_(o, o)]).logpdf(X[np.ix_(rows, o)])
    return out


def observed_log_density(X, weights, means, covariances):
    """log sum_k w_k N(x_O; mu_kO, Sigma_kOO) per row."""
    return logsumexp(observed_joint(X, weights, means, covariances), axis=1)


def full_covariances(model):
    K, D = model.means_.shape
    return model._structure.to_full(model.covariances_, K, D)


# ------------------------------------------------------------ the likelihood's optimum
def _unpack(theta, K, D, family):
    weights = softmax(np.r_[0.0, theta[:K - 1]])
    means = theta[K - 1:K - 1 + K * D].reshape(K, D)
    rest = theta[K - 1 + K * D:]
    if family == "VVI":
        covariances = np.array([np.diag(np.exp(r)) for r in rest.reshape(K, D)])
    else:
        rows, cols = np.tril_indices(D)
        covariances = []
        for r in rest.reshape(K, -1):
            L = np.zeros((D, D))
            L[rows, cols] = r
            L[np.diag_indices(D)] = np.exp(np.diag(L))
            covariances.append(L @ L.T)
        covariances = np.array(covariances)
    return weights, means, covariances


def _pack(model, family):
    K, D = model.means_.shape
    w = np.log(model.weights_)
    theta = [w[1:] - w[0], model.means_.ravel()]
    for c in full_covariances(model):
        if family == "VVI":
            theta.append(np.log(np.diag(c)))
        else:
            L = np.linalg.cholesky(c)
            L[np.diag_indices(D)] = np.log(np.diag(L))
            theta.append(L[np.tril_indices(D)])
    return np.concatenate(theta)


@pytest.mark.parametrize("family", ["VVV", "VVI"])
def test_the_fit_is_the_observed_likelihoods_maximum(family):
    """60 points, a quarter of the entries missing: EM's optimum and a quasi-Newton
    maximisation of the observed-data log-likelihood (from a perturbed start) agree
    to 1e-6 in the log-likelihood and closely in the parameters."""
    rng = np.random.default_rng(seed("missing-optimum", family))
    X = np.vstack([rng.normal([0, 0, 0], 1.0, size=(30, 3)),
                   rng.normal([3, 2, -2], 0.7, size=(30, 3))])
    X = with_missing(X, 0.25, rng)
    em = GaussianMixtureEM(2, covariance_type=family, tol=1e-12, max_iter=100_000,
                           reg_covar=0.0, random_state=0).fit(X)
    K, D = em.means_.shape

    def negative(theta):
        return -observed_log_density(X, *_unpack(theta, K, D, family)).sum()

    start = _pack(em, family) + 0.05 * rng.standard_normal(len(_pack(em, family)))
    direct = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-7})
    assert abs(-direct.fun - em.log_likelihood_) < 1e-6
    weights, means, covariances = _unpack(direct.x, K, D, family)
    np.testing.assert_allclose(means, em.means_, atol=1e-3)
    np.testing.assert_allclose(weights, em.weights_, atol=1e-4)
    np.testing.assert_allclose(covariances, full_covariances(em), atol=1e-3)
    # and the log-likelihood EM reports is the observed-data one
    np.testing.assert_allclose(em.log_likelihood_,
                               observed_log_density(X, em.weights_, em.means_,
                                                    full_covariances(em)).sum(), rtol=1e-10)


def test_without_missing_entries_nothing_changes():
    X = datasets.load_faithful()
    fits = [GaussianMixtureEM(3, covariance_type="VEV", tol=1e-8, max_iter=1000,
                              random_state=0, missing=missing).fit(X) for missing in ("marginalize", "raise")]
    for name in ("weights_", "means_", "covariances_", "log_likelihood_trace_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert fits[0].n_missing_ == 0


# ------------------------------------------------------------- densities, imputation
@PROPERTY_SETTINGS
@given(n_features=st.integers(2, 4), n_components=st.integers(1, 3),
       family=st.sampled_from(["VVV", "EEE", "VVI", "VII", "EII", "EEV", "VEV"]),
       fraction=st.sampled_from([0.05, 0.3, 0.6]), data_seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_every_family_marginalises_exactly(n_features, n_components, family, fraction,
                                           data_seed, scale):
    """Any family, any data scale, any share of missing entries (1-D data can have
    none: a row without any observed entry is refused): EM never lowers the
    observed-data log-likelihood, which equals scipy's marginal densities; so do
    score_samples and predict_proba; impute gives the mixture's conditional means and
    covariances (scipy's conditional Gaussians, mixed by the observed-data posterior)."""
    rng = np.random.default_rng(data_seed)
    n = 40
    X = rng.normal(size=(n, n_features)) * scale
    X[: n // 2] += 2.5 * scale
    X = with_missing(X, fraction, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # reg_covar small against the variances, so that EM is monotone
            em = GaussianMixtureEM(n_components, covariance_type=family, tol=1e-8,
                                   max_iter=500, reg_covar=1e-9 * scale**2,
                                   random_state=0).fit(X)
        except ValueError:
            return  # collapsed: nothing to compare
    trace = em.log_likelihood_trace_
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    full = full_covariances(em)
    expected = observed_log_density(X, em.weights_, em.means_, full)
    np.testing.assert_allclose(em.score_samples(X), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(em.log_likelihood_, expected.sum(), rtol=1e-9, atol=1e-9)
    joint = observed_joint(X, em.weights_, em.means_, full)
    resp = softmax(joint, axis=1)
    np.testing.assert_allclose(em.predict_proba(X), resp, atol=1e-9)
    filled, covariance = em.impute(X, return_covariance=True)
    for i, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        assert np.array_equal(filled[i, o], x[o])
        if not m.any():
            assert not covariance[i].any()
            continue
        means, seconds = [], []
        for mu, c in zip(em.means_, full):
            gain = c[np.ix_(m, o)] @ np.linalg.inv(c[np.ix_(o, o)])
            mean = mu[m] + gain @ (x[o] - mu[o])
            cov = c[np.ix_(m, m)] - gain @ c[np.ix_(o, m)]
            means.append(mean)
            seconds.append(cov + np.outer(mean, mean))
        mixture = resp[i] @ np.array(means)
        np.testing.assert_allclose(filled[i, m], mixture, rtol=1e-8, atol=1e-8 * scale)
        second = np.einsum("k,kij->ij", resp[i], np.array(seconds))
        np.testing.assert_allclose(covariance[i][np.ix_(m, m)],
                                   second - np.outer(mixture, mixture),
                                   rtol=1e-6, atol=1e-8 * scale**2)
        assert not covariance[i][o].any()


def test_criteria_use_the_observed_data_likelihood():
    rng = np.random.default_rng(seed("missing-criteria"))
    X = with_missing(datasets.load_faithful().to_numpy(), 0.2, rng)
    em = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-8, random_state=0).fit(X)
    p = em.n_parameters()
    assert em.bic(X) == pytest.approx(-2 * em.log_likelihood_ + p * np.log(len(X)))
    assert em.aic(X) == pytest.approx(-2 * em.log_likelihood_ + 2 * p)
    assert em.icl(X) >= em.bic(X)
    assert em.n_missing_ == int(np.isnan(X).sum())
    assert em.predict(X).shape == (len(X),)


# --------------------------------------------------------------- against the truth
def _two_clusters(n, rng):
    truth_means = np.array([[0.0, 0.0], [4.0, 3.0]])
    labels = rng.random(n) < 0.5
    X = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    X += truth_means[labels.astype(int)]
    return X, truth_means


def _sorted_means(model):
    return model.means_[np.argsort(model.means_[:, 0])]


def test_mcar_estimates_converge_to_the_truth():
    """20,000 points from two clusters, 30% of the entries missing completely at
    random: the means are within 6 standard errors of the truth (the standard error
    of a mean estimated from ~0.5 n (1 - 0.3) points of sd 1.2 is ~0.012)."""
    rng = np.random.default_rng(seed("missing-mcar"))
    X, truth = _two_clusters(20_000, rng)
    em = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-8, random_state=0).fit(
        with_missing(X, 0.3, rng))
    np.testing.assert_allclose(_sorted_means(em), truth, atol=6 * 1.2 / np.sqrt(0.35 * 20_000))
    np.testing.assert_allclose(np.sort(em.weights_), [0.5, 0.5], atol=0.03)


def test_mar_beats_complete_case_analysis():
    """Missing at random: the second feature is missing for 90% of the points whose
    first feature exceeds 2 (mostly the second cluster). Complete-case analysis
    keeps ~14% of that cluster and puts its weight near 0.15; marginalising
    recovers 0.5 (standard error ~0.01 at n = 4000), and the means."""
    rng = np.random.default_rng(seed("missing-mar"))
    X, truth = _two_clusters(4000, rng)
    X[(X[:, 0] > 2) & (rng.random(len(X)) < 0.9), 1] = np.nan
    marginal = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-8, random_state=0).fit(X)
    complete = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-8, random_state=0).fit(
        X[~np.isnan(X).any(axis=1)])
    upper = np.argmax(marginal.means_[:, 0])
    assert abs(marginal.weights_[upper] - 0.5) < 0.05
    assert complete.weights_[np.argmax(complete.means_[:, 0])] < 0.3
    np.testing.assert_allclose(_sorted_means(marginal), truth, atol=0.15)


# ------------------------------------------------------------------- other options
def test_standardize_and_prior_take_missing_entries():
    rng = np.random.default_rng(seed("missing-options"))
    X = with_missing(datasets.load_faithful().to_numpy(), 0.2, rng)
    plain = GaussianMixtureEM(2, tol=1e-10, max_iter=10_000, random_state=0).fit(X)
    scaled = GaussianMixtureEM(2, tol=1e-10, max_iter=10_000, random_state=0,
                               standardize=True).fit(X)
    assert scaled.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(_sorted_means(scaled), _sorted_means(plain), rtol=1e-5)
    map_em = GaussianMixtureEM(2, tol=1e-10, max_iter=10_000, random_state=0,
                               prior=ConjugatePrior()).fit(X)
    # the mode of the posterior: its log-likelihood below the maximum's, its log
    # posterior above the maximum's
    assert map_em.log_likelihood_ <= plain.log_likelihood_ + 1e-6
    log_prior_at_ml = map_em._structure.log_prior(map_em.prior_, plain.means_,
                                                  plain.covariances_)
    assert (map_em.log_likelihood_ + map_em.log_prior_
            >= plain.log_likelihood_ + log_prior_at_ml - 1e-6)


def test_save_and_load_keep_the_option(tmp_path):
    rng = np.random.default_rng(seed("missing-save"))
    X = with_missing(datasets.load_faithful().to_numpy(), 0.1, rng)
    em = GaussianMixtureEM(2, tol=1e-8, random_state=0).fit(X)
    em.save(tmp_path / "m.nc")
    loaded = GaussianMixtureEM.load(tmp_path / "m.nc")
    assert loaded.missing == "marginalize" and loaded.n_missing_ == em.n_missing_
    np.testing.assert_allclose(loaded.impute(X), em.impute(X))


# ---------------------------------------------------------------------- bad input
def test_bad_missing_input_is_refused():
    X = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, np.nan], [1, 1], [0.5, 2]])
    with pytest.raises(ValueError, match=r"1 row with every feature missing \(row 2\)"):
        GaussianMixtureEM(1).fit(X)
    with pytest.raises(ValueError, match=r"1 NaN \(column 1: 1\)"):
        GaussianMixtureEM(1, missing="raise").fit(np.delete(X, 2, axis=0))
    with pytest.raises(ValueError, match=r"missing must be one of \['marginalize', 'raise'\]"):
        GaussianMixtureEM(1, missing="drop").fit(X[[0, 1, 3, 4]])
    with pytest.raises(ValueError, match=r"1 inf \(column 1: 1\)"):
        GaussianMixtureEM(1).fit(np.array([[1.0, np.inf], [2.0, np.nan], [1, 1]]))
    em = GaussianMixtureEM(1).fit(X[[0, 1, 3, 4]])
    with pytest.raises(ValueError, match="every feature missing"):
        em.score_samples(X)
    with pytest.raises(ValueError, match="return_covariance must be True or False"):
        em.impute(X[[0, 1]], return_covariance="yes")


# --------------------------------------------------- the engine's pattern statistics
@pytest.mark.parametrize("family", ["VVV", "VVI", "EEE"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sweep_statistics_equal_a_per_row_computation(family, weighted):
    """The engine's E+M pass (log-likelihood, labels and the M-step moments nk, sum of
    r (x~ - c_k), sum of r q(x~ - c_k) + C_k) against one row and one component at a
    time: scipy's marginal densities, the conditional mean and covariance by explicit
    inverses. A small cluster far from the data's centre makes one component's moments
    about its own mean (the engine's far centre), as in the block engine."""
    from bayesgmm._missing import MissingEngine, mean_imputed

    rng = np.random.default_rng(seed("missing-statistics", family, weighted))
    D = 4
    X = np.vstack([rng.normal(0.0, 1.0, size=(200, D)),
                   rng.normal(3.0, 0.7, size=(200, D)),
                   rng.normal(1e4, 0.5, size=(40, D))])
    X = with_missing(X, 0.25, rng)
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else np.ones(len(X))
    filled = mean_imputed(X, w)
    # the parameters: a start near the truth (max_iter=0 keeps it)
    spread = rng.normal(size=(3, D, D)) * 0.3 + np.eye(D)
    covariances = {"VVV": spread @ np.swapaxes(spread, 1, 2),
                   "VVI": rng.uniform(0.3, 2.0, (3, D)),
                   "EEE": spread[0] @ spread[0].T}[family]
    precisions = (np.linalg.inv(covariances) if family != "VVI" else 1 / covariances)
    em = GaussianMixtureEM(3, covariance_type=family, max_iter=0, weights_init=[0.5, 0.4, 0.1],
                           means_init=[[0.2] * D, [2.9] * D, [1e4 + 0.1] * D],
                           precisions_init=precisions).fit(filled)
    params = (em.weights_, em.means_, em.precisions_cholesky_)
    centre = (w @ filled) / w.sum()
    engine = MissingEngine(X, w, centre, em._structure)
    result = engine.sweep(*params, moments=True, labels=True)
    covariances = full_covariances(em)
    centres = result.centres
    assert not np.allclose(centres[2], centre)  # the far component has its own centre

    joint = observed_joint(X, em.weights_, em.means_, covariances)
    resp = softmax(joint, axis=1) * w[:, None]
    K = len(em.weights_)
    nk, sum_x, second = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    for i, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        for k in range(K):
            mu, c = em.means_[k], covariances[k]
            completed, extra = x.copy(), np.zeros((D, D))
            if m.any():
                gain = c[np.ix_(m, o)] @ np.linalg.inv(c[np.ix_(o, o)])
                completed[m] = mu[m] + gain @ (x[o] - mu[o])
                extra[np.ix_(m, m)] = c[np.ix_(m, m)] - gain @ c[np.ix_(o, m)]
            d = completed - centres[k]
            nk[k] += resp[i, k]
            sum_x[k] += resp[i, k] * d
            second[k] += resp[i, k] * (np.outer(d, d) + extra)
    sum_q = em._structure.quad_moments_from_second_moments(second)
    np.testing.assert_allclose(result.log_likelihood, w @ logsumexp(joint, axis=1),
                               rtol=1e-10)
    np.testing.assert_array_equal(result.labels, np.argmax(joint, axis=1))
    np.testing.assert_allclose(result.nk, nk, rtol=1e-10)
    for got, expected in ((result.sum_x, sum_x), (result.sum_q, sum_q)):
        scale = np.abs(expected).max(axis=1, keepdims=True)
        np.testing.assert_allclose(got / scale, expected / scale, rtol=0, atol=1e-10)
