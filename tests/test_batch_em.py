"""EM of a batch of fits at once (bayesgmm._batch_em), the bootstrap's default engine.

The reference is GaussianMixtureEM itself: each fit of a batch must be the fit a clone
of the estimator makes from the same start with the same sample weights (or data), to
rounding, for every family and every kind of bootstrap, errors and warnings included.
"""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesgmm import GaussianMixtureEM, datasets
from bayesgmm._batch_em import fit_batch, supports
from bayesgmm._gaussian import COVARIANCE_STRUCTURES, _accepts, get_covariance_structure
from bayesgmm.bootstrap import KINDS, bootstrap
from bayesgmm.priors import ConjugatePrior

from .conftest import seed

#: failed replicates are part of what is compared here
pytestmark = pytest.mark.filterwarnings("ignore::bayesgmm.bootstrap.BootstrapWarning")

FAMILIES = [structure.mclust_name for structure in COVARIANCE_STRUCTURES.values()]


@pytest.fixture(scope="module")
def faithful():
    return datasets.load_faithful()


def _fit(family, X, n_components=3):
    return GaussianMixtureEM(n_components, covariance_type=family, tol=1e-8,
                             max_iter=10_000, random_state=0).fit(X)


def assert_same_replicates(batched, single, tol=1e-8):
    """The same replicates up to rounding: identical errors, warnings, flags and (but
    for EM's stopping iteration, which rounding can move by one where the change of
    the log-likelihood is near ``tol``) iteration counts; parameters to ``tol``."""
    a, b = batched.replicates, single.replicates
    for name in ("error", "warnings", "converged", "relabelled"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    same_iterations = (a["n_iter"] == b["n_iter"]).values
    assert same_iterations.mean() >= 0.9
    assert np.abs(a["n_iter"] - b["n_iter"]).max() <= 3
    ok = (a["error"] == "").values & same_iterations
    for name in ("weights", "means", "covariances", "log_likelihood"):
        x, y = a[name].values[ok], b[name].values[ok]
        scale = np.maximum(np.abs(y), 1.0)
        assert np.all(np.abs(x - y) <= tol * scale), name


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_batches_to_the_estimators_fits(family, faithful):
    """Every family (the 1-D ones on eruptions alone), two kinds each (all four over the
    families), 12 replicates; the jackknife on 60 rows, so that it has 60."""
    data = faithful if _accepts(get_covariance_structure(family), 2) else faithful[["eruptions"]]
    i = FAMILIES.index(family)
    for kind in (KINDS[i % 4], KINDS[(i + 1) % 4]):
        X = data.iloc[:60] if kind == "jackknife" else data
        em = _fit(family, X)
        options = dict(random_state=seed(f"batch-{family}-{kind}"), progressbar=False,
                       n_jobs=1)
        batched = bootstrap(em, X, kind, 12, batch=True, **options)
        single = bootstrap(em, X, kind, 12, batch=False, **options)
        assert_same_replicates(batched, single)


def test_failures_are_the_estimators_failures(faithful):
    """Seven full components on Old Faithful: some replicates collapse, with the same
    errors as the estimator's, in the same replicates."""
    em = _fit("VVV", faithful, 7)
    options = dict(random_state=seed("batch-collapse"), progressbar=False, n_jobs=1)
    batched = bootstrap(em, faithful, "weighted", 40, batch=True, **options)
    single = bootstrap(em, faithful, "weighted", 40, batch=False, **options)
    assert batched.n_failed > 0
    assert_same_replicates(batched, single, tol=1e-6)


def test_too_few_points_fail_each_fit_as_fit_does():
    """A fit whose weights leave fewer distinct points than parameters fails before EM
    with fit()'s error; the others run."""
    rng = np.random.default_rng(seed("batch-few"))
    X = rng.normal(size=(12, 2))
    em = _fit("VVV", X, 2)
    weights = np.ones((3, 12))
    weights[1, 1:] = 0  # one point left
    weights[2, :10] = 0
    fits = fit_batch(em, (em.weights_, em.means_, em.precisions_), X, weights)
    for w, fit in zip(weights, fits):
        try:
            model = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-8, max_iter=10_000,
                                      weights_init=em.weights_, means_init=em.means_,
                                      precisions_init=em.precisions_).fit(X, sample_weight=w)
        except ValueError as error:
            assert fit["error"] == f"{type(error).__name__}: {error}"
        else:
            assert fit["error"] == ""
            np.testing.assert_allclose(fit["means"], model.means_, rtol=1e-8)
    assert fits[0]["error"] == "" and fits[1]["error"]


