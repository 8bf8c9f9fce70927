"""Bayesian Gaussian mixtures in PyMC: MAP, NUTS and ADVI behind one estimator."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ._gaussian import (DEFAULT_COVARIANCE_TYPE, CollapsedComponentError,
                        get_covariance_structure, sample_mixture)
from ._io import read_kind, write_atomically
from ._pytensor import without_c_compiler
from ._chains import ESS_MIN, RHAT_MAX
from ._validation import check_choice, check_integer, check_number, check_seed
from .em import GaussianMixtureEM, RegularizationWarning, _Scaling
from .model import (
    ModelSpec,
    as_array_and_names,
    build_model_from_spec,
    make_spec,
    sds_and_corr_chol,
)
from .priors import GMMPriors
from .relabel import permute_components, stephens_relabel

__all__ = ["GaussianMixtureBayes", "DiagnosticsWarning", "MAPConvergenceWarning", "METHODS"]

#: Accepted values of ``fit(method=...)``.
METHODS = ("nuts", "map", "advi")
NUTS_SAMPLERS = ("auto", "pymc", "nutpie")
INITS = ("em", "default")


def resolve_nuts_sampler(nuts_sampler):
    """The NUTS implementation ``nuts_sampler`` names: ``"auto"`` is nutpie when it is
    installed (``make`` installs it), else PyMC's.

    nutpie is preferred for two measured reasons (``benchmarks/README.md``): its NUTS
    runs in compiled code, so a fit's time is mostly compiling the model, and on small
    data its mass-matrix adaptation (from gradients as well as draws) removed the
    divergences PyMC's windowed adaptation left (40 of 40 fits without one, against
    36 of 40 with PyMC's, on 60-point full-covariance data).
    """
    import importlib.util

    check_choice("nuts_sampler", nuts_sampler, NUTS_SAMPLERS)
    installed = importlib.util.find_spec("nutpie") is not None
    if nuts_sampler == "auto":
        return "nutpie" if installed else "pymc"
    if nuts_sampler == "nutpie" and not installed:
        raise ValueError("nuts_sampler='nutpie' needs the nutpie package: pip install nutpie "
                         "(or bayesgmm[nutpie]), or use nuts_sampler='pymc'.")
    return nuts_sampler


#: Thresholds of :meth:`GaussianMixtureBayes.diagnose`.
EBFMI_MIN = 0.3
#: A NUTS fit with more than this share of its draws divergent is sampled once more,
#: with the step size adapted to ``RETRY_TARGET_ACCEPT`` (recorded in ``retry_``).
DIVERGENT_SHARE_MAX = 0.01
RETRY_TARGET_ACCEPT = 0.99
#: The labelled variables kept in the posterior (others are internal to the model).
POSTERIOR_VARS = ("weights", "means", "sigmas", "variances", "correlations", "covariances")
_FILE_KIND = "bayesgmm.GaussianMixtureBayes"


class DiagnosticsWarning(UserWarning):
    """A sampling diagnostic failed its threshold."""


class MAPConvergenceWarning(ConvergenceWarning):
    """The MAP optimiser stopped without finding a mode (the point returned is not one)."""


class GaussianMixtureBayes(BaseEstimator):
    """Bayesian Gaussian mixture: Dirichlet weights, Normal means, LKJ covariances.

    The model is :func:`bayesgmm.build_model` (labels summed out, same
    log-density as the EM engine). ``fit`` finds the MAP, samples the posterior
    with NUTS, or fits ADVI; every chain starts near the EM solution, and the draws
    are relabelled to one common labelling (Stephens' KL algorithm against the EM
    solution) so that R-hat and summaries of component parameters mean something.

    Parameters
    ----------
    n_components : int
    covariance_type : str
        A name in ``bayesgmm.COVARIANCE_STRUCTURES`` (scikit-learn's) or its mclust name.
    priors : GMMPriors, dict or None
        See :mod:`bayesgmm.priors`; None uses data-scaled defaults.
    order_by : str or int, optional
        Order the component means along this feature (an identifiability
        constraint). When given, draws are not relabelled.
    random_state : int or None
        Seeds EM, the chains' starting points and the sampler.

    Attributes
    ----------
    idata_ : xarray.DataTree
        Groups ``posterior`` (weights, means, sigmas, covariances and, for full
        and tied, correlations; dims chain, draw, component, feature),
        ``sample_stats`` (NUTS), ``log_likelihood`` (``obs``: chain, draw,
        obs_id), ``observed_data``; the configuration in its attributes.
    em_ : GaussianMixtureEM
        The EM fit used as starting point and labelling pivot.
    start_ : dict
        How ``em_`` was found: ``{"method": "em"}`` (maximum likelihood, 5
        restarts), ``"given em"`` (the ``em`` argument) or, when every EM restart
        collapsed (small data: a component owning one or two points),
        ``"prior-regularised-em"`` with the ``reason``, the ``reg_covar`` and the
        ``prior_scale`` the data were divided by. Stored in the saved file.
    retry_ : dict or None
        ``None``, or, when more than :data:`DIVERGENT_SHARE_MAX` (1%) of the first
        NUTS run's draws were divergent and ``target_accept`` was below
        :data:`RETRY_TARGET_ACCEPT` (0.99): the first run's ``target_accept``,
        ``divergences`` and ``share``, and ``retried_with``. The result is then the
        second run's, with the same seed and start; the configuration's
        ``target_accept`` is the one used. Stored in the saved file.
    relabel_ : dict
        ``n_permuted`` draws, ``n_iterations``, ``converged``.
    model_ : pymc.Model
    n_features_in_, feature_names_in_

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureBayes, datasets
    >>> X = datasets.load_faithful()
    >>> gmm = GaussianMixtureBayes(2, random_state=0).fit(X, draws=500, chains=2)  # doctest: +SKIP
    >>> gmm.summary()  # doctest: +SKIP
    """

    def __init__(self, n_components=1, *, covariance_type=DEFAULT_COVARIANCE_TYPE, priors=None,
                 order_by=None, random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.priors = priors
        self.order_by = order_by
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, method="nuts", *, draws=1000, tune=1000, chains=4, nuts_sampler="auto",
            init="em", target_accept=0.95, progressbar=True, relabel=True, advi_steps=20000,
            em=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        method : {"nuts", "map", "advi"}
            Full posterior sampling, the posterior mode (stored as one chain of one
            draw) or mean-field variational inference (``draws`` draws from the
            approximation).
        draws, tune, chains : int
            NUTS draws and warm-up steps per chain, and the number of chains.
        nuts_sampler : {"auto", "pymc", "nutpie"}
            ``"auto"``: nutpie when installed, else PyMC's (see
            :func:`resolve_nuts_sampler`); ``"nutpie"`` needs the optional nutpie
            package (``pip install bayesgmm[nutpie]``). The sampler used is stored in
            the result's configuration.
        init : {"em", "default"}
            ``"em"`` starts every chain near the EM solution (with jitter);
            ``"default"`` uses PyMC's initial point.
        target_accept : float
            The mean acceptance rate NUTS adapts its step size to. 0.95 by default:
            on small data 0.9 left divergences in 3 of 40 full-covariance fits where
            0.95 left none (``benchmarks/README.md``). A fit with more than 1% of its
            draws divergent is sampled again at 0.99 (see ``retry_``).
        progressbar : bool
        relabel : bool
            Relabel the draws to a common labelling (ignored with ``order_by``).
        advi_steps : int
            Optimisation steps of ADVI.
        em : GaussianMixtureEM, optional
            A fit of the same number of components and covariance type on the same
            data to start from (and relabel against); by default one is fitted
            (5 restarts).

        Returns
        -------
        self
        """
        check_choice("method", method, METHODS)
        nuts_sampler = resolve_nuts_sampler(nuts_sampler) if method == "nuts" \
            else check_choice("nuts_sampler", nuts_sampler, NUTS_SAMPLERS)
        check_choice("init", init, INITS)
        draws = check_integer("draws", draws, minimum=1)
        chains = check_integer("chains", chains, minimum=1)
        tune = check_integer("tune", tune, minimum=0)
        advi_steps = check_integer("advi_steps", advi_steps, minimum=1)
        target_accept = check_number(
            "target_accept", target_accept, low=0, high=1, low_open=True, high_open=True,
            hint=" (the NUTS step size is adapted to this mean acceptance rate; 0.9 to 0.99 "
                 "against divergences)")
        check_seed("random_state", self.random_state)
        if em is not None and not isinstance(em, GaussianMixtureEM):
            raise ValueError(f"em must be a fitted GaussianMixtureEM or None, got "
                             f"{type(em).__name__}.")

        X, names = as_array_and_names(X)
        spec = make_spec(X, self.n_components, self.covariance_type, self.priors,
                         self.order_by, names)  # every check happens before compiling
        seeds = np.random.SeedSequence(self.random_state).generate_state(4)
        if em is None:
            self.em_, self.start_ = _fit_em(X, spec, int(seeds[0]))
        else:
            self.em_, self.start_ = _given_em(em, spec), {"method": "given em"}
        self.spec_ = spec
        self.model_ = build_model_from_spec(X, spec)
        self._X = X
        rng = np.random.default_rng(seeds[1])
        starts = _start_points(self.em_, spec, max(chains, 1), rng) if init == "em" else None

        with without_c_compiler():
            self.retry_ = None
            if method == "nuts":
                posterior, sample_stats = self._sample_nuts(
                    starts, draws, tune, chains, nuts_sampler, target_accept, progressbar,
                    int(seeds[2]))
                divergences = _n_divergent(sample_stats)
                share = divergences / (sample_stats.sizes["chain"] * sample_stats.sizes["draw"])
                if share > DIVERGENT_SHARE_MAX and target_accept < RETRY_TARGET_ACCEPT:
                    # Small data: a chain reaching a near-empty component's region,
                    # whose scales are the prior's, meets steps adapted to the occupied
                    # one. A smaller step (higher acceptance target) samples both.
                    self.retry_ = {"target_accept": target_accept, "divergences": divergences,
                                   "share": share, "retried_with": RETRY_TARGET_ACCEPT}
                    target_accept = RETRY_TARGET_ACCEPT
                    posterior, sample_stats = self._sample_nuts(
                        starts, draws, tune, chains, nuts_sampler, target_accept,
                        progressbar, int(seeds[2]))
            elif method == "map":
                posterior, sample_stats = self._find_map(starts, progressbar), None
            else:
                posterior = self._fit_advi(starts, draws, advi_steps, progressbar,
                                           int(seeds[2]))
                sample_stats = None

        self.relabel_ = {"n_permuted": 0, "n_iterations": 0, "converged": True,
                         "method": "none"}
        n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
        if relabel and spec.order_by is None and spec.n_components > 1 and n_samples > 1:
            posterior = self._relabel(posterior)
        self.idata_ = self._assemble(posterior, sample_stats, method, locals_for_attrs={
            "draws": draws, "tune": tune, "chains": chains, "nuts_sampler": nuts_sampler,
            "init": init, "target_accept": target_accept})
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def _sample_nuts(self, starts, draws, tune, chains, nuts_sampler, target_accept,
                     progressbar, seed):
        import pymc as pm

        kwargs = {}
        if starts is not None:
            kwargs["initvals"] = starts[:chains] if nuts_sampler == "pymc" else starts[0]
        if nuts_sampler == "pymc":
            kwargs["init"] = "adapt_diag"
            kwargs["cores"] = min(chains, os.cpu_count() or 1)
        with warnings.catch_warnings(), _quiet_logger("pymc", progressbar):
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # Only the free variables are traced: the deterministics (sigmas,
            # correlations, covariances) are computed once afterwards, so neither
            # sampler compiles a function for them (nutpie cannot cache its own).
            idata = pm.sample(
                draws=draws, tune=tune, chains=chains, model=self.model_,
                nuts_sampler=nuts_sampler, target_accept=target_accept,
                random_seed=seed, progressbar=progressbar,
                compute_convergence_checks=False,
                var_names=[rv.name for rv in self.model_.free_RVs], **kwargs,
            )
        return _with_deterministics(self.model_, idata["posterior"].to_dataset()), \
            idata["sample_stats"].to_dataset()

    def _find_map(self, starts, progressbar):
        start = starts[0] if starts is not None else None
        self.map_ = _map_point(self.model_, start)
        _warn_if_map_failed(self.map_.attrs)
        return self.map_

    def _fit_advi(self, starts, draws, steps, progressbar, seed):
        import pymc as pm

        start = starts[0] if starts is not None else None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            approx = pm.fit(n=steps, method="advi", model=self.model_, start=start,
                            random_seed=seed, progressbar=progressbar)
            idata = approx.sample(draws, random_seed=seed)
        return _posterior_vars(idata["posterior"].to_dataset())

    def _relabel(self, posterior):
        """Stephens' KL relabelling of all draws against the EM memberships."""
        X = self._X
        if hasattr(self.em_, "feature_names_in_"):  # an em= fitted on a DataFrame
            X = pd.DataFrame(X, columns=self.em_.feature_names_in_)
        reference = self.em_.predict_proba(X)
        params = _stacked_parameters(posterior, self.spec_)
        membership = _Memberships(self._X, params, self.spec_)
        result = stephens_relabel(membership, reference)
        self.relabel_ = {"n_permuted": result.n_permuted, "n_iterations": result.n_iterations,
                         "converged": result.converged, "method": "stephens-kl"}
        return permute_components(posterior, result.permutations)

    def _assemble(self, posterior, sample_stats, method, locals_for_attrs):
        X, spec = self._X, self.spec_
        log_lik = self._pointwise_log_likelihood(posterior, X)
        groups = {
            "posterior": posterior,
            "log_likelihood": xr.Dataset({"obs": log_lik}),
            "observed_data": xr.Dataset(
                {"obs": (("obs_id", "feature"), X)},
                coords={"obs_id": np.arange(len(X)), "feature": list(spec.feature_names)},
            ),
        }
        if sample_stats is not None:
            groups["sample_stats"] = sample_stats
        tree = xr.DataTree.from_dict(groups)
        tree.attrs = {
            "bayesgmm_kind": _FILE_KIND,
            "bayesgmm_version": _version(),
            "method": method,
            "config": json.dumps(self._config(locals_for_attrs)),
        }
        return tree

    def _config(self, fit_kwargs):
        spec = self.spec_
        return {
            "n_components": spec.n_components,
            "covariance_type": spec.structure.name,
            "priors": GMMPriors.from_any(self.priors).to_dict(),
            "resolved_priors": spec.priors.priors.to_dict(),
            "order_by": spec.order_by,
            "random_state": self.random_state if isinstance(self.random_state, int) else None,
            "center": spec.center.tolist(),
            "feature_names": list(spec.feature_names),
            "fit": fit_kwargs,
            "relabel": self.relabel_,
            "start": self.start_,
            "retry": self.retry_,
            "em": {
                "weights": self.em_.weights_.tolist(),
                "means": self.em_.means_.tolist(),
                "covariances": np.asarray(self.em_.covariances_).tolist(),
                "log_likelihood": self.em_.log_likelihood_,
            },
        }

    # ---------------------------------------------------------- per-draw maths
    def _pointwise_log_likelihood(self, posterior, X):
        params = _stacked_parameters(posterior, self.spec_)
        out = np.concatenate([
            logsumexp(joint, axis=2) for joint in _joint_log_prob_chunks(X, params, self.spec_)
        ])
        chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
        return xr.DataArray(
            out.reshape(chains, draws, len(X)), dims=("chain", "draw", "obs_id"),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                    "obs_id": np.arange(len(X))},
        )

    # --------------------------------------------------------------- results
    @property
    def posterior(self) -> xr.Dataset:
        check_is_fitted(self, "idata_")
        return self.idata_["posterior"].to_dataset()

    def _check_X(self, X):
        check_is_fitted(self, "idata_")
        X, names = as_array_and_names(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with "
                f"{self.n_features_in_}."
            )
        if X.shape[0] == 0:
            raise ValueError(
                f"X has no samples (shape {X.shape}): give at least one point to compute "
                "memberships for."
            )
        return X

    def _membership_draws(self, X):
        """Membership probabilities of every draw, (n_draws, n_samples, K)."""
        params = _stacked_parameters(self.posterior, self.spec_)
        return np.concatenate([
            np.exp(joint - logsumexp(joint, axis=2, keepdims=True))
            for joint in _joint_log_prob_chunks(X, params, self.spec_)
        ])

    def predict_proba(self, X):
        """Posterior mean membership probabilities, shape (n_samples, n_components)."""
        return self._membership_draws(self._check_X(X)).mean(axis=0)

    def predict(self, X):
        """Most probable component of each sample (from the posterior mean memberships)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def membership(self, X, hdi_prob=0.94):
        """Membership probability of every point with its credible interval.

        Returns
        -------
        xarray.Dataset
            ``mean``, ``lower`` and ``upper`` (HDI of probability ``hdi_prob``),
            dims (obs_id, component).
        """
        import arviz as az

        hdi_prob = _check_hdi_prob(hdi_prob)
        X = self._check_X(X)
        draws = self._membership_draws(X)
        da = xr.DataArray(draws[None], dims=("chain", "draw", "obs_id", "component"),
                          coords={"component": np.arange(self.spec_.n_components),
                                  "obs_id": np.arange(len(X))})
        interval = az.hdi(da, prob=hdi_prob) if draws.shape[0] > 2 else None
        out = xr.Dataset({"mean": da.mean(("chain", "draw"))})
        if interval is not None:
            out["lower"] = interval.isel(ci_bound=0, drop=True)
            out["upper"] = interval.isel(ci_bound=1, drop=True)
        else:
            out["lower"] = out["upper"] = out["mean"]
        out.attrs["hdi_prob"] = hdi_prob
        return out

    def diagnose(self, *, warn=True):
        """Convergence diagnostics per parameter, with a warning naming failures.

        Returns a table (pandas DataFrame) of R-hat, bulk and tail ESS and the
        Monte Carlo standard error per parameter, and in ``.attrs``: divergences,
        tree-depth hits and the lowest E-BFMI. Thresholds: R-hat <= 1.01, ESS >=
        400, no divergence, E-BFMI >= 0.3.
        """
        import arviz as az

        check_is_fitted(self, "idata_")
        if "sample_stats" not in self.idata_.children:
            raise ValueError(
                "diagnostics need posterior samples: fit with method='nuts' "
                f"(this fit used method={self.idata_.attrs['method']!r})."
            )
        ds = _summary_dataset(self.posterior)
        table = az.summary(ds, kind="diagnostics", round_to="none")
        stats = self.idata_["sample_stats"].to_dataset()
        divergences = _n_divergent(stats)
        depth_hits = int(stats["reached_max_treedepth"].sum()) \
            if "reached_max_treedepth" in stats else 0
        bfmi = np.atleast_1d(np.asarray(az.bfmi(self.idata_)["energy"]
                                        if "energy" in stats else np.nan))
        table.attrs = {"divergences": divergences, "max_treedepth_hits": depth_hits,
                       "min_ebfmi": float(np.nanmin(bfmi)) if np.isfinite(bfmi).any()
                       else float("nan")}
        problems = []
        bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
        if bad_rhat:
            problems.append(
                f"R-hat > {RHAT_MAX} for {_few(bad_rhat)}: chains disagree; run longer "
                "(more tune and draws) or check for multiple modes (fewer components?)."
            )
        low_ess = table.index[(table["ess_bulk"] < ESS_MIN) | (table["ess_tail"] < ESS_MIN)]
        if len(low_ess):
            problems.append(
                f"ESS < {ESS_MIN} for {_few(low_ess.tolist())}: increase draws (or chains)."
            )
        if divergences:
            problems.append(
                f"{divergences} divergent transitions: increase target_accept (e.g. 0.99; "
                "the default is 0.95), or use more informative priors (an inverse-gamma on "
                "the variances keeps components from collapsing onto a few points)."
            )
        if depth_hits:
            problems.append(
                f"{depth_hits} draws hit the maximum tree depth: the posterior is hard to "
                "explore; consider stronger priors or fewer components."
            )
        if table.attrs["min_ebfmi"] < EBFMI_MIN:
            problems.append(
                f"E-BFMI {table.attrs['min_ebfmi']:.2f} < {EBFMI_MIN}: poor energy "
                "exploration; longer tuning or a reparametrisation may help."
            )
        table.attrs["problems"] = problems
        if problems and warn:
            warnings.warn("Sampling diagnostics failed: " + " ".join(problems),
                          DiagnosticsWarning, stacklevel=2)
        return table

    def summary(self, hdi_prob=0.94):
        """Posterior mean, sd and HDI of weights, means, sds and correlations.

        Columns ``map`` and ``em`` give the posterior mode and the EM estimate of
        the same parameters beside the posterior summaries.
        """
        import arviz as az

        hdi_prob = _check_hdi_prob(hdi_prob)
        check_is_fitted(self, "idata_")
        ds = _summary_dataset(self.posterior)
        if ds.sizes["chain"] * ds.sizes["draw"] > 1:
            table = az.summary(ds, kind="stats", ci_prob=hdi_prob, ci_kind="hdi", round_to="none")
        else:
            table = az.summary(ds, kind="stats", round_to="none").iloc[:, :1]
        estimates = {"map": self._map_posterior(), "em": self._em_posterior()}
        for name, point in estimates.items():
            if point is not None:
                values = _summary_dataset(point)
                table[name] = az.summary(values, kind="stats", round_to="none")["mean"].reindex(
                    table.index)
        return table

    def _map_posterior(self):
        if getattr(self, "map_", None) is None:
            self._ensure_model()
            starts = _start_points(self.em_, self.spec_, 1, np.random.default_rng(0))
            self._find_map(starts, progressbar=False)
        return self.map_

    def _em_posterior(self):
        em, spec = self.em_, self.spec_
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
        ds = xr.Dataset(data, coords=_coords(spec))
        return ds.expand_dims(chain=[0], draw=[0])

    # ------------------------------------------------------------- predictive
    def log_evidence(self, *, draws=1000, chains=4, random_state=None, progressbar=False):
        """Log marginal likelihood ``log p(X)`` of the fitted model, by Sequential Monte Carlo.

        ``pm.sample_smc`` tempers ``chains`` independent populations of ``draws``
        particles from the prior to the posterior; each run gives an estimate, and
        their spread measures its Monte Carlo error. The prior is exchangeable in
        the components, so the particles may visit every labelling and the estimate
        needs no ``log K!`` correction; this is why it refuses models built with
        ``order_by`` (whose ordered prior is not normalised).

        Returns
        -------
        dict
            ``log_evidence`` (mean of the runs), ``sd`` (their standard deviation),
            ``se`` (sd / sqrt(chains)) and ``chains`` (each run's estimate). Also
            stored as ``log_evidence_``.
        """
        import pymc as pm

        check_is_fitted(self, "spec_")
        draws = check_integer("draws", draws, minimum=1)
        chains = check_integer(
            "chains", chains, minimum=2)  # each run is one estimate: two give a spread
        check_seed("random_state", random_state)
        if self.spec_.order_by is not None:
            raise ValueError("the log evidence needs the exchangeable prior: refit without "
                             "order_by (the ordered-means prior is not normalised).")
        model = self._ensure_model()  # a loaded fit rebuilds it from its stored data
        seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])
        with warnings.catch_warnings(), _quiet_logger("pymc", progressbar), \
                without_c_compiler():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            idata = pm.sample_smc(draws=draws, chains=chains, model=model,
                                  random_seed=seed, progressbar=progressbar,
                                  compute_convergence_checks=False)
        values = _final_log_marginal_likelihood(idata["sample_stats"])
        self.log_evidence_ = {"log_evidence": float(values.mean()),
                              "sd": float(values.std(ddof=1)),
                              "se": float(values.std(ddof=1) / np.sqrt(len(values))),
                              "chains": values}
        return self.log_evidence_

    def sample_prior_predictive(self, draws=500, random_state=None):
        """Draws from the prior and the prior predictive distribution.

        Returns a DataTree with groups ``prior`` (weights, means, sigmas,
        covariances, ...) and ``prior_predictive`` (``obs``: chain, draw, obs_id,
        feature, as many points as the data). ``prior`` also holds
        ``n_nonempty_components``: per draw, how many components receive at least
        one of the simulated points, the implied prior on the number of clusters
        actually used.
        """
        import pymc as pm

        check_is_fitted(self, "spec_")
        draws = check_integer("draws", draws, minimum=1)
        check_seed("random_state", random_state)
        model = self._ensure_model()
        seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])
        names = [v for v in POSTERIOR_VARS if v in model.named_vars]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            tree = pm.sample_prior_predictive(draws=draws, model=model, var_names=names,
                                              random_seed=seed)
        prior = tree["prior"].to_dataset()
        replicates, labels = self._replicate(prior, seed)
        prior["n_nonempty_components"] = (
            ("chain", "draw"),
            np.array([len(np.unique(z)) for z in labels]).reshape(
                prior.sizes["chain"], prior.sizes["draw"]),
        )
        return xr.DataTree.from_dict({"prior": prior, "prior_predictive": replicates})

    def _ensure_model(self):
        """The PyMC model; a loaded fit builds it again from the data stored with it."""
        if getattr(self, "model_", None) is None:
            if getattr(self, "_X", None) is None:
                raise ValueError(
                    "this fit has no data to rebuild its model from (the file it was loaded "
                    "from lacks the observed_data group); fit the model again.")
            self.model_ = build_model_from_spec(self._X, self.spec_)
        return self.model_

    def _replicate(self, draws_ds, seed):
        """One simulated data set (as many points as the data) per draw."""
        stacked = draws_ds.stack(sample=("chain", "draw")).transpose("sample", ...)
        weights = stacked["weights"].values
        means = stacked["means"].transpose("sample", "component", "feature").values
        factors = np.linalg.cholesky(stacked["covariances"].transpose(
            "sample", "component", "feature", "feature2").values)
        rng = np.random.default_rng(seed)
        n, n_draws = len(self._X), len(weights)
        out = np.empty((n_draws, n, self.spec_.n_features))
        labels = np.empty((n_draws, n), dtype=int)
        for s in range(n_draws):
            out[s], labels[s] = sample_mixture(weights[s], means[s], factors[s], n, rng)
        chains, draws = draws_ds.sizes["chain"], draws_ds.sizes["draw"]
        replicates = xr.Dataset(
            {"obs": (("chain", "draw", "obs_id", "feature"), out.reshape(chains, draws, n, -1))},
            coords={"feature": list(self.spec_.feature_names), "obs_id": np.arange(n)},
        )
        return replicates, labels

    def sample_posterior_predictive(self, random_state=None):
        """Replicate data sets, one per posterior draw (group ``posterior_predictive``).

        Returns ``idata_`` with the group added: ``obs`` with dims (chain, draw,
        obs_id, feature).
        """
        check_is_fitted(self, "idata_")
        check_seed("random_state", random_state)
        seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])
        replicates, _ = self._replicate(self.posterior, seed)
        self.idata_["posterior_predictive"] = xr.DataTree(replicates)
        return self.idata_

    # --------------------------------------------------------------- storage
    def save(self, path):
        """Write the result (netCDF, with the model configuration) atomically.

        The file is written beside ``path`` and renamed over it only when
        complete, so a failed save leaves any earlier file intact.
        """
        check_is_fitted(self, "idata_")
        return write_atomically(path, lambda tmp: self.idata_.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save`; refuses files of other models.

        Everything the result is rebuilt from is checked first (the kind and
        version, the configuration, the groups and their shapes, finite values,
        weights on the simplex, positive definite covariances): a damaged or edited
        file raises a ``ValueError`` that names it and what is wrong.
        """
        tree, kind = read_kind(path)
        if kind != _FILE_KIND:
            raise ValueError(
                f"{path} was not written by bayesgmm's GaussianMixtureBayes.save "
                f"(its bayesgmm_kind attribute is {kind!r}); it cannot be loaded as one."
            )
        try:
            return cls._from_tree(tree)
        except (ValueError, KeyError, TypeError, IndexError, np.linalg.LinAlgError) as error:
            raise ValueError(f"{path} cannot be loaded as a GaussianMixtureBayes result: "
                             f"{error}") from None

    @classmethod
    def _from_tree(cls, tree):
        config = json.loads(tree.attrs["config"])
        model = cls(config["n_components"], covariance_type=config["covariance_type"],
                    priors=GMMPriors.from_dict(config["priors"]),
                    order_by=config["order_by"], random_state=config["random_state"])
        X = tree["observed_data"]["obs"].values
        model._X = X
        model.spec_ = ModelSpec(
            config["n_components"], get_covariance_structure(config["covariance_type"]),
            GMMPriors.from_dict(config["priors"]).resolve(
                X, config["n_components"],
                get_covariance_structure(config["covariance_type"]).bayesian(X.shape[1]).kind),
            tuple(config["feature_names"]), np.asarray(config["center"]), config["order_by"],
        )
        model.em_ = _em_from_config(config, X)
        model.relabel_ = config["relabel"]
        model.start_ = config.get("start", {"method": "em"})
        model.retry_ = config.get("retry")
        model.model_ = None
        model.map_ = None
        model.idata_ = tree
        model.n_features_in_ = X.shape[1]
        model.feature_names_in_ = np.asarray(config["feature_names"], dtype=object)
        return model


# ----------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_logger(name, keep):
    """Silence a library's INFO messages unless ``keep`` (e.g. with a progress bar)."""
    logger = logging.getLogger(name)
    level = logger.level
    if not keep:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_hdi_prob(hdi_prob):
    return check_number("hdi_prob", hdi_prob, low=0, high=1, low_open=True, high_open=True,
                        hint=" (the probability mass of the interval, e.g. 0.94)")


def _warn_if_map_failed(attrs):
    """A MAP whose optimiser gave up is not a mode: say so, with what usually causes it."""
    log_posterior = float(attrs.get("log_posterior", np.nan))
    if attrs.get("optimizer_success", 1) and np.isfinite(log_posterior):
        return
    warnings.warn(
        f"The MAP optimisation failed (L-BFGS stopped after "
        f"{attrs.get('optimizer_iterations', '?')} iterations, log posterior "
        f"{log_posterior:.6g}): the point returned is not a posterior mode. This usually "
        "means a prior far narrower or wider than the data's scale (e.g. HalfNormal(1e-300)) "
        "or data on an extreme scale: use priors on the data's scale (the data-scaled "
        "defaults: leave them None) or rescale the data, or sample with method='nuts'.",
        MAPConvergenceWarning, stacklevel=4)


def _final_log_marginal_likelihood(sample_stats):
    """Each SMC run's estimate: the last stage's value of ``log_marginal_likelihood``."""
    values = np.asarray(sample_stats["log_marginal_likelihood"].values)
    finals = []
    for per_chain in values.reshape(values.shape[0], -1):
        stages = np.concatenate([np.atleast_1d(np.asarray(v, dtype=float)) for v in per_chain])
        finals.append(stages[np.isfinite(stages)][-1])
    return np.array(finals)


def _version():
    from . import __version__

    return __version__


def _few(labels, limit=6):
    labels = [str(x) for x in labels]
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more"
                                        if len(labels) > limit else "")


