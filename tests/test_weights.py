"""Sample weights everywhere: the weighted log-likelihood ``sum_n w_n log p(x_n)``.

An integer weight counts its row that many times, so every weighted quantity is held
against the same quantity on the data with the rows repeated: exactly for the log
density and its gradient (the fused Op's weighted kernel), the MAP, EM, relabelling,
LOO's bookkeeping and compare's EM columns; within Monte Carlo error for a NUTS
posterior. Bad weights fail before any fit, with the same message everywhere.
"""

import importlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, build_model, compare, datasets
from bayesgmm._validation import check_sample_weight
from bayesgmm.model import make_spec
from bayesgmm.relabel import stephens_relabel

from .conftest import COVARIANCE_TYPES, seed
from .test_cli import one_line_error, run

PYTHON = Mode(linker="py", optimizer="fast_run")


@pytest.fixture(scope="module")
def data():
    """60 Old Faithful rows, integer weights 0-3 (a few zeros), and the repeated rows."""
    X = datasets.load_faithful().to_numpy()[::4][:60]
    w = np.random.default_rng(7).integers(0, 4, len(X))
    w[:4] = 1
    return X, w, np.repeat(X, w, axis=0)


def logp_function(model, mode=None):
    f = model.logp_dlogp_function(ravel_inputs=True, **({"mode": mode} if mode else {}))
    f.set_extra_values({})
    return f


def fused_ops(function):
    return [node.op for node in function._pytensor_function.maker.fgraph.apply_nodes
            if type(node.op).__name__ == "MixtureLogDensityValueGrad"]


# ------------------------------------------------------------------ log density
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_log_density_and_gradient_equal_repeated_rows(data, covariance_type):
    """The samplers' compiled (numba) logp and dlogp of the weighted model against the
    repeated rows' (numpy kernels), at random points: equal to rounding."""
    X, w, repeated = data
    weighted = logp_function(build_model(X, 2, covariance_type=covariance_type,
                                         sample_weight=w))
    plain = logp_function(build_model(repeated, 2, covariance_type=covariance_type), PYTHON)
    assert [op.weighted for op in fused_ops(weighted)] == [True]
    assert [op.weighted for op in fused_ops(plain)] == [False]  # unweighted: the unit kernel
    model = build_model(X, 2, covariance_type=covariance_type, sample_weight=w)
    point = model.initial_point()
    x0 = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    rng = np.random.default_rng(seed("weighted logp", covariance_type))
    for _ in range(4):
        x = x0 + rng.normal(size=x0.shape) * 0.3
        (a, da), (b, db) = weighted(x), plain(x)
        assert a == pytest.approx(b, rel=1e-12)
        np.testing.assert_allclose(da, db, rtol=1e-10, atol=1e-10 * np.abs(db).max())


def test_reference_likelihood_is_weighted_the_same_way(data):
    X, w, _ = data
    functions = [logp_function(build_model(X, 2, covariance_type="full", sample_weight=w,
                                           likelihood=likelihood), PYTHON)
                 for likelihood in ("fused", "reference")]
    model = build_model(X, 2, covariance_type="full", sample_weight=w)
    point = model.initial_point()
    x = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars]) + 0.1
    (a, da), (b, db) = (f(x) for f in functions)
    assert a == pytest.approx(b, rel=1e-10)
    np.testing.assert_allclose(da, db, rtol=1e-8, atol=1e-8 * np.abs(db).max())


# --------------------------------------------------------------------------- MAP
@pytest.fixture(scope="module")
def map_fits(data):
    X, w, repeated = data
    fits = {}
    for covariance_type in COVARIANCE_TYPES:
        kwargs = dict(covariance_type=covariance_type, random_state=seed("map", covariance_type))
        fits[covariance_type] = (
            GaussianMixtureBayes(2, **kwargs).fit(X, "map", sample_weight=w, progressbar=False),
            GaussianMixtureBayes(2, **kwargs).fit(repeated, "map", progressbar=False))
    return fits


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_with_integer_weights_equals_map_on_repeated_rows(map_fits, covariance_type):
    weighted, repeated = map_fits[covariance_type]
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(weighted.posterior[name].values,
                                   repeated.posterior[name].values, rtol=1e-7, atol=1e-9,
                                   err_msg=name)
    assert weighted.map_.attrs["log_posterior"] == pytest.approx(
        repeated.map_.attrs["log_posterior"], rel=1e-10)
    # the EM start is the weighted fit (EM's own weighted = repeated test: test_em.py)
    assert weighted.em_.log_likelihood_ == pytest.approx(repeated.em_.log_likelihood_,
                                                         rel=1e-8)
    # the data-scaled default priors are the repeated rows' too
    for name in ("alpha", "means_mu", "means_sigma", "sd_sigma", "ig_alpha", "ig_beta"):
        got, want = (getattr(fit.spec_.priors, name) for fit in (weighted, repeated))
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


