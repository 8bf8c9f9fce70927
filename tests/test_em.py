"""GaussianMixtureEM against scikit-learn, known truth, mclust and its own invariants."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import check_estimator

from bayesgmm import GaussianMixtureEM, datasets
from bayesgmm import em as em_module
from bayesgmm._gaussian import CollapsedComponentError

from .conftest import COVARIANCE_TYPES

# mclust 6, Mclust(faithful, G = 3, modelNames = "EEE"): the published optimum.
MCLUST_FAITHFUL_EEE3_LOGLIK = -1126.326


def initial_parameters(X, n_components, cov_type, seed=0):
    """Deliberately rough starting values shared by both implementations."""
    rng = np.random.default_rng(seed)
    n_features = X.shape[1]
    means = X[rng.choice(len(X), n_components, replace=False)]
    variance = X.var(axis=0)
    precisions = {
        "full": np.stack([np.diag(1 / variance)] * n_components),
        "tied": np.diag(1 / variance),
        "diag": np.tile(1 / variance, (n_components, 1)),
        "spherical": np.full(n_components, 1 / variance.mean()),
    }[cov_type]
    weights = np.full(n_components, 1 / n_components)
    assert means.shape == (n_components, n_features)
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def fit_quietly(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kwargs)


# --------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_iter", [1, 7])
def test_same_start_same_estimates_as_sklearn(random_data, cov_type, n_iter):
    X = random_data.X[cov_type]
    init = initial_parameters(X, 3, cov_type)
    ours = fit_quietly(GaussianMixtureEM(3, covariance_type=cov_type, max_iter=n_iter, tol=0,
                                         **init), X)
    theirs = fit_quietly(GaussianMixture(3, covariance_type=cov_type, max_iter=n_iter, tol=0,
                                         **init), X)
    assert ours.n_iter_ == theirs.n_iter_ == n_iter
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                   err_msg=name)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-6)
    assert ours.log_likelihood_ == pytest.approx(theirs.score(X) * len(X), rel=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-6)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_same_seed_same_kmeans_start_as_sklearn(random_data, cov_type):
    """The random state is consumed as scikit-learn does: same k-means start."""
    X = random_data.X[cov_type]
    ours = GaussianMixtureEM(3, covariance_type=cov_type, init_params="kmeans",
                             random_state=7).fit(X)
    theirs = GaussianMixture(3, covariance_type=cov_type, random_state=7).fit(X)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6)  # same labelling too
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-6)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_sample_equals_sklearn_sample(random_data, cov_type):
    X = random_data.X[cov_type]
    init = initial_parameters(X, 3, cov_type)
    ours = fit_quietly(GaussianMixtureEM(3, covariance_type=cov_type, max_iter=3, tol=0,
                                         random_state=5, **init), X)
    theirs = fit_quietly(GaussianMixture(3, covariance_type=cov_type, max_iter=3, tol=0,
                                         random_state=5, **init), X)
    X_ours, y_ours = ours.sample(500)
    X_theirs, y_theirs = theirs.sample(500)
    np.testing.assert_array_equal(y_ours, y_theirs)
    np.testing.assert_allclose(X_ours, X_theirs, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_passes_sklearn_estimator_checks():
    check_estimator(GaussianMixtureEM(), expected_failed_checks={
        # it fits one full covariance (495 parameters) to 9 weighted points of 30
        # features: refused by design (test_more_parameters_than_values_is_refused...)
        "check_sample_weight_equivalence_on_dense_data": "more parameters than values",
    })


# ----------------------------------------------------------------- invariants
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(random_data, cov_type):
    X = random_data.X[cov_type]
    model = fit_quietly(
        GaussianMixtureEM(3, covariance_type=cov_type, reg_covar=0, tol=0, max_iter=60,
                          init_params="random", random_state=0),
        X,
    )
    trace = model.log_likelihood_trace_
    assert len(trace) == model.n_iter_ + 1 == 61
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))
    assert trace[-1] == pytest.approx(model.log_likelihood_)
    assert model.lower_bound_ == pytest.approx(model.log_likelihood_ / len(X))


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_responsibilities_sum_to_one_and_labels_agree(random_data, cov_type):
    X = random_data.X[cov_type]
    model = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0)
    labels = model.fit_predict(X)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_array_equal(
        labels, GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(X).predict(X)
    )


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_recovers_simulated_parameters(cov_type):
    from .conftest import RandomData

    data = RandomData(n_samples=6000, seed=3)
    X = data.X[cov_type]
    model = GaussianMixtureEM(3, covariance_type=cov_type, n_init=3, random_state=0).fit(X)
    order = np.argsort(model.means_[:, 0])  # the truth is ordered along feature 0
    n_k = data.weights * len(X)
    # binomial standard errors of the weights; 5 sigma
    se_w = np.sqrt(data.weights * (1 - data.weights) / len(X))
    assert np.all(np.abs(model.weights_[order] - data.weights) < 5 * se_w)
    # standard errors of the means from the true covariances; 5 sigma
    true_full = model._structure.to_full(data.covariances[cov_type], 3, 2)
    se_mu = np.sqrt(np.diagonal(true_full, axis1=1, axis2=2) / n_k[:, None])
    assert np.all(np.abs(model.means_[order] - data.means) < 5 * se_mu)
    covariances = model.covariances_ if cov_type == "tied" else model.covariances_[order]
    np.testing.assert_allclose(covariances, data.covariances[cov_type], rtol=0.15, atol=0.1)
    agreement = np.mean(model.predict(X) == order[data.labels[cov_type]])
    assert agreement > 0.99


def test_reaches_mclust_optimum_on_old_faithful(faithful):
    """Best of 10 starts at least as high as mclust's published EEE, G=3 optimum."""
    model = GaussianMixtureEM(3, covariance_type="EEE", n_init=10, tol=1e-6, random_state=0)
    model.fit(faithful)
    assert model.log_likelihood_ >= MCLUST_FAITHFUL_EEE3_LOGLIK
    assert model.log_likelihood_ == pytest.approx(MCLUST_FAITHFUL_EEE3_LOGLIK, abs=0.05)
    # mclust's BIC convention (higher is better) is the negative of ours
    p, n = 11, len(faithful)
    assert -model.bic(faithful) == pytest.approx(2 * model.log_likelihood_ - p * math.log(n))


