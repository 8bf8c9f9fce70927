"""Known (fixed) parameters in the Bayesian model: ``fixed=`` as constants, not priors.

The fixed values are held exactly in every draw and are no free variables; the MAP with
fixed parameters is the MAP of the reduced problem, written here independently in
scipy; the log density is the full model's minus the fixed parameters' prior terms;
free-parameter counts are pinned; bad input is refused before anything is built.
"""

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

import bayesgmm.bayes
from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, build_model
from bayesgmm._fixed import FixedParameters
from bayesgmm._gaussian import get_covariance_structure
from bayesgmm.model import make_spec
from bayesgmm.priors import ConjugatePrior, Dirichlet, GMMPriors, Normal
from bayesgmm.relabel import stephens_relabel

from .conftest import COVARIANCE_TYPES, RandomData, seed

nan = np.nan
DATA = RandomData(n_samples=300, seed=4)  # 3 well-separated diag components, D = 2
X_DIAG = DATA.X["diag"]
#: component 0's weight and mean, component 2's covariance known (at the truth)
FIXED_DIAG = {
    "weights": [DATA.weights[0], nan, nan],
    "means": [DATA.means[0], [nan, nan], [nan, nan]],
    "covariances": [[nan, nan], [nan, nan], DATA.covariances["diag"][2]],
}
#: priors that differ between components (a Dirichlet's alpha, the means' centres), so
#: that a free parameter given another component's prior changes the density and the mode
PRIORS = GMMPriors(weights=Dirichlet([2.0, 3.0, 4.0]),
                   means=Normal(mu=DATA.means + [[1.0, -1.0], [2.0, 0.5], [-1.0, 1.5]],
                                sigma=3.0))


@pytest.fixture(scope="module")
def nuts_fit():
    model = GaussianMixtureBayes(3, covariance_type="diag", priors=PRIORS, fixed=FIXED_DIAG,
                                 random_state=seed("test_fixed_bayes.nuts_fit"))
    return model.fit(X_DIAG, draws=100, tune=100, chains=2, progressbar=False)


# ------------------------------------------------------------- (a) held exactly
def test_fixed_parameters_are_constant_in_every_draw(nuts_fit):
    post = nuts_fit.posterior
    weights = post["weights"].values  # (chain, draw, component)
    assert np.all(weights[..., 0] == DATA.weights[0])
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(post["means"].values[:, :, 0] == DATA.means[0])
    covariances = post["covariances"].values[:, :, 2]
    assert np.all(covariances == covariances[0, 0])  # the same constant in every draw
    np.testing.assert_allclose(np.diagonal(covariances[0, 0]), DATA.covariances["diag"][2],
                               rtol=1e-14)
    # ... while the free ones move
    assert post["weights"].values[..., 1].std() > 1e-3
    assert post["means"].values[:, :, 1].std(axis=(0, 1)).min() > 1e-3
    assert post["variances"].values[:, :, 0].std(axis=(0, 1)).min() > 1e-4
    # every component keeps its place: nothing was permuted across fixed values
    assert nuts_fit.relabel_["n_permuted"] == 0


def test_diagnostics_and_summary_of_a_fixed_fit(nuts_fit):
    table = nuts_fit.diagnose(warn=False)  # no warning from the constants' R-hat
    fixed_rows = {"weights[0]", "means[0, x0]", "means[0, x1]", "sigmas[2, x0]",
                  "sigmas[2, x1]"}
    assert not fixed_rows & set(table.index)
    assert {"weights[1]", "weights[2]", "means[1, x0]", "sigmas[0, x1]"} <= set(table.index)
    summary = nuts_fit.summary()
    assert summary.loc["weights[0]", "sd"] < 1e-12
    assert summary.loc["weights[0]", "map"] == DATA.weights[0]
    assert summary.loc["means[0, x1]", "em"] == DATA.means[0, 1]