def test_a_weighted_fit_is_saved_and_loaded_with_its_weights(map_fits, data, tmp_path):
    X, w, _ = data
    fit = map_fits["diag"][0]
    path = tmp_path / "weighted.nc"
    fit.save(path)
    loaded = GaussianMixtureBayes.load(path)
    np.testing.assert_array_equal(loaded.sample_weight_, w)
    assert loaded.spec_.weighted
    config = json.loads(loaded.idata_.attrs["config"])
    assert config["weighted"] and config["sum_of_weights"] == w.sum()
    assert config["integer_weights"]
    assert loaded.em_.lower_bound_ == pytest.approx(fit.em_.lower_bound_, rel=1e-12)
    # the model a loaded fit rebuilds (for the evidence, the summary's mode) is weighted
    f, g = logp_function(loaded._read_model(), PYTHON), logp_function(fit.model_, PYTHON)
    point = fit.model_.initial_point()
    x = np.concatenate([np.ravel(point[v.name]) for v in fit.model_.value_vars])
    assert f(x)[0] == pytest.approx(g(x)[0], rel=1e-12)
    np.testing.assert_allclose(loaded.summary()["map"], fit.summary()["map"], rtol=1e-6)
    unweighted = map_fits["diag"][1]
    unweighted.save(tmp_path / "plain.nc")
    assert GaussianMixtureBayes.load(tmp_path / "plain.nc").sample_weight_ is None


# -------------------------------------------------------------------------- NUTS
def test_nuts_posterior_with_integer_weights_is_that_of_repeated_rows(data):
    """Posterior means within 5 combined Monte Carlo standard errors (ESS-based), for
    every weight, mean and sigma; the posterior sds within 25% of each other."""
    from arviz_stats import mcse

    from bayesgmm._loo import loo_with_refits
    from bayesgmm.compare import waic

    X, w, repeated = data
    settings_ = dict(draws=500, tune=500, chains=2, progressbar=False)
    a = GaussianMixtureBayes(2, covariance_type="diag", random_state=seed("nuts w")).fit(
        X, sample_weight=w, **settings_)
    b = GaussianMixtureBayes(2, covariance_type="diag", random_state=seed("nuts r")).fit(
        repeated, **settings_)
    for name in ("weights", "means", "sigmas"):
        da, db = a.posterior[name], b.posterior[name]
        gap = (da.mean(("chain", "draw")) - db.mean(("chain", "draw"))).values
        error = np.sqrt(mcse(da, method="mean").values ** 2 + mcse(db, method="mean").values ** 2)
        assert np.all(np.abs(gap) <= 5 * error), (name, gap / error)
        ratio = (da.std(("chain", "draw")) / db.std(("chain", "draw"))).values
        assert np.all((ratio > 0.75) & (ratio < 1.33)), (name, ratio)
    # the log_likelihood group is unweighted, one term per row; LOO and WAIC count
    # each row w_n times: exactly those of this posterior on the repeated rows
    log_lik = a.idata_["log_likelihood"]["obs"]
    assert log_lik.sizes["obs_id"] == len(X)
    on_repeated = a._pointwise_log_likelihood(a.posterior, repeated)
    np.testing.assert_allclose(log_lik.values[..., np.repeat(np.arange(len(X)), w)],
                               on_repeated.values, rtol=1e-12)
    from arviz_stats import loo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: the same for both
        exact = loo(xr.DataTree.from_dict({
            "posterior": a.posterior, "log_likelihood": xr.Dataset({"obs": on_repeated})}),
            pointwise=True)
    ours = loo_with_refits(a, max_refits=0).psis
    assert ours.n_data_points == w.sum()
    for field in ("elpd", "se", "p"):
        assert getattr(ours, field) == pytest.approx(getattr(exact, field), rel=1e-9)
    np.testing.assert_allclose(ours.pareto_k.values, exact.pareto_k.values, rtol=1e-9)
    for got, want in zip(waic(log_lik.values, w)[:3], waic(on_repeated.values)[:3]):
        assert got == pytest.approx(want, rel=1e-9)


