"""Missing entries in the Bayesian model: the masked log-density Op, fits and impute."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, build_model, datasets
from bayesgmm._draws import impute_draws
from bayesgmm._fused import mixture_log_density
from bayesgmm._masked import masked_mixture_log_density, missing_patterns
from bayesgmm.model import make_spec

from .conftest import COVARIANCE_TYPES
from .test_model import obs_logp, point_for


def with_missing(X, fraction, seed):
    """``X`` with a fraction of its entries deleted at random, no row left empty."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=float)
    mask = rng.random(X.shape) < fraction
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def random_mixture(rng, K, D):
    B = rng.normal(size=(K, D, D))
    covariances = B @ np.swapaxes(B, 1, 2) / D + 0.3 * np.eye(D)
    weights = rng.dirichlet(np.ones(K) * 3)
    return weights, rng.normal(scale=2.0, size=(K, D)), covariances


def scipy_marginal(X, weights, means, covariances):
    """Each row's marginal log-density over its observed features, by scipy."""
    out = []
    for x in X:
        o = ~np.isnan(x)
        out.append(logsumexp([np.log(w) + stats.multivariate_normal(m[o], c[np.ix_(o, o)])
                              .logpdf(x[o]) for w, m, c in zip(weights, means, covariances)]))
    return np.array(out)


def compiled_masked(X, mode="NUMBA"):
    """log p(x_n) and the gradient of sum_n g_n log p(x_n), compiled."""
    pattern, observed = missing_patterns(X)
    log_w, mu, L, g = pt.vector(), pt.matrix(), pt.tensor3(), pt.vector()
    logp = masked_mixture_log_density(np.nan_to_num(X), pattern, observed, log_w, mu, L)
    grads = pytensor.grad((g * logp).sum(), [log_w, mu, L])
    return pytensor.function([log_w, mu, L, g], [logp, *grads], mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_masked_density_equals_scipy_marginals(mode):
    rng = np.random.default_rng(0)
    weights, means, covariances = random_mixture(rng, 3, 4)
    X = with_missing(rng.normal(scale=2.0, size=(60, 4)), 0.35, seed=1)
    f = compiled_masked(X, mode)
    logp = f(np.log(weights), means, np.linalg.cholesky(covariances), np.ones(len(X)))[0]
    np.testing.assert_allclose(logp, scipy_marginal(X, weights, means, covariances),
                               rtol=1e-11, atol=1e-11)


@settings(max_examples=40, deadline=None)
@given(K=st.integers(1, 3), D=st.integers(1, 4), fraction=st.floats(0.0, 0.8),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), seed=st.integers(0, 2**16))
def test_masked_joint_density_over_the_input_space(K, D, fraction, scale, seed):
    """Any number of components, features, missing fraction and data scale: each row's
    joint log densities equal scipy's marginal Gaussians."""
    from bayesgmm._masked import masked_joint_log_density

    rng = np.random.default_rng(seed)
    weights, means, covariances = random_mixture(rng, K, D)
    means, covariances = means * scale, covariances * scale**2
    X = with_missing(rng.normal(scale=2.0 * scale, size=(12, D)), fraction, seed)
    pattern, observed = missing_patterns(X)
    got = masked_joint_log_density(X, pattern, observed, np.log(weights), means,
                                   np.linalg.cholesky(covariances))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(K):
            expected = np.log(weights[k]) + stats.multivariate_normal(
                means[k][o], covariances[k][np.ix_(o, o)]).logpdf(x[o])
            assert got[k, n] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_masked_gradient_equals_finite_differences():
    rng = np.random.default_rng(2)
    weights, means, covariances = random_mixture(rng, 2, 3)
    X = with_missing(rng.normal(scale=2.0, size=(40, 3)), 0.3, seed=3)
    g = rng.random(len(X))  # a weighted log-likelihood's output gradient
    f = compiled_masked(X)
    args = [np.log(weights), means, np.linalg.cholesky(covariances)]
    _, *grads = f(*args, g)

    def total(values):
        return float(g @ f(*values, g)[0])

    eps = 1e-6
    for i, (value, grad) in enumerate(zip(args, grads)):
        for index in np.ndindex(value.shape):
            if value.ndim == 3 and index[2] > index[1]:
                assert grad[index] == 0.0  # the upper triangle is not an input
                continue
            up, down = [a.copy() for a in args], [a.copy() for a in args]
            up[i][index] += eps
            down[i][index] -= eps
            assert grad[index] == pytest.approx((total(up) - total(down)) / (2 * eps),
                                                rel=1e-6, abs=1e-6)