def test_fixed_parameters_are_not_free_variables(nuts_fit):
    model = nuts_fit.model_
    assert [rv.name for rv in model.free_RVs] == ["weights_free", "means_free",
                                                  "variances_free"]
    shapes = {rv.name: rv.type.shape for rv in model.free_RVs}
    assert shapes == {"weights_free": (2,), "means_free": (2, 2), "variances_free": (2, 2)}
    # the labelled outputs keep every component
    assert nuts_fit.posterior["means"].dims == ("chain", "draw", "component", "feature")
    assert nuts_fit.posterior.sizes["component"] == 3
    # the EM start holds the same parameters
    np.testing.assert_array_equal(nuts_fit.em_.means_[0], DATA.means[0])
    assert nuts_fit.em_.weights_[0] == DATA.weights[0]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_family_holds_its_fixed_values_in_the_map(covariance_type):
    X = DATA.X[covariance_type]
    truth = DATA.covariances[covariance_type]
    shared = covariance_type == "tied"
    covariances = truth if shared else [truth[0]] + [np.full(np.shape(truth[0]), nan)] * 2
    fixed = {"weights": [nan, DATA.weights[1], nan], "means": [[nan, nan], DATA.means[1],
                                                                [nan, nan]],
             "covariances": covariances}
    fit = GaussianMixtureBayes(3, covariance_type=covariance_type, fixed=fixed,
                               random_state=0).fit(X, method="map", progressbar=False)
    mode = fit.map_.isel(chain=0, draw=0)
    assert mode["weights"].values[1] == DATA.weights[1]
    assert np.all(mode["means"].values[1] == DATA.means[1])
    full = fit.spec_.structure.to_full(np.asarray(truth), 3, 2)
    held = slice(None) if shared else 0
    np.testing.assert_allclose(mode["covariances"].values[held], full[held], rtol=1e-13,
                               atol=1e-14)
    free = [rv.name for rv in fit.model_.free_RVs]
    assert all(name.endswith("_free") for name in free)
    assert ("corr_chol_free" in free) == (covariance_type == "full")
    assert np.isfinite(fit.map_.attrs["log_posterior"])


# ------------------------------------------------- (b) the reduced problem's MAP
def _diag_log_posterior(X, weights, means, variances, priors, weights_alpha, mean_rows,
                        variance_rows):
    """log p(X | theta) + the log priors of the free parameters (no Jacobians), in
    scipy: Dirichlet of the free weights' shares, Normal means, InverseGamma variances."""
    log_joint = np.log(weights) + np.stack([
        stats.norm.logpdf(X, means[k], np.sqrt(variances[k])).sum(axis=1)
        for k in range(len(weights))], axis=1)
    log_prior = 0.0 if weights_alpha is None else stats.dirichlet.logpdf(*weights_alpha)
    log_prior += stats.norm.logpdf(means[mean_rows], priors.means_mu[mean_rows],
                                   priors.means_sigma[mean_rows]).sum()
    log_prior += stats.invgamma.logpdf(variances[variance_rows], priors.ig_alpha,
                                       scale=priors.ig_beta).sum()
    return logsumexp(log_joint, axis=1).sum() + log_prior


def _reduced_map(X, priors, fixed_weights, fixed_means, fixed_variances, start):
    """The reduced problem's mode by L-BFGS over the free parameters (unconstrained:
    logits of the free weights' shares, means, log-variances)."""
    K, D = fixed_means.shape
    free_w = np.flatnonzero(np.isnan(fixed_weights))
    free_m = np.flatnonzero(np.isnan(fixed_means).any(axis=1))
    free_v = np.flatnonzero(np.isnan(fixed_variances).any(axis=1))
    rest = 1.0 - np.nansum(fixed_weights)

    def unpack(theta):
        logits = np.append(theta[:len(free_w) - 1], 0.0)
        shares = np.exp(logits - logsumexp(logits))
        weights = np.nan_to_num(fixed_weights).copy()
        weights[free_w] = rest * shares
        means = fixed_means.copy()
        offset = len(free_w) - 1
        means[free_m] = theta[offset:offset + len(free_m) * D].reshape(-1, D)
        offset += len(free_m) * D
        variances = fixed_variances.copy()
        variances[free_v] = np.exp(theta[offset:]).reshape(-1, D)
        return weights, means, variances, shares

    def negative(theta):
        weights, means, variances, shares = unpack(theta)
        return -_diag_log_posterior(X, weights, means, variances, priors,
                                    (shares, priors.alpha[free_w]), free_m, free_v)

    w0, m0, v0 = start
    shares0 = w0[free_w] / w0[free_w].sum()
    theta0 = np.concatenate([np.log(shares0[:-1] / shares0[-1]), m0[free_m].ravel(),
                             np.log(v0[free_v]).ravel()])
    result = optimize.minimize(negative, theta0, method="BFGS", options={"gtol": 1e-7})
    return unpack(result.x)[:3]