def test_relabelling_counts_each_point_with_its_weight():
    rng = np.random.default_rng(3)
    n, K = 30, 3
    memberships = rng.dirichlet(np.ones(K) * 0.3, size=(40, n))
    reference = rng.dirichlet(np.ones(K) * 0.3, size=n)
    w = rng.integers(0, 4, n)
    index = np.repeat(np.arange(n), w)
    weighted = stephens_relabel(memberships, reference, sample_weight=w)
    repeated = stephens_relabel(memberships[:, index], reference[index])
    np.testing.assert_array_equal(weighted.permutations, repeated.permutations)


# ----------------------------------------------------------------------- compare
def test_compare_em_columns_equal_those_of_repeated_rows(data):
    X, w, repeated = data
    kwargs = dict(methods=("em",), random_state=seed("compare"), progressbar=False)
    weighted = compare(X, [1, 2], ["full", "spherical"], sample_weight=w, **kwargs).table
    plain = compare(repeated, [1, 2], ["full", "spherical"], **kwargs).table
    assert weighted.attrs["sum_of_weights"] == w.sum()
    for column in ("log_likelihood", "bic", "aic", "icl", "bic_mclust"):
        np.testing.assert_allclose(weighted[column], plain[column], rtol=1e-6, err_msg=column)
    np.testing.assert_array_equal(weighted["n_parameters"], plain["n_parameters"])
    # BIC's n is the sum of the weights
    em = GaussianMixtureEM(2, covariance_type="full", random_state=0).fit(X, sample_weight=w)
    assert em.bic(X, sample_weight=w) == pytest.approx(
        -2 * em.log_likelihood_ + em.n_parameters() * np.log(w.sum()), rel=1e-12)


def test_compare_refuses_loo_with_non_integer_weights_before_fitting(data, monkeypatch):
    X, w, _ = data
    compare_module = importlib.import_module("bayesgmm.compare")  # the package exports compare()
    monkeypatch.setattr(compare_module, "GaussianMixtureEM", None)  # any fit would fail
    with pytest.raises(ValueError, match="LOO and WAIC need integer sample weights"):
        compare(X, [1], ["diag"], sample_weight=w + 0.5, progressbar=False)


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def weighted_csv(tmp_path, data):
    X, w, _ = data
    path = tmp_path / "weighted.csv"
    pd.DataFrame({"eruptions": X[:, 0], "w": w, "waiting": X[:, 1]}).to_csv(path, index=False)
    return path


def test_cli_fit_and_compare_with_weights(weighted_csv, data, tmp_path):
    X, w, _ = data
    frame = pd.DataFrame(X, columns=["eruptions", "waiting"])
    out = tmp_path / "em.nc"
    result = run("fit", weighted_csv, "-k", 2, "--seed", 0, "--weights", "w", "--out", out)
    assert result.exit_code == 0, result.output
    direct = GaussianMixtureEM(2, n_init=5, tol=1e-6, max_iter=1000, random_state=0).fit(
        frame, sample_weight=w)
    assert f"weights summing to {w.sum()}" in result.output
    assert f"BIC {direct.bic(frame, sample_weight=w):.2f}" in result.output
    loaded = GaussianMixtureEM.load(out)
    np.testing.assert_allclose(loaded.means_, direct.means_)
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]  # w is no feature

    table = tmp_path / "table.csv"
    result = run("compare", weighted_csv, "-k", "1-2", "--covariance", "diag", "--em-only",
                 "--seed", 0, "--weights", "w", "--out", table)
    assert result.exit_code == 0, result.output
    expected = compare(frame, [1, 2], ["diag"], sample_weight=w, methods=("em",),
                       random_state=0, progressbar=False).table
    np.testing.assert_allclose(pd.read_csv(table)["bic"], expected["bic"], rtol=1e-12)

    bayes_out = tmp_path / "map.nc"
    result = run("fit", weighted_csv, "--method", "map", "--covariance", "diag", "--seed", 1,
                 "--weights", "w", "--columns", "waiting", "--out", bayes_out)
    assert result.exit_code == 0, result.output
    fit = GaussianMixtureBayes.load(bayes_out)
    np.testing.assert_array_equal(fit.sample_weight_, w)
    assert list(fit.feature_names_in_) == ["waiting"]


