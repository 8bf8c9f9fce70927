"""Where a Bayesian fit starts: the EM solution, in the PyMC model's variables.

``GaussianMixtureBayes.fit`` starts every chain near an EM fit and relabels the draws
against it. This module holds that bridge in both directions:

* finding the EM fit (:func:`_fit_em`: maximum likelihood, or prior-regularised EM
  when every restart collapses) or checking a given one (:func:`_given_em`), in the
  component order ``order_by`` asks for;
* turning it into starting values of the model's free variables
  (:func:`_start_points`);
* writing it into a saved file's configuration and reading it back
  (:func:`_em_to_config`, :func:`_em_from_config`), and presenting it as a one-draw
  posterior for the summary table (:func:`_em_posterior`).

The starting values are keyed by the names of the free variables that
:mod:`bayesgmm.model` defines (``build_model_from_spec`` and its helpers ``_means``,
``_covariance``, ``_scales``): ``weights``; ``means``, or ``means_ordered`` and
``means_rest`` under ``order_by``; for the matrix parametrisation ``corr_chol`` with
``sds`` (HalfNormal prior) or ``variances`` (InverseGamma), otherwise ``sigmas`` or
``variances``. With fixed parameters (``spec.fixed``) only the free ones: the same names
with ``_free`` for the free components, nothing for what is all fixed (:func:`_free_only`);
the EM fit then holds the same parameters fixed. This module sits beside the model rather
than inside it because its other half is EM (the model does not depend on the EM engine);
the model's coordinates come from the model (:func:`bayesgmm.model.sds_and_corr_chol`),
and ``tests/test_start.py`` checks for every structure, prior, ``order_by`` and some
fixed parameters that the start's keys are exactly the model's free variables, so a
renamed variable fails there.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ._fixed import from_dict
from ._gaussian import CollapsedComponentError, get_covariance_structure
from .em import GaussianMixtureEM, RegularizationWarning, _Scaling
from .model import pack_log_cholesky, sds_and_corr_chol

__all__ = []


# ------------------------------------------------------------------ the EM fit
def _fit_em(X, spec, seed, sample_weight=None):
    """The EM fit the chains start from and are relabelled against, and how it was found.

    Fitted with the model's ``sample_weight`` (checked weights, or None): the start is
    then the weighted likelihood's maximum, the mode the weighted posterior is near.
    Returns ``(em, record)``. The maximum-likelihood fit (5 restarts) is tried first. On
    small data it can fail where the posterior is perfectly proper: a component that
    owns one or two points collapses onto them in every restart. Then EM is run again
    with its covariances regularised by the prior's scale (:func:`_prior_regularised_em`)
    and ``record`` says so: the Bayesian fit never depends on EM succeeding.
    """
    if spec.conjugate:
        # under the conjugate prior the start is the posterior mode itself: MAP-EM with
        # that prior, which cannot collapse
        em = GaussianMixtureEM(spec.n_components, covariance_type=spec.structure.name,
                               n_init=5, tol=1e-8, max_iter=5000, reg_covar=0.0,
                               random_state=seed, prior=spec.priors.prior)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return em.fit(X, sample_weight=sample_weight), {"method": "map-em"}

    def fit(data, reg_covar, fixed=_em_fixed(spec)):
        em = GaussianMixtureEM(spec.n_components, covariance_type=spec.structure.name,
                               n_init=5, tol=1e-6, max_iter=1000, reg_covar=reg_covar,
                               random_state=seed, fixed=fixed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # the prior-regularised fit adds a large reg_covar on purpose
            warnings.simplefilter("ignore", RegularizationWarning)
            return em.fit(data, sample_weight=sample_weight)

    try:
        return _in_spec_order(fit(X, 1e-6), spec), {"method": "em"}
    except CollapsedComponentError as error:
        em, record = _prior_regularised_em(X, spec, fit, sample_weight)
        record["reason"] = f"maximum-likelihood EM failed: {error}"
        return _in_spec_order(em, spec), record


def _prior_regularised_em(X, spec, fit, sample_weight=None):
    """EM whose covariances are kept from collapsing by a fraction of the prior's scale.

    The data are divided by the prior's scale of each feature (one common scale for
    structures not closed under per-feature scaling, so that the structure is kept) and
    EM adds ``reg_covar`` to every covariance's diagonal there: 0.1 prior variances, or
    1% of the largest scaled data variance if that is larger. A component's covariance
    then has eigenvalues of at least 1% of the data's variance and cannot collapse,
    whatever few points it owns. The fit is mapped back to the data's units.
    """
    scale = _prior_scale(spec)
    if not spec.structure.per_feature_scaling:
        scale = np.full_like(scale, np.sqrt(np.mean(scale ** 2)))
    scaling = _Scaling(spec.structure, np.zeros_like(scale), scale)
    scaled = scaling.standardise(X)
    weights = np.ones(len(X)) if sample_weight is None else sample_weight
    if np.isnan(scaled).any():  # missing entries: the spread of the observed ones
        from ._missing import mean_imputed

        scaled = mean_imputed(scaled, weights)
    spread = np.average((scaled - np.average(scaled, axis=0, weights=weights)) ** 2, axis=0,
                        weights=weights)
    reg_covar = max(0.1, 0.01 * float(np.max(spread)))
    em = fit(scaled, reg_covar, _em_fixed(spec, scaling))
    em._set_parameters(scaling.to_original(
        (em.weights_, em.means_, em.covariances_, em.precisions_cholesky_)))
    em.set_params(fixed=_em_fixed(spec))  # in the data's units again
    total = float(weights.sum())
    em._set_trace(em.log_likelihood_trace_ - scaling.log_jacobian * total, total)
    return em, {"method": "prior-regularised-em", "reg_covar": reg_covar,
                "prior_scale": scale.tolist()}


def _em_fixed(spec, scaling=None):
    """The model's fixed parameters as ``GaussianMixtureEM(fixed=...)`` takes them (in
    ``scaling``'s standardised coordinates if given), or None: the start is then the
    maximum over the free parameters, as the posterior is over them."""
    if spec.fixed is None:
        return None
    return from_dict(spec.fixed.to_standardised(scaling).to_dict())


def _prior_scale(spec):
    """Per feature, the standard deviation a component has under the covariance prior."""
    priors, D = spec.priors, spec.n_features
    if priors.scale == "inversegamma":  # the mode of the variance
        variance = np.asarray(priors.ig_beta, float) / (np.asarray(priors.ig_alpha, float) + 1)
    else:  # HalfNormal(sigma) on the standard deviations: E[sd^2] = sigma^2
        variance = np.asarray(priors.sd_sigma, float) ** 2
    return np.sqrt(np.broadcast_to(variance, (D,)))  # the priors' shapes are () or (D,)


def _given_em(em, spec):
    """A copy of a user's EM fit (``fit(em=...)``), checked against ``spec``."""
    check_is_fitted(em, "means_")
    name = get_covariance_structure(em.covariance_type).name
    if (em.means_.shape != (spec.n_components, spec.n_features)
            or name != spec.structure.name):
        raise ValueError(
            f"em must be a fit with {spec.n_components} components, covariance "
            f"{spec.structure.name!r} and {spec.n_features} features; got "
            f"{em.means_.shape[0]} components, {name!r}, {em.means_.shape[1]} features.")
    if spec.fixed is not None and not spec.fixed.holds(em.weights_, em.means_,
                                                       em.covariances_):
        raise ValueError(
            "em does not hold the fixed parameters: fit it with the same fixed "
            "(GaussianMixtureEM(..., fixed=...)), or leave em=None and one is fitted.")
    return _in_spec_order(copy.deepcopy(em), spec)


