"""The Bayesian Gaussian mixture as a PyMC model.

:func:`build_model` returns an ordinary ``pm.Model`` that users can inspect, extend
or sample themselves. The component labels are summed out: the likelihood of each
point is ``log sum_k w_k N(x | mu_k, Sigma_k)``, evaluated for all components at
once. By default one fused Op computes it with its analytic gradient
(``bayesgmm._fused``, numba kernels); ``likelihood="reference"`` writes the same
density with the EM engine's covariance maths (``bayesgmm._gaussian``) as an
ordinary PyTensor graph, and the tests hold the two (and the EM engine) together.

``GaussianMixtureBayes`` starts its chains at values of these free variables taken
from an EM fit: :mod:`bayesgmm._start` builds them (its docstring lists the names it
uses, and ``tests/test_start.py`` checks them against every built model).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ._fixed import FixedParameters
from ._gaussian import (DEFAULT_COVARIANCE_TYPE, BayesianParametrisation,
                        CovarianceStructure, get_covariance_structure, sample_mixture)
from ._pytensor import configure_pytensor
from ._validation import (MISSING_OPTIONS, as_numeric_table, check_choice, check_enough_samples,
                          check_feature, check_integer, optional_sample_weight)
from .priors import ConjugatePrior, ResolvedConjugatePrior, ResolvedPriors, resolve_priors

__all__ = ["build_model", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a built model besides the data values."""

    n_components: int
    structure: CovarianceStructure
    priors: ResolvedPriors | ResolvedConjugatePrior
    feature_names: tuple[str, ...]
    center: np.ndarray  # shift of the data inside the reference likelihood (accuracy)
    order_by: int | None = None
    likelihood: str = "fused"
    #: The log-likelihood is ``sum_n w_n log p(x_n)`` (``pm.Data("sample_weight")``).
    weighted: bool = False
    #: The data have missing (NaN) entries: each row's density is the marginal of its
    #: observed features (:mod:`bayesgmm._masked`; ``pm.Data`` ``complete_rows``,
    #: ``incomplete_rows``, their ``missing_pattern`` and the ``observed_features``).
    missing: bool = False
    #: Known parameters held constant (:class:`bayesgmm._fixed.FixedParameters`, checked
    #: by :func:`with_fixed`), or None.
    fixed: FixedParameters | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def parametrisation(self) -> BayesianParametrisation:
        return self.structure.bayesian(self.n_features)

    @property
    def conjugate(self) -> bool:
        """Whether the prior is the conjugate one (:class:`bayesgmm.priors.ConjugatePrior`)."""
        return isinstance(self.priors, ResolvedConjugatePrior)

    @property
    def covariance_kind(self) -> str:
        """How the covariance is parametrised: 'matrix', 'per_feature' or 'single'."""
        return self.parametrisation.kind


def as_array_and_names(X, what="X", missing="raise"):
    """A checked float array (n, D) and its feature names; ``missing="marginalize"``
    accepts NaN as a missing entry (except in a row with every entry missing)."""
    missing = check_choice("missing", missing, MISSING_OPTIONS)
    table = as_numeric_table(X, what=what, allow_nan=missing == "marginalize")
    if isinstance(table, pd.DataFrame):
        return table.to_numpy(dtype=float), tuple(str(c) for c in table.columns)
    array = np.asarray(table, dtype=float)
    return array, tuple(f"x{j}" for j in range(array.shape[1]))


LIKELIHOODS = ("fused", "reference")


