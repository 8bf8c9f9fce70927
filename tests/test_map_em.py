"""MAP-EM under mclust's conjugate prior, against R mclust and against the prior itself.

References (tests/data/mclust, written by the R scripts there):

- ``mclust_prior_converged.csv``: mclust's ``me(..., prior = priorControl())`` from
  the partition ``Mclust`` starts from, run to convergence (tol 1e-13) for G = 2..6;
- ``mclust_prior_reference.csv``: ``Mclust(..., prior = priorControl())`` itself, whose
  G = 1 fits are closed-form (exact) and whose G >= 2 fits stop 1e-5 (relative) short
  of the mode;
- ``mclust_prior_hyperparameters.csv``: mclust's ``defaultPrior`` for every cell.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesgmm import GaussianMixtureEM
from bayesgmm._gaussian import get_covariance_structure
from bayesgmm.priors import ConjugatePrior

DATA = Path(__file__).parent / "data" / "mclust"
CONVERGED = pd.read_csv(DATA / "mclust_prior_converged.csv")
MCLUST = pd.read_csv(DATA / "mclust_prior_reference.csv")
HYPER = pd.read_csv(DATA / "mclust_prior_hyperparameters.csv")
PARAMETERS = pd.read_csv(DATA / "mclust_prior_converged_parameters.csv")
SETS = {name: pd.read_csv(DATA / f"{name}.csv").to_numpy(float)
        for name in ("faithful", "iris", "diabetes", "galaxies")}


def _map_em(X, G, family, **options):
    settings_ = dict(init_params="hierarchical", tol=1e-11, max_iter=20000, reg_covar=0.0,
                     prior=ConjugatePrior())
    settings_.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the slowest cells stop at max_iter
        return GaussianMixtureEM(G, covariance_type=family, **settings_).fit(X)


@pytest.mark.parametrize("dataset", list(SETS))
def test_the_posterior_mode_is_mclusts(dataset):
    """From mclust's start, every family's MAP-EM ends at mclust's mode: log-likelihood
    within 0.01 (measured: 1e-4, 7e-3 for EEI whose M-step is no density's mode), the
    same BIC, and the weights and means to 1e-3 of the data's spread."""
    X = SETS[dataset]
    spread = X.std(axis=0)
    cells = CONVERGED[(CONVERGED.dataset == dataset) & (CONVERGED.status == "ok")]
    assert len(cells) >= 10
    for cell in cells.itertuples():
        em = _map_em(X, cell.G, cell.model)
        assert abs(em.log_likelihood_ - cell.loglik) < 0.01, cell
        params = PARAMETERS[(PARAMETERS.dataset == dataset) & (PARAMETERS.model == cell.model)
                            & (PARAMETERS.G == cell.G)]
        pro = params[params.parameter == "pro"].sort_values("component").value.to_numpy()
        means = (params[params.parameter == "mean"].sort_values(["component", "i"])
                 .value.to_numpy().reshape(cell.G, -1))
        # the same start numbers the components alike
        np.testing.assert_allclose(em.weights_, pro, atol=1e-3, err_msg=str(cell))
        np.testing.assert_allclose(em.means_ / spread, means / spread, atol=1e-3,
                                   err_msg=str(cell))


def test_one_component_is_mclusts_closed_form():
    """G = 1 has a closed form (mclust's mvn): equal to 1e-8, log-likelihood and BIC."""
    cells = MCLUST[(MCLUST.G == 1) & (MCLUST.status == "ok")]
    for cell in cells.itertuples():
        X = SETS[cell.dataset]
        em = _map_em(X, 1, cell.model)
        assert em.log_likelihood_ == pytest.approx(cell.loglik, rel=1e-10, abs=1e-8), cell
        assert -em.bic(X) == pytest.approx(cell.bic, rel=1e-10, abs=1e-8), cell


def test_default_prior_is_mclusts():
    """``ConjugatePrior().resolve`` gives mclust's defaultPrior for every cell."""
    for (dataset, model, G), rows in HYPER.groupby(["dataset", "model", "G"]):
        X = SETS[dataset]
        prior = ConjugatePrior().resolve(X, G, get_covariance_structure(model))
        value = dict(zip(rows.parameter, rows.value))
        assert prior.shrinkage == pytest.approx(value["shrinkage"])
        assert prior.dof == pytest.approx(value["dof"])
        mean = rows[rows.parameter == "mean"].sort_values("i").value.to_numpy()
        np.testing.assert_allclose(prior.mean, mean, rtol=1e-12)
        scale = rows[rows.parameter == "scale"]
        if prior.scale.ndim == 2:
            matrix = np.zeros(prior.scale.shape)
            matrix[scale.i.to_numpy(int) - 1, scale.j.to_numpy(int) - 1] = scale.value
            np.testing.assert_allclose(prior.scale, matrix, rtol=1e-12)
        else:
            np.testing.assert_allclose(prior.scale, scale.value.iloc[0], rtol=1e-12)


def _log_posterior(em, X, means=None, covariances=None):
    """The log-likelihood plus the log prior, computed directly (scipy), at the fit or at
    changed means/covariances (the weights kept)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    structure = em._structure
    K, D = em.means_.shape
    means = em.means_ if means is None else means
    covariances = em.covariances_ if covariances is None else covariances
    full = structure.to_full(covariances, K, D)
    log_joint = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(X)
                                 for w, m, c in zip(em.weights_, means, full)])
    prior = em.prior.resolve(X, K, structure)
    return logsumexp(log_joint, axis=1).sum() + structure.log_prior(prior, means, covariances)


@pytest.mark.parametrize("family", ["VVV", "EEE", "VVI", "VII", "EII", "EVI", "VEI", "EEV",
                                    "VEV"])
def test_the_fit_is_a_mode_of_the_posterior(family):
    """Every move of one mean or one covariance entry (scaled to the data) lowers the
    log posterior computed directly with scipy: the fit is its mode, for the exact
    conjugate priors and for mclust's implied ones alike."""
    X = SETS["faithful"]
    em = _map_em(X, 3, family)
    best = _log_posterior(em, X)
    sd = X.std(axis=0)
    for k in range(3):
        for j in range(2):
            for step in (-1e-3, 1e-3):
                means = em.means_.copy()
                means[k, j] += step * sd[j]
                assert _log_posterior(em, X, means=means) < best
    covariances = em.covariances_
    for index in np.ndindex(covariances.shape):
        for factor in (0.99, 1.01):
            changed = covariances.copy()
            changed[index] *= factor
            if family in ("VVV", "EEE", "EEV", "VEV") and index[-1] != index[-2]:
                changed[index[:-2] + index[::-1][:2]] = changed[index]  # keep symmetric
            structure = em._structure
            # only moves that stay inside the family can be compared
            if not _in_family(structure, changed, em):
                continue
            assert _log_posterior(em, X, covariances=changed) < best + 1e-9


def _in_family(structure, covariances, em):
    """Whether changed covariances still belong to the fitted family: its own M-step
    applied to them, as maximum-likelihood estimates, gives them back."""
    K, D = em.means_.shape
    full = structure.to_full(covariances, K, D)
    if np.any(np.linalg.eigvalsh(full)[:, 0] <= 0):
        return False
    if not hasattr(structure, "constrain"):
        return True
    nk = np.full(K, 10.0)
    back = structure.constrain(nk, np.asarray(covariances, float).copy())
    return np.allclose(back, covariances, rtol=1e-9)


def test_small_data_fit_where_maximum_likelihood_collapses():
    """Six points, three full components: maximum likelihood has no answer, the prior
    gives one (positive-definite covariances, a finite log posterior)."""
    X = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9], [6.0, 0.0], [6.1, 0.2]])
    with pytest.raises(ValueError):
        GaussianMixtureEM(3, covariance_type="VVV", reg_covar=0.0).fit(X)
    em = GaussianMixtureEM(3, covariance_type="VVV", reg_covar=0.0, tol=1e-10,
                           prior=ConjugatePrior()).fit(X)
    assert np.all(np.linalg.eigvalsh(em.covariances_) > 0)
    assert np.isfinite(em.log_likelihood_ + em.log_prior_)
    np.testing.assert_allclose(np.sort(em.means_[:, 0]), [0.1, 3.1, 6.05], atol=0.05)