def _in_spec_order(em, spec):
    """With ``order_by``, the EM components sorted so the ordered means start in order."""
    if spec.order_by is None:
        return em
    return _reordered(em, np.argsort(em.means_[:, spec.order_by]))


def _reordered(em, order):
    per_component = "component" in em._structure.layout
    em._set_parameters((em.weights_[order], em.means_[order],
                        em.covariances_[order] if per_component else em.covariances_,
                        em.precisions_cholesky_[order] if per_component
                        else em.precisions_cholesky_))
    return em


# --------------------------------------------------- in the model's variables
def _start_points(em, spec, n_chains, rng):
    """Initial values near the EM solution for each chain (constrained space).

    One dict per chain, keyed by the model's free variables (see the module
    docstring): the EM weights, means and scales, each jittered by a factor
    ``exp(N(0, 0.05))`` (means by 5% of the average data sd), and the EM correlations
    (:func:`_well_conditioned_correlations`).
    """
    K, D, param = spec.n_components, spec.n_features, spec.parametrisation
    full = spec.structure.to_full(em.covariances_, K, D)
    data_sd = np.sqrt(np.maximum(np.diagonal(full, axis1=1, axis2=2).mean(axis=0), 1e-12))
    starts = []
    for _ in range(n_chains):
        weights = np.maximum(em.weights_, 1e-3) * np.exp(rng.normal(0, 0.05, K))
        point = {"weights": weights / weights.sum()}
        means = em.means_ + rng.normal(0, 0.05, (K, D)) * data_sd
        if spec.order_by is None:
            point["means"] = means
        else:
            f = spec.order_by
            point["means_ordered"] = np.sort(means[:, f])
            if D > 1:
                point["means_rest"] = np.delete(means, f, axis=1)
        scale = np.exp(rng.normal(0, 0.05, K))
        if param.kind == "matrix" and spec.conjugate:
            jittered = full * scale[:, None, None]
            point["covariance_packed"] = pack_log_cholesky(
                jittered[0] if param.shared else jittered)
            starts.append(point)
            continue
        if param.kind == "matrix":
            sds, corr_chol = sds_and_corr_chol(_well_conditioned_correlations(full))
            sds = sds * scale[:, None]
            if param.shared:
                sds, corr_chol = sds[0], corr_chol[0]
            point["corr_chol"] = corr_chol
            variances = sds ** 2
        else:
            variances = param.variances(full)
            jitter = scale[0] if param.shared else scale.reshape((K,) + (1,) * (variances.ndim - 1))
            variances = variances * jitter
        point.update(_scale_start(spec, variances))
        starts.append(point)
    return [_free_only(point, spec) for point in starts]