def test_n_init_keeps_the_best_restart(faithful):
    """n_init restarts draw from one random stream, as consecutive single fits would."""
    kwargs = dict(init_params="random_from_data", tol=1e-6, max_iter=1000)
    rng = np.random.RandomState(0)
    lls = [GaussianMixtureEM(4, random_state=rng, **kwargs).fit(faithful).log_likelihood_
           for _ in range(5)]
    assert max(lls) - min(lls) > 0.1  # the restarts really differ
    best = GaussianMixtureEM(4, n_init=5, random_state=0, **kwargs).fit(faithful)
    assert best.log_likelihood_ == pytest.approx(max(lls), rel=1e-12)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(random_data, cov_type):
    X = random_data.X[cov_type][:200]
    counts = np.random.default_rng(0).integers(0, 4, size=len(X))
    init = initial_parameters(X, 3, cov_type)
    weighted = fit_quietly(GaussianMixtureEM(3, covariance_type=cov_type, tol=0, max_iter=20,
                                             **init), X, sample_weight=counts)
    repeated = fit_quietly(GaussianMixtureEM(3, covariance_type=cov_type, tol=0, max_iter=20,
                                             **init), np.repeat(X, counts, axis=0))
    for name in ("weights_", "means_", "covariances_", "log_likelihood_trace_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-9, err_msg=name)
    assert weighted.bic(X, sample_weight=counts) == pytest.approx(
        repeated.bic(np.repeat(X, counts, axis=0)), rel=1e-9)


@pytest.mark.parametrize("init_params", em_module.INIT_METHODS)
def test_weighted_fit_with_random_init_reaches_the_same_optimum(random_data, init_params):
    X = random_data.X["full"][:300]
    counts = np.random.default_rng(1).integers(1, 4, size=len(X))
    kwargs = dict(init_params=init_params, n_init=3, tol=1e-10, max_iter=500, random_state=0)
    weighted = GaussianMixtureEM(3, **kwargs).fit(X, sample_weight=counts)
    repeated = GaussianMixtureEM(3, **kwargs).fit(np.repeat(X, counts, axis=0))
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-8)
    order_w, order_r = np.argsort(weighted.means_[:, 0]), np.argsort(repeated.means_[:, 0])
    np.testing.assert_allclose(weighted.means_[order_w], repeated.means_[order_r], rtol=1e-6)


def test_zero_weight_rows_are_ignored(random_data):
    X = random_data.X["full"]
    weights = np.ones(len(X))
    weights[:50] = 0
    outliers = X.copy()
    outliers[:50] = 1e3  # huge values that would dominate if counted
    a = GaussianMixtureEM(3, random_state=0).fit(outliers, sample_weight=weights)
    b = GaussianMixtureEM(3, random_state=0).fit(X[50:])
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-6)


def hierarchical_rows(monkeypatch):
    """The number of rows of every hierarchical start, recorded as fits run."""
    calls = []
    original = em_module.hierarchical_classes

    def spy(Z, n_clusters):
        calls.append(len(Z))
        return original(Z, n_clusters)

    monkeypatch.setattr(em_module, "hierarchical_classes", spy)
    return calls


def test_hierarchical_init_uses_a_subsample(monkeypatch):
    calls = hierarchical_rows(monkeypatch)
    X, _ = datasets.simulate_mixture(3000, [0.5, 0.5], [[0, 0], [8, 8]], [1.0, 1.0],
                                     random_state=0)
    model = GaussianMixtureEM(2, init_params="hierarchical", random_state=0).fit(X)
    assert calls == [em_module.HIERARCHICAL_SUBSAMPLE]
    assert sorted(np.round(model.means_[:, 0])) == [0, 8]


def test_warm_start_continues_from_previous_fit(random_data):
    X = random_data.X["full"]
    init = initial_parameters(X, 3, "full")
    warm = GaussianMixtureEM(3, warm_start=True, max_iter=5, tol=0, **init)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X)
    straight = fit_quietly(GaussianMixtureEM(3, max_iter=10, tol=0, **init), X)
    np.testing.assert_allclose(warm.means_, straight.means_, rtol=1e-9)


