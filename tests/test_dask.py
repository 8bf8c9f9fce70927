"""EM on Dask arrays (bayesgmm._dask) against the in-memory fit, on a real scheduler.

Every test runs on a ``dask.distributed.LocalCluster`` of two worker processes: the
chunk statistics are computed in the workers and reduced there, as on a cluster.
"""

import subprocess
import sys
import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import COVARIANCE_STRUCTURES, GaussianMixtureEM
from bayesgmm import _dask
from bayesgmm._gaussian import prior_covariance_names
from bayesgmm.priors import ConjugatePrior

# uneven row chunks of the 600 rows of conftest.RandomData
ROW_CHUNKS = (150, 37, 263, 150)
RTOL = 1e-10


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data(random_data, client):
    """The in-memory data, and the same on the cluster in uneven row chunks."""
    X = random_data.X["full"]
    return X, client.persist(da.from_array(X, chunks=(ROW_CHUNKS, -1)))


@pytest.fixture(scope="module")
def missing_data(random_data, client):
    """The data with about 15% of the entries missing (never a whole row), in memory
    and on the cluster; chunk 1 (rows 150 to 186) is kept complete."""
    X = random_data.X["full"].copy()
    rng = np.random.default_rng(1)
    hidden = rng.random(X.shape) < 0.15
    hidden[hidden.all(axis=1), 0] = False
    hidden[150:187] = False
    X[hidden] = np.nan
    return X, client.persist(da.from_array(X, chunks=(ROW_CHUNKS, -1)))


def n_features_of(name):
    return 1 if name in ("E", "V") else 2


def fixed_start_pair(X, Xd, covariance_type, **options):
    """In-memory and Dask fits from one start (a two-iteration fit's parameters), with
    tol=0 so both run exactly max_iter iterations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=2,
                                  random_state=0).fit(X)
        kwargs = dict(covariance_type=covariance_type, max_iter=8, tol=0,
                      weights_init=start.weights_, means_init=start.means_,
                      precisions_init=start.precisions_, **options)
        return GaussianMixtureEM(3, **kwargs).fit(X), GaussianMixtureEM(3, **kwargs).fit(Xd)


def assert_same_fit(memory, lazy):
    assert lazy.n_iter_ == memory.n_iter_
    assert lazy.converged_ == memory.converged_
    np.testing.assert_allclose(lazy.log_likelihood_trace_, memory.log_likelihood_trace_,
                               rtol=RTOL)
    assert lazy.lower_bound_ == pytest.approx(memory.lower_bound_, rel=RTOL)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        expected = getattr(memory, name)
        # relative to the parameter's scale, so that near-zero entries do not dominate
        np.testing.assert_allclose(getattr(lazy, name), expected,
                                   atol=RTOL * np.abs(expected).max(), rtol=0)


def test_computations_run_on_the_cluster(client):
    assert dask.base.get_scheduler() == client.get
    assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.parametrize("covariance_type", list(COVARIANCE_STRUCTURES))
def test_fit_equals_in_memory_fit_from_the_same_start(data, covariance_type):
    X, Xd = data
    D = n_features_of(covariance_type)
    memory, lazy = fixed_start_pair(X[:, :D], Xd[:, :D], covariance_type)
    assert_same_fit(memory, lazy)


@pytest.mark.parametrize("covariance_type",
                         [name for name in COVARIANCE_STRUCTURES if n_features_of(name) == 2])
def test_fit_with_missing_entries_equals_in_memory(missing_data, covariance_type):
    """Chunks with NaN run the in-memory missing-data engine, complete chunks the block
    engine; the sums are the in-memory fit's."""
    X, Xd = missing_data
    memory, lazy = fixed_start_pair(X, Xd, covariance_type)
    assert_same_fit(memory, lazy)
    assert lazy.n_missing_ == memory.n_missing_ == int(np.isnan(X).sum())