@pytest.mark.parametrize("fixed", [
    FIXED_DIAG,
    {"weights": [0.25, nan, nan]},  # only weights: the Dirichlet of the free ones' shares
    {"means": [[nan, nan], DATA.means[1], [nan, nan]],
     "covariances": [DATA.covariances["diag"][0], [nan, nan], [nan, nan]]},
], ids=["weights-means-covariances", "weights", "means-covariances"])
def test_map_equals_the_reduced_problem_solved_independently(fixed):
    fit = GaussianMixtureBayes(3, covariance_type="diag", priors=PRIORS, fixed=fixed,
                               random_state=0).fit(X_DIAG, method="map", progressbar=False)
    mode = fit.map_.isel(chain=0, draw=0)
    found = (mode["weights"].values, mode["means"].values,
             np.diagonal(mode["covariances"].values, axis1=1, axis2=2))
    priors = fit.spec_.priors
    K, D = 3, 2
    fixed_weights = np.asarray(fixed.get("weights", [nan] * K), dtype=float)
    fixed_means = np.asarray(fixed.get("means", np.full((K, D), nan)), dtype=float)
    fixed_variances = np.asarray(fixed.get("covariances", np.full((K, D), nan)), dtype=float)
    em = fit.em_
    reference = _reduced_map(X_DIAG, priors, fixed_weights, fixed_means, fixed_variances,
                             (em.weights_, em.means_, em.covariances_))
    for value, expected in zip(found, reference):
        np.testing.assert_allclose(value, expected, rtol=2e-6, atol=2e-6)
    # the reference does depend on the prior of the free weights: alpha of the free
    # components (3, 4), not of the first two (2, 3), gives this mode
    if not np.isnan(fixed_weights).all():
        shifted = GMMPriors(weights=Dirichlet([9.0, 2.0, 3.0]), means=PRIORS.means)
        other = make_spec(X_DIAG, 3, "diag", shifted).priors
        wrong = _reduced_map(X_DIAG, other, fixed_weights, fixed_means, fixed_variances,
                             (em.weights_, em.means_, em.covariances_))
        assert np.abs(wrong[0] - found[0]).max() > 1e-4  # 50 times the tolerance


# ----------------------------------------------------- (c) the log density, exactly
def _log_density(model, point):
    """log p(X, theta) without Jacobians at ``point`` (constrained values)."""
    from pymc.initial_point import make_initial_point_fn
    from pytensor.compile.mode import Mode

    values = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                   return_transformed=True)(0)
    logp = model.compile_logp(jacobian=False, mode=Mode(linker="py", optimizer="fast_run"))
    return float(logp(values))


def test_log_density_is_the_full_models_minus_the_fixed_priors():
    rng = np.random.default_rng(0)
    weights = np.array([DATA.weights[0], 0.35, 0.65 - DATA.weights[0]])
    means = DATA.means + rng.normal(0, 0.3, DATA.means.shape)
    means[0] = DATA.means[0]
    variances = DATA.covariances["diag"] * np.exp(rng.normal(0, 0.2, (3, 2)))
    variances[2] = DATA.covariances["diag"][2]
    full = build_model(X_DIAG, 3, covariance_type="diag", priors=PRIORS)
    known = build_model(X_DIAG, 3, covariance_type="diag", priors=PRIORS, fixed=FIXED_DIAG)
    shares = weights[1:] / weights[1:].sum()
    at_full = _log_density(full, {"weights": weights, "means": means, "variances": variances})
    at_known = _log_density(known, {"weights_free": shares, "means_free": means[1:],
                                    "variances_free": variances[:2]})
    priors = make_spec(X_DIAG, 3, "diag", PRIORS).priors
    alpha = priors.alpha
    fixed_priors = (stats.norm.logpdf(means[0], priors.means_mu[0], priors.means_sigma[0]).sum()
                    + stats.invgamma.logpdf(variances[2], priors.ig_alpha,
                                            scale=priors.ig_beta).sum())
    # the weights' prior: the full Dirichlet, against that of the free components' shares
    weights_change = stats.dirichlet.logpdf(weights, alpha) - stats.dirichlet.logpdf(
        shares, alpha[1:])
    assert at_known == pytest.approx(at_full - fixed_priors - weights_change, rel=0, abs=1e-8)