def test_non_convergence_warns(random_data):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixtureEM(3, max_iter=2, tol=0, random_state=0).fit(random_data.X["full"])


def test_float32_input_stays_accurate(random_data):
    X = random_data.X["full"]
    init = initial_parameters(X, 3, "full")
    single = fit_quietly(GaussianMixtureEM(3, max_iter=20, tol=0, **init), X.astype(np.float32))
    double = fit_quietly(GaussianMixtureEM(3, max_iter=20, tol=0, **init), X)
    np.testing.assert_allclose(single.means_, double.means_, rtol=1e-4, atol=1e-4)
    assert single.log_likelihood_ == pytest.approx(double.log_likelihood_, rel=1e-5)


# --------------------------------------------------------------------- criteria
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_bic_aic_icl_formulas(random_data, cov_type):
    X = random_data.X[cov_type]
    model = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(X)
    n, loglik, p = len(X), model.score(X) * len(X), model.n_parameters()
    expected_p = {"full": 17, "tied": 11, "diag": 14, "spherical": 11}[cov_type]
    assert p == expected_p
    assert model.bic(X) == pytest.approx(-2 * loglik + p * math.log(n))
    assert model.aic(X) == pytest.approx(-2 * loglik + 2 * p)
    resp = model.predict_proba(X)
    hard_entropy = -np.sum(np.log(resp[np.arange(n), resp.argmax(axis=1)]))
    assert model.icl(X) == pytest.approx(model.bic(X) + 2 * hard_entropy)
    assert model.icl(X) >= model.bic(X)


# ----------------------------------------------------------------------- inputs
def test_dataframe_keeps_feature_names(faithful):
    model = GaussianMixtureEM(2, random_state=0).fit(faithful)
    np.testing.assert_array_equal(model.feature_names_in_, ["eruptions", "waiting"])
    ds = model.to_xarray()
    assert ds["means"].dims == ("component", "feature")
    assert list(ds["feature"].values) == ["eruptions", "waiting"]
    assert ds["covariances"].dims == ("component", "feature", "feature2")
    np.testing.assert_allclose(ds["means"].sel(feature="waiting").values, model.means_[:, 1])
    assert ds["weights"].sum() == pytest.approx(1.0)
    assert ds.attrs["mclust_model"] == "VVV"


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_to_xarray_gives_full_covariance_matrices(random_data, cov_type):
    X = random_data.X[cov_type]
    model = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(X)
    cov = model.to_xarray()["covariances"].values
    assert cov.shape == (3, 2, 2)
    sample_cov = np.cov(X[model.predict(X) == 0].T)
    np.testing.assert_allclose(np.diag(cov[0]), np.diag(model._structure.to_full(
        model.covariances_, 3, 2)[0]))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    if cov_type == "full":
        np.testing.assert_allclose(cov[0], sample_cov, rtol=0.05)


def test_dataarray_input_matches_numpy(faithful):
    da = xr.DataArray(faithful.values.T, dims=("feature", "sample"),
                      coords={"feature": ["eruptions", "waiting"]})
    from_da = GaussianMixtureEM(2, random_state=0).fit(da)
    from_np = GaussianMixtureEM(2, random_state=0).fit(faithful.values)
    np.testing.assert_allclose(from_da.means_, from_np.means_)
    np.testing.assert_array_equal(from_da.feature_names_in_, ["eruptions", "waiting"])
    np.testing.assert_allclose(from_da.predict_proba(da), from_np.predict_proba(faithful.values))


def test_single_feature_galaxies():
    X = datasets.load_galaxies()
    model = GaussianMixtureEM(3, n_init=5, random_state=0, tol=1e-8).fit(X)
    ordered = np.sort(model.means_[:, 0])
    # the three well-known groups: ~9.7, ~21.4 and ~33.0 thousand km/s
    np.testing.assert_allclose(ordered, [9710, 21400, 33040], rtol=0.02)


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("X", "message"),
    [
        # NaN is a missing entry (missing="marginalize"), but a row of them is refused
        (np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, np.nan], [1, 1]]),
         r"1 row with every feature missing \(row 2\), which carry no information"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1, 1]]), r"1 inf \(column 1: 1\)"),
        (np.arange(10.0), "got a 1-D array of shape \\(10,\\).*reshape\\(-1, 1\\)"),
        (np.zeros((3, 2, 2)), "Expected 2-D X"),
        (pd.Series(np.arange(5.0)), "pandas Series"),
    ],
)
def test_bad_input_is_explained(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(1).fit(X)


def test_nan_in_dataframe_names_columns():
    df = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [1.0, np.nan, np.nan, 2.0]})
    with pytest.raises(ValueError, match=r"3 NaN \(columns 'a': 1, 'b': 2\).*dropna"):
        GaussianMixtureEM(1, missing="raise").fit(df)


def test_non_numeric_columns_are_named():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "species": ["a", "b", "c"], "y": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"non-numeric columns \['species'\]"):
        GaussianMixtureEM(1).fit(df)
    with pytest.raises(ValueError, match=r"non-numeric columns \[1\]"):
        GaussianMixtureEM(1).fit(np.array([[1, "a"], [2, "b"], [3, "c"]], dtype=object))