def test_standardize_gives_the_same_mode():
    """The default prior is data-scaled: the mode in standardised coordinates, mapped
    back, is the mode in the data's (to the EM tolerance)."""
    X = SETS["diabetes"]
    for family in ("VVV", "VVI", "VII", "EEV"):
        plain = _map_em(X, 3, family)
        scaled = _map_em(X, 3, family, standardize=True)
        assert scaled.log_likelihood_ == pytest.approx(plain.log_likelihood_, abs=1e-5)
        np.testing.assert_allclose(scaled.means_, plain.means_, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(repeats=st.lists(st.integers(1, 3), min_size=40, max_size=40))
def test_integer_weights_are_repeated_rows(repeats):
    """A sample weight of m counts a row m times, the prior's data-scaled defaults
    included: the same MAP fit, exactly (to the EM tolerance)."""
    X = SETS["faithful"][::6][:40]
    weights = np.asarray(repeats, dtype=float)
    weighted = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-12, max_iter=5000,
                                 init_params="kmeans", random_state=0,
                                 prior=ConjugatePrior()).fit(X, sample_weight=weights)
    rows = np.repeat(X, repeats, axis=0)
    start = dict(weights_init=weighted.weights_, means_init=weighted.means_,
                 precisions_init=weighted.precisions_)
    repeated = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-12, max_iter=5000,
                                 prior=ConjugatePrior(), **start).fit(rows)
    assert repeated.log_likelihood_ == pytest.approx(weighted.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(repeated.means_, weighted.means_, atol=1e-6)


def test_prior_is_saved_and_loaded(tmp_path):
    X = SETS["faithful"]
    em = _map_em(X, 2, "VEV", prior=ConjugatePrior(shrinkage=0.1))
    path = em.save(tmp_path / "map.nc")
    back = GaussianMixtureEM.load(path)
    assert back.prior == ConjugatePrior(shrinkage=0.1)
    assert back.prior_ == em.prior_
    assert back.log_prior_ == pytest.approx(em.log_prior_)
    np.testing.assert_allclose(back.means_, em.means_)


@pytest.mark.parametrize("family, prior, message", [
    ("VVV", "default", "prior must be None or a bayesgmm.priors.ConjugatePrior"),
    ("VVV", ConjugatePrior(dof=1.0), r"dof=1 is not above D - 1 = 2"),
    ("VVV", ConjugatePrior(scale=np.eye(2)), r"scale has shape \(2, 2\).*3 x 3"),
    ("VVI", ConjugatePrior(scale=np.eye(3)), "a positive number or a vector of 3"),
    ("VVV", ConjugatePrior(mean=[1.0, 2.0]), r"mean has shape \(2,\)"),
])
def test_bad_prior_for_the_data(family, prior, message):
    """Refused before any fitting, saying what fits."""
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(2, covariance_type=family, prior=prior).fit(SETS["iris"][:, :3])


@pytest.mark.parametrize("kwargs, message", [
    ({"shrinkage": -1.0}, "shrinkage must be a number >= 0"),
    ({"dof": 0.0}, "dof must be a number > 0"),
    ({"scale": -2.0}, "scale must be positive"),
    ({"scale": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
    ({"scale": [[1.0, 0.5], [0.0, 1.0]]}, "symmetric"),
    ({"mean": [np.nan, 0.0]}, "finite"),
])
def test_bad_prior_parameters_fail_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConjugatePrior(**kwargs)


@pytest.mark.parametrize("family", ["EVE", "VEE", "VVE", "EVV"])
def test_families_without_a_prior_are_refused_before_fitting(family):
    with pytest.raises(ValueError, match=f"{family}.*has no conjugate prior"):
        GaussianMixtureEM(2, covariance_type=family, prior=ConjugatePrior()).fit(SETS["iris"])


def test_no_prior_is_unchanged():
    """prior=None is the maximum-likelihood fit, bit for bit."""
    X = SETS["faithful"]
    a = GaussianMixtureEM(3, random_state=0).fit(X)
    b = GaussianMixtureEM(3, random_state=0, prior=None).fit(X)
    assert a.log_likelihood_ == b.log_likelihood_ and b.log_prior_ == 0.0
    assert b.prior_ is None
    assert math.isnan(_map_em(X, 2, "EEI").log_prior_)


# --------------------------------------------------------------- the Bayesian model
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("prior", [ConjugatePrior(), ConjugatePrior(shrinkage=0.0),
                                   ConjugatePrior(shrinkage=2.0, dof=5.0)],
                         ids=["default", "flat-means", "strong"])
def test_map_em_is_the_bayesian_models_map(covariance_type, prior):
    """The PyMC model under the same prior has MAP-EM's fit as its mode: L-BFGS started
    from the maximum-likelihood fit (elsewhere) ends there, to 1e-6, with the same log
    posterior (the densities agree with their constants)."""
    from bayesgmm._inference import _map_point
    from bayesgmm._start import _start_points
    from bayesgmm.model import build_model_from_spec, make_spec

    X = SETS["faithful"][::3]
    em = GaussianMixtureEM(2, covariance_type=covariance_type, prior=prior, tol=1e-14,
                           max_iter=20000, reg_covar=0.0, random_state=1).fit(X)
    ml = GaussianMixtureEM(2, covariance_type=covariance_type, reg_covar=0.0,
                           random_state=1).fit(X)
    spec = make_spec(X, 2, covariance_type, prior)
    start = _start_points(ml, spec, 1, np.random.default_rng(0))[0]
    mode = _map_point(build_model_from_spec(X, spec), start)
    order = np.argsort(mode["means"].values[0, 0, :, 0])
    mine = np.argsort(em.means_[:, 0])
    scale = X.std(axis=0)
    np.testing.assert_allclose(mode["weights"].values[0, 0][order], em.weights_[mine],
                               atol=1e-6)
    np.testing.assert_allclose(mode["means"].values[0, 0][order] / scale,
                               em.means_[mine] / scale, atol=1e-6)
    full = em._structure.to_full(em.covariances_, 2, 2)
    np.testing.assert_allclose(mode["covariances"].values[0, 0][order] / np.outer(scale, scale),
                               full[mine] / np.outer(scale, scale), atol=1e-6)
    assert mode.attrs["log_posterior"] == pytest.approx(em.log_likelihood_ + em.log_prior_,
                                                        abs=1e-6)


def test_the_sampled_coordinates_carry_the_jacobian():
    """NUTS samples the log-Cholesky coordinates of a covariance: the model's
    change-of-variables potential equals log|det| of the map's numerical Jacobian."""
    from bayesgmm.model import JACOBIAN_SUFFIX, build_model

    X = SETS["iris"][:, :3]
    model = build_model(X, 1, covariance_type="tied", priors=ConjugatePrior())
    jacobian = next(p for p in model.potentials if p.name.endswith(JACOBIAN_SUFFIX))
    import pytensor

    packed_value = model.rvs_to_values[model["covariance_packed"]]
    value = pytensor.function([packed_value], model.replace_rvs_by_values([jacobian])[0])
    packed = np.random.default_rng(3).normal(size=6)

    def lower(x):
        L = np.zeros((3, 3))
        L[np.diag_indices(3)] = np.exp(x[:3])
        L[np.tril_indices(3, -1)] = x[3:]
        S = L @ L.T
        return S[np.tril_indices(3)]

    step = 1e-6
    J = np.column_stack([(lower(packed + step * e) - lower(packed - step * e)) / (2 * step)
                         for e in np.eye(6)])
    assert float(value(packed)) == pytest.approx(np.linalg.slogdet(J)[1], abs=1e-6)


def test_bayesian_fit_with_the_conjugate_prior_starts_at_map_em():
    from bayesgmm import GaussianMixtureBayes

    X = SETS["faithful"][::4]
    fit = GaussianMixtureBayes(2, covariance_type="VVV", priors=ConjugatePrior(),
                               random_state=0).fit(X, method="map")
    assert fit.start_["method"] == "map-em"
    assert fit.em_.prior == fit.spec_.priors.prior
    with pytest.raises(ValueError, match="order_by is not available"):
        GaussianMixtureBayes(2, priors=ConjugatePrior(), order_by=0).fit(X, method="map")
    with pytest.raises(ValueError, match="EVE.*has no conjugate prior|fitted by EM only"):
        GaussianMixtureBayes(2, covariance_type="EVE", priors=ConjugatePrior()).fit(X)


def _normal_inverse_wishart_evidence(X, prior):
    """log p(X) of one Gaussian under the Normal-inverse-Wishart prior, exactly."""
    from scipy.special import multigammaln

    n, D = X.shape
    kappa, nu, scale = prior.shrinkage, prior.dof, prior.scale
    mean = X.mean(axis=0)
    d = mean - prior.mean
    posterior_scale = scale + (X - mean).T @ (X - mean) + kappa * n / (kappa + n) * np.outer(d, d)
    return float(-0.5 * n * D * np.log(np.pi) + multigammaln(0.5 * (nu + n), D)
                 - multigammaln(0.5 * nu, D) + 0.5 * nu * np.linalg.slogdet(scale)[1]
                 - 0.5 * (nu + n) * np.linalg.slogdet(posterior_scale)[1]
                 + 0.5 * D * np.log(kappa / (kappa + n)))


@pytest.mark.slow
def test_the_conjugate_models_evidence_is_the_analytic_value():
    """One full component under the conjugate prior has an exact evidence: bridge
    sampling from the model's NUTS draws (log-Cholesky coordinates, their Jacobian,
    the normalising constants) finds it within 3 of its standard errors."""
    from bayesgmm import GaussianMixtureBayes

    from .conftest import seed

    X = SETS["iris"][:30, :3]
    prior = ConjugatePrior(shrinkage=0.5)
    exact = _normal_inverse_wishart_evidence(
        X, prior.resolve(X, 1, get_covariance_structure("full")))
    model = GaussianMixtureBayes(1, covariance_type="full", priors=prior,
                                 random_state=seed("conjugate-evidence")).fit(
        X, draws=1000, tune=1000, chains=4, progressbar=False)
    result = model.log_evidence(random_state=seed("conjugate-evidence"))
    assert 0 < result["se"] < 0.05
    assert abs(result["log_evidence"] - exact) < 3 * result["se"] + 1e-3, (result, exact)