# -------------------------------------------------------------- (d) counts pinned
def _n_free(model):
    """The model's free parameters: the sizes of its unconstrained value variables."""
    return sum(int(np.prod(v.type.shape)) for v in model.value_vars)


@pytest.mark.parametrize("covariance_type, fixed, expected", [
    # full K = 3, D = 2: 2 weights + 6 means + 9 covariance parameters
    ("full", None, 17),
    ("full", {"weights": [0.2, nan, nan]}, 16),
    ("full", {"weights": [0.2, 0.3, nan]}, 15),  # the last weight is what is left
    ("full", {"means": [[0.0, 0.0], [nan, nan], [nan, nan]]}, 15),
    ("full", {"covariances": [np.eye(2), np.full((2, 2), nan), np.full((2, 2), nan)]}, 14),
    ("tied", {"covariances": np.eye(2)}, 8),  # all or nothing for a shared matrix
    ("diag", {"covariances": [[1.0, 1.0], [nan, nan], [nan, nan]]}, 12),
    ("spherical", {"means": [[0.0, 0.0], [nan, nan], [nan, nan]], "covariances": [1.0, nan, 2.0]},
     7),
])
def test_free_parameter_counts(covariance_type, fixed, expected):
    X = DATA.X[covariance_type]
    model = build_model(X, 3, covariance_type=covariance_type, fixed=fixed)
    assert _n_free(model) == expected
    if fixed is not None:  # EM's count (n_parameters, hence its BIC) is the same
        structure = get_covariance_structure(covariance_type)
        assert FixedParameters.check(fixed, structure, 3, 2).n_free(3, 2) == expected


# ------------------------------------------------------------ relabelling groups
def test_exchangeable_groups():
    diag = get_covariance_structure("diag")
    checked = FixedParameters.check({"weights": [0.2, nan, nan]}, diag, 3, 2)
    assert checked.exchangeable_groups(3).tolist() == [0, 1, 1]
    checked = FixedParameters.check({"means": [[0, 0], [nan, nan], [0, 0]]}, diag, 3, 2)
    assert checked.exchangeable_groups(3).tolist() == [0, 1, 0]  # equal fixed values
    checked = FixedParameters.check(FIXED_DIAG, diag, 3, 2)
    assert checked.exchangeable_groups(3).tolist() == [0, 1, 2]


def test_relabelling_permutes_only_within_groups():
    rng = np.random.default_rng(1)
    reference = rng.dirichlet(np.ones(3), size=50)
    swapped = reference[:, [1, 0, 2]]  # a draw with components 0 and 1 exchanged
    membership = np.stack([reference, swapped])
    free = stephens_relabel(membership, reference)
    assert free.permutations[1].tolist() == [1, 0, 2]
    held = stephens_relabel(membership, reference, groups=np.array([0, 1, 1]))
    assert held.permutations.tolist() == [[0, 1, 2], [0, 1, 2]]  # 0 cannot move
    other = stephens_relabel(membership, reference, groups=np.array([0, 0, 1]))
    assert other.permutations[1].tolist() == [1, 0, 2]


