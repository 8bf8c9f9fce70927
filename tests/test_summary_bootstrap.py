"""GaussianMixtureBayes.summary(bootstrap=...): the bootstrap of the EM fit beside the
posterior.

The bootstrap columns are checked against numbers computed here with numpy from the
result's replicates (sd = sqrt of the diagonal, correlation = cov_ij / (sd_i sd_j),
quantiles and std(ddof=1) of the successful replicates; the jackknife's standard error
and normal interval), for the percentile bootstrap and the jackknife, full and spherical
covariances, a NUTS and a MAP fit; then the refusals, the matching of components in
another order, and that reading changes nothing.
"""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets
from bayesgmm.bootstrap import bootstrap

from .conftest import seed

MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 4.0]])
COVS = np.array([np.eye(2) * 0.6] * 3)


@pytest.fixture(scope="module")
def data():
    X, _ = datasets.simulate_mixture(90, [0.4, 0.3, 0.3], MEANS, COVS, random_state=7)
    return X


@pytest.fixture(scope="module")
def map_fit(data):
    return GaussianMixtureBayes(3, random_state=0).fit(data, method="map", progressbar=False)


def _boot(em, X, **options):
    options = {"n_boot": 49, "random_state": seed("summary_bootstrap"), "n_jobs": 1,
               "progressbar": False, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed or unconverged replicate warns
        return bootstrap(em, X, **options)


@pytest.fixture(scope="module")
def boot(map_fit, data):
    return _boot(map_fit.em_, data)


def _replicate_values(ds, features):
    """Per summary row, the values of ``ds`` (weights, means, covariances with a leading
    axis), by numpy."""
    weights = np.asarray(ds["weights"].values)
    means = np.asarray(ds["means"].values)
    cov = np.asarray(ds["covariances"].values)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    rows = {}
    for k in range(weights.shape[-1]):
        rows[f"weights[{k}]"] = weights[..., k]
        for j, f in enumerate(features):
            rows[f"means[{k}, {f}]"] = means[..., k, j]
            rows[f"sigmas[{k}, {f}]"] = sd[..., k, j]
        for i in range(len(features)):
            for j in range(i + 1, len(features)):
                rows[f"correlations[{features[i]}:{features[j]}, {k}]"] = (
                    cov[..., k, i, j] / (sd[..., k, i] * sd[..., k, j]))
    return rows


def expected_columns(result, level, features=("x0", "x1")):
    """boot_se and the interval of every row, computed here from the replicates."""
    ok = result.replicates["error"].values == ""
    replicates = _replicate_values(result.replicates.isel(replicate=ok), list(features))
    estimates = _replicate_values(result.estimates, list(features))
    tail = (1 - level) / 2
    rows = {}
    for label, values in replicates.items():
        if result.kind == "jackknife":
            m = len(values)
            se = np.sqrt((m - 1) / m * np.sum((values - values.mean()) ** 2))
            half = norm.ppf(1 - tail) * se
            rows[label] = [se, estimates[label] - half, estimates[label] + half]
        else:
            rows[label] = [np.std(values, ddof=1), np.quantile(values, tail),
                           np.quantile(values, 1 - tail)]
    percent = int(level * 100)
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["boot_se", f"boot{percent}_lb", f"boot{percent}_ub"])


def _assert_columns(table, expected):
    got = table[expected.columns]
    assert not got.isna().any().any()
    assert set(got.index) == set(expected.index)
    pd.testing.assert_frame_equal(got.loc[expected.index], expected, rtol=1e-10, atol=1e-12,
                                  check_names=False)


# -------------------------------------------------------- the numbers themselves
def test_bootstrap_columns_are_the_replicates_quantiles_and_sd(map_fit, boot):
    table = map_fit.summary(bootstrap=boot)
    assert list(table.columns) == ["mean", "map", "em", "boot_se", "boot94_lb", "boot94_ub"]
    _assert_columns(table, expected_columns(boot, 0.94))
    assert table.attrs["bootstrap_kind"] == "nonparametric"
    assert table.attrs["bootstrap_n_boot"] == 49
    # the level follows hdi_prob
    table = map_fit.summary(hdi_prob=0.8, bootstrap=boot)
    _assert_columns(table, expected_columns(boot, 0.8))
    # weights and means are the BootstrapResult's own statistics
    intervals, se = boot.intervals(0.8), boot.standard_errors()
    for k in range(3):
        row = table.loc[f"weights[{k}]"]
        assert row["boot_se"] == pytest.approx(float(se["weights"][k]), rel=1e-12)
        assert row["boot80_lb"] == pytest.approx(
            float(intervals["weights"].sel(bound="lower")[k]), rel=1e-12)
        assert table.loc[f"means[{k}, x1]", "boot80_ub"] == pytest.approx(
            float(intervals["means"].sel(bound="upper", feature="x1")[k]), rel=1e-12)


def _with_failures(result, failed):
    """``result`` with the replicates ``failed`` made failures (NaN, with an error)."""
    replicates = result.replicates.copy(deep=True)
    for name in ("weights", "means", "covariances"):
        replicates[name][{"replicate": failed}] = np.nan
    errors = replicates["error"].values.copy()
    errors[failed] = "CollapsedComponentError: a component collapsed"
    replicates["error"] = ("replicate", errors)
    return dataclasses.replace(result, replicates=replicates)


def test_failed_replicates_are_left_out(map_fit, boot, data):
    broken = _with_failures(boot, [0, 5, 17])
    assert broken.n_failed == 3
    table = map_fit.summary(bootstrap=broken)
    expected = expected_columns(broken, 0.94)
    _assert_columns(table, expected)
    assert table.attrs["bootstrap_n_failed"] == 3
    # the 46 that are left give other numbers than the 49
    assert not np.allclose(expected, expected_columns(boot, 0.94))
    # the jackknife's standard error counts only the m successful fits
    jack = _with_failures(_boot(map_fit.em_, data, kind="jackknife"), [3, 4])
    _assert_columns(map_fit.summary(bootstrap=jack), expected_columns(jack, 0.94))


def test_jackknife_gives_normal_intervals_from_its_standard_error(map_fit, data):
    jack = _boot(map_fit.em_, data, kind="jackknife")
    table = map_fit.summary(hdi_prob=0.9, bootstrap=jack)
    _assert_columns(table, expected_columns(jack, 0.9))
    # centred at the EM estimate, and for weights and means the BootstrapResult's own
    centre = (table["boot90_lb"] + table["boot90_ub"]) / 2
    np.testing.assert_allclose(centre, table["em"], rtol=1e-10, atol=1e-12)
    se = jack.standard_errors()
    np.testing.assert_allclose(table.loc[[f"weights[{k}]" for k in range(3)], "boot_se"],
                               se["weights"].values, rtol=1e-10)


def test_a_nuts_fit_has_the_bootstrap_beside_its_hdi(data):
    fit = GaussianMixtureBayes(3, random_state=seed("summary_bootstrap.nuts")).fit(
        data, draws=60, tune=60, chains=2, progressbar=False)
    result = _boot(fit.em_, data)
    table = fit.summary(hdi_prob=0.9, bootstrap=result)
    assert list(table.columns) == ["mean", "sd", "hdi90_lb", "hdi90_ub", "map", "em",
                                   "boot_se", "boot90_lb", "boot90_ub"]
    _assert_columns(table, expected_columns(result, 0.9))
    # the rest of the table is the summary without the bootstrap
    pd.testing.assert_frame_equal(table.iloc[:, :6], fit.summary(hdi_prob=0.9))


def test_spherical_sigmas_are_one_per_component():
    X, _ = datasets.simulate_mixture(60, [0.5, 0.5], MEANS[:2], COVS[:2], random_state=3)
    fit = GaussianMixtureBayes(2, covariance_type="spherical", random_state=0).fit(
        X, method="map", progressbar=False)
    result = _boot(fit.em_, X)
    table = fit.summary(bootstrap=result)
    assert not table.isna().any().any()  # the em column too
    assert "sigmas[1]" in table.index and "correlations[x0:x1, 0]" not in table.index
    ok = result.replicates["error"].values == ""
    sd = np.sqrt(result.replicates["covariances"].values[ok][:, :, 0, 0])
    for k in range(2):
        row = table.loc[f"sigmas[{k}]"]
        assert row["boot_se"] == pytest.approx(sd[:, k].std(ddof=1), rel=1e-10)
        assert row["boot94_lb"] == pytest.approx(np.quantile(sd[:, k], 0.03), rel=1e-10)
        assert row["boot94_ub"] == pytest.approx(np.quantile(sd[:, k], 0.97), rel=1e-10)
        assert row["em"] == pytest.approx(np.sqrt(fit.em_.covariances_[k]), rel=1e-10)


# ------------------------------------------------------------- matching fits
def test_refuses_what_is_not_a_bootstrap_of_em_(map_fit, boot, data):
    for other in (boot.summary(), "boot", map_fit.em_):
        with pytest.raises(ValueError, match="must be a BootstrapResult.*bootstrap\\(fit.em_"):
            map_fit.summary(bootstrap=other)
    two = GaussianMixtureEM(2, random_state=0).fit(data)
    with pytest.raises(ValueError, match="2 components .* has 3 .*bootstrap\\(fit.em_, X\\)"):
        map_fit.summary(bootstrap=_boot(two, data, n_boot=5))
    one_feature = GaussianMixtureEM(3, random_state=0).fit(data[:, :1])
    with pytest.raises(ValueError, match="1 features.*bootstrap\\(fit.em_, X\\)"):
        map_fit.summary(bootstrap=_boot(one_feature, data[:, :1], n_boot=5))
    tied = GaussianMixtureEM(3, covariance_type="tied", random_state=0).fit(data)
    with pytest.raises(ValueError, match="'tied' fit.*'full'.*bootstrap\\(fit.em_, X\\)"):
        map_fit.summary(bootstrap=_boot(tied, data, n_boot=5))
    renamed = boot.estimates.assign_coords(feature=["a", "b"], feature2=["a", "b"])
    with pytest.raises(ValueError, match=r"features are \['a', 'b'\].*bootstrap\(fit.em_"):
        map_fit.summary(bootstrap=dataclasses.replace(boot, estimates=renamed))
    # another EM fit of the same data: close, but not em_
    moved = boot.estimates.copy(deep=True)
    moved["means"] = moved["means"] + 1e-6
    with pytest.raises(ValueError, match="not this fit's EM fit.*bootstrap\\(fit.em_, X\\)"):
        map_fit.summary(bootstrap=dataclasses.replace(boot, estimates=moved))
    loose = GaussianMixtureEM(3, tol=1e-2, max_iter=3, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loose.fit(data)
    with pytest.raises(ValueError, match="not this fit's EM fit"):
        map_fit.summary(bootstrap=_boot(loose, data, n_boot=5))


def test_components_in_another_order_are_matched(map_fit, boot):
    order = [2, 0, 1]

    def permuted(ds):
        return ds.isel(component=order).assign_coords(component=[0, 1, 2])

    shuffled = dataclasses.replace(boot, estimates=permuted(boot.estimates),
                                   replicates=permuted(boot.replicates))
    pd.testing.assert_frame_equal(map_fit.summary(bootstrap=shuffled),
                                  map_fit.summary(bootstrap=boot))


def test_order_by_sorts_em_and_the_users_em_is_matched_to_it(data):
    # an EM fit whose components are not in the order of their x1 means
    em = GaussianMixtureEM(3, means_init=MEANS[[2, 0, 1]], tol=1e-8, random_state=0).fit(data)
    assert not np.all(np.diff(em.means_[:, 1]) > 0)
    fit = GaussianMixtureBayes(3, order_by="x1", random_state=0).fit(
        data, method="map", em=em, progressbar=False)
    assert np.all(np.diff(fit.em_.means_[:, 1]) > 0)  # em_ is sorted, as the posterior
    assert np.all(np.diff(fit.posterior["means"].values[0, 0, :, 1]) > 0)
    users, own = (_boot(e, data, kind="jackknife") for e in (em, fit.em_))
    table = fit.summary(bootstrap=users)
    # jackknife intervals are centred at the estimate: mislabelled rows would be
    # centred at another component's
    centre = (table["boot94_lb"] + table["boot94_ub"]) / 2
    np.testing.assert_allclose(centre, table["em"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(table["boot_se"], fit.summary(bootstrap=own)["boot_se"],
                               rtol=1e-5)


def test_feature_names_of_a_data_frame_fit(data):
    frame = pd.DataFrame(data, columns=["a", "b"])
    fit = GaussianMixtureBayes(3, random_state=0).fit(frame, method="map", progressbar=False)
    result = _boot(fit.em_, frame)  # em_ was fitted on the array: features x0, x1
    assert list(result.estimates["feature"].values) == ["x0", "x1"]
    table = fit.summary(bootstrap=result)
    _assert_columns(table, expected_columns(result, 0.94, features=("a", "b")))
    named = dataclasses.replace(result, **{
        name: getattr(result, name).assign_coords(feature=["a", "b"], feature2=["a", "b"])
        for name in ("estimates", "replicates")})
    pd.testing.assert_frame_equal(fit.summary(bootstrap=named), table)


# ---------------------------------------------------------- reading is reading
def test_summary_with_a_bootstrap_changes_nothing(map_fit, boot, tmp_path):
    attributes = dict(vars(map_fit))
    replicates, estimates = boot.replicates.copy(deep=True), boot.estimates.copy(deep=True)
    posterior = map_fit.posterior.copy(deep=True)
    first = map_fit.summary(bootstrap=boot)
    pd.testing.assert_frame_equal(map_fit.summary(bootstrap=boot), first)
    assert {k: v for k, v in vars(map_fit).items() if k != "_cache"}.keys() \
        == {k for k in attributes if k != "_cache"}
    assert all(vars(map_fit)[k] is v for k, v in attributes.items() if k != "_cache")
    xr.testing.assert_identical(boot.replicates, replicates)
    xr.testing.assert_identical(boot.estimates, estimates)
    xr.testing.assert_identical(map_fit.posterior, posterior)
    assert "boot_se" not in map_fit.summary().columns
    # a loaded fit's em_ is the same fit
    loaded = GaussianMixtureBayes.load(map_fit.save(tmp_path / "fit.nc"))
    table = loaded.summary(bootstrap=boot)
    pd.testing.assert_frame_equal(table[first.columns[3:]], first[first.columns[3:]])
