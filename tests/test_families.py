"""mclust's fourteen covariance families (and E/V in one dimension) in the EM engine,
held against R mclust's tables in ``tests/data/mclust`` (written by its R script)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesgmm import GaussianMixtureEM
from bayesgmm._gaussian import COVARIANCE_STRUCTURES, MStepConvergenceWarning, \
    get_covariance_structure

DATA = Path(__file__).parent / "data" / "mclust"
REFERENCE = pd.read_csv(DATA / "mclust_reference.csv")
MULTIVARIATE = ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
                "VEV", "EVV", "VVV"]


def load(name):
    return pd.read_csv(DATA / f"{name}.csv").to_numpy(dtype=float)


def mclust_parameters(dataset, model, G):
    table = pd.read_csv(DATA / "mclust_parameters.csv")
    cell = table[(table.dataset == dataset) & (table.model == model) & (table.G == G)]
    if cell.empty:
        return None
    d = int(REFERENCE[(REFERENCE.dataset == dataset)].d.iloc[0])
    pro = cell[cell.parameter == "pro"].sort_values("component").value.to_numpy()
    means = np.zeros((G, d))
    for row in cell[cell.parameter == "mean"].itertuples():
        means[row.component - 1, int(row.i) - 1] = row.value
    sigma = np.zeros((G, d, d))
    for row in cell[cell.parameter == "sigma"].itertuples():
        sigma[row.component - 1, int(row.i) - 1, int(row.j) - 1] = row.value
    return pro, means, sigma


def test_every_mclust_name_is_registered():
    for name in MULTIVARIATE + ["E", "V"]:
        assert get_covariance_structure(name).mclust_name == name


@pytest.mark.parametrize("row", list(REFERENCE.itertuples()),
                         ids=lambda r: f"{r.dataset}-{r.model}-{r.G}")
def test_parameter_counts_equal_mclusts_df(row):
    structure = get_covariance_structure(row.model)
    assert structure.n_covariance_parameters(row.G, row.d) == row.nVarParams
    if row.status == "ok":
        assert structure.n_parameters(row.G, row.d) == row.df


def log_likelihood(X, weights, means, covariances):
    dens = sum(w * stats.multivariate_normal(m, c).pdf(X)
               for w, m, c in zip(weights, means, covariances))
    return float(np.sum(np.log(dens)))


FITTED = REFERENCE[REFERENCE.status == "ok"]


@pytest.mark.parametrize("dataset, model, G", list(FITTED[["dataset", "model", "G"]].itertuples(
    index=False, name=None)), ids=str)
def test_em_from_mclusts_optimum_stays_there(dataset, model, G):
    """Started at mclust's estimates, the family's E and M steps keep their log-likelihood
    (a wrong M-step moves away and loses likelihood) and stay within mclust's tolerance
    of its optimum, for every family, data set and G of mclust's table."""
    X = load(dataset)
    pro, means, sigma = mclust_parameters(dataset, model, G)
    reference = FITTED[(FITTED.dataset == dataset) & (FITTED.model == model)
                       & (FITTED.G == G)].loglik.item()
    start = log_likelihood(X, pro, means, sigma)
    # mclust reports the log-likelihood before its final M-step (tests/data/mclust/README)
    assert reference - 1e-9 * abs(reference) <= start <= reference + 1e-5 * (1 + abs(reference))
    structure = get_covariance_structure(model)
    em = GaussianMixtureEM(G, covariance_type=model, weights_init=pro, means_init=means,
                           precisions_init=structure.from_full(np.linalg.inv(sigma)),
                           tol=1e-9, max_iter=5000, reg_covar=0).fit(X)
    fitted = log_likelihood(X, em.weights_, em.means_,
                            structure.to_full(em.covariances_, G, X.shape[1]))
    assert fitted >= start - 1e-9 * abs(start)  # EM never loses likelihood
    assert fitted == pytest.approx(em.score(X) * len(X), rel=1e-9)
    full = structure.to_full(em.covariances_, G, X.shape[1])
    assert constraint_holds(model if len(model) == 3 else model + "II", full)
    # (mclust stops on a relative change of 1e-5; from there our EM may climb on to a
    # higher optimum: benchmarks/mclust_optima.py lists those cells)


def constraint_holds(model, covariances):
    """Volume, shape and orientation Equal / Variable / axes, read off the matrices."""
    values, vectors = np.linalg.eigh(covariances)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    volume = np.prod(values, axis=1) ** (1 / values.shape[1])
    shape = values / volume[:, None]
    v, s, o = model
    ok = True
    if v == "E":
        ok &= np.allclose(volume, volume[0], rtol=1e-6)
    if o == "I":
        ok &= np.allclose(covariances, np.eye(covariances.shape[1]) * np.diagonal(
            covariances, axis1=1, axis2=2)[:, None, :], atol=1e-12)
        if s == "I":
            ok &= np.allclose(shape, 1, rtol=1e-6)
        elif s == "E":
            diag = np.diagonal(covariances, axis1=1, axis2=2)
            ok &= np.allclose(diag / volume[:, None], diag[0] / volume[0], rtol=1e-6)
    else:
        if s == "E":
            ok &= np.allclose(shape, shape[0], rtol=1e-6)
        if o == "E":
            P = vectors[0]
            rotated = P.T @ covariances @ P
            off = rotated - np.eye(len(P)) * np.diagonal(rotated, axis1=1, axis2=2)[:, None]
            ok &= np.allclose(off, 0, atol=1e-6 * np.abs(covariances).max())
    return bool(ok)


