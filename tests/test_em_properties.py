"""Property-based tests of GaussianMixtureEM over its input space (hypothesis).

Random shapes, scales (1e-100 .. 1e100 in float64, 1e-12 .. 1e12 in float32), dtypes,
sample weights, covariance types and numbers of components, with invariants that must
hold for every one of them. Each test draws its data from a numpy seed that hypothesis
chooses; ``derandomize=True`` and no example database make every run the same, so these
tests cannot fail by chance.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixtureEM
from bayesgmm._gaussian import CollapsedComponentError
from bayesgmm.em import RegularizationWarning

from .conftest import COVARIANCE_TYPES

PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=40, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = (np.float64, np.float32)
#: decimal exponents of the data's scale that each dtype represents comfortably
SCALE_EXPONENTS = {np.float64: (-100, 100), np.float32: (-12, 12)}


@st.composite
def mixtures(draw, *, weighted=None, sd_exponents=(-4, 0)):
    """(X, sample_weight or None, n_components, covariance_type) of a random mixture.

    Component standard deviations range over ``10**sd_exponents`` of a spread of 10
    (small, far components are where the expanded quadratic form used to cancel), the
    whole data set over the dtype's scales; some draws have duplicated rows.
    """
    dtype = draw(st.sampled_from(DTYPES))
    low, high = SCALE_EXPONENTS[dtype]
    scale = 10.0 ** draw(st.integers(low, high))
    seed = draw(st.integers(0, 2**32 - 1))
    n_components = draw(st.integers(1, 3))
    n_features = draw(st.integers(1, 3))
    n_samples = draw(st.integers(4 * n_components, 80))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10, 10, (n_components, n_features))
    sds = 10.0 ** rng.uniform(*sd_exponents, (n_components, n_features))
    labels = rng.integers(0, n_components, n_samples)
    X = means[labels] + rng.normal(size=(n_samples, n_features)) * sds[labels]
    if draw(st.booleans()):
        X[: n_samples // 4] = X[0]  # ties
    X = (X * scale).astype(dtype)
    use_weights = draw(st.booleans()) if weighted is None else weighted
    sample_weight = rng.integers(0, 4, n_samples).astype(float) if use_weights else None
    if sample_weight is not None:
        sample_weight[:n_components] = 1.0  # enough positively weighted rows
        sample_weight[: n_samples // 4] = np.maximum(sample_weight[: n_samples // 4], 1)
    return X, sample_weight, n_components, covariance_type


def fit_or_none(X, sample_weight, n_components, covariance_type, **params):
    """The fitted model, or None when every start collapsed (a clear, named error)."""
    model = GaussianMixtureEM(n_components, covariance_type=covariance_type,
                              random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RegularizationWarning)
        try:
            return model.fit(X, sample_weight=sample_weight)
        except CollapsedComponentError as error:
            assert "collapsed" in str(error) and "reg_covar" in str(error)
            return None
        except ValueError as error:  # e.g. one positively weighted point of 1 feature
            assert "free parameters, more than the" in str(error)
            return None


def allowed_decrease(trace, n_samples, dtype):
    """Rounding: relative to the total, and per point the expansion's error budget
    (1e-4 nats in float32, ``bayesgmm.em._EXPANSION_ERROR``)."""
    single = dtype == np.float32
    return (1e-5 if single else 1e-10) * np.abs(trace[1:]) + (
        1e-4 if single else 1e-10) * n_samples


@PROPERTY_SETTINGS
@given(mixtures())
def test_outputs_are_valid_and_keep_the_dtype(case):
    X, sample_weight, n_components, covariance_type = case
    model = fit_or_none(X, sample_weight, n_components, covariance_type, standardize=True)
    if model is None:
        return
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = getattr(model, name)
        assert value.dtype == X.dtype, name
        assert np.all(np.isfinite(value)), name
    proba = model.predict_proba(X)
    assert proba.dtype == X.dtype
    assert not np.isnan(proba).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5 if X.dtype == np.float32 else 1e-12)
    assert model.weights_.sum() == pytest.approx(1.0, rel=1e-5)
    log_density = model.score_samples(X)
    assert log_density.dtype == X.dtype and not np.isnan(log_density).any()
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    # points far outside the data, up to the float range: still valid rows
    beyond_squares = np.sqrt(np.finfo(X.dtype).max) * 4  # where x**2 overflows
    far = np.vstack([np.full(X.shape[1], beyond_squares), -np.full(X.shape[1], beyond_squares),
                     np.full(X.shape[1], np.finfo(X.dtype).max / 4),
                     np.arange(X.shape[1]) * 1e3 - 1e3]).astype(X.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        far_proba = model.predict_proba(far)
        far_density = model.score_samples(far)
    assert not np.isnan(far_proba).any() and not np.isnan(far_density).any()
    np.testing.assert_allclose(far_proba.sum(axis=1), 1.0, rtol=1e-5)


@settings(PROPERTY_SETTINGS, max_examples=80)
@given(mixtures(sd_exponents=(-3, -1)))
def test_em_is_monotone_up_to_rounding(case):
    """Without regularisation (reg_covar=0) EM never lowers the log-likelihood.

    Components of 1e-3 .. 1e-1 of the spread: before they were expanded about their own
    mean, 18 of 150 such float32 fits (and 1 float64 fit) lost up to hundreds of units
    of log-likelihood in one iteration.
    """
    X, sample_weight, n_components, covariance_type = case
    model = fit_or_none(X, sample_weight, n_components, covariance_type, reg_covar=0,
                        tol=0, max_iter=30)
    if model is None:
        return
    trace = model.log_likelihood_trace_
    assert np.all(np.isfinite(trace))
    n = len(X) if sample_weight is None else sample_weight.sum()
    assert np.all(np.diff(trace) >= -allowed_decrease(trace, n, X.dtype)), np.diff(trace).min()


@PROPERTY_SETTINGS
@given(mixtures(weighted=False), st.integers(-60, 60))
def test_standardize_is_scale_equivariant(case, exponent):
    """fit(X * c) is fit(X) with means times c, covariances times c**2."""
    X, _, n_components, covariance_type = case
    X = X.astype(np.float64)
    c = 10.0 ** exponent
    low, high = SCALE_EXPONENTS[np.float64]
    spread = np.abs(X - X.mean(axis=0)).max()
    if not 10.0**low < spread * c < 10.0**high:
        return
    fit = fit_or_none(X, None, n_components, covariance_type, standardize=True)
    scaled = fit_or_none(X * c, None, n_components, covariance_type, standardize=True)
    assert (fit is None) == (scaled is None)
    if fit is None:
        return
    K, D = fit.means_.shape
    structure = fit._structure
    assert scaled.n_iter_ == fit.n_iter_
    np.testing.assert_allclose(scaled.weights_, fit.weights_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(scaled.means_ / c, fit.means_, rtol=1e-7,
                               atol=1e-9 * np.abs(X).max())
    covariances = structure.to_full(fit.covariances_, K, D)
    np.testing.assert_allclose(structure.to_full(scaled.covariances_, K, D) / c**2, covariances,
                               rtol=1e-6, atol=1e-9 * np.abs(covariances).max())
    assert scaled.log_likelihood_ == pytest.approx(
        fit.log_likelihood_ - len(X) * D * np.log(c), rel=1e-7, abs=1e-6 * len(X))


BAD_INPUTS = {
    "nan": lambda X, w: (np.where(np.arange(X.size).reshape(X.shape) == 1, np.nan, X), w),
    "inf": lambda X, w: (np.where(np.arange(X.size).reshape(X.shape) == 0, np.inf, X), w),
    "negative weight": lambda X, w: (X, -np.ones(len(X))),
    "weights of wrong length": lambda X, w: (X, np.ones(len(X) + 1)),
    "1-D": lambda X, w: (X[:, 0], w),
    "too few samples": lambda X, w: (X[:1], None),
}


@PROPERTY_SETTINGS
@given(mixtures(weighted=False), st.sampled_from(sorted(BAD_INPUTS)))
def test_bad_input_raises_a_clear_value_error(case, kind):
    X, _, n_components, covariance_type = case
    X, sample_weight = BAD_INPUTS[kind](X, None)
    model = GaussianMixtureEM(max(n_components, 2), covariance_type=covariance_type)
    with pytest.raises(ValueError) as error:
        model.fit(X, sample_weight=sample_weight)
    message = str(error.value)
    assert len(message) > 30  # says what was wrong, not a bare numpy error
    assert not isinstance(error.value, CollapsedComponentError)


@PROPERTY_SETTINGS
@given(mixtures())
def test_fit_predict_equals_fit_then_predict(case):
    X, sample_weight, n_components, covariance_type = case
    model = GaussianMixtureEM(n_components, covariance_type=covariance_type, random_state=0,
                              standardize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RegularizationWarning)
        try:
            labels = model.fit_predict(X, sample_weight=sample_weight)
        except CollapsedComponentError:
            return
        except ValueError as error:  # more parameters than (positively weighted) values
            assert "free parameters, more than the" in str(error)
            return
    np.testing.assert_array_equal(labels, model.predict(X))