def test_masked_op_on_complete_data_equals_the_fused_op():
    rng = np.random.default_rng(4)
    weights, means, covariances = random_mixture(rng, 3, 3)
    X = rng.normal(scale=2.0, size=(50, 3))
    args = [np.log(weights), means, np.linalg.cholesky(covariances), rng.random(50)]
    masked = compiled_masked(X)(*args)
    log_w, mu, L, g = pt.vector(), pt.matrix(), pt.tensor3(), pt.vector()
    logp = mixture_log_density(pt.specify_shape(pt.as_tensor(X), (None, 3)), log_w, mu, L)
    fused = pytensor.function([log_w, mu, L, g],
                              [logp, *pytensor.grad((g * logp).sum(), [log_w, mu, L])],
                              mode="NUMBA")(*args)
    for a, b in zip(masked, fused):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def faithful_missing():
    return with_missing(datasets.load_faithful().to_numpy(), 0.15, seed=5)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_model_log_likelihood_equals_em_marginal(faithful_missing, cov_type):
    X = faithful_missing
    em = GaussianMixtureEM(2, covariance_type=cov_type, random_state=0).fit(X)
    model = build_model(X, 2, covariance_type=cov_type)
    got = obs_logp(model, point_for(model, em, cov_type))
    expected = em.score_samples(X).sum()
    assert got == pytest.approx(expected, rel=1e-8)
    assert expected == pytest.approx(em.log_likelihood_, rel=1e-8)  # the observed-data one


def test_nan_options_and_refusals(faithful_missing):
    X = faithful_missing.copy()
    with pytest.raises(ValueError, match="NaN"):
        build_model(X, 2, missing="raise")
    with pytest.raises(ValueError, match="missing must be one of"):
        build_model(X, 2, missing="drop")
    with pytest.raises(ValueError, match="likelihood='reference' needs complete data"):
        build_model(X, 2, likelihood="reference")
    X[7] = np.nan
    with pytest.raises(ValueError, match="1 row with every feature missing"):
        GaussianMixtureBayes(2).fit(X, method="map")
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureBayes(2, missing="raise").fit(faithful_missing, method="map")


def test_priors_and_complete_data_unchanged(faithful_missing):
    """Complete data build the same model with either option; missing entries use the
    mean-imputed data's default priors (what EM's start uses)."""
    faithful = datasets.load_faithful().to_numpy()
    a = make_spec(faithful, 2)
    assert not a.missing
    b = make_spec(faithful_missing, 2)
    assert b.missing
    filled = np.where(np.isnan(faithful_missing), np.nanmean(faithful_missing, axis=0),
                      faithful_missing)
    np.testing.assert_allclose(b.priors.means_mu, make_spec(filled, 2).priors.means_mu)


def test_impute_draws_follow_the_conditional_mixture():
    """With every posterior draw at one parameter value, the imputed draws of a row are
    draws of EM's conditional mixture: their mean and covariance match EM's ``impute``
    within 5 standard errors."""
    import xarray as xr

    rng = np.random.default_rng(6)
    K, D, S = 2, 3, 4000
    weights, means, covariances = random_mixture(rng, K, D)
    X = np.array([[0.5, np.nan, np.nan], [np.nan, 1.0, -1.0], [2.0, np.nan, 0.0]])
    em = GaussianMixtureEM(K, covariance_type="full")
    em._set_parameters((weights, means, covariances,
                        em._structure.precisions_cholesky(covariances)))
    em.n_features_in_ = D
    expected_mean, expected_cov = em.impute(X, return_covariance=True)
    posterior = xr.Dataset({
        "weights": (("chain", "draw", "component"), np.broadcast_to(weights, (1, S, K))),
        "means": (("chain", "draw", "component", "feature"),
                  np.broadcast_to(means, (1, S, K, D))),
        "covariances": (("chain", "draw", "component", "feature", "feature2"),
                        np.broadcast_to(covariances, (1, S, K, D, D))),
    })
    spec = make_spec(np.nan_to_num(X, nan=0.3) + rng.normal(size=X.shape), K)
    draws, mean = impute_draws(posterior, X, spec, seed=0)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-10, atol=1e-10)
    for n, x in enumerate(X):
        M = np.isnan(x)
        np.testing.assert_array_equal(draws[:, n, ~M], np.broadcast_to(x[~M], (S, (~M).sum())))
        cov = expected_cov[n][np.ix_(M, M)]
        se = np.sqrt(np.diag(cov) / S)
        assert np.all(np.abs(draws[:, n, M].mean(axis=0) - expected_mean[n, M]) < 5 * se)
        # the sample covariance's entries: standard errors sqrt((c_ii c_jj + c_ij^2) / S)
        sample = np.cov(draws[:, n, M], rowvar=False).reshape(M.sum(), M.sum())
        bound = 5 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / S)
        assert np.all(np.abs(sample - cov) < bound)