@pytest.mark.parametrize(("column", "args", "expected"), [
    ("w", ["--weights", "weight"], "--weights 'weight': .* has no column 'weight'"),
    ("text", ["--weights", "w"], "'w' .* is not numeric .*'heavy' in row 1"),
    ("nan", ["--weights", "w"], "'w' .* contains NaN or inf: 1 NaN \\(row 3\\)"),
    ("negative", ["--weights", "w"], "'w' .* has 1 negative values \\(row 0\\)"),
    ("zero", ["--weights", "w"], "'w' .* is all zero"),
    ("w", ["--weights", "w", "--columns", "w,x"], "'w' is also in --columns"),
    ("fraction", ["--weights", "w", "-k", "1", "--covariance", "diag"],
     "'w': LOO and WAIC need integer sample weights"),
])
def test_cli_bad_weights_are_one_line_naming_the_column(tmp_path, column, args, expected):
    w = {"w": [1, 2, 1, 1, 3, 1], "text": [1, "heavy", 1, 1, 1, 1],
         "nan": [1, 1, 1, None, 1, 1], "negative": [-1, 1, 1, 1, 1, 1],
         "zero": [0] * 6, "fraction": [0.5, 1, 1, 1, 1, 1]}[column]
    path = tmp_path / "bad.csv"
    pd.DataFrame({"x": np.arange(6.0) ** 1.5, "w": w}).to_csv(path, index=False)
    command = "compare" if column == "fraction" else "fit"
    message = one_line_error(run(command, path, *args, "--out", tmp_path / "o.nc"), 2)
    assert pd.Series([message]).str.contains(expected).all(), message


# ---------------------------------------------------------------------- bad input
BAD_WEIGHTS = {
    "nan": ([1, 1, np.nan, 1, 1, 1, 1, 1], "contains NaN or inf: 1 NaN \\(row 2\\)"),
    "inf": ([1, 1, 1, 1, 1, np.inf, 1, 1], "contains NaN or inf: 1 inf \\(row 5\\)"),
    "negative": ([1, -2, 1, 1, 1, 1, 1, 1], "has 1 negative values \\(row 1\\)"),
    "all zero": ([0] * 8, "is all zero"),
    "wrong length": ([1] * 7, "must have shape \\(8,\\)"),
    "strings": (["1"] * 8, "must be numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_weights_get_the_same_message_everywhere_before_any_fit(case, monkeypatch):
    import bayesgmm.bayes as bayes_module

    weights, message = BAD_WEIGHTS[case]
    X = np.random.default_rng(0).normal(size=(8, 2))
    monkeypatch.setattr(bayes_module, "_fit_em", None)  # fitting anything would fail
    calls = {
        "EM": lambda: GaussianMixtureEM(1).fit(X, sample_weight=weights),
        "Bayes": lambda: GaussianMixtureBayes(1).fit(X, "map", sample_weight=weights),
        "build_model": lambda: build_model(X, 1, sample_weight=weights),
        "compare": lambda: compare(X, [1], ["diag"], sample_weight=weights,
                                   progressbar=False),
    }
    messages = {}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=message) as raised:
            call()
        messages[name] = str(raised.value)
    assert len(set(messages.values())) == 1, messages


def test_too_few_positively_weighted_rows_are_refused():
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixtureBayes(3).fit(X, "map", sample_weight=[1, 1, 0, 0, 0, 0, 0, 0])


finite_weights = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=8, max_size=8)


@settings(max_examples=60, deadline=None)
@given(finite_weights.filter(lambda w: sum(v > 0 for v in w) >= 2))
def test_non_negative_finite_weights_are_accepted(weights):
    X = np.random.default_rng(1).normal(size=(8, 2))
    checked = check_sample_weight(weights, 8)
    np.testing.assert_array_equal(checked, weights)
    spec = make_spec(X, 2, "diag", sample_weight=weights)  # every check before compiling
    assert spec.weighted


@settings(max_examples=60, deadline=None)
@given(finite_weights, st.integers(0, 7),
       st.sampled_from([np.nan, np.inf, -np.inf, -1e-300, -1.0]))
def test_a_nan_infinite_or_negative_weight_is_refused(weights, where, bad):
    weights = list(weights)
    weights[where] = bad
    with pytest.raises(ValueError, match=f"sample_weight (contains NaN or inf|has 1 negative)"
                                         f".*row {where}"):
        check_sample_weight(weights, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="sample_weight"):
            make_spec(np.zeros((8, 2)) + np.arange(8)[:, None], 2, "diag",
                      sample_weight=weights)