def _coords(spec):
    return {"component": np.arange(spec.n_components), "feature": list(spec.feature_names),
            "feature2": list(spec.feature_names)}


def _fit_em(X, spec, seed):
    """The EM fit the chains start from and are relabelled against, and how it was found.

    Returns ``(em, record)``. The maximum-likelihood fit (5 restarts) is tried first. On
    small data it can fail where the posterior is perfectly proper: a component that
    owns one or two points collapses onto them in every restart. Then EM is run again
    with its covariances regularised by the prior's scale (:func:`_prior_regularised_em`)
    and ``record`` says so: the Bayesian fit never depends on EM succeeding.
    """
    def fit(data, reg_covar):
        em = GaussianMixtureEM(spec.n_components, covariance_type=spec.structure.name,
                               n_init=5, tol=1e-6, max_iter=1000, reg_covar=reg_covar,
                               random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # the prior-regularised fit adds a large reg_covar on purpose
            warnings.simplefilter("ignore", RegularizationWarning)
            return em.fit(data)

    try:
        return _in_spec_order(fit(X, 1e-6), spec), {"method": "em"}
    except CollapsedComponentError as error:
        em, record = _prior_regularised_em(X, spec, fit)
        record["reason"] = f"maximum-likelihood EM failed: {error}"
        return _in_spec_order(em, spec), record


def _prior_regularised_em(X, spec, fit):
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
    reg_covar = max(0.1, 0.01 * float(np.max(scaled.var(axis=0))))
    em = fit(scaled, reg_covar)
    em._set_parameters(scaling.to_original(
        (em.weights_, em.means_, em.covariances_, em.precisions_cholesky_)))
    em._set_trace(em.log_likelihood_trace_ - scaling.log_jacobian * len(X), len(X))
    return em, {"method": "prior-regularised-em", "reg_covar": reg_covar,
                "prior_scale": scale.tolist()}


def _prior_scale(spec):
    """Per feature, the standard deviation a component has under the covariance prior."""
    priors, D = spec.priors, spec.n_features
    if priors.scale == "inversegamma":  # the mode of the variance
        variance = np.asarray(priors.ig_beta, float) / (np.asarray(priors.ig_alpha, float) + 1)
    else:  # HalfNormal(sigma) on the standard deviations: E[sd^2] = sigma^2
        variance = np.asarray(priors.sd_sigma, float) ** 2
    return np.sqrt(np.broadcast_to(variance, (D,)))  # the priors' shapes are () or (D,)


def _given_em(em, spec):
    check_is_fitted(em, "means_")
    name = get_covariance_structure(em.covariance_type).name
    if (em.means_.shape != (spec.n_components, spec.n_features)
            or name != spec.structure.name):
        raise ValueError(
            f"em must be a fit with {spec.n_components} components, covariance "
            f"{spec.structure.name!r} and {spec.n_features} features; got "
            f"{em.means_.shape[0]} components, {name!r}, {em.means_.shape[1]} features.")
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


def _em_from_config(config, X):
    structure = get_covariance_structure(config["covariance_type"])
    em = GaussianMixtureEM(config["n_components"], covariance_type=structure.name)
    covariances = np.asarray(config["em"]["covariances"])
    em._set_parameters((np.asarray(config["em"]["weights"]), np.asarray(config["em"]["means"]),
                        covariances, structure.precisions_cholesky(covariances)))
    em._set_trace([config["em"]["log_likelihood"]], len(X))
    em.n_features_in_ = X.shape[1]
    em.converged_, em.n_iter_ = True, 0
    return em


def _start_points(em, spec, n_chains, rng):
    """Initial values near the EM solution for each chain (constrained space)."""
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
    return starts


def _n_divergent(sample_stats):
    """Divergent transitions in a sample_stats dataset (PyMC's or nutpie's)."""
    name = next((v for v in ("diverging", "divergences") if v in sample_stats), None)
    return int(sample_stats[name].sum()) if name else 0


def _scale_start(spec, variances):
    """The start of the free scale variable (see ``model._scales``): the variances, or
    under a HalfNormal prior the standard deviations (``sds`` or ``sigmas``)."""
    if spec.priors.scale != "halfnormal":
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
    shrink = np.clip((min_eigenvalue - smallest) / (1 - smallest), 0, 1)
    corr = (1 - shrink) * corr + shrink * np.eye(corr.shape[-1])
    return corr * sds[..., :, None] * sds[..., None, :]


def _map_point(model, start):
    """Posterior mode: L-BFGS on the unconstrained parameters, from ``start``.

    The log density is taken without the transforms' Jacobian, so the mode is that
    of the posterior of the model's parameters (as ``pm.find_MAP``). One function
    returning the log density, its gradient and the labelled parameters is built
    and run as an interpreted graph (numpy calls, no C or numba code): it compiles
    in well under a second even on a fresh machine, and the few dozen evaluations
    from the EM start (thousands on a nearly singular covariance: see
    :func:`_restarted_lbfgs`) cost less than any compiler would take.
    """
    import pytensor
    from pytensor.compile.mode import Mode

    with pytensor.config.change_flags(mode=Mode(linker="py", optimizer="merge"), cxx=""):
        return _optimise(model, start)


def _optimise(model, start):
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pymc.logprob.utils import ParameterValueError

    point = make_initial_point_fn(model=model, overrides=start or {}, jitter_rvs=set(),
                                  return_transformed=True)(0)
    value_vars = model.value_vars
    shapes = [np.shape(point[v.name]) for v in value_vars]
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    flat = pt.vector("flat", dtype="float64")
    replacements = {
        v: flat[bounds[i]:bounds[i + 1]].reshape(shapes[i]) for i, v in enumerate(value_vars)
    }
    names = [v for v in POSTERIOR_VARS if v in model.named_vars]
    outputs = model.replace_rvs_by_values([model[v] for v in names])
    logp, *outputs = pytensor.graph.replace.graph_replace(
        [model.logp(jacobian=False), *outputs], replacements, strict=False)
    function = pytensor.function([flat], [logp, pytensor.grad(logp, flat), *outputs])

    def negative(x):
        # A line search may step past what floating point can represent (a correlation
        # rounded to 1, an overflowing variance): infinitely bad, so it steps back.
        try:
            with np.errstate(all="ignore"):
                value, gradient, *_ = function(x)
        except (ParameterValueError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(x)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return np.inf, np.zeros_like(x)
        return -value, -gradient

    x0 = np.concatenate([np.ravel(point[v.name]) for v in value_vars])
    result = _restarted_lbfgs(negative, x0)
    _, _, *values = function(result.x)
    dims = model.named_vars_to_dims
    coords = {k: list(v) for k, v in model.coords.items() if k in ("component", "feature",
                                                                     "feature2")}
    data = {name: (("chain", "draw") + tuple(dims.get(name, ())), np.asarray(value)[None, None])
            for name, value in zip(names, values)}
    ds = xr.Dataset(data, coords={**coords, "chain": [0], "draw": [0]})
    ds.attrs.update({"optimizer_success": int(result.success), "optimizer_iterations": result.nit,
                     "log_posterior": float(-result.fun)})
    return ds


# scipy's defaults stop on a relative reduction of 2e-9 (several units of a log
# posterior of a thousand); the restarts below need each run to go to the end.
_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-9, "maxiter": 20000, "maxcor": 30}


def _restarted_lbfgs(negative, x0, max_restarts=50, rtol=1e-10):
    """L-BFGS-B from ``x0``, restarted where it stopped until a restart gains nothing.

    On a narrow ridge (nearly collinear features: a correlation of 0.9999999, whose
    residual variance is 1e-7 of the marginal one) L-BFGS's curvature memory goes
    stale and it stops hundreds of log-posterior units below the mode; a fresh memory
    climbs on. A restart at a mode ends after an iteration or two, so a well-posed fit
    pays almost nothing. The best point is kept, with the iterations of all runs. It
    counts as converged if its run did or if a fresh run from it cannot improve it
    (L-BFGS's line search then fails at rounding level, which scipy calls abnormal).
    """
    from scipy import optimize

    def run(x):
        return optimize.minimize(negative, x, jac=True, method="L-BFGS-B",
                                 options=_LBFGS_OPTIONS)

    result = run(x0)
    iterations, stalled = result.nit, False
    for _ in range(max_restarts):
        again = run(result.x)
        iterations += again.nit
        gain = result.fun - again.fun
        if gain > 0:
            result = again
        stalled = not gain > rtol * max(1.0, abs(result.fun))
        if stalled:
            break
    result.nit, result.success = iterations, bool(result.success or stalled)
    return result


def _with_deterministics(model, posterior):
    """The posterior's free variables plus the model's deterministics, labelled.

    Evaluated for all draws at once by an interpreted graph (numpy calls): nothing
    to compile, and a few milliseconds for thousands of draws.
    """
    import pymc as pm
    from pytensor.compile.mode import Mode

    derived = pm.compute_deterministics(
        posterior, model=model, progressbar=False,
        compile_kwargs={"mode": Mode(linker="py", optimizer="fast_run")})
    return _posterior_vars(xr.merge([posterior, derived], compat="override",
                                    combine_attrs="override"))


def _posterior_vars(ds):
    keep = [v for v in POSTERIOR_VARS if v in ds]
    return ds[keep]


def _stacked_parameters(posterior, spec):
    """Per-draw weights (S, K), means (S, K, D) and precision factors (structure layout)."""
    stacked = posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    weights = stacked["weights"].values
    means = stacked["means"].transpose("sample", "component", "feature").values
    full = stacked["covariances"].transpose("sample", "component", "feature", "feature2").values
    return {
        "weights": weights,
        "means": means,
        "precisions_cholesky": _batched_precisions_cholesky(spec.structure, full),
    }


def _batched_precisions_cholesky(structure, full):
    """Precision factors, in the structure's layout, for a batch of full covariances
    (S, K, D, D)."""
    chol = np.linalg.cholesky(full)
    return structure.from_full(np.swapaxes(np.linalg.inv(chol), -1, -2))  # U = L^-T


def _joint_log_prob_chunks(X, params, spec, max_elements=2**23):
    """Yield log w_k + log N(x_n | k) for chunks of draws: arrays (s, n, K).

    Draws and components are flattened into one batch of S*K Gaussians, so a
    chunk of draws costs one matrix product with the shared data features.
    """
    structure, center = spec.structure, spec.center
    K, D = spec.n_components, spec.n_features
    Xc = X - center
    per_component, all_factors = structure.per_component(params["precisions_cholesky"], K)
    features = per_component.quad_features(Xc)
    n_draws = len(params["weights"])
    step = max(1, max_elements // (len(X) * K))
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        s = sl.stop - sl.start
        means = (params["means"][sl] - center).reshape(s * K, D)
        factors = all_factors[sl]
        factors = factors.reshape((s * K,) + factors.shape[2:])
        coef = per_component.coefficients(means, factors)
        joint = -0.5 * features @ coef.quad.T + Xc @ coef.lin.T + coef.const  # (n, s*K)
        with np.errstate(divide="ignore"):
            joint = joint.reshape(len(X), s, K) + np.log(params["weights"][sl])[None]
        yield np.swapaxes(joint, 0, 1)


class _Memberships:
    """Membership probabilities per draw, computed in chunks and cached."""

    def __init__(self, X, params, spec):
        self.n_draws = len(params["weights"])
        self._values = np.concatenate([
            np.exp(joint - logsumexp(joint, axis=2, keepdims=True)).astype(np.float32)
            for joint in _joint_log_prob_chunks(X, params, spec)
        ])

    def __call__(self, i):
        return self._values[i]


def _summary_dataset(posterior):
    """Weights, means, sigmas and (off-diagonal) correlations, for tables."""
    ds = posterior[[v for v in ("weights", "means", "sigmas") if v in posterior]]
    if "correlations" in posterior:
        ds = ds.assign(correlations=_correlation_pairs(posterior["correlations"]))
    return ds



def _correlation_pairs(corr):
    features = list(corr["feature"].values)
    pairs, values = [], []
    for i in range(len(features)):
        for j in range(i + 1, len(features)):
            pairs.append(f"{features[i]}:{features[j]}")
            values.append(corr.isel(feature=i, feature2=j, drop=True))
    return xr.concat(values, dim=pd.Index(pairs, name="pair"))