@pytest.mark.parametrize("covariance_type", prior_covariance_names())
def test_map_em_equals_in_memory(data, covariance_type):
    """The prior's data-scaled defaults from the one pass's moments, as in memory."""
    X, Xd = data
    D = n_features_of(covariance_type)
    memory, lazy = fixed_start_pair(X[:, :D], Xd[:, :D], covariance_type,
                                    prior=ConjugatePrior())
    assert_same_fit(memory, lazy)
    assert lazy.prior_.scale == pytest.approx(memory.prior_.scale, rel=RTOL)
    np.testing.assert_allclose(lazy.prior_.mean, memory.prior_.mean, rtol=RTOL)
    assert lazy.log_prior_ == pytest.approx(memory.log_prior_, rel=1e-9, nan_ok=True)


def test_missing_entries_with_prior_standardize_and_weights_equal_in_memory(missing_data):
    X, Xd = missing_data
    weights = np.random.default_rng(2).integers(0, 4, len(X)).astype(float)
    options = dict(covariance_type="VEV", standardize=True, prior=ConjugatePrior(),
                   random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixtureEM(3, max_iter=2, **options).fit(X, sample_weight=weights)
        init = dict(weights_init=start.weights_, means_init=start.means_,
                    precisions_init=start.precisions_, max_iter=8, tol=0, **options)
        memory = GaussianMixtureEM(3, **init).fit(X, sample_weight=weights)
        lazy = GaussianMixtureEM(3, **init).fit(Xd, sample_weight=da.from_array(weights,
                                                                                chunks=100))
    assert_same_fit(memory, lazy)
    assert lazy.bic(Xd, sample_weight=weights) == pytest.approx(
        memory.bic(X, sample_weight=weights), rel=RTOL)


def test_fixed_parameters_equal_in_memory(missing_data):
    X, Xd = missing_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # fix_start_pair's start: component 2's mean there, rounded
        mean = GaussianMixtureEM(3, covariance_type="VVV", max_iter=2,
                                 random_state=0).fit(X).means_[2].round(1)
    fixed = {"weights": [0.2, np.nan, np.nan], "means": [[np.nan] * 2, [np.nan] * 2, mean]}
    memory, lazy = fixed_start_pair(X, Xd, "VVV", fixed=fixed)
    assert_same_fit(memory, lazy)
    assert lazy.weights_[0] == 0.2
    np.testing.assert_array_equal(lazy.means_[2], mean)


def test_default_start_with_missing_entries(missing_data, monkeypatch):
    """The start on a mean-imputed subsample, screened by the missing-data EM on it,
    reaches the in-memory optimum."""
    X, Xd = missing_data
    monkeypatch.setattr(_dask, "START_ROWS", 400)
    memory = GaussianMixtureEM(3, tol=1e-10, random_state=0).fit(X)
    for init_params in ("auto", "kmeans"):
        lazy = GaussianMixtureEM(3, tol=1e-10, random_state=0,
                                 init_params=init_params).fit(Xd)
        assert lazy.lower_bound_ == pytest.approx(memory.lower_bound_, rel=1e-8)
        # the same optimum (the means' spread is 24; tol=1e-10 stops both near it)
        np.testing.assert_allclose(np.sort(lazy.means_[:, 0]), np.sort(memory.means_[:, 0]),
                                   rtol=0, atol=1e-5)


def test_icl_and_impute_equal_in_memory(missing_data):
    X, Xd = missing_data
    memory, lazy = fixed_start_pair(X, Xd, "VVV")
    weights = np.random.default_rng(3).integers(0, 3, len(X)).astype(float)
    assert lazy.icl(Xd) == pytest.approx(memory.icl(X), rel=RTOL)
    assert lazy.icl(Xd, sample_weight=weights) == pytest.approx(
        memory.icl(X, sample_weight=weights), rel=RTOL)
    filled = lazy.impute(Xd)
    assert isinstance(filled, da.Array) and filled.chunks[0] == ROW_CHUNKS
    np.testing.assert_allclose(filled.compute(), memory.impute(X), rtol=1e-12)
    filled, covariance = lazy.impute(Xd, return_covariance=True)
    assert isinstance(covariance, da.Array) and covariance.chunks[0] == ROW_CHUNKS
    expected_filled, expected_covariance = memory.impute(X, return_covariance=True)
    np.testing.assert_allclose(filled.compute(), expected_filled, rtol=1e-12)
    np.testing.assert_allclose(covariance.compute(), expected_covariance, rtol=1e-10,
                               atol=1e-12 * np.abs(expected_covariance).max())


def test_standardize_and_sample_weight_equal_in_memory(data):
    X, Xd = data
    weights = np.random.default_rng(0).integers(0, 4, len(X)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        memory = GaussianMixtureEM(3, covariance_type="VVE", max_iter=8, tol=0,
                                   standardize=True, random_state=0)
        lazy = GaussianMixtureEM(3, covariance_type="VVE", max_iter=8, tol=0,
                                 standardize=True, random_state=0)
        start = memory.set_params(max_iter=2).fit(X, sample_weight=weights)
        init = dict(weights_init=start.weights_, means_init=start.means_,
                    precisions_init=start.precisions_, max_iter=8)
        memory.set_params(**init).fit(X, sample_weight=weights)
        lazy.set_params(**init).fit(Xd, sample_weight=da.from_array(weights, chunks=100))
    assert_same_fit(memory, lazy)
    assert lazy.bic(Xd, sample_weight=weights) == pytest.approx(
        memory.bic(X, sample_weight=weights), rel=RTOL)
    assert lazy.score(Xd, sample_weight=weights) == pytest.approx(
        memory.score(X, sample_weight=weights), rel=RTOL)


def test_predictions_are_lazy_chunked_and_equal(data):
    X, Xd = data
    memory, lazy = fixed_start_pair(X, Xd, "full")
    for method in ("score_samples", "predict_proba", "predict"):
        result = getattr(lazy, method)(Xd)
        assert isinstance(result, da.Array), method
        assert result.chunks[0] == ROW_CHUNKS
        expected = getattr(memory, method)(X)
        if method == "predict":
            np.testing.assert_array_equal(result.compute(), expected)
        else:
            np.testing.assert_allclose(result.compute(), expected, rtol=1e-9, atol=1e-12)
    for criterion in ("score", "bic", "aic"):
        value = getattr(lazy, criterion)(Xd)
        assert isinstance(value, float)
        assert value == pytest.approx(getattr(memory, criterion)(X), rel=RTOL)
    with pytest.warns(ConvergenceWarning):  # tol=0: as in memory
        labels = GaussianMixtureEM(**lazy.get_params()).fit_predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), memory.predict(X))