@pytest.fixture(scope="module")
def missing_fit():
    rng = np.random.default_rng(7)
    truth = np.concatenate([rng.normal(size=(80, 2)), rng.normal(size=(80, 2)) + [4.0, 3.0]])
    X = with_missing(truth, 0.2, seed=8)
    fit = GaussianMixtureBayes(2, covariance_type="diag", random_state=1).fit(
        X, draws=400, tune=400, chains=2, progressbar=False)
    return truth, X, fit


def test_nuts_on_missing_entries(missing_fit, tmp_path):
    truth, X, fit = missing_fit
    assert fit.em_.n_missing_ == int(np.isnan(X).sum())
    table = fit.diagnose(warn=False)
    assert table["r_hat"].max() < 1.05
    # every row has a pointwise log-likelihood: its observed features' marginal
    log_lik = fit.idata_["log_likelihood"]["obs"].values
    assert log_lik.shape[-1] == len(X) and np.all(np.isfinite(log_lik))
    np.testing.assert_array_equal(np.isnan(fit.idata_["observed_data"]["obs"].values),
                                  np.isnan(X))
    probabilities = fit.predict_proba(X)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    # saved and loaded: same memberships; the missing entries are stored as NaN
    fit.save(tmp_path / "fit.nc")
    loaded = GaussianMixtureBayes.load(tmp_path / "fit.nc")
    np.testing.assert_allclose(loaded.predict_proba(X), probabilities, rtol=1e-12)
    assert loaded.missing == "marginalize"


def test_impute_intervals_cover_the_deleted_values(missing_fit):
    """The 90% predictive intervals of the deleted entries cover their true values at
    about that rate (64 deleted entries here: a binomial band far wider than chance),
    and the predictive means are near EM's conditional means."""
    truth, X, fit = missing_fit
    result = fit.impute(hdi_prob=0.9, random_state=0)
    M = np.isnan(X)
    inside = (result["lower"].values <= truth) & (truth <= result["upper"].values)
    n = M.sum()
    sd = np.sqrt(0.9 * 0.1 / n)
    assert abs(inside[M].mean() - 0.9) < max(5 * sd, 0.08)
    np.testing.assert_array_equal(result["missing"].values, M)
    np.testing.assert_array_equal(result["mean"].values[~M], X[~M])
    assert result["draws"].sizes == {"chain": 2, "draw": 400, "obs_id": len(X), "feature": 2}
    em_mean = fit.em_.impute(X)
    assert np.abs(result["mean"].values - em_mean)[M].max() < 0.3


def test_compare_ranks_on_the_observed_data_likelihood(missing_fit):
    """compare takes NaN: EM's criteria are those of the observed-data likelihood, and
    the Bayesian row's LOO is ArviZ's on the marginal pointwise log-likelihoods."""
    from arviz_stats import loo

    from bayesgmm import compare

    truth, X, fit = missing_fit
    result = compare(X, [2], ["diag"], draws=400, tune=400, chains=2, random_state=0,
                     progressbar=False, max_loo_refits=0)
    row = result.table.iloc[0]
    em = result.models[2, "diag"]["em"]
    assert row["bic"] == pytest.approx(em.bic(X), rel=1e-12)
    assert em.n_missing_ == int(np.isnan(X).sum())
    bayes = result.models[2, "diag"]["bayes"]
    expected = loo(bayes.idata_, pointwise=False)
    if np.isfinite(row["elpd_loo"]):
        assert row["elpd_loo"] == pytest.approx(float(expected.elpd), rel=1e-10)
    else:  # set aside (a Pareto k above 0.7 and no refits allowed): the reason says so
        assert row["set_aside"]
    with pytest.raises(ValueError, match="NaN"):
        compare(X, [2], ["diag"], methods=("em",), missing="raise", progressbar=False)


def test_weighted_missing_rows_equal_repeated_rows(faithful_missing):
    """Integer weights on data with missing entries: the model's log density and its
    gradient equal those of the rows repeated (the split into complete and incomplete
    rows keeps each row's weight; the default priors are the repeated data's)."""
    X = faithful_missing[:60]
    weights = np.arange(60) % 3
    a = build_model(X, 2, sample_weight=weights)
    b = build_model(np.repeat(X, weights, axis=0), 2)
    point = a.initial_point()
    for f, g in ((a.compile_logp(), b.compile_logp()), (a.compile_dlogp(), b.compile_dlogp())):
        expected = g(point)
        np.testing.assert_allclose(f(point), expected, rtol=1e-10,
                                   atol=1e-10 * np.abs(expected).max())
