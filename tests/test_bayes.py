"""GaussianMixtureBayes: fitting, relabelling, diagnostics, prediction, storage."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets
from bayesgmm.bayes import DiagnosticsWarning
from bayesgmm.priors import LKJ, Dirichlet, GMMPriors, HalfNormal, Normal
from bayesgmm.relabel import permute_components

from .conftest import COVARIANCE_TYPES, seed

TRUE_WEIGHTS = np.array([0.3, 0.3, 0.4])
TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 6.0], [12.0, 0.0]])
TRUE_COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.5, -0.3], [-0.3, 0.8]], [[0.7, 0.0], [0.0, 1.2]]])


def simulated(n=240, seed=3):
    return datasets.simulate_mixture(n, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, random_state=seed)


@pytest.fixture(scope="module")
def nuts_fit():
    X, labels = simulated()
    model = GaussianMixtureBayes(3, random_state=seed("test_bayes.nuts_fit"))
    model.fit(X, draws=300, tune=300, chains=2, progressbar=False)
    return model, X, labels


# ------------------------------------------------------------------ NUTS fit
def test_result_is_a_labelled_datatree(nuts_fit):
    model, X, _ = nuts_fit
    tree = model.idata_
    assert isinstance(tree, xr.DataTree)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(tree.children)
    post = model.posterior
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post.sizes == {"chain": 2, "draw": 300, "component": 3, "feature": 2, "feature2": 2}
    assert set(post.data_vars) == {"weights", "means", "sigmas", "variances", "correlations",
                                   "covariances"}
    assert tree["log_likelihood"]["obs"].dims == ("chain", "draw", "obs_id")
    np.testing.assert_allclose(tree["observed_data"]["obs"].values, X)
    assert tree.attrs["method"] == "nuts"
    assert '"covariance_type": "full"' in tree.attrs["config"]


def test_posterior_recovers_truth_in_em_labelling(nuts_fit):
    model, X, labels = nuts_fit
    post = model.posterior
    order = np.argsort(model.em_.means_[:, 0])  # EM's labels are the pivot
    means = post["means"].mean(("chain", "draw")).values[order]
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.45)
    weights = post["weights"].mean(("chain", "draw")).values[order]
    np.testing.assert_allclose(weights, TRUE_WEIGHTS, atol=0.08)
    # components keep one identity across all draws: their means never swap
    draws = post["means"].values[..., 0]  # (chain, draw, component)
    assert np.all(np.argsort(draws, axis=-1) == np.argsort(draws[0, 0]))
    accuracy = np.mean(model.predict(X) == order[labels])
    assert accuracy > 0.97


def test_log_likelihood_is_pointwise_mixture_density(nuts_fit):
    model, X, _ = nuts_fit
    post = model.posterior
    for chain, draw in [(0, 0), (1, 157)]:
        p = post.isel(chain=chain, draw=draw)
        density = sum(
            p["weights"].values[k]
            * stats.multivariate_normal(p["means"].values[k], p["covariances"].values[k]).pdf(X)
            for k in range(3)
        )
        got = model.idata_["log_likelihood"]["obs"].isel(chain=chain, draw=draw).values
        np.testing.assert_allclose(got, np.log(density), rtol=1e-10)


def test_chains_in_other_labellings_are_relabelled(nuts_fit):
    model, _, _ = nuts_fit
    post = model.posterior
    n_draws = post.sizes["draw"]
    swap = np.array([2, 0, 1])
    perms = np.vstack([np.tile(np.arange(3), (n_draws, 1)), np.tile(swap, (n_draws, 1))])
    scrambled = permute_components(post, perms)  # chain 1 now uses other labels
    assert not np.allclose(scrambled["means"].values, post["means"].values)
    repaired = model._relabel(scrambled)
    np.testing.assert_allclose(repaired["means"].values, post["means"].values)
    assert model.relabel_["n_permuted"] == n_draws


def test_diagnose_reports_rhat_ess_and_sampler_stats(nuts_fit):
    model, _, _ = nuts_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        table = model.diagnose()
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(table.columns)
    assert "means[0, x0]" in table.index and "correlations[x0:x1, 2]" in table.index
    assert table["r_hat"].max() < 1.05  # relabelled: chains agree even on short runs
    assert table.attrs["divergences"] == 0
    assert table.attrs["min_ebfmi"] > 0.3


def test_diagnose_warns_with_remedies(nuts_fit, monkeypatch):
    model, _, _ = nuts_fit
    from bayesgmm import diagnostics

    monkeypatch.setattr(diagnostics, "ESS_MIN", 10**6)
    with pytest.warns(DiagnosticsWarning, match=r"ESS < 1000000 for weights\[0\].*increase draws"):
        table = model.diagnose()
    assert any("ESS" in p for p in table.attrs["problems"])


def test_summary_puts_map_and_em_beside_the_posterior(nuts_fit):
    model, _, _ = nuts_fit
    table = model.summary()
    assert list(table.columns) == ["mean", "sd", "hdi94_lb", "hdi94_ub", "map", "em"]
    row = table.loc["means[0, x0]"]
    assert row["hdi94_lb"] <= row["mean"] <= row["hdi94_ub"]
    assert row["em"] == pytest.approx(model.em_.means_[0, 0])
    assert abs(row["map"] - row["mean"]) < 3 * row["sd"]
    assert table.loc["weights[0]", "em"] == pytest.approx(model.em_.weights_[0])


def test_membership_with_credible_intervals(nuts_fit):
    model, X, _ = nuts_fit
    m = model.membership(X[:40], hdi_prob=0.9)
    assert m["mean"].dims == ("obs_id", "component")
    assert np.all((0 <= m["lower"]) & (m["lower"] <= m["upper"]) & (m["upper"] <= 1))
    # each interval holds about 90% of that point's posterior membership draws
    draws = model._membership_draws(X[:40])  # (n_draws, obs, component)
    inside = (draws >= m["lower"].values - 1e-15) & (draws <= m["upper"].values + 1e-15)
    assert np.all(inside.mean(axis=0) >= 0.89)
    np.testing.assert_allclose(m["mean"].sum("component"), 1.0)
    np.testing.assert_allclose(model.predict_proba(X[:40]), m["mean"].values)
    # a point between two clusters is uncertain, with a wide interval
    middle = np.array([[3.0, 3.0]])
    wide = model.membership(middle)
    assert float((wide["upper"] - wide["lower"]).max()) > 0.05


def test_posterior_predictive_reproduces_the_data_moments(nuts_fit):
    model, X, _ = nuts_fit
    tree = model.sample_posterior_predictive(random_state=seed("posterior_predictive"))
    pp = tree["posterior_predictive"]["obs"]
    assert pp.dims == ("chain", "draw", "obs_id", "feature")
    np.testing.assert_allclose(pp.mean(("chain", "draw", "obs_id")), X.mean(0), atol=0.3)


def test_save_and_load_round_trip(nuts_fit, tmp_path):
    model, X, _ = nuts_fit
    path = model.save(tmp_path / "fit.nc")
    loaded = GaussianMixtureBayes.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X[:20]), model.predict_proba(X[:20]))
    xr.testing.assert_allclose(loaded.posterior, model.posterior)
    assert loaded.idata_.attrs["bayesgmm_version"] == model.idata_.attrs["bayesgmm_version"]
    assert loaded.get_params()["n_components"] == 3
    np.testing.assert_allclose(loaded.summary()["em"], model.summary()["em"])


def test_load_refuses_other_files(tmp_path):
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0, 2.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by bayesgmm's GaussianMixtureBayes"):
        GaussianMixtureBayes.load(other)
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(ValueError, match="not a netCDF file written by bayesgmm"):
        GaussianMixtureBayes.load(tmp_path / "text.nc")


def test_failed_save_keeps_the_earlier_file(nuts_fit, tmp_path, monkeypatch):
    model, _, _ = nuts_fit
    path = model.save(tmp_path / "fit.nc")
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_same_seed_same_posterior_and_new_data_reuses_the_model(nuts_fit):
    _, X, _ = nuts_fit
    X_new = simulated(seed=11)[0]  # same shape, other values: the graph is unchanged

    def fit(data, key):
        return GaussianMixtureBayes(3, random_state=seed("same_seed", key)).fit(
            data, draws=20, tune=20, chains=2, progressbar=False)

    first, again, other = fit(X, 5), fit(X, 5), fit(X, 6)
    xr.testing.assert_equal(first.posterior, again.posterior)  # attrs hold timings
    assert not np.allclose(first.posterior["means"], other.posterior["means"])
    new = fit(X_new, 5)  # prior parameters follow the new data
    np.testing.assert_allclose(new.model_["prior_means_mu"].get_value()[0], X_new.mean(axis=0))
    order = np.argsort(new.em_.means_[:, 0])
    means = new.posterior["means"].mean(("chain", "draw")).values[order]
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.6)


# ------------------------------------------------------------------ MAP, ADVI
def test_a_fit_with_more_than_one_percent_divergent_draws_is_sampled_again(
        monkeypatch, tmp_path):
    """More than 1% of the draws divergent: sampled again, once (even if the second run
    diverges too), at target_accept 0.99 with the same seed and start; the first run's
    record is kept and saved."""
    from bayesgmm import _inference

    real, calls = _inference._sample_nuts, []

    def runs_diverge(model, starts, settings):
        calls.append((settings.target_accept, starts, (settings.progressbar, settings.seed)))
        posterior, stats = real(model, starts, settings)
        diverging = np.zeros(stats["diverging"].shape, bool)
        diverging.flat[:5 + len(calls)] = True  # 6, then 7 of 400 draws: above 1%
        return posterior, stats.assign(diverging=(stats["diverging"].dims, diverging))

    monkeypatch.setattr(_inference, "_sample_nuts", runs_diverge)
    X, _ = simulated(60)
    fit = GaussianMixtureBayes(2, random_state=seed("retry")).fit(
        X, draws=200, tune=200, chains=2, nuts_sampler="pymc", progressbar=False)
    assert [c[0] for c in calls] == [0.95, 0.99]
    assert calls[1][1] is calls[0][1] and calls[1][2] == calls[0][2]  # same starts, seed
    assert fit.retry_ == {"target_accept": 0.95, "divergences": 6, "share": 6 / 400,
                          "retried_with": 0.99}
    assert json.loads(fit.idata_.attrs["config"])["fit"]["target_accept"] == 0.99
    with pytest.warns(DiagnosticsWarning, match="7 divergent transitions"):
        assert fit.diagnose().attrs["divergences"] == 7  # the result is the second run
    loaded = GaussianMixtureBayes.load(fit.save(tmp_path / "fit.nc"))
    assert loaded.retry_ == fit.retry_


def test_few_divergences_are_not_retried(monkeypatch):
    from bayesgmm import _inference

    calls = []
    real = _inference._sample_nuts
    monkeypatch.setattr(_inference, "_sample_nuts",
                        lambda model, starts, settings: calls.append(settings.target_accept)
                        or real(model, starts, settings))
    X, _ = simulated(60)
    fit = GaussianMixtureBayes(2, random_state=seed("retry")).fit(
        X, draws=200, tune=200, chains=2, target_accept=0.99, nuts_sampler="pymc",
        progressbar=False)
    assert calls == [0.99] and fit.retry_ is None  # already at 0.99: nothing to raise


def test_map_with_weak_priors_equals_em(faithful):
    weak = GMMPriors(Dirichlet(1.0), Normal(sigma=1e4), LKJ(eta=1.0, sd=HalfNormal(1e4)))
    model = GaussianMixtureBayes(2, priors=weak, random_state=seed("map_weak")).fit(faithful, method="map",
                                                                    progressbar=False)
    em = GaussianMixtureEM(2, tol=1e-10, max_iter=2000, n_init=3, random_state=0).fit(faithful)
    post = model.posterior
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 1
    order = np.argsort(post["means"].values[0, 0, :, 0])
    em_order = np.argsort(em.means_[:, 0])
    np.testing.assert_allclose(post["means"].values[0, 0][order], em.means_[em_order], rtol=1e-3)
    np.testing.assert_allclose(post["weights"].values[0, 0][order], em.weights_[em_order],
                               rtol=1e-3)
    # The MAP is a mode in the sampler's Cholesky-factor space: the LKJ density's
    # Jacobian pulls variances ~1-2% below the maximum-likelihood ones.
    np.testing.assert_allclose(post["covariances"].values[0, 0][order],
                               em.covariances_[em_order], rtol=3e-2)
    ll = model.idata_["log_likelihood"]["obs"].values.sum()
    assert ll == pytest.approx(em.log_likelihood_, rel=1e-3)
    assert ll <= em.log_likelihood_ + 1e-6  # EM is the maximum of the likelihood


@pytest.mark.parametrize("cov_type", ["tied", "diag", "spherical"])
def test_map_for_other_structures_is_near_em(faithful, cov_type):
    model = GaussianMixtureBayes(2, covariance_type=cov_type, random_state=seed("map", cov_type)).fit(
        faithful, method="map", progressbar=False)
    em = model.em_
    order = np.argsort(model.posterior["means"].values[0, 0, :, 0])
    np.testing.assert_allclose(model.posterior["means"].values[0, 0][order],
                               em.means_[np.argsort(em.means_[:, 0])], rtol=0.02)


def test_advi_gives_draws_near_the_posterior(faithful):
    model = GaussianMixtureBayes(2, covariance_type="diag", random_state=seed("advi"))
    model.fit(faithful, method="advi", draws=200, advi_steps=3000, progressbar=False)
    post = model.posterior
    assert post.sizes["draw"] == 200
    means = np.sort(post["means"].mean(("chain", "draw")).values[:, 1])
    np.testing.assert_allclose(means, np.sort(model.em_.means_[:, 1]), rtol=0.03)


# --------------------------------------------------------------- prior predictive
def test_prior_predictive_counts_nonempty_components(faithful):
    flat = GaussianMixtureBayes(6, covariance_type="spherical", random_state=0)
    sparse = GaussianMixtureBayes(6, covariance_type="spherical",
                                  priors={"weights": Dirichlet(0.05)}, random_state=0)
    counts = {}
    for name, model in (("flat", flat), ("sparse", sparse)):
        model.fit(faithful, method="map", progressbar=False)
        tree = model.sample_prior_predictive(draws=300, random_state=seed("prior_predictive"))
        assert tree["prior_predictive"]["obs"].shape[-2:] == (272, 2)
        counts[name] = tree["prior"]["n_nonempty_components"].values.ravel()
    assert counts["flat"].min() >= 1 and counts["flat"].max() <= 6
    # Dirichlet(1) with 272 points: almost always all 6 used; Dirichlet(0.05): few
    assert np.mean(counts["flat"]) > 5.5
    assert np.mean(counts["sparse"]) < 3


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "gibbs"}, r"method must be one of \['nuts', 'map', 'advi'\], got 'gibbs'"),
        ({"nuts_sampler": "stan"}, r"nuts_sampler must be one of \['auto', 'pymc', 'nutpie'\]"),
        ({"init": "kmeans"}, r"init must be one of \['em', 'default'\]"),
        ({"draws": 0}, "draws must be an integer >= 1"),
    ],
)
def test_bad_fit_arguments(faithful, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureBayes(2).fit(faithful, **kwargs)


def test_auto_sampler_is_nutpie_when_installed(monkeypatch):
    import importlib.util

    from bayesgmm.bayes import resolve_nuts_sampler

    installed = importlib.util.find_spec("nutpie") is not None
    assert resolve_nuts_sampler("auto") == ("nutpie" if installed else "pymc")
    assert resolve_nuts_sampler("pymc") == "pymc"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # nutpie missing
    assert resolve_nuts_sampler("auto") == "pymc"
    with pytest.raises(ValueError, match=r"needs the nutpie package: pip install nutpie"):
        resolve_nuts_sampler("nutpie")


def test_bad_priors_fail_before_compiling(faithful, monkeypatch):
    from bayesgmm import bayes

    def no_build(*args, **kwargs):
        raise AssertionError("the model must not be built")

    monkeypatch.setattr(bayes, "build_model_from_spec", no_build)
    with pytest.raises(ValueError, match=r"Dirichlet alpha has shape \(3,\)"):
        GaussianMixtureBayes(2, priors={"weights": Dirichlet([1, 1, 1])}).fit(faithful)
    with pytest.raises(ValueError, match="Normal sigma must be positive"):
        GaussianMixtureBayes(2, priors={"means": Normal(sigma=-1.0)}).fit(faithful)
    X = faithful.to_numpy().copy()
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"1 inf \(column 0: 1\)"):
        GaussianMixtureBayes(2).fit(X)


def test_diagnose_needs_samples(faithful):
    model = GaussianMixtureBayes(2, covariance_type="diag", random_state=0)
    model.fit(faithful, method="map", progressbar=False)
    with pytest.raises(ValueError, match="diagnostics need posterior samples"):
        model.diagnose()


# ------------------------------------------------- reading changes nothing
@pytest.fixture(scope="module")
def small_fit(faithful):
    """A fresh short NUTS fit (its summary's mode not yet found)."""
    return GaussianMixtureBayes(2, covariance_type="diag", random_state=seed("small_fit")).fit(
        faithful, draws=60, tune=100, chains=2, progressbar=False)


def _state(model):
    """Every attribute (the objects themselves) but the private cache, and the result's
    groups and attributes."""
    return ({k: v for k, v in vars(model).items() if k != "_cache"},
            sorted(model.idata_.children), dict(model.idata_.attrs))


def _assert_unchanged(model, before):
    attributes, groups, attrs = before
    now, now_groups, now_attrs = _state(model)
    assert now.keys() == attributes.keys()
    assert [k for k, v in attributes.items() if now[k] is not v] == []
    assert now_groups == groups and now_attrs == attrs


def _read_everything(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        if "sample_stats" in model.idata_.children:
            model.diagnose()
    first = model.summary()
    pd.testing.assert_frame_equal(model.summary(), first)  # the mode is found once
    model.summary(hdi_prob=0.5)
    model.membership(X[:5])
    model.predict(X[:5])
    model.predict_proba(X[:5])
    model.sample_prior_predictive(draws=5, random_state=0)
    return model.sample_posterior_predictive(random_state=0), first


def test_reading_methods_change_no_attribute(small_fit, faithful):
    model = small_fit
    before, posterior = _state(model), model.posterior.copy(deep=True)
    tree, table = _read_everything(model, faithful)
    _assert_unchanged(model, before)
    xr.testing.assert_identical(model.posterior, posterior)
    assert model.map_ is None  # the summary's mode is not stored as map_
    assert np.isfinite(table["map"]).all()
    # the posterior predictive is a new tree: idata_'s groups and the replicates
    assert tree is not model.idata_ and "posterior_predictive" not in model.idata_.children
    assert set(tree.children) == set(model.idata_.children) | {"posterior_predictive"}
    assert tree["posterior_predictive"]["obs"].shape == (2, 60, len(faithful), 2)
    xr.testing.assert_identical(tree["posterior"].to_dataset(), model.posterior)


def test_reading_a_loaded_fit_changes_no_attribute(small_fit, faithful, tmp_path):
    loaded = GaussianMixtureBayes.load(small_fit.save(tmp_path / "fit.nc"))
    before = _state(loaded)
    _, table = _read_everything(loaded, faithful)
    _assert_unchanged(loaded, before)
    assert loaded.model_ is None and loaded.map_ is None  # rebuilt, used, not stored
    np.testing.assert_allclose(table["map"], small_fit.summary()["map"], rtol=1e-6)


def test_a_map_fit_summary_shows_its_own_mode(faithful):
    model = GaussianMixtureBayes(2, covariance_type="diag", random_state=0).fit(
        faithful, method="map", progressbar=False)
    assert model.map_ is not None
    table = model.summary()
    np.testing.assert_allclose(table["map"], table["mean"])
    assert list(table.columns) == ["mean", "map", "em"]


# --------------------------------------------------------------- back ends
def test_every_back_end_has_one_signature_and_one_result(faithful):
    import inspect

    from bayesgmm import _inference, bayes
    from bayesgmm._pytensor import without_c_compiler
    from bayesgmm._start import _start_points
    from bayesgmm.model import as_array_and_names, build_model_from_spec, make_spec

    assert bayes.METHODS == tuple(_inference.BACKENDS) == ("nuts", "map", "advi")
    X, names = as_array_and_names(faithful)
    spec = make_spec(X, 2, "diag", None, None, names)
    model = build_model_from_spec(X, spec)
    em = GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(X)
    starts = _start_points(em, spec, 2, np.random.default_rng(0))
    settings = _inference.Settings(draws=30, tune=50, chains=2, advi_steps=300,
                                   target_accept=0.99, seed=seed("back ends"))
    expected, results = {"nuts": (2, 30), "map": (1, 1), "advi": (1, 30)}, {}
    for method, backend in _inference.BACKENDS.items():
        assert list(inspect.signature(backend).parameters) == ["model", "starts", "settings"]
        with without_c_compiler():
            result = results[method] = backend(model, starts, settings)
        assert isinstance(result, _inference.Inference)
        post = result.posterior
        assert (post.sizes["chain"], post.sizes["draw"]) == expected[method], method
        assert post["means"].dims == ("chain", "draw", "component", "feature")
        assert set(post.data_vars) <= set(_inference.POSTERIOR_VARS)
        assert {"weights", "means", "sigmas", "covariances"} <= set(post.data_vars)
        assert (result.sample_stats is not None) == (method == "nuts")
        assert isinstance(result.attrs, dict)
    assert results["map"].attrs == results["advi"].attrs == {}
    assert results["nuts"].attrs == {"target_accept": 0.99, "retry": None}  # 0.99: no retry


# --------------------------------------------------------- full recovery (slow)
@pytest.mark.slow
def test_recovery_with_converged_relabelled_chains():
    X, _ = simulated(n=600, seed=11)
    model = GaussianMixtureBayes(3, random_state=seed("recovery"))
    model.fit(X, draws=1000, tune=1000, chains=4, progressbar=False)
    table = model.diagnose(warn=False)
    assert table["r_hat"].max() <= 1.01
    assert table.attrs["divergences"] == 0
    import arviz as az

    order = np.argsort(model.em_.means_[:, 0])
    hdi = az.hdi(model.posterior, prob=0.94)
    inside = {
        "weights": (hdi["weights"].values[order], TRUE_WEIGHTS),
        "means": (hdi["means"].values[order], TRUE_MEANS),
        "covariances": (hdi["covariances"].values[order], TRUE_COVS),
    }
    for name, (interval, truth) in inside.items():
        lower, upper = interval[..., 0], interval[..., 1]
        assert np.mean((lower <= truth) & (truth <= upper)) >= 0.85, name


@pytest.mark.parametrize("features", [["eruptions", "waiting"], ["waiting"]])
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_every_structure_round_trips_through_a_file(faithful, tmp_path, cov_type, features):
    """Each structure's posterior variables have their own dims; load checks them all."""
    X = faithful[features]
    model = GaussianMixtureBayes(2, covariance_type=cov_type,
                                 random_state=seed("round_trip", cov_type)).fit(
        X, method="map", progressbar=False)
    model.save(tmp_path / "fit.nc")
    loaded = GaussianMixtureBayes.load(tmp_path / "fit.nc")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-12)
    assert loaded.start_ == model.start_ == {"method": "em"}
    np.testing.assert_allclose(loaded.em_.precisions_, model.em_.precisions_, rtol=1e-10)


def test_an_em_fitted_on_a_dataframe_is_a_valid_start(faithful):
    em = GaussianMixtureEM(2, random_state=0).fit(faithful)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's feature-name warning included
        # ADVI's draws are relabelled against the EM memberships
        model = GaussianMixtureBayes(2, random_state=seed("given_em")).fit(
            faithful, method="advi", draws=20, advi_steps=200, em=em, progressbar=False)
    assert model.start_ == {"method": "given em"}
    assert model.relabel_["method"] == "stephens-kl"


def test_order_by_keeps_every_em_attribute_in_step(faithful):
    model = GaussianMixtureBayes(2, covariance_type="full", order_by="waiting",
                                 random_state=seed("order_by_em")).fit(
        faithful, method="map", progressbar=False)
    em = model.em_
    assert em.means_[0, 1] < em.means_[1, 1]
    np.testing.assert_allclose(em.precisions_, np.linalg.inv(em.covariances_), rtol=1e-10)