@pytest.mark.parametrize("model", MULTIVARIATE)
def test_each_family_fits_monotonely_and_keeps_its_constraint(model):
    X = load("iris")
    em = GaussianMixtureEM(3, covariance_type=model, n_init=2, tol=1e-8, max_iter=500,
                           random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MStepConvergenceWarning)
        em.fit(X)
    trace = np.asarray(em.log_likelihood_trace_)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    full = get_covariance_structure(model).to_full(em.covariances_, 3, 4)
    assert constraint_holds(model, full)
    # (tests/test_mclust_starts.py: the default start reaches mclust's optimum)


def test_one_feature_names_refuse_more_features():
    with pytest.raises(ValueError, match="one-dimensional.*2"):
        GaussianMixtureEM(2, covariance_type="E").fit(load("faithful"))
    X = load("galaxies")
    for name, equal in (("E", True), ("V", False)):
        em = GaussianMixtureEM(3, covariance_type=name, random_state=0).fit(X)
        variances = get_covariance_structure(name).to_full(em.covariances_, 3, 1).ravel()
        assert np.allclose(variances, variances[0]) == equal


def test_iterative_m_step_warns_with_the_family_name(monkeypatch):
    from bayesgmm import _gaussian

    monkeypatch.setattr(_gaussian, "MSTEP_MAX_ITER", 1)
    with pytest.warns(MStepConvergenceWarning, match="VEV M-step did not converge in 1"):
        GaussianMixtureEM(3, covariance_type="VEV", max_iter=500, random_state=0).fit(
            load("iris"))
    monkeypatch.setattr(_gaussian, "MSTEP_MAX_ITER", 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MStepConvergenceWarning)
        GaussianMixtureEM(3, covariance_type="VEV", random_state=0).fit(load("iris"))


def test_registry_lists_all_families():
    names = {s.mclust_name for s in COVARIANCE_STRUCTURES.values()}
    assert names == set(MULTIVARIATE) | {"E", "V"}


def m_step_objective(nk, S, covariances):
    """sum_k n_k [log det Sigma_k + tr(S_k Sigma_k^-1)]: what a family's M-step lowers."""
    return float(np.sum(nk * (np.linalg.slogdet(covariances)[1]
                              + np.einsum("kij,kji->k", S, np.linalg.inv(covariances)))))


def random_scatters(rng, K, d, common):
    """K SPD matrices with random shapes; near one orientation when ``common``."""
    base = np.linalg.qr(rng.normal(size=(d, d)))[0]
    S = []
    for _ in range(K):
        shape = np.exp(rng.normal(scale=1.0, size=d))
        if common:
            turn = rng.normal(scale=0.1, size=(d, d))
            rotation = base @ np.linalg.qr(np.eye(d) + turn - turn.T)[0]
        else:
            rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
        S.append(rotation @ np.diag(shape) @ rotation.T)
    return np.array(S), rng.uniform(5, 50, K)


@pytest.mark.parametrize("model", ["EVE", "VVE"])
@pytest.mark.parametrize("K, d, common, seed", [(3, 4, True, 0), (4, 5, False, 1),
                                                (2, 3, False, 2), (5, 4, True, 3)])
def test_orientation_step_reaches_the_mm_optimum_and_never_goes_up(model, K, d, common, seed):
    """The Newton orientation step ends where a long run of Browne & McNicholas' MM
    ends (1e-10 relative), lowering the objective at every round, and the M-step never
    ends above the objective at the current (constrained) parameters."""
    from bayesgmm._gaussian import _along, _orientation_mm_step

    structure = get_covariance_structure(model)
    rng = np.random.default_rng(seed)
    S, nk = random_scatters(rng, K, d, common)
    start = np.linalg.qr(rng.normal(size=(d, d)))[0]

    def objective(D):
        c = _along(D, S)
        return m_step_objective(nk, S, np.einsum("ij,kj,lj->kil", D, structure.diagonal(nk, c),
                                                 D))

    trace = []
    D = structure.orientation(nk, S, start, trace=trace)
    assert np.all(np.diff(trace) <= 1e-13 * abs(trace[0]))
    assert trace[-1] == pytest.approx(objective(D), rel=1e-12)
    assert len(trace) < 60  # quadratic convergence; the MM takes thousands

    mm, previous = start, objective(start)
    for _ in range(50_000):
        mm = _orientation_mm_step(nk, S, mm, 1.0 / structure.diagonal(nk, _along(mm, S)))
        value = objective(mm)
        assert value <= previous + 1e-13 * abs(previous)
        if previous - value <= 1e-15 * abs(value):
            break
        previous = value
    else:
        pytest.fail("the plain MM did not settle in 50,000 rounds")
    assert objective(D) == pytest.approx(objective(mm), rel=1e-10)

    # from the current parameters (any common orientation and its best shapes) the
    # M-step does not go up, and from its own optimum it stays there
    current = np.einsum("ij,kj,lj->kil", start, structure.diagonal(nk, _along(start, S)), start)
    fitted = structure.constrain(nk, S, previous=current)
    assert m_step_objective(nk, S, fitted) <= m_step_objective(nk, S, current)
    assert m_step_objective(nk, S, fitted) == pytest.approx(objective(D), rel=1e-10)
    again = structure.constrain(nk, S, previous=fitted)
    assert m_step_objective(nk, S, again) == pytest.approx(m_step_objective(nk, S, fitted),
                                                           rel=1e-12)