def test_default_start_on_a_subsample(data, monkeypatch):
    """The start on a subsample of the rows (here 300 of 600) reaches the in-memory
    optimum of these well-separated clusters."""
    X, Xd = data
    monkeypatch.setattr(_dask, "START_ROWS", 300)
    memory = GaussianMixtureEM(3, tol=1e-10, random_state=0).fit(X)
    for init_params in ("auto", "kmeans", "hierarchical"):
        lazy = GaussianMixtureEM(3, tol=1e-10, random_state=0,
                                 init_params=init_params).fit(Xd)
        order = np.argsort(lazy.means_[:, 0])
        np.testing.assert_allclose(lazy.means_[order], memory.means_[np.argsort(
            memory.means_[:, 0])], rtol=1e-6)
        assert lazy.lower_bound_ == pytest.approx(memory.lower_bound_, rel=1e-8)


def test_xarray_backed_by_dask(data):
    X, Xd = data
    names = ["length", "width"]
    lazy_array = xr.DataArray(Xd, dims=("sample", "feature"), coords={"feature": names})
    memory, lazy = fixed_start_pair(lazy_array.compute(), lazy_array, "diag")
    assert_same_fit(memory, lazy)
    assert list(lazy.feature_names_in_) == names
    # a DataArray with the features first is oriented by its dimension names
    probabilities = lazy.predict_proba(lazy_array.transpose())
    assert isinstance(probabilities, da.Array)
    np.testing.assert_allclose(probabilities.compute(),
                               memory.predict_proba(lazy_array.compute()), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="feature names should match"):
        lazy.score_samples(lazy_array.assign_coords(feature=["a", "b"]))