def test_too_few_samples_for_components():
    with pytest.raises(ValueError, match="n_components = 5, n_samples = 4"):
        GaussianMixtureEM(5).fit(np.random.default_rng(0).normal(size=(4, 2)))
    with pytest.raises(ValueError, match="n_components = 3, n_samples = 2"):
        GaussianMixtureEM(3).fit(np.random.default_rng(0).normal(size=(6, 2)),
                                 sample_weight=[1, 1, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1, got 0"),
        ({"n_components": 2.5}, "n_components must be an integer"),
        ({"covariance_type": "VEW"}, r"covariance_type must be one of \['full', 'tied'"),
        ({"init_params": "kmedoids"}, r"init_params must be one of \['auto', 'hierarchical'"),
        ({"reg_covar": -1}, "reg_covar must be a number >= 0"),
        ({"n_init": 0}, "n_init must be an integer >= 1"),
        ({"weights_init": [0.5, 0.6]}, "weights_init must be non-negative and sum to 1"),
        ({"weights_init": [1.0]}, r"weights_init must have shape \(2,\)"),
        ({"means_init": np.zeros((2, 3))}, r"means_init must have shape \(2, 2\).*\(2, 3\)"),
        ({"precisions_init": np.ones((2, 2))}, r"precisions_init must have shape \(2, 2, 2\)"),
        ({"precisions_init": np.stack([np.eye(2), -np.eye(2)])}, "positive definite"),
    ],
)
def test_bad_parameters_are_explained(params, message):
    params = {"n_components": 2, **params}
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(**params).fit(np.random.default_rng(0).normal(size=(20, 2)))


@pytest.mark.parametrize(
    ("sample_weight", "message"),
    [
        ([1, 1, -1, 1, 1, 1], "1 negative values"),
        ([0, 0, 0, 0, 0, 0], "all zero"),
        ([1, 1, 1], r"shape \(6,\)"),
        ([1, np.nan, 1, 1, 1, 1], "NaN or inf"),
    ],
)
def test_bad_sample_weight_is_explained(sample_weight, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(1).fit(np.random.default_rng(0).normal(size=(6, 2)),
                                 sample_weight=sample_weight)


def test_collapsed_component_is_named_with_a_remedy():
    # two distinct points per component on a grid: diag components collapse onto ties
    X = np.repeat(np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 5.0], [10.0, 6.0]]), 5, axis=0)
    with pytest.raises(CollapsedComponentError,
                       match=r"component.* collapsed.*reg_covar.*fewer components.*scaling"):
        GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(X)
    # a larger reg_covar (a variance floor on the data's scale) is accepted, with a
    # warning that it is not small against the data's variances
    with pytest.warns(em_module.RegularizationWarning, match="reg_covar=0.1 is not small"):
        model = GaussianMixtureEM(2, covariance_type="diag", reg_covar=0.1,
                                  random_state=0).fit(X)
    np.testing.assert_allclose(sorted(model.means_[:, 0]), [0.0, 10.0], atol=1e-12)


def test_spurious_collapsed_restarts_are_dropped(faithful):
    """Old Faithful's tied eruption times let a diag K=5 start collapse: it is skipped."""
    model = GaussianMixtureEM(5, covariance_type="diag", n_init=5, tol=1e-6, max_iter=1000,
                              random_state=0).fit(faithful)
    variances = model.covariances_ / faithful.var(ddof=0).to_numpy()
    assert variances.min() > 1e-5


def test_predict_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixtureEM(2).predict(np.zeros((3, 2)))


def test_wrong_number_of_features_at_predict(faithful):
    model = GaussianMixtureEM(2, random_state=0).fit(faithful.values)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.zeros((3, 3)))


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_save_and_load_round_trip(faithful, tmp_path, cov_type):
    model = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(faithful)
    path = model.save(tmp_path / "em.nc")
    loaded = GaussianMixtureEM.load(path)
    np.testing.assert_allclose(loaded.predict_proba(faithful), model.predict_proba(faithful),
                               rtol=1e-12)
    assert loaded.score(faithful) == pytest.approx(model.score(faithful), rel=1e-12)
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]
    assert loaded.get_params() == model.get_params()
    assert loaded.bic(faithful) == pytest.approx(model.bic(faithful), rel=1e-12)
    np.testing.assert_array_equal(loaded.log_likelihood_trace_, model.log_likelihood_trace_)


def test_saved_file_has_an_ordinary_files_permissions(faithful, tmp_path):
    import os
    import stat

    model = GaussianMixtureEM(2, random_state=0).fit(faithful)
    mask = os.umask(0o022)
    try:
        path = model.save(tmp_path / "em.nc")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0o600


def test_load_refuses_other_files(tmp_path):
    import xarray as xr

    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by GaussianMixtureEM.save"):
        GaussianMixtureEM.load(other)
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(ValueError, match="not a netCDF file written by bayesgmm"):
        GaussianMixtureEM.load(tmp_path / "text.nc")
    with pytest.raises(FileNotFoundError, match="no such file"):
        GaussianMixtureEM.load(tmp_path / "missing.nc")