def make_spec(X, n_components, covariance_type=DEFAULT_COVARIANCE_TYPE, priors=None,
              order_by=None, names=None, likelihood="fused", sample_weight=None):
    """Check the inputs and resolve the priors: all that can fail before compiling.

    ``sample_weight``: None, or weights already checked by
    :func:`bayesgmm._validation.check_sample_weight` (checked again here, cheaply).
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)}, got {likelihood!r}.")
    check_integer("n_components", n_components, minimum=1)
    structure = get_covariance_structure(covariance_type)
    weights = optional_sample_weight(sample_weight, X.shape[0])
    check_enough_samples(X.shape[0] if weights is None else int(np.count_nonzero(weights)),
                         n_components)
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(X.shape[1]))
    order_by = check_feature("order_by", order_by, names)
    structure.check_n_features(X.shape[1])
    structure.bayesian(X.shape[1])  # refuses an EM-only structure
    if isinstance(priors, ConjugatePrior) and order_by is not None:
        raise ValueError(
            "order_by is not available with the ConjugatePrior (its means' prior depends "
            "on the covariances); leave order_by=None: the posterior is relabelled after "
            "sampling.")
    missing = bool(np.isnan(X).any())
    if missing:
        if likelihood == "reference":
            raise ValueError(
                "likelihood='reference' needs complete data: X has missing (NaN) entries, "
                "which only the fused likelihood marginalises; use likelihood='fused'.")
        from ._missing import mean_imputed

        # the data-scaled default priors and the centre from mean-imputed data, as EM's
        # start and scale checks
        X = mean_imputed(X, np.ones(len(X)) if weights is None else weights)
    resolved = resolve_priors(priors, X, n_components, structure, sample_weight=weights)
    center = X.mean(axis=0) if weights is None else (weights @ X) / weights.sum()
    return ModelSpec(int(n_components), structure, resolved, names, center, order_by,
                     likelihood, weighted=weights is not None, missing=missing)


def with_fixed(spec, fixed):
    """``spec`` holding the user's ``fixed`` (None: ``spec`` itself), checked before any
    compiling by :meth:`FixedParameters.check` (the messages of
    ``GaussianMixtureEM(fixed=...)``) and refused where it does not make sense."""
    if fixed is None:
        return spec
    if spec.conjugate:
        raise ValueError(
            "fixed cannot be combined with the ConjugatePrior: its means' prior depends on "
            "their covariances, so a known mean would still carry a prior term shaping its "
            "covariance, and its start (MAP-EM) takes no fixed parameters, as "
            "GaussianMixtureEM refuses fixed with a prior. Use the default priors "
            "(priors=None or a GMMPriors).")
    if spec.order_by is not None:
        raise ValueError(
            "fixed cannot be combined with order_by: ordering the means of every component "
            "along one feature would contradict fixed means, and known parameters already "
            "tell their components apart (the draws are relabelled only among "
            "interchangeable components). Leave order_by=None.")
    checked = FixedParameters.check(fixed, spec.structure, spec.n_components, spec.n_features)
    return replace(spec, fixed=checked)


def build_model(X, n_components, *, covariance_type=DEFAULT_COVARIANCE_TYPE, priors=None,
                order_by=None, likelihood="fused", sample_weight=None, missing="marginalize",
                fixed=None):
    """Build the PyMC model of a Gaussian mixture with the labels marginalised.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numpy array, pandas DataFrame (column names become the ``feature``
        coordinate) or xarray DataArray. Stored as ``pm.Data("X")``.
    n_components : int
    covariance_type : str
        A name in ``bayesgmm.COVARIANCE_STRUCTURES`` (scikit-learn's) or its mclust name.
    priors : GMMPriors, ConjugatePrior, dict or None
        See :mod:`bayesgmm.priors`; ``None`` uses the data-scaled defaults.
        ``ConjugatePrior()`` is mclust's conjugate prior, whose posterior mode is
        ``GaussianMixtureEM(prior=ConjugatePrior())``'s MAP-EM fit; its free
        variables are then ``weights``, ``means`` and, for full and tied covariances,
        ``covariance_packed`` (the log-Cholesky factor: log-diagonal, then the
        strictly lower triangle) or, for diag and spherical, ``variances``.
    order_by : str or int, optional
        Identifiability constraint: the component means of this feature are
        ordered (``means[0, f] < means[1, f] < ...``). Off by default; the
        posterior is relabelled after sampling instead.
    likelihood : {"fused", "reference"}
        ``"fused"`` (default) evaluates the mixture log-density and its analytic
        gradient in one Op (:mod:`bayesgmm._fused`: numba kernels, several times
        faster); ``"reference"`` writes the same density as an ordinary PyTensor
        graph (the EM engine's expanded form, differentiated by PyTensor), kept
        as the readable formulation the fused one is tested against.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights ``w_n``: the log-likelihood becomes ``sum_n w_n log
        p(x_n)``, a power likelihood (``p(x_n)^{w_n}``), stored as
        ``pm.Data("sample_weight")`` (dims obs_id; set it with ``X`` for new data).
        An integer weight counts its row that many times: the log density equals,
        to rounding, that of the data with every row repeated ``w_n`` times (the
        data-scaled default priors are the weighted data's too). Weights scale the
        data's information: weights summing to ``W`` give a posterior about as wide
        as ``W`` points would. See :meth:`GaussianMixtureBayes.fit`.
    missing : {"marginalize", "raise"}
        What NaN in ``X`` means. ``"marginalize"`` (default): a missing entry, missing
        at random; each row's likelihood is the marginal density of its observed
        features, ``log sum_k w_k N(x_O | mu_kO, Sigma_kOO)`` (the missing entries
        integrated out, as EM's ``missing="marginalize"``), computed by one masked Op
        (:mod:`bayesgmm._masked`) whatever the number of patterns; the data-scaled
        default priors are those of the data with each missing entry set to its
        column's mean. Rows with every entry missing are refused. ``"raise"``: NaN is
        refused. Complete data give the same model either way.
    fixed : dict, optional
        Known parameters, as ``GaussianMixtureEM(fixed=...)`` takes them (same checks,
        same messages): any of ``"weights"`` (K,), ``"means"`` (K, D, whole rows) and
        ``"covariances"`` (the structure's layout: per component for full, diag and
        spherical, else all of them), NaN marking what is estimated. They become
        constants of the model, not priors: the free variables are those of the free
        parameters only, their priors the full model's restricted to them. Free means
        are ``means_free`` (free rows, ``Normal``); free weights, when two or more, are
        ``(1 - sum of the fixed) * weights_free`` with ``weights_free ~
        Dirichlet(alpha of the free components)`` (the full Dirichlet's conditional
        given the fixed weights; one free weight is what the fixed leave, a constant);
        free covariances are ``variances_free`` (or ``sds_free``, ``sigmas_free``) and
        ``corr_chol_free`` of the free components. The deterministics ``weights``,
        ``means``, ``sigmas``, ``correlations``, ``covariances`` and ``variances``
        (InverseGamma priors) keep every component, so all that reads a fit is
        unchanged. Refused before anything is compiled: a wrong shape, weights outside
        [0, 1] or not summing to 1, a covariance not positive definite, fixing every
        parameter, and ``fixed`` with ``order_by`` or the ``ConjugatePrior``.

    Returns
    -------
    pymc.Model
        Free variables: ``weights`` (component), ``means`` (component, feature)
        and the covariance parameters: for full, ``variances`` (component,
        feature, ``InverseGamma``: the diagonal; ``sds`` are their square roots) or,
        under ``LKJ(sd=HalfNormal(...))``, ``sds`` (``HalfNormal``), and
        ``corr_chol`` (component, feature, feature2, ``LKJCorr``: the Cholesky
        factor of the correlation matrix), ``L = diag(sds) corr_chol``; the same
        without the component dimension for tied; ``variances`` (``InverseGamma``)
        or ``sigmas`` (``HalfNormal``) for diag, spherical and one-dimensional
        data. Deterministics ``sigmas``,
        ``correlations`` and ``covariances`` (component, feature, feature2) give
        every structure the same labelled output. The observed variable ``obs``
        has dims (obs_id, feature); its log-density per row is ``w_n log p(x_n)``
        with ``sample_weight`` (so ``pm.compute_log_likelihood`` gives weighted
        terms). Built with ``check_bounds=False`` (no parameter can leave its
        support); set ``model.check_bounds = True`` before compiling if you add
        variables that need PyMC's bounds checks.

    Examples
    --------
    >>> from bayesgmm import build_model, datasets
    >>> model = build_model(datasets.load_faithful(), 2, covariance_type="diag")
    >>> sorted(model.named_vars)[:3]
    ['X', 'covariances', 'means']
    >>> nan = float("nan")
    >>> known = build_model(datasets.load_faithful(), 2, covariance_type="diag",
    ...                     fixed={"means": [[4.3, 80.0], [nan, nan]]})
    >>> [rv.name for rv in known.free_RVs]
    ['weights', 'means_free', 'variances']
    """
    array, names = as_array_and_names(X, missing=missing)
    weights = optional_sample_weight(sample_weight, array.shape[0])
    spec = make_spec(array, n_components, covariance_type, priors, order_by, names, likelihood,
                     sample_weight=weights)
    spec = with_fixed(spec, fixed)
    return build_model_from_spec(array, spec, sample_weight=weights)


def build_model_from_spec(X, spec: ModelSpec, sample_weight=None):
    """The model of ``spec`` on data ``X``; ``sample_weight`` (checked weights) exactly
    when ``spec.weighted``."""
    if spec.weighted != (sample_weight is not None):
        raise ValueError("the model's specification is " + ("weighted: give its sample_weight"
                         if spec.weighted else "unweighted: give no sample_weight") + ".")
    configure_pytensor()
    import pymc as pm
    import pytensor.tensor as pt

    from ._fused import mixture_log_density
    from ._transforms import FusedSimplex

    K, D = spec.n_components, spec.n_features
    structure, priors = spec.structure, spec.priors
    coords = {
        "component": np.arange(K),
        "feature": list(spec.feature_names),
        "feature2": list(spec.feature_names),
        "obs_id": np.arange(X.shape[0]),
    }
    if spec.conjugate and spec.covariance_kind == "matrix":
        rows, cols = np.tril_indices(D, -1)
        coords["cholesky_entry"] = ([f"log L[{i},{i}]" for i in range(D)]
                                    + [f"L[{i},{j}]" for i, j in zip(rows, cols)])
    # Every parameter is sampled through a transform into its support and the
    # priors are checked in make_spec: PyMC's bounds checks could never fail, and
    # leaving them out takes 7 nodes and 5% off each log-density+gradient.
    with pm.Model(coords=coords, check_bounds=False) as model:
        # pm.Data takes no NaN: a missing entry is stored as 0, never read (the
        # pattern says which entries are observed)
        data = pm.Data("X", np.nan_to_num(X, nan=0.0) if spec.missing else X,
                       dims=("obs_id", "feature"), shape=(None, D))
        weights_data = None if sample_weight is None else pm.Data(
            "sample_weight", np.asarray(sample_weight, dtype=float), dims="obs_id", shape=(None,))
        if spec.missing:
            from ._masked import mixture_log_density_with_missing, split_rows

            complete, incomplete, pattern, observed = split_rows(X)
            rows = (None if len(complete) == 0 else
                    pm.Data("complete_rows", complete, shape=(None,)),
                    pm.Data("incomplete_rows", incomplete, shape=(None,)),
                    pm.Data("missing_pattern", pattern, shape=(None,)),
                    pm.Data("observed_features", observed, shape=(None, D)))
        # Data-dependent constants are pm.Data too: a new data set of the same
        # shape then reuses the compiled graph (and the disk cache) unchanged.
        if spec.conjugate:
            weights = pm.Dirichlet("weights", a=np.ones(K), shape=(K,), dims="component",
                                   default_transform=FusedSimplex())
            cov_chol, prec_chol, means = _conjugate(pm, pt, spec)
        else:
            hyper = _hyperparameters(pm, priors)
            weights = _weights(pm, pt, spec, hyper)
            means = _means(pm, pt, spec, hyper)
            cov_chol, prec_chol = _covariance(pm, pt, spec, hyper)
        if spec.likelihood == "fused":
            # the kernels form the residuals x - mu directly: no centring needed
            diagonal = spec.covariance_kind != "matrix"
            params, signature, chol_shape = cov_chol, "(k),(k,d),(k,d,d)->(d)", (K, D, D)

            def log_density(value, log_w, mu, chol):
                if spec.missing:
                    return mixture_log_density_with_missing(value, rows, log_w, mu, chol,
                                                            diagonal=diagonal)
                return mixture_log_density(value, log_w, mu, chol, diagonal=diagonal)

            def draw(weights, mu, chol, n, rng):
                return sample_mixture(weights, mu, chol, n, rng)[0]
        else:
            # the expanded quadratic form loses digits far from the origin: centre
            center = pm.Data("center", spec.center, dims="feature", shape=(D,))
            means = means - center
            params, chol_shape = prec_chol, structure.covariance_shape(K, D)
            signature = f"(k),(k,d),{structure.signature}->(d)"

            def log_density(value, log_w, mu, chol):
                return structure.mixture_log_density(value - center, log_w, mu, chol,
                                                     xp=pt)[0]

            def draw(weights, mu, chol, n, rng):
                # P = F F^T with F upper triangular: the covariance's lower factor is F^-T
                factors = np.swapaxes(np.linalg.inv(structure.to_full(chol, K, D)), 1, 2)
                return sample_mixture(weights, mu + spec.center, factors, n, rng)[0]

        def logp(value, log_w, mu, chol):
            value = pt.specify_shape(value, (None, D))
            log_w, mu, chol = log_w.reshape((K,)), mu.reshape((K, D)), chol.reshape(chol_shape)
            if weights_data is None:
                return log_density(value, log_w, mu, chol)
            # the power likelihood; its gradient is the fused Op's weighted form
            return weights_data * log_density(value, log_w, mu, chol)

        def random(log_w, mu, chol, rng=None, size=None):
            n = int(np.prod(size)) if size else 1
            draws = draw(np.exp(np.reshape(log_w, (K,))), np.reshape(mu, (K, D)),
                         np.reshape(chol, chol_shape), n, rng)
            return draws.reshape(tuple(size or ()) + (D,))

        pm.CustomDist(
            "obs", pt.log(weights), means, params,
            logp=logp, random=random, signature=signature,
            observed=data, dims=("obs_id", "feature"),
        )
    return model


def _hyperparameters(pm, priors):
    """The prior parameters in use, as ``pm.Data`` named ``prior_<parameter>``."""
    names = ["alpha", "means_mu", "means_sigma"] + (["eta"] if priors.eta is not None else []) \
        + {"halfnormal": ["sd_sigma"], "inversegamma": ["ig_alpha", "ig_beta"]}[priors.scale]
    values = {name: np.asarray(getattr(priors, name), dtype=float) for name in names}
    return {name: pm.Data(f"prior_{name}", value, shape=value.shape)
            for name, value in values.items()}


def _weights(pm, pt, spec, hyper):
    """``Dirichlet(alpha)`` weights; with fixed weights, the free components share what
    the fixed leave, ``(1 - sum fixed) * Dirichlet(alpha_free)`` (the conditional of the
    full Dirichlet given the fixed weights), a constant when one or none is free."""
    from ._transforms import FusedSimplex

    K, fixed = spec.n_components, spec.fixed
    if fixed is None or fixed.weight_mask is None:
        return pm.Dirichlet("weights", a=hyper["alpha"], shape=(K,), dims="component",
                            default_transform=FusedSimplex())
    free = np.flatnonzero(~fixed.weight_mask)
    values = np.where(fixed.weight_mask, np.nan_to_num(fixed.weights), 0.0)
    rest = 1.0 - values.sum()
    if len(free) <= 1:
        values[free] = rest
        return pm.Deterministic("weights", pt.as_tensor(values), dims="component")
    shares = pm.Dirichlet("weights_free", a=hyper["alpha"][free], shape=(len(free),),
                          default_transform=FusedSimplex())
    return pm.Deterministic("weights", _held(pt, values, free, rest * shares),
                            dims="component")


def _held(pt, values, free, free_values):
    """The constant ``values`` with the entries ``free`` (first axis) taken from
    ``free_values``; ``values`` itself when none is free."""
    values = pt.as_tensor(np.asarray(values, dtype=np.float64))
    if len(free) == 0:
        return values
    return pt.set_subtensor(values[free], free_values)


def _means(pm, pt, spec, hyper):
    priors, K, D = spec.priors, spec.n_components, spec.n_features
    mu, sigma = hyper["means_mu"], hyper["means_sigma"]
    fixed = spec.fixed
    if fixed is not None and fixed.mean_mask is not None:  # order_by is refused with fixed
        free = np.flatnonzero(~fixed.mean_mask)
        rows = None if len(free) == 0 else pm.Normal(
            "means_free", mu=mu[free], sigma=sigma[free], shape=(len(free), D))
        values = np.where(fixed.mean_mask[:, None], np.nan_to_num(fixed.means), 0.0)
        return pm.Deterministic("means", _held(pt, values, free, rows),
                                dims=("component", "feature"))
    if spec.order_by is None:
        return pm.Normal("means", mu=mu, sigma=sigma, shape=(K, D),
                         dims=("component", "feature"))
    f = spec.order_by
    mu_sorted = np.sort(priors.means_mu[:, f])
    ordered = pm.Normal(
        "means_ordered", mu=mu[:, f], sigma=sigma[:, f], shape=(K,),
        transform=pm.distributions.transforms.ordered,
        initval=mu_sorted + np.linspace(-1, 1, K) * priors.means_sigma[:, f] / 4,
    )
    columns = []
    if D > 1:
        rest = [j for j in range(D) if j != f]
        others = pm.Normal("means_rest", mu=mu[:, rest], sigma=sigma[:, rest], shape=(K, D - 1))
    for j in range(D):
        columns.append(ordered if j == f else others[:, rest.index(j)])
    return pm.Deterministic("means", pt.stack(columns, axis=1), dims=("component", "feature"))


def _covariance(pm, pt, spec, hyper):
    """Covariance parameters, as the structure's parametrisation says.

    Returns the lower Cholesky factors of every component's covariance, shape
    (K, D, D) (what the fused likelihood takes), and the precision factors in the
    structure's layout (what the reference likelihood takes; only built into the
    graph when used).

    Also records the deterministics ``sigmas``, ``correlations`` (matrix kinds) and
    ``covariances`` (component, feature, feature2) for every structure.
    """
    from pytensor.tensor.linalg import solve_triangular

    from ._transforms import FusedCholeskyCorr

    K, D, param = spec.n_components, spec.n_features, spec.parametrisation
    shape, dims = param.scale_shape(K, D), param.scale_dims
    n_cov = 1 if param.shared else K  # distinct covariances
    held = _held_covariances(spec)  # None, or (free components, fixed full covariances)
    if param.kind == "matrix":
        if held is None:
            # Standard deviations and correlations apart (the LKJCholeskyCov prior,
            # sampled in better coordinates: benchmarks/parametrisation.py).
            sds = _scales(pm, pt, spec.priors, hyper, "sds", shape, dims)
            corr_chol = pm.LKJCorr("corr_chol", n=D, eta=hyper["eta"],
                                   shape=(*shape[:-1], D, D),
                                   dims=(*dims[:-1], "feature", "feature2"),
                                   default_transform=FusedCholeskyCorr(D))
        else:
            sds, corr_chol = _held_scales(pm, pt, spec, hyper, *held)
        cov_chol = (sds[..., :, None] * corr_chol).reshape((n_cov, D, D))  # cov = L L^T
        corr_chol = corr_chol.reshape((n_cov, D, D))
        corr = corr_chol @ pt.swapaxes(corr_chol, 1, 2)
        pm.Deterministic("sigmas", pt.broadcast_to(sds.reshape((n_cov, D)), (K, D)),
                         dims=("component", "feature"))
        pm.Deterministic("correlations", pt.broadcast_to(corr, (K, D, D)),
                         dims=("component", "feature", "feature2"))
    else:
        sigmas = (_scales(pm, pt, spec.priors, hyper, "sigmas", shape, dims) if held is None
                  else _held_scales(pm, pt, spec, hyper, *held))
        per_feature = sigmas[:, None] if param.kind == "single" else sigmas
        per_feature = pt.broadcast_to(per_feature, (n_cov, D))
        cov_chol = per_feature[:, :, None] * pt.eye(D)
        # axis-aligned: the structure's precision factors are 1 / sd, in its layout
        prec_chol = (1.0 / sigmas).reshape(spec.structure.covariance_shape(K, D))
    cov = cov_chol @ pt.swapaxes(cov_chol, 1, 2)
    pm.Deterministic("covariances", pt.broadcast_to(cov, (K, D, D)),
                     dims=("component", "feature", "feature2"))
    if param.kind == "matrix":
        # precision factor: P = L^-T L^-1 = U U^T with U = L^-T (upper triangular)
        eye = pt.broadcast_to(pt.eye(D), (n_cov, D, D))
        upper = pt.swapaxes(solve_triangular(cov_chol, eye, lower=True), 1, 2)
        prec_chol = spec.structure.from_full(upper, xp=pt)
    return pt.broadcast_to(cov_chol, (K, D, D)), prec_chol


def _held_covariances(spec):
    """With fixed covariances: the free components (indices, none for a shared layout)
    and every component's covariance as a full matrix (K, D, D), the free ones' entries
    placeholders. None without fixed covariances."""
    fixed = spec.fixed
    if fixed is None or fixed.covariance_mask is None:
        return None
    K, D = spec.n_components, spec.n_features
    mask = np.broadcast_to(fixed.covariance_mask, (K,))
    full = spec.structure.to_full(np.nan_to_num(fixed.covariances, nan=1.0), K, D)
    return np.flatnonzero(~mask), np.where(mask[:, None, None], full, np.eye(D))


def _held_scales(pm, pt, spec, hyper, free, full):
    """The scales of :func:`_covariance` with fixed covariances: constants for the fixed
    components, and for the free ones the full model's prior on them alone (free
    variables ``sds_free``/``sigmas_free`` or ``variances_free``, and ``corr_chol_free``).
    Matrix kinds: (sds, corr_chol) of the full model's shapes; else the ``sigmas``
    (deterministic). Records ``variances`` (every component) under InverseGamma priors."""
    from ._transforms import FusedCholeskyCorr

    K, D, param = spec.n_components, spec.n_features, spec.parametrisation
    shape, dims = param.scale_shape(K, D), param.scale_dims
    n_free = len(free)
    if param.kind == "matrix":
        fixed_sds, fixed_corr_chol = sds_and_corr_chol(full)
        n_cov = 1 if param.shared else K
        sds_free = corr_free = None
        if n_free:  # per-component families only (a shared layout is fixed whole)
            sds_free = _scales(pm, pt, spec.priors, hyper, "sds", (n_free, D), None,
                               suffix="_free")
            corr_free = pm.LKJCorr("corr_chol_free", n=D, eta=hyper["eta"],
                                   shape=(n_free, D, D), default_transform=FusedCholeskyCorr(D))
        sds = _held(pt, fixed_sds[:n_cov].reshape(shape), free, sds_free)
        corr_chol = _held(pt, fixed_corr_chol[:n_cov].reshape((*shape[:-1], D, D)), free,
                          corr_free)
        scales = (sds, corr_chol)
    else:
        sigmas_free = None if n_free == 0 else _scales(
            pm, pt, spec.priors, hyper, "sigmas", (n_free, *shape[1:]), None, suffix="_free")
        sds = pm.Deterministic(
            "sigmas", _held(pt, np.sqrt(param.variances(full)), free, sigmas_free), dims=dims)
        scales = sds
    if spec.priors.scale == "inversegamma":
        pm.Deterministic("variances", sds**2, dims=dims)
    return scales


#: Potentials with this suffix are changes of variables (the density of the sampled
#: coordinates), not part of the parameters' posterior density: the MAP leaves them out,
#: as it leaves out the Jacobians of PyMC's transforms.
JACOBIAN_SUFFIX = "_jacobian"


def _conjugate(pm, pt, spec):
    """Covariances and means under the conjugate prior (:class:`ConjugatePrior`).

    Full and tied: an inverse-Wishart ``(dof, scale)`` on each distinct covariance,
    sampled as its log-Cholesky factor (free, ``covariance_packed``), with the density
    of the covariance itself plus the Jacobian of the map (a separate potential, so
    that the MAP is the covariance density's mode, as mclust's). Diag and spherical:
    inverse-gamma ``(dof / 2, scale / 2)`` variances. Means: ``Normal(mean, Sigma_k /
    shrinkage)`` given their covariance (flat for shrinkage 0). Returns what
    :func:`_covariance` returns, and the means.
    """
    from pytensor.tensor.linalg import solve_triangular
    from scipy.special import multigammaln

    K, D, param, prior = spec.n_components, spec.n_features, spec.parametrisation, spec.priors
    shape, dims = param.scale_shape(K, D), param.scale_dims
    n_cov = 1 if param.shared else K
    mean = pm.Data("prior_mean", prior.mean, shape=(D,))
    if param.kind == "matrix":
        n_packed = D * (D + 1) // 2
        packed = pm.Flat("covariance_packed", shape=(*shape[:-1], n_packed),
                         dims=(*dims[:-1], "cholesky_entry"))
        flat = packed.reshape((n_cov, n_packed))
        rows, cols = np.tril_indices(D, -1)
        chol = pt.zeros((n_cov, D, D))
        chol = pt.set_subtensor(chol[:, np.arange(D), np.arange(D)], pt.exp(flat[:, :D]))
        chol = pt.set_subtensor(chol[:, rows, cols], flat[:, D:])
        dof = float(prior.dof)
        scale_chol = np.linalg.cholesky(prior.scale)
        log_det = 2.0 * pt.sum(flat[:, :D], axis=1)
        whitened = solve_triangular(chol, pt.broadcast_to(scale_chol, (n_cov, D, D)),
                                    lower=True)
        inverse_wishart = (
            0.5 * dof * np.linalg.slogdet(prior.scale)[1] - 0.5 * dof * D * np.log(2.0)
            - multigammaln(0.5 * dof, D) - 0.5 * (dof + D + 1) * log_det
            - 0.5 * pt.sum(whitened**2, axis=(1, 2)))
        pm.Potential("covariance_prior", pt.sum(inverse_wishart))
        # d Sigma / d(packed): 2^D prod_i L_ii^(D - i + 1) (Sigma = L L^T), times the
        # L_ii of the exponentiated diagonal
        powers = D + 1.0 - np.arange(D)
        pm.Potential("covariance" + JACOBIAN_SUFFIX,
                     pt.sum(D * np.log(2.0) + flat[:, :D] @ powers))
        cov_chol = chol
        sds = pt.sqrt(pt.sum(chol**2, axis=2))
        corr = (chol @ pt.swapaxes(chol, 1, 2)) / (sds[:, :, None] * sds[:, None, :])
        pm.Deterministic("sigmas", pt.broadcast_to(sds, (K, D)), dims=("component", "feature"))
        pm.Deterministic("correlations", pt.broadcast_to(corr, (K, D, D)),
                         dims=("component", "feature", "feature2"))
        cov_chol_k = pt.broadcast_to(cov_chol, (K, D, D))
        if prior.shrinkage > 0:
            means = pm.MvNormal("means", mu=mean, chol=cov_chol_k / np.sqrt(prior.shrinkage),
                                shape=(K, D), dims=("component", "feature"))
        else:
            means = pm.Flat("means", shape=(K, D), dims=("component", "feature"))
        eye = pt.broadcast_to(pt.eye(D), (n_cov, D, D))
        upper = pt.swapaxes(solve_triangular(cov_chol, eye, lower=True), 1, 2)
        prec_chol = spec.structure.from_full(upper, xp=pt)
    else:
        # a 1-D full or tied model is parametrised as a variance: its 1 x 1 scale
        scale = np.diag(prior.scale) if prior.scale.ndim == 2 else prior.scale
        beta = 0.5 * np.broadcast_to(scale, () if param.kind == "single" else shape[-1:])
        variances = pm.InverseGamma("variances", alpha=0.5 * prior.dof, beta=beta,
                                    shape=shape, dims=dims)
        sigmas = pm.Deterministic("sigmas", pt.sqrt(variances), dims=dims)
        per_feature = sigmas[:, None] if param.kind == "single" else sigmas
        per_feature = pt.broadcast_to(per_feature, (n_cov, D))
        cov_chol = per_feature[:, :, None] * pt.eye(D)
        prec_chol = (1.0 / sigmas).reshape(spec.structure.covariance_shape(K, D))
        if prior.shrinkage > 0:
            means = pm.Normal("means", mu=mean, sigma=pt.broadcast_to(per_feature, (K, D))
                              / np.sqrt(prior.shrinkage), shape=(K, D),
                              dims=("component", "feature"))
        else:
            means = pm.Flat("means", shape=(K, D), dims=("component", "feature"))
    cov = cov_chol @ pt.swapaxes(cov_chol, 1, 2)
    pm.Deterministic("covariances", pt.broadcast_to(cov, (K, D, D)),
                     dims=("component", "feature", "feature2"))
    return pt.broadcast_to(cov_chol, (K, D, D)), prec_chol, means


def pack_log_cholesky(covariances):
    """Covariance matrices (..., D, D) as the conjugate model's ``covariance_packed``:
    the log of the Cholesky factor's diagonal, then its strictly lower triangle."""
    chol = np.linalg.cholesky(covariances)
    D = chol.shape[-1]
    rows, cols = np.tril_indices(D, -1)
    return np.concatenate([np.log(np.diagonal(chol, axis1=-2, axis2=-1)),
                           chol[..., rows, cols]], axis=-1)


def _scales(pm, pt, priors, hyper, name, shape, dims, suffix=""):
    """Standard deviations called ``name``: HalfNormal ones, or the square roots of
    InverseGamma ``variances`` (the free variable then; ``name`` is deterministic).
    ``suffix`` is added to both names (``"_free"``: the free components' only)."""
    if priors.scale == "halfnormal":
        return pm.HalfNormal(name + suffix, sigma=hyper["sd_sigma"], shape=shape, dims=dims)
    variances = pm.InverseGamma("variances" + suffix, alpha=hyper["ig_alpha"],
                                beta=hyper["ig_beta"], shape=shape, dims=dims)
    return pm.Deterministic(name + suffix, pt.sqrt(variances), dims=dims)


def sds_and_corr_chol(covariances):
    """A covariance matrix (..., D, D) in the model's coordinates.

    Returns the standard deviations (..., D) and the Cholesky factor of the
    correlation matrix (..., D, D): ``sds`` and ``corr_chol``, with
    ``covariance = L L^T`` for ``L = diag(sds) corr_chol``.
    """
    sds = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    return sds, np.linalg.cholesky(covariances) / sds[..., :, None]