# ---------------------------------------------------------------- save and load
def test_save_and_load_keep_the_fixed_parameters(nuts_fit, tmp_path):
    path = tmp_path / "fixed.nc"
    nuts_fit.save(path)
    loaded = GaussianMixtureBayes.load(path)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(loaded.fixed[name], np.asarray(FIXED_DIAG[name], float))
        np.testing.assert_array_equal(getattr(loaded.spec_.fixed, name),
                                      getattr(nuts_fit.spec_.fixed, name))
    assert loaded.em_.fixed is not None
    rebuilt = loaded._read_model()  # what log_evidence builds for a loaded fit
    assert [rv.name for rv in rebuilt.free_RVs] == [rv.name for rv in nuts_fit.model_.free_RVs]
    point = {"weights_free": np.array([0.4, 0.6]), "means_free": DATA.means[1:],
             "variances_free": DATA.covariances["diag"][:2]}
    assert _log_density(rebuilt, point) == pytest.approx(_log_density(nuts_fit.model_, point),
                                                         rel=1e-12)
    with pytest.raises(ValueError, match="bridge sampling is not available for a fit with "
                                         "fixed parameters"):
        loaded.log_evidence()


# ---------------------------------------------------------------- (e) bad input
@pytest.fixture
def never_built(monkeypatch):
    """Fail if a model is built or EM fitted: the errors must come before."""
    def forbidden(*args, **kwargs):
        raise AssertionError("reached the model or the EM start")

    monkeypatch.setattr(bayesgmm.bayes, "build_model_from_spec", forbidden)
    monkeypatch.setattr(bayesgmm.bayes, "_fit_em", forbidden)


@pytest.mark.parametrize("fixed, match", [
    ({"means": [[0.0, 0.0]]}, r"fixed means must have shape \(2, 2\), got \(1, 2\)"),
    ({"covariances": [[1.0, 1.0], [nan, nan]]},
     r"fixed covariances must have shape \(2, 2, 2\), got \(2, 2\)"),
    ({"weights": [0.6, 0.6]}, "fixed weights must sum to 1 when all are fixed, got 1.2"),
    ({"weights": [1.0, nan]}, "leaving nothing for the free components"),
    ({"covariances": [[[1.0, 2.0], [2.0, 1.0]], np.full((2, 2), nan)]},
     "fixed covariances must be positive definite"),
    ({"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0, 1.0]],
      "covariances": [np.eye(2), np.eye(2)]}, "fixed fixes every parameter"),
    ({"mean": [[0.0, 0.0], [nan, nan]]}, r"fixed has unknown keys \['mean'\]"),
])
def test_bad_fixed_is_refused_with_ems_message(faithful, never_built, fixed, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(2, fixed=fixed).fit(faithful)
    with pytest.raises(ValueError, match=match):
        GaussianMixtureBayes(2, fixed=fixed).fit(faithful, progressbar=False)
    with pytest.raises(ValueError, match=match):
        build_model(faithful, 2, fixed=fixed)


@pytest.mark.parametrize("options, match", [
    ({"order_by": "waiting"}, "fixed cannot be combined with order_by"),
    ({"priors": ConjugatePrior()}, "fixed cannot be combined with the ConjugatePrior"),
])
def test_fixed_with_order_by_or_conjugate_prior_is_refused(faithful, never_built, options,
                                                           match):
    fixed = {"means": [[nan, nan], [2.0, 54.0]]}
    with pytest.raises(ValueError, match=match):
        GaussianMixtureBayes(2, fixed=fixed, **options).fit(faithful, progressbar=False)
    with pytest.raises(ValueError, match=match):
        build_model(faithful, 2, fixed=fixed, **options)


def test_fixed_is_stored_as_given():
    fixed = {"weights": [0.6, nan]}
    model = GaussianMixtureBayes(2, fixed=fixed)
    assert model.get_params()["fixed"] is fixed


def test_a_given_em_must_hold_the_fixed_parameters():
    """``fit(em=...)`` starts from the user's EM fit only if it holds the fixed values."""
    free = GaussianMixtureEM(3, covariance_type="diag", random_state=0).fit(X_DIAG)
    model = GaussianMixtureBayes(3, covariance_type="diag", fixed=FIXED_DIAG, random_state=0)
    with pytest.raises(ValueError, match="em does not hold the fixed parameters"):
        model.fit(X_DIAG, method="map", em=free, progressbar=False)
    held = GaussianMixtureEM(3, covariance_type="diag", fixed=FIXED_DIAG,
                             random_state=0).fit(X_DIAG)
    fit = model.fit(X_DIAG, method="map", em=held, progressbar=False)
    assert fit.start_ == {"method": "given em"}
    assert fit.map_["weights"].values[0, 0, 0] == DATA.weights[0]