# ------------------------------------------------------- scale and numerics
def two_clusters(seed=0, n=200):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], n // 2),
                      rng.multivariate_normal([5, 5], [[1, -0.5], [-0.5, 2]], n // 2)])


def assert_scaled_fit(fit, scaled_fit, scale, n_samples, **tolerance):
    """``scaled_fit`` (of X * scale, per feature) is ``fit`` (of X) mapped by the scale."""
    scale = np.broadcast_to(np.asarray(scale, dtype=float), fit.means_.shape[1:])
    structure = fit._structure
    K, D = fit.means_.shape
    factor = np.outer(scale, scale)
    covariances = structure.from_full(structure.to_full(fit.covariances_, K, D) * factor)
    compare = np.testing.assert_array_equal if not tolerance else (
        lambda a, b, **kw: np.testing.assert_allclose(a, b, **tolerance, **kw))
    compare(scaled_fit.weights_, fit.weights_, err_msg="weights")
    compare(scaled_fit.means_, fit.means_ * scale, err_msg="means")
    compare(scaled_fit.covariances_, covariances, err_msg="covariances")
    assert scaled_fit.n_iter_ == fit.n_iter_
    assert scaled_fit.log_likelihood_ == pytest.approx(
        fit.log_likelihood_ - n_samples * np.sum(np.log(scale)), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_standardize_is_exactly_scale_equivariant_for_powers_of_two(cov_type):
    X = two_clusters()
    fit = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                            random_state=0).fit(X)
    for c in (2.0**-40, 2.0**-300 * 2**250, 2.0**60):
        scaled = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                                   random_state=0).fit(X * c)
        assert_scaled_fit(fit, scaled, c, len(X))  # bit for bit
        # prediction runs in the data's units: log|P| differs by log c, so to rounding
        np.testing.assert_allclose(scaled.predict_proba(X * c), fit.predict_proba(X),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("c", [1e-3, 1e-7, 1e-50, 1e-100, 1e8])
def test_standardize_is_scale_equivariant(cov_type, c):
    X = two_clusters()
    fit = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                            random_state=0).fit(X)
    scaled = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                               random_state=0).fit(X * c)
    assert_scaled_fit(fit, scaled, c, len(X), rtol=1e-9, atol=0)


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag"])
def test_standardize_is_equivariant_per_feature(cov_type):
    """Features on scales 1e8 and 1e-8: the fit is the unit-scale fit, mapped."""
    X = two_clusters()
    scale = np.array([1e8, 1e-8])
    fit = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                            random_state=0).fit(X)
    scaled = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True,
                               random_state=0).fit(X * scale)
    assert_scaled_fit(fit, scaled, scale, len(X), rtol=1e-9, atol=0)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_standardize_equals_sklearn_on_standardised_data(cov_type):
    """standardize=True is scikit-learn's EM on (X - mean) / sd, mapped back."""
    X = two_clusters() * [1e-4, 3e-5]
    sd = X.std(axis=0) if cov_type != "spherical" else np.sqrt(X.var(axis=0).mean())
    Z = (X - X.mean(axis=0)) / sd
    ours = GaussianMixtureEM(2, covariance_type=cov_type, standardize=True, tol=1e-8,
                             init_params="kmeans", random_state=3).fit(X)
    theirs = GaussianMixture(2, covariance_type=cov_type, tol=1e-8, random_state=3).fit(Z)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.means_, theirs.means_ * sd + X.mean(axis=0), rtol=1e-6)
    assert ours.score(X) == pytest.approx(theirs.score(Z) - np.log(
        np.broadcast_to(sd, (2,))).sum(), rel=1e-8)


@pytest.mark.parametrize("c", [1e-3, 1e-100])
def test_small_scale_data_warns_that_reg_covar_dominates(c):
    X = two_clusters() * c
    with pytest.warns(em_module.RegularizationWarning,
                      match=r"reg_covar=1e-06 is not small.*standardize=True"):
        absolute = GaussianMixtureEM(2, random_state=0).fit(X)
    # the absolute floor swamps both clusters: one component takes (nearly) everything
    relative = GaussianMixtureEM(2, random_state=0, standardize=True).fit(X)
    assert relative.log_likelihood_ > absolute.log_likelihood_ + 50
    assert sorted(np.round(relative.weights_, 1)) == [0.5, 0.5]
    # the default keeps scikit-learn's numbers, warning included
    with pytest.warns(em_module.RegularizationWarning):
        same = GaussianMixtureEM(2, random_state=0, tol=1e-8).fit(X)
    theirs = GaussianMixture(2, random_state=0, tol=1e-8).fit(X)
    assert same.score(X) == pytest.approx(theirs.score(X), rel=1e-6)