def _free_only(point, spec):
    """A start of the full model reduced to the free variables of a model with fixed
    parameters (``bayesgmm.model``: ``weights_free``, ``means_free`` and the covariance
    variables with ``_free``, of the free components only; none for what is all fixed)."""
    fixed, K = spec.fixed, spec.n_components
    if fixed is None:
        return point
    point = dict(point)
    if fixed.weight_mask is not None:
        weights = point.pop("weights")[~fixed.weight_mask]
        if len(weights) > 1:  # one free weight is what the fixed leave: a constant
            point["weights_free"] = weights / weights.sum()
    if fixed.mean_mask is not None:
        means = point.pop("means")[~fixed.mean_mask]
        if len(means):
            point["means_free"] = means
    if fixed.covariance_mask is not None:
        free = ~np.broadcast_to(fixed.covariance_mask, (K,))  # a shared layout: all fixed
        for name in ("corr_chol", "sds", "sigmas", "variances"):
            if name in point:
                value = point.pop(name)
                if free.any():
                    point[name + "_free"] = value[free]
    return point


def _scale_start(spec, variances):
    """The start of the free scale variable (see ``model._scales``): the variances, or
    under a HalfNormal prior the standard deviations (``sds`` or ``sigmas``)."""
    if spec.conjugate or spec.priors.scale != "halfnormal":
        return {"variances": variances}
    return {"sds" if spec.covariance_kind == "matrix" else "sigmas": np.sqrt(variances)}


def _well_conditioned_correlations(covariances, min_eigenvalue=1e-3):
    """Covariances whose correlation matrices are shrunk towards I just enough that
    their smallest eigenvalue is ``min_eigenvalue``; the standard deviations are kept.

    For starting values only: a correlation of 0.9999999 (nearly collinear features)
    is a valid start in exact arithmetic, but its Cholesky factor does not survive
    the round trip through the sampler's unconstrained coordinates. The chains move
    from the shrunk start to wherever the posterior is.
    """
    sds = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    corr = covariances / (sds[..., :, None] * sds[..., None, :])
    smallest = np.linalg.eigvalsh(corr)[..., :1, None]  # (..., 1, 1)
    gap = 1 - smallest  # 0 for uncorrelated features (a diagonal, e.g. fixed, covariance)
    shrink = np.clip((min_eigenvalue - smallest) / np.where(gap > 0, gap, 1.0), 0, 1)
    corr = (1 - shrink) * corr + shrink * np.eye(corr.shape[-1])
    return corr * sds[..., :, None] * sds[..., None, :]


def _em_posterior(em, spec):
    """The EM estimate as a posterior of one chain of one draw (the summary's column
    ``em``): weights, means, sigmas, covariances and, for matrix kinds, correlations."""
    K, D = spec.n_components, spec.n_features
    full = spec.structure.to_full(em.covariances_, K, D)
    sd = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    data = {
        "weights": (("component",), em.weights_),
        "means": (("component", "feature"), em.means_),
        "sigmas": (("component", "feature"), sd),
        "covariances": (("component", "feature", "feature2"), full),
    }
    if spec.covariance_kind == "matrix":
        data["correlations"] = (("component", "feature", "feature2"),
                                full / (sd[:, :, None] * sd[:, None, :]))
    coords = {"component": np.arange(K), "feature": list(spec.feature_names),
              "feature2": list(spec.feature_names)}
    return xr.Dataset(data, coords=coords).expand_dims(chain=[0], draw=[0])


# ----------------------------------------------------------- in a saved file
def _em_to_config(em):
    """The EM fit as the ``em`` entry of a saved fit's configuration."""
    return {
        "weights": em.weights_.tolist(),
        "means": em.means_.tolist(),
        "covariances": np.asarray(em.covariances_).tolist(),
        "log_likelihood": em.log_likelihood_,
    }


def _em_from_config(config, X, sample_weight=None):
    """The EM fit of a saved configuration (:func:`_em_to_config`), fitted to ``X`` (with
    ``sample_weight``, None for an unweighted fit)."""
    structure = get_covariance_structure(config["covariance_type"])
    em = GaussianMixtureEM(config["n_components"], covariance_type=structure.name)
    covariances = np.asarray(config["em"]["covariances"])
    em._set_parameters((np.asarray(config["em"]["weights"]), np.asarray(config["em"]["means"]),
                        covariances, structure.precisions_cholesky(covariances)))
    em._set_trace([config["em"]["log_likelihood"]],
                  len(X) if sample_weight is None else float(np.sum(sample_weight)))
    em.n_features_in_ = X.shape[1]
    em.converged_, em.n_iter_ = True, 0
    em.prior_, em.log_prior_, em.n_missing_ = None, 0.0, int(np.isnan(X).sum())
    if config.get("fixed") is not None:  # absent before fixed parameters
        em.set_params(fixed=from_dict(config["fixed"]))
    return em