def test_batches_in_parallel_equal_one_batch(faithful, monkeypatch):
    """Batches of 5 replicates on 2 workers give the identical replicates as one batch."""
    em = _fit("EEE", faithful)
    options = dict(random_state=seed("batch-parallel"), progressbar=False)
    whole = bootstrap(em, faithful, "nonparametric", 16, n_jobs=1, **options)
    # bayesgmm.bootstrap is also the name of the function bayesgmm exports
    monkeypatch.setattr(sys.modules["bayesgmm.bootstrap"], "batch_size", lambda *a, **k: 5)
    split = bootstrap(em, faithful, "nonparametric", 16, n_jobs=2, **options)
    xr.testing.assert_identical(whole.replicates, split.replicates)


def test_what_the_batch_does_not_reproduce_is_fitted_one_by_one(faithful):
    """A prior, standardize, or a component far from the data's centre: supports() says
    no, and bootstrap fits those replicates with the estimator."""
    em = _fit("EEE", faithful)
    start = (em.weights_, em.means_, em.precisions_)
    X = faithful.to_numpy()
    assert supports(em, start, X)
    assert not supports(em.set_params(prior=ConjugatePrior()), start, X)
    assert not supports(em.set_params(prior=None, standardize=True), start, X)
    em.set_params(standardize=False)
    far = (em.weights_, em.means_ + [0.0, 1e5], em.precisions_)
    assert not supports(em, far, X)


@settings(deadline=None, derandomize=True, database=None, max_examples=25,
          suppress_health_check=[HealthCheck.too_slow])
@given(n_samples=st.integers(8, 40), n_features=st.integers(1, 3),
       n_components=st.integers(1, 3), family=st.sampled_from(["VVV", "EEE", "VVI", "VII",
                                                                "EII", "VEV"]),
       data_seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 1e4]))
def test_a_batch_is_its_fits(n_samples, n_features, n_components, family, data_seed, scale):
    """Random data of any scale, random integer weights: each fit of the batch is the
    estimator's fit with those sample weights, or fails with its error."""
    rng = np.random.default_rng(data_seed)
    X = rng.normal(size=(n_samples, n_features)) * scale
    X[: n_samples // 2] += 3 * scale
    options = dict(covariance_type=family, tol=1e-8, max_iter=2_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            em = GaussianMixtureEM(n_components, random_state=0, **options).fit(X)
        except ValueError:
            return  # nothing to bootstrap
        start = (em.weights_, em.means_, em.precisions_)
        if not supports(em, start, X):
            return
        weights = rng.multinomial(n_samples, np.ones(n_samples) / n_samples, size=3)
        fits = fit_batch(em, start, X, weights.astype(float))
        for w, fit in zip(weights, fits):
            try:
                model = GaussianMixtureEM(
                    n_components, weights_init=em.weights_, means_init=em.means_,
                    precisions_init=em.precisions_, **options).fit(X, sample_weight=w)
            except ValueError as error:
                assert fit["error"] == f"{type(error).__name__}: {error}"
                continue
            assert fit["error"] == "", fit["error"]
            if fit["n_iter"] != model.n_iter_:  # the stopping rule met at another iteration
                assert abs(fit["n_iter"] - model.n_iter_) <= 3
                continue
            assert fit["converged"] == model.converged_
            np.testing.assert_allclose(fit["log_likelihood"], model.log_likelihood_,
                                       rtol=1e-8, atol=1e-8 * n_samples)
            np.testing.assert_allclose(fit["weights"], model.weights_, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(fit["means"], model.means_, rtol=1e-6,
                                       atol=1e-8 * scale)
            np.testing.assert_allclose(fit["covariances"], model.covariances_, rtol=1e-6,
                                       atol=1e-8 * scale**2)


def test_bootstrap_of_a_prior_fit_still_works(faithful):
    """The fallback path (a prior): replicates are the estimator's MAP-EM fits."""
    X = faithful.iloc[:80]
    em = GaussianMixtureEM(2, covariance_type="EEE", tol=1e-8, random_state=0,
                           prior=ConjugatePrior()).fit(X)
    options = dict(random_state=seed("batch-prior"), progressbar=False, n_jobs=1)
    default = bootstrap(em, X, "nonparametric", 6, **options)
    forced = bootstrap(em, X, "nonparametric", 6, batch=False, **options)
    xr.testing.assert_identical(default.replicates, forced.replicates)
    assert isinstance(default.summary(), pd.DataFrame)