def test_unit_scale_data_does_not_warn(random_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", em_module.RegularizationWarning)
        GaussianMixtureEM(3, random_state=0).fit(random_data.X["full"])


@pytest.mark.parametrize("c", [1e-300, 1e-160, 1e150])
@pytest.mark.parametrize("standardize", [False, True])
def test_unrepresentable_scales_are_refused(c, standardize):
    X = two_clusters() * [1.0, c]
    with pytest.raises(ValueError, match=r"Feature 1 of X spreads .* Rescale X"):
        GaussianMixtureEM(2, standardize=standardize).fit(X)


def small_variance_mixture(seed, dtype):
    """Components of standard deviation 1e-5..1 of a spread of 10, on a scale 1e-6..10."""
    rng = np.random.default_rng(seed)
    n_components, n_features, n = rng.integers(1, 4), rng.integers(1, 4), rng.integers(20, 200)
    scale = 10.0 ** rng.uniform(-6, 1)
    means = rng.uniform(-10, 10, (n_components, n_features))
    sds = 10.0 ** rng.uniform(-5, 0, (n_components, n_features))
    labels = rng.integers(0, n_components, n)
    X = (means[labels] + rng.normal(size=(n, n_features)) * sds[labels]) * scale
    return X.astype(dtype), int(n_components)


def assert_monotone(model, n_samples):
    """EM's log-likelihood never decreases beyond rounding: relative to the total, and
    per point the expansion's error budget (1e-4 nats in float32, em._EXPANSION_ERROR)."""
    trace = model.log_likelihood_trace_
    single = model.means_.dtype == np.float32
    allowed = (1e-5 if single else 1e-10) * np.abs(trace[1:]) + (
        1e-4 if single else 1e-10) * n_samples
    assert np.all(np.diff(trace) >= -allowed), np.diff(trace).min()


@pytest.mark.parametrize(("seed", "dtype", "cov_type"), [
    (249, np.float32, "tied"),  # fell by 902 (-> 2118) in float32
    (370, np.float64, "diag"),  # fell by 0.0038 in float64
])
def test_em_is_monotone_for_small_far_components(seed, dtype, cov_type):
    """Small components far from the data's mean: the expanded quadratic form
    ``x'Px - 2m'Px + m'Pm`` about the shared centre cancelled catastrophically
    (moments too); such components are now expanded about their own mean."""
    X, K = small_variance_mixture(seed, dtype)
    model = fit_quietly(GaussianMixtureEM(K, covariance_type=cov_type, reg_covar=0,
                                          max_iter=50, tol=0, random_state=seed), X)
    assert_monotone(model, len(X))


def test_float32_in_float32_out(random_data):
    X = random_data.X["full"].astype(np.float32)
    model = GaussianMixtureEM(3, random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(model, name).dtype == np.float32, name
    assert model.predict_proba(X).dtype == np.float32
    assert model.score_samples(X).dtype == np.float32
    # the float64 path is untouched: float64 in, float64 out
    assert GaussianMixtureEM(3, random_state=0).fit(X.astype(float)).means_.dtype == np.float64


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_precisions_and_upper_factor_from_precisions_init(random_data, cov_type):
    X = random_data.X[cov_type]
    fitted = GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(X)
    ours = GaussianMixtureEM(3, covariance_type=cov_type, precisions_init=fitted.precisions_,
                             max_iter=0, random_state=0).fit(X)
    # max_iter=0 returns the start, with scikit-learn's (upper) factor of the precisions
    np.testing.assert_allclose(ours.precisions_cholesky_, fitted.precisions_cholesky_,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.precisions_, fitted.precisions_, rtol=1e-10)
    assert ours.n_iter_ == 0 and not ours.converged_ and ours.lower_bounds_ == []


def test_warm_start_detects_convergence_across_calls(random_data):
    """One iteration per call: converged after as many calls as scikit-learn."""
    X = random_data.X["full"]
    calls = {}
    for cls in (GaussianMixtureEM, GaussianMixture):
        model = cls(3, warm_start=True, max_iter=1, tol=1e-6, init_params="random",
                    random_state=0)
        for n_calls in range(1, 500):
            fit_quietly(model, X)
            if model.converged_:
                break
        assert model.converged_
        calls[cls] = n_calls, model.means_, model.lower_bounds_
    (ours, our_means, our_bounds), (theirs, their_means, their_bounds) = calls.values()
    assert ours == theirs > 5
    np.testing.assert_allclose(our_means, their_means, rtol=1e-6)
    np.testing.assert_allclose(our_bounds, their_bounds, rtol=1e-9)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_points_beyond_float_range_get_valid_probabilities(random_data, cov_type):
    X = random_data.X[cov_type]
    model = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(X)
    far = np.array([[1.4e154, 1.4e154], [1.4e154, -1.4e154], [-1e300, 1e300], [1e200, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning either
        proba = model.predict_proba(np.vstack([far, X[:5]]))
        log_density = model.score_samples(far)
    assert not np.isnan(proba).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[4:], model.predict_proba(X[:5]))
    assert np.all(log_density == -np.inf)


def test_score_refuses_negative_sample_weight(random_data):
    X = random_data.X["full"]
    model = GaussianMixtureEM(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="sample_weight has 600 negative values"):
        model.score(X, sample_weight=-np.ones(len(X)))
    weights = np.random.default_rng(0).uniform(size=len(X))
    assert model.score(X, sample_weight=weights) == pytest.approx(
        np.average(model.score_samples(X), weights=weights))


@pytest.mark.parametrize("random_state", [-3, 2**32, 1.5, "0", np.random.default_rng(0)])
def test_bad_random_state_is_named(random_state):
    with pytest.raises(ValueError, match="random_state must be None, an integer in"):
        GaussianMixtureEM(2, random_state=random_state).fit(two_clusters())


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_standardize_maps_user_initial_parameters_and_warm_starts(random_data, cov_type):
    # spherical components cannot follow features on different scales
    X = random_data.X[cov_type] * ([1e-4, 1e3] if cov_type != "spherical" else 1e-4)
    init = initial_parameters(X, 3, cov_type)
    start = GaussianMixtureEM(3, covariance_type=cov_type, standardize=True, max_iter=0,
                              **init).fit(X)
    np.testing.assert_allclose(start.weights_, init["weights_init"], rtol=1e-12)
    np.testing.assert_allclose(start.means_, init["means_init"], rtol=1e-12)
    np.testing.assert_allclose(start.precisions_, init["precisions_init"], rtol=1e-10)
    warm = GaussianMixtureEM(3, covariance_type=cov_type, standardize=True, max_iter=4,
                             tol=0, warm_start=True, **init)
    fit_quietly(warm, X)
    fit_quietly(warm, X)
    straight = fit_quietly(GaussianMixtureEM(3, covariance_type=cov_type, standardize=True,
                                             max_iter=8, tol=0, **init), X)
    np.testing.assert_allclose(warm.means_, straight.means_, rtol=1e-9)
    np.testing.assert_allclose(warm.covariances_, straight.covariances_, rtol=1e-8)


def test_spherical_standardize_warns_for_features_on_different_scales(random_data):
    X = random_data.X["spherical"] * [1e-4, 1e3]
    with pytest.warns(em_module.RegularizationWarning,
                      match=r"standardised data \(standardize=True; feature 0.*Lower reg_covar"):
        GaussianMixtureEM(3, covariance_type="spherical", standardize=True,
                          random_state=0).fit(X)


def test_more_parameters_than_values_is_refused_before_fitting(monkeypatch):
    """12 points of 5 features: 3 full components have 62 free parameters, more than the
    60 values; the error says so and names what can be fitted, before any start."""
    X = np.random.default_rng(0).normal(size=(12, 5))
    assert GaussianMixtureEM(2, covariance_type="EII", random_state=0).fit(X).converged_
    monkeypatch.setattr(GaussianMixtureEM, "_initial_parameters",
                        lambda *a, **k: pytest.fail("fitting started"))
    with pytest.raises(ValueError, match=r"'full' \(VVV\) with 3 components has 62 free "
                       r"parameters, more than the 60 values.*at most 2 components.*EEE"):
        GaussianMixtureEM(3).fit(X)
    # zero-weight rows are no data
    with pytest.raises(ValueError, match="41 free parameters, more than the 40 values"):
        GaussianMixtureEM(2).fit(X, sample_weight=[1] * 8 + [0] * 4)


def test_auto_screens_its_starts_on_a_subsample_of_large_data(monkeypatch):
    """More rows than the hierarchical subsample: the hierarchical and the k-means starts
    run EM on the same 2,000 rows, and only the better continues on all of them."""
    runs = []
    original = GaussianMixtureEM._run_em

    def spy(self, engine, params, previous=-np.inf):
        run = original(self, engine, params, previous)
        runs.append((len(engine.X), run["log_likelihood"]))
        return run

    monkeypatch.setattr(GaussianMixtureEM, "_run_em", spy)
    X, _ = datasets.simulate_mixture(5000, [0.3, 0.3, 0.4], [[0, 0], [6, 0], [0, 6]],
                                     [1.0, 1.0, 1.0], random_state=1)
    model = GaussianMixtureEM(3, n_init=2, tol=1e-8, random_state=0).fit(X)
    assert [n for n, _ in runs] == [em_module.HIERARCHICAL_SUBSAMPLE] * 3 + [5000]
    assert runs[-1][1] == pytest.approx(model.log_likelihood_, rel=1e-12)
    reference = GaussianMixture(3, n_init=5, tol=1e-8, random_state=0).fit(X)
    assert model.log_likelihood_ >= reference.score(X) * len(X) - 1e-6 * len(X)


@pytest.mark.parametrize("covariance_type", ["VVV", "EEI"])
def test_auto_keeps_the_best_of_its_starts(monkeypatch, covariance_type):
    """"auto" runs mclust's hierarchical start in SVD and in standardised coordinates and
    n_init k-means starts, and keeps the best (a start that collapses is dropped)."""
    runs = []
    original = GaussianMixtureEM._run_em

    def spy(self, engine, params, previous=-np.inf):
        run = original(self, engine, params, previous)
        runs.append(run["log_likelihood"])
        return run

    monkeypatch.setattr(GaussianMixtureEM, "_run_em", spy)
    X = load_iris().data
    model = GaussianMixtureEM(4, covariance_type=covariance_type, n_init=3, tol=1e-8,
                              max_iter=2000, random_state=0).fit(X)
    assert 3 <= len(runs) <= 5
    assert model.log_likelihood_ == max(runs)
    alone = GaussianMixtureEM(4, covariance_type=covariance_type, init_params="hierarchical",
                              tol=1e-8, max_iter=2000).fit(X)
    assert alone.log_likelihood_ == runs[0]


def test_auto_agglomerates_100_rows_a_component_of_the_screening_subsample(monkeypatch):
    """Screening large data, the hierarchical start agglomerates 100 rows a component of
    the 2,000-row subsample (at most 1,000): its cost is the square of the rows."""
    calls = hierarchical_rows(monkeypatch)
    X, _ = datasets.simulate_mixture(5000, [0.3, 0.3, 0.4], [[0, 0], [6, 0], [0, 6]],
                                     [1.0, 1.0, 1.0], random_state=1)
    GaussianMixtureEM(3, random_state=0).fit(X)
    assert calls == [3 * em_module.AUTO_HIERARCHICAL_ROWS_PER_COMPONENT]
    calls.clear()
    X12, _ = datasets.simulate_mixture(5000, [1 / 12] * 12, [[6 * i, 0] for i in range(12)],
                                       [1.0] * 12, random_state=1)
    GaussianMixtureEM(12, covariance_type="spherical", random_state=0).fit(X12)
    assert calls == [em_module.AUTO_HIERARCHICAL_ROWS]


def test_screened_start_takes_one_em_step_on_p_over_tol_rows(monkeypatch):
    """After the screening, one EM step on ceil(p / tol) rows (p free parameters) when
    that is at most 3/5 of the rows, none otherwise; the fit reaches scikit-learn's
    optimum, and fit and fit_predict fit the same model."""
    rows = []
    original = em_module._BlockEngine.sweep

    def spy(self, *args, **kwargs):
        rows.append(len(self.X))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(em_module._BlockEngine, "sweep", spy)
    X, _ = datasets.simulate_mixture(30000, [0.5, 0.5], [[0, 0], [5, 5]], [1.0, 2.0],
                                     random_state=2)
    model = GaussianMixtureEM(2, random_state=0).fit(X)
    step = math.ceil(model.n_parameters() / model.tol)
    assert step == 11000 and rows.count(step) == 1
    assert rows[-model.n_iter_ - 1:] == [30000] * (model.n_iter_ + 1)
    reference = GaussianMixture(2, random_state=0).fit(X)
    assert model.score(X) >= reference.score(X) - 1e-9
    rows.clear()
    labels = GaussianMixtureEM(2, random_state=0).fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    rows.clear()
    GaussianMixtureEM(2, tol=1e-5, random_state=0).fit(X)  # 1.1e6 rows: no step
    assert set(rows) == {em_module.HIERARCHICAL_SUBSAMPLE, 30000}


def test_fit_and_fit_predict_fit_the_same_model(random_data):
    """fit skips the final labelling; the parameters are those of fit_predict."""
    X = random_data.X["full"]
    a = GaussianMixtureEM(3, random_state=0).fit(X)
    b = GaussianMixtureEM(3, random_state=0)
    labels = b.fit_predict(X)
    for name in ("weights_", "means_", "covariances_", "lower_bound_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(labels, a.predict(X))


# ------------------------------------------------------------ threaded sweeps
@pytest.mark.parametrize("weighted", [False, True])
def test_a_sweep_shared_among_threads_equals_the_one_thread_sweep(weighted, monkeypatch):
    """The blocks' partial sums are added in block order: three threads give the very
    numbers of one (BLAS on one thread in both, as each sweep thread's is)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(7)
    n = 3 * em_module._THREADED_ROWS + 123
    X = np.concatenate([rng.normal(size=(n // 2, 3)), rng.normal(4.0, 0.5, (n - n // 2, 3))])
    weights = rng.integers(0, 3, n).astype(float) if weighted else np.ones(n)
    model = GaussianMixtureEM(2, covariance_type="VVV", max_iter=1, tol=0,
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:2000])
    params = (model.weights_, model.means_, model.precisions_cholesky_)
    engine = em_module._BlockEngine(X, weights, X.mean(axis=0), model._structure)
    engine.block_rows = 5000  # many blocks
    monkeypatch.setattr(em_module, "_sweep_threads", lambda *args: 3)
    threaded = engine.sweep(*params, moments=True, labels=True)
    monkeypatch.setattr(em_module, "_sweep_threads", lambda *args: 1)
    with threadpool_limits(limits=1, user_api="blas"):
        single = engine.sweep(*params, moments=True, labels=True)
    assert threaded.log_likelihood == single.log_likelihood
    for name in ("nk", "sum_x", "sum_q", "centres", "labels"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(single, name))
    # and the sums are those of the data: the weights' total, and the log-likelihood
    assert threaded.nk.sum() == pytest.approx(weights.sum(), rel=1e-12)
    assert threaded.log_likelihood == pytest.approx(
        weights @ model.score_samples(X), rel=1e-12)


def test_sweep_threads_follow_the_blas_limit():
    from threadpoolctl import threadpool_limits

    assert em_module._sweep_threads(em_module._THREADED_ROWS - 1, 500) == 1
    assert em_module._sweep_threads(10**7, em_module._THREADED_PRODUCTS - 1) == 1
    with threadpool_limits(limits=1, user_api="blas"):
        assert em_module._sweep_threads(10**7, 500) == 1