def test_missing_entries_in_predictions_are_marginalised_as_in_memory(data):
    X, Xd = data
    memory, lazy = fixed_start_pair(X, Xd, "full")
    X_missing = X.copy()
    X_missing[200, 1] = np.nan
    Xd_missing = da.from_array(X_missing, chunks=(ROW_CHUNKS, -1))
    np.testing.assert_allclose(lazy.score_samples(Xd_missing).compute(),
                               memory.score_samples(X_missing), rtol=1e-9)
    refuse = GaussianMixtureEM(3, missing="raise", max_iter=3, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refuse.fit(Xd)
    with pytest.raises(ValueError, match=r"1 NaN in chunk 2 \(rows 187 to 449\); "
                                         "missing='raise'"):
        refuse.predict(Xd_missing).compute()


def test_bad_input(data):
    X, Xd = data
    model = GaussianMixtureEM(3, random_state=0)
    with pytest.raises(ValueError, match=r"chunks split the features .*rechunk\(\{1: -1\}\)"):
        model.fit(da.from_array(X, chunks=(100, 1)))
    X_nan = X.copy()
    X_nan[[200, 201], 0] = np.nan
    X_nan[500, 1] = np.nan
    with pytest.raises(ValueError, match=r"has 3 NaN, the first 2 in chunk 2 \(rows 187 to "
                                         r"449\); missing='raise' refuses"):
        GaussianMixtureEM(3, missing="raise").fit(da.from_array(X_nan, chunks=(ROW_CHUNKS,
                                                                               -1)))
    X_nan[300] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) whose entries are all NaN in chunk 2 "
                                         r"\(rows 187 to 449\)"):
        model.fit(da.from_array(X_nan, chunks=(ROW_CHUNKS, -1)))
    X_inf = X.copy()
    X_inf[599, 1] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite values in chunk 3 \(rows 450 to 599\)"):
        model.fit(da.from_array(X_inf, chunks=(ROW_CHUNKS, -1)))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        model.fit(Xd[Xd[:, 0] > 0])
    with pytest.raises(ValueError, match="negative or non-finite weight in chunk 0"):
        model.fit(Xd, sample_weight=-da.ones(len(X), chunks=100))
    with pytest.raises(ValueError, match="sample_weight has 600 negative values"):
        model.fit(Xd, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="dtype complex128"):
        model.fit(Xd.astype(complex))
    fitted = GaussianMixtureEM(3, max_iter=3, tol=1e-3, random_state=0).fit(Xd)
    with pytest.raises(ValueError, match="X has 1 features, but GaussianMixtureEM is "
                                         "expecting 2"):
        fitted.predict(Xd[:, :1])


def test_importing_bayesgmm_does_not_import_dask():
    code = "import sys, bayesgmm; assert 'dask' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ studies: compare
def test_distributed_compare_equals_the_sequential_table(client):
    from bayesgmm import compare, datasets

    X = datasets.load_faithful()
    options = dict(n_components=[1, 2, 3], covariance_types=["diag", "VEV", "EII"],
                   methods=("em",), random_state=3, progressbar=False)
    sequential = compare(X, **options).table
    distributed = compare(X, client=client, **options)
    pd.testing.assert_frame_equal(distributed.table, sequential)
    em = distributed.models[2, "diag"]["em"]
    assert em.bic(X) == sequential.set_index(["n_components", "covariance_type"]).loc[
        (2, "diag"), "bic"]


def test_a_failed_task_is_a_row_with_its_error(client):
    from bayesgmm.compare import _distributed

    def cell(k, cov, seed, X, weights, advance=None):
        if k == 2:
            raise RuntimeError("the worker's fit broke")
        return {"n_components": k, "covariance_type": cov, "bic": float(seed)}, {}

    cell.methods, cell.n_features = ("em",), 2
    counted = []
    cells = _distributed(client, cell, [(1, "diag"), (2, "diag")], [5, 6], np.zeros((3, 2)),
                         None, counted.append)
    assert cells[0] == ({"n_components": 1, "covariance_type": "diag", "bic": 5.0}, {})
    assert "task failed: RuntimeError: the worker's fit broke" in cells[1][0]["em_error"]
    assert len(counted) == 2


def test_a_closed_client_is_refused(client):
    from bayesgmm import compare, datasets

    closed = Client(client.scheduler.address)  # a second client of the same cluster
    closed.close()
    with pytest.raises(ValueError, match="client must be a running dask.distributed.Client"):
        compare(datasets.load_faithful(), [1], ["diag"], methods=("em",), client=closed,
                progressbar=False)


def test_distributed_compare_with_bayesian_fits(client):
    """Each cell's NUTS fit runs on a worker from the cell's seed: EM columns exactly the
    sequential ones, the Bayesian ones equal within Monte Carlo error (a worker's compiled
    functions may round differently from the client's, and NUTS paths then part)."""
    from bayesgmm import compare, datasets

    X = datasets.load_faithful()
    options = dict(n_components=[1, 2], covariance_types=["diag"], draws=300, tune=300,
                   chains=2, random_state=1, progressbar=False, max_loo_refits=0)
    sequential = compare(X, **options).table
    distributed = compare(X, client=client, **options)
    em_columns = ["n_parameters", "log_likelihood", "bic", "aic", "icl", "em_converged"]
    pd.testing.assert_frame_equal(distributed.table[em_columns], sequential[em_columns])
    # 600 draws: the Monte Carlo error of elpd_loo is a few hundredths of a nat here
    np.testing.assert_allclose(distributed.table["elpd_loo"], sequential["elpd_loo"], atol=0.5)
    assert distributed.models[2, "diag"]["bayes"].posterior.sizes["draw"] == 300


def test_bootstrap_on_the_cluster_equals_the_local_one(client):
    """The replicates as tasks of the client's workers: the same replicates as in this
    process (each replicate has its own seed), for the batched EM and the LRT."""
    from bayesgmm import bootstrap, bootstrap_lrt, datasets
    from bayesgmm.bootstrap import BootstrapWarning

    X = datasets.load_faithful()
    em = GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(X)
    local = bootstrap(em, X, n_boot=40, random_state=1, n_jobs=1, progressbar=False)
    remote = bootstrap(em, X, n_boot=40, random_state=1, client=client, progressbar=False)
    xr.testing.assert_identical(remote.replicates, local.replicates)
    options = dict(n_boot=4, random_state=2, progressbar=False)
    with warnings.catch_warnings():  # a replicate may fail: it fails alike in both
        warnings.simplefilter("ignore", BootstrapWarning)
        local = bootstrap_lrt(X, "diag", 2, n_jobs=1, **options)
        remote = bootstrap_lrt(X, "diag", 2, client=client, **options)
    pd.testing.assert_frame_equal(remote.table, local.table)
    closed = Client(client.scheduler.address)
    closed.close()
    with pytest.raises(ValueError, match="client must be a running"):
        bootstrap(em, X, n_boot=5, client=closed, progressbar=False)


def test_simulation_study_on_the_cluster_equals_the_local_one(client):
    from functools import partial

    from bayesgmm import datasets, simulation_study

    simulate = partial(datasets.simulate_mixture, 120, [0.5, 0.5], [[0, 0], [3, 3]],
                       [[1, 1], [1, 1]])
    options = dict(n_components=[1, 2], covariance_types=["diag"], methods=("em",),
                   random_state=5, progressbar=False)
    local = simulation_study(simulate, 4, **options)
    remote = simulation_study(simulate, 4, client=client, **options)
    pd.testing.assert_frame_equal(remote.table, local.table)
    pd.testing.assert_frame_equal(remote.choices, local.choices)


class _DiesOnce:
    """A simulator whose first call kills its worker process (a lost worker)."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, seed):
        import os

        from bayesgmm import datasets

        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return datasets.simulate_mixture(80, [0.5, 0.5], [[0, 0], [3, 3]], [[1, 1], [1, 1]],
                                         random_state=seed)


def test_a_lost_worker_is_survived(client, tmp_path):
    """A worker dying mid-study: its task runs again elsewhere and the table is whole."""
    from bayesgmm import simulation_study

    options = dict(n_components=[1, 2], covariance_types=["diag"], methods=("em",),
                   random_state=6, progressbar=False)
    remote = simulation_study(_DiesOnce(str(tmp_path / "died")), 3, client=client, **options)
    assert (tmp_path / "died").exists()
    local = simulation_study(_DiesOnce(str(tmp_path / "died")), 3, **options)
    pd.testing.assert_frame_equal(remote.table, local.table)
    assert (remote.choices["error"] == "").all()
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests
