"""Bayesian Gaussian mixtures in PyMC: MAP, NUTS and ADVI behind one estimator.

:class:`GaussianMixtureBayes` checks its arguments, finds its start, runs a back end
and assembles the result; the rest lives beside it:

* :mod:`bayesgmm._inference`: the back ends (``BACKENDS``: nuts, map, advi, one
  signature ``backend(model, starts, settings) -> Inference``), the MAP optimiser;
* :mod:`bayesgmm._start`: the EM fit the chains start from, in the model's variables;
* :mod:`bayesgmm.diagnostics`: R-hat, ESS, divergences, E-BFMI and summary tables;
* :mod:`bayesgmm._draws`: per-draw maths (log-likelihoods, memberships, replicates);
* :mod:`bayesgmm.model`: the PyMC model itself.

The names other modules import from here (``METHODS``, ``NUTS_SAMPLERS``,
``resolve_nuts_sampler``, the warnings and thresholds, ``POSTERIOR_VARS``) are
re-exported from those modules.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._draws import (Memberships, membership_draws, pointwise_log_likelihood, replicate,
                     stacked_parameters)
from ._fixed import from_dict
from ._gaussian import DEFAULT_COVARIANCE_TYPE, get_covariance_structure
from ._inference import (  # noqa: F401  (re-exported: imported from bayesgmm.bayes)
    BACKENDS,
    DIVERGENT_SHARE_MAX,
    METHODS,
    NUTS_SAMPLERS,
    POSTERIOR_VARS,
    RETRY_TARGET_ACCEPT,
    MAPConvergenceWarning,
    Settings,
    _map_point,
    _optimise,
    _quiet_logger,
    _restarted_lbfgs,
    posterior_mode,
    resolve_nuts_sampler,
)
from ._bridge import EvidenceWarning  # noqa: F401  (re-exported)
from ._io import read_kind, write_atomically
from ._pytensor import without_c_compiler
from ._start import (_em_from_config, _em_posterior, _em_to_config, _fit_em, _given_em,
                     _start_points)
from ._validation import (MISSING_OPTIONS, check_choice, check_integer, check_number, check_seed,
                          integer_weights, optional_sample_weight)
from .diagnostics import (  # noqa: F401  (re-exported)
    EBFMI_MIN,
    DiagnosticsWarning,
    _n_divergent,
    check_hdi_prob,
    diagnose,
    matching_bootstrap,
    summary_table,
)
from .em import GaussianMixtureEM
from .model import as_array_and_names, build_model_from_spec, make_spec, with_fixed
from .priors import as_priors, priors_from_dict
from .relabel import permute_components, stephens_relabel

__all__ = ["GaussianMixtureBayes", "DiagnosticsWarning", "MAPConvergenceWarning", "METHODS"]

#: Accepted values of ``fit(init=...)``.
INITS = ("em", "default")
EVIDENCE_METHODS = ("bridge", "smc")
_FILE_KIND = "bayesgmm.GaussianMixtureBayes"


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
    priors : GMMPriors, ConjugatePrior, dict or None
        See :mod:`bayesgmm.priors`; None uses data-scaled defaults.
        ``ConjugatePrior()`` is mclust's conjugate prior: its MAP is
        ``GaussianMixtureEM(prior=ConjugatePrior())`` (the chains start there), and
        NUTS samples the posterior that fit is the mode of (full, tied, diag, spherical).
    order_by : str or int, optional
        Order the component means along this feature (an identifiability
        constraint). When given, draws are not relabelled.
    missing : {"marginalize", "raise"}
        What NaN in ``X`` means. ``"marginalize"`` (default, as
        :class:`GaussianMixtureEM`'s): a missing entry, missing at random; each row's
        likelihood is the marginal density of its observed features (the missing
        entries integrated out inside the model's one masked log-density Op,
        :mod:`bayesgmm._masked`), so the posterior is the one the observed entries
        define, with the uncertainty of what is missing in it. The EM start is EM's
        own marginalising fit; ``predict_proba``, ``membership``, the pointwise
        log-likelihood (LOO, WAIC) take NaN rows too; :meth:`impute` draws the missing
        entries from the posterior predictive. Rows with every entry missing are
        refused. ``"raise"``: NaN is refused. Complete data fit the same either way.
    fixed : dict, optional
        Known parameters, as ``GaussianMixtureEM(fixed=...)`` takes them: any of
        ``"weights"`` (K,), ``"means"`` (K, D, whole rows) and ``"covariances"`` (the
        structure's layout: per component for full, diag and spherical, all together
        for tied), NaN marking what is estimated. Stored as given and checked by
        ``fit`` with EM's checks and messages. They are constants of the model, not
        priors (:func:`bayesgmm.build_model`): the posterior is the conditional one
        given them, every draw holds them exactly, and the free weights share the mass
        the fixed leave. The EM start ``em_`` is fitted with the same ``fixed``. Draws
        are relabelled only among interchangeable components (those whose weights,
        means and covariances are each free in both or fixed to equal values): a
        permutation across them would move a known value to another component, and
        components that are all told apart are not relabelled. Saved and loaded with
        the fit. Refused with ``order_by`` and with the ``ConjugatePrior``; fixing every
        parameter is refused (as EM does); ``log_evidence`` takes ``method="smc"``
        only (bridge sampling averages over all relabellings).
    random_state : int or None
        Seeds EM, the chains' starting points and the sampler.

    Attributes
    ----------
    idata_ : xarray.DataTree
        Groups ``posterior`` (weights, means, sigmas, covariances and, for full
        and tied, correlations; dims chain, draw, component, feature),
        ``sample_stats`` (NUTS), ``log_likelihood`` (``obs``: chain, draw,
        obs_id: ``log p(x_n | draw)``, never multiplied by a weight),
        ``observed_data`` (``obs`` and, for a weighted fit, ``sample_weight``); the
        configuration in its attributes (``weighted``, ``sum_of_weights``).
    sample_weight_ : ndarray of shape (n_samples,) or None
        The weights of a weighted fit (stored with it: ``save`` writes them), None
        for an unweighted one.
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
    map_ : xarray.Dataset or None
        A ``method="map"`` fit's posterior mode (its posterior: one chain of one
        draw, the optimiser's record in its attrs); None for other methods and for
        loaded fits. :meth:`summary` finds the mode of those without storing it here.
    model_ : pymc.Model or None
        None for a loaded fit until :meth:`log_evidence` rebuilds it from the data
        stored with the fit.
    n_features_in_, feature_names_in_

    Notes
    -----
    The reading methods (``summary``, ``diagnose``, ``membership``, ``predict``,
    ``predict_proba``, the predictive samplers) change no attribute. What they compute
    from the fit and reuse (the posterior mode of a sampled fit, a loaded fit's model)
    is kept in a private cache that ``fit`` and ``load`` empty.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureBayes, datasets
    >>> X = datasets.load_faithful()
    >>> gmm = GaussianMixtureBayes(2, random_state=0).fit(X, draws=500, chains=2)  # doctest: +SKIP
    >>> gmm.summary()  # doctest: +SKIP
    """

    def __init__(self, n_components=1, *, covariance_type=DEFAULT_COVARIANCE_TYPE, priors=None,
                 order_by=None, missing="marginalize", fixed=None, random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.priors = priors
        self.order_by = order_by
        self.missing = missing
        self.fixed = fixed
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, method="nuts", *, sample_weight=None, draws=1000, tune=1000, chains=4,
            nuts_sampler="auto", init="em", target_accept=0.95, progressbar=True, relabel=True,
            advi_steps=20000, em=None):
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights ``w_n`` (finite, not all zero; checked before
            anything is fitted, with EM's messages). The log-likelihood is ``sum_n
            w_n log p(x_n)``: a *power likelihood*, ``prod_n p(x_n)^{w_n}``, and the
            posterior ``p(theta) prod_n p(x_n | theta)^{w_n}``. Weights scale the
            data's information: weights summing to ``W`` give a posterior about as
            wide as ``W`` points would (doubling every weight narrows it by about
            ``sqrt(2)``; weights normalised to sum to ``n`` keep the width of ``n``
            points). An integer weight counts its row that many times: the posterior
            (and the MAP, the EM start, the evidence) is that of the data with the
            rows repeated. Other weights are not frequency-independent "importance":
            only their products with the data's size matter, so state the total you
            mean. Every consumer uses them: the EM start (``em_`` is fitted with the
            same weights), MAP, NUTS, ADVI, the relabelling (each point's KL term
            weighted), the summary's mode and :meth:`log_evidence` (bridge and SMC:
            the evidence of the power likelihood; for integer weights that of the
            repeated rows). The ``log_likelihood`` group keeps the unweighted
            ``log p(x_n | draw)`` of every row, the weights go beside the data in
            ``observed_data`` (and into a saved file): ArviZ's ``loo`` and ``waic``
            on ``idata_`` would count every row once, ignoring the weights. Use
            :func:`bayesgmm.compare`, whose LOO and WAIC count every row ``w_n`` times
            (integer weights only: with others there is no observation to leave
            out, and it refuses). ``em`` given with weights must be fitted with the
            same weights (it is not refitted).
        method : {"nuts", "map", "advi"}
            Full posterior sampling, the posterior mode (stored as one chain of one
            draw, and as ``map_``) or mean-field variational inference (``draws``
            draws from the approximation). The back ends are
            :data:`bayesgmm._inference.BACKENDS`.
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
            (5 restarts). With ``fixed`` it must hold the fixed values (fitted with
            the same ``fixed``), else it is refused.

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
        check_choice("missing", self.missing, MISSING_OPTIONS)
        if em is not None and not isinstance(em, GaussianMixtureEM):
            raise ValueError(f"em must be a fitted GaussianMixtureEM or None, got "
                             f"{type(em).__name__}.")

        X, names = as_array_and_names(X, missing=self.missing)
        weights = optional_sample_weight(sample_weight, X.shape[0])
        spec = make_spec(X, self.n_components, self.covariance_type, self.priors,
                         self.order_by, names, sample_weight=weights)  # every check first
        spec = with_fixed(spec, self.fixed)
        seeds = np.random.SeedSequence(self.random_state).generate_state(4)
        if em is None:
            self.em_, self.start_ = _fit_em(X, spec, int(seeds[0]), sample_weight=weights)
        else:
            self.em_, self.start_ = _given_em(em, spec), {"method": "given em"}
        self.spec_ = spec
        self.model_ = build_model_from_spec(X, spec, sample_weight=weights)
        self._X = X
        self.sample_weight_ = weights
        self._cache = {}
        self.map_ = self.retry_ = None
        rng = np.random.default_rng(seeds[1])
        starts = _start_points(self.em_, spec, max(chains, 1), rng) if init == "em" else None
        settings = Settings(draws=draws, tune=tune, chains=chains, nuts_sampler=nuts_sampler,
                            target_accept=target_accept, advi_steps=advi_steps,
                            progressbar=progressbar, seed=int(seeds[2]))
        with without_c_compiler():
            result = BACKENDS[method](self.model_, starts, settings)
        self.retry_ = result.attrs.get("retry")
        if method == "map":
            self.map_ = result.posterior

        posterior = result.posterior
        self.relabel_ = {"n_permuted": 0, "n_iterations": 0, "converged": True,
                         "method": "none"}
        n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
        if relabel and spec.order_by is None and spec.n_components > 1 and n_samples > 1:
            posterior = self._relabel(posterior)
        self.idata_ = self._assemble(posterior, result.sample_stats, method, locals_for_attrs={
            "draws": draws, "tune": tune, "chains": chains, "nuts_sampler": nuts_sampler,
            "init": init,
            "target_accept": result.attrs.get("target_accept", target_accept)})
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def _relabel(self, posterior):
        """Stephens' KL relabelling of all draws against the EM memberships."""
        X = self._X
        if hasattr(self.em_, "feature_names_in_"):  # an em= fitted on a DataFrame
            X = pd.DataFrame(X, columns=self.em_.feature_names_in_)
        reference = self.em_.predict_proba(X)
        params = stacked_parameters(posterior, self.spec_)
        membership = Memberships(self._X, params, self.spec_)
        fixed = self.spec_.fixed  # fixed values make components tell apart: see fixed=
        groups = None if fixed is None else fixed.exchangeable_groups(self.spec_.n_components)
        result = stephens_relabel(membership, reference, groups=groups,
                                  sample_weight=getattr(self, "sample_weight_", None))
        self.relabel_ = {"n_permuted": result.n_permuted, "n_iterations": result.n_iterations,
                         "converged": result.converged, "method": "stephens-kl"}
        return permute_components(posterior, result.permutations)

    def _assemble(self, posterior, sample_stats, method, locals_for_attrs):
        X, spec = self._X, self.spec_
        log_lik = self._pointwise_log_likelihood(posterior, X)
        observed = {"obs": (("obs_id", "feature"), X)}
        if self.sample_weight_ is not None:
            observed["sample_weight"] = ("obs_id", self.sample_weight_)
        groups = {
            "posterior": posterior,
            "log_likelihood": xr.Dataset({"obs": log_lik}),
            "observed_data": xr.Dataset(
                observed,
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
            "priors": as_priors(self.priors).to_dict(),
            "resolved_priors": spec.priors.priors.to_dict(),
            "order_by": spec.order_by,
            "fixed": None if spec.fixed is None else spec.fixed.to_dict(),
            "random_state": self.random_state if isinstance(self.random_state, int) else None,
            "center": spec.center.tolist(),
            "feature_names": list(spec.feature_names),
            "weighted": spec.weighted,
            "missing": self.missing,
            "n_missing": int(np.isnan(self._X).sum()),
            "sum_of_weights": float(len(self._X) if self.sample_weight_ is None
                                    else self.sample_weight_.sum()),
            "integer_weights": integer_weights(self.sample_weight_),
            "fit": fit_kwargs,
            "relabel": self.relabel_,
            "start": self.start_,
            "retry": self.retry_,
            "em": _em_to_config(self.em_),
        }

    def _pointwise_log_likelihood(self, posterior, X):
        """``log p(x_n | draw)`` for every draw of ``posterior``: (chain, draw, obs_id)."""
        return pointwise_log_likelihood(posterior, X, self.spec_)

    # --------------------------------------------------------------- results
    @property
    def posterior(self) -> xr.Dataset:
        check_is_fitted(self, "idata_")
        return self.idata_["posterior"].to_dataset()

    def _check_X(self, X):
        check_is_fitted(self, "idata_")
        X, names = as_array_and_names(X, missing=getattr(self, "missing", "raise"))
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
        return membership_draws(self.posterior, X, self.spec_)

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

        hdi_prob = check_hdi_prob(hdi_prob)
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

    def impute(self, X=None, *, hdi_prob=0.94, random_state=None):
        """Posterior predictive draws of the missing (NaN) entries, with intervals.

        For every posterior draw ``theta`` and row, a component is drawn from the row's
        membership probabilities given its observed entries and ``theta``, then the
        missing entries from that component's Gaussian conditional on the observed
        ones: draws of ``p(x_M | x_O, data)``, which carry both the uncertainty of a
        missing value given the parameters and that of the parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Rows with NaN for missing entries; by default the data the model was fitted
            to.
        hdi_prob : float
            Probability of the highest-density interval of each entry.
        random_state : int, optional
            Seeds the draws.

        Returns
        -------
        xarray.Dataset
            ``draws`` (chain, draw, obs_id, feature): the completed data of every
            posterior draw; ``mean`` (obs_id, feature): the posterior mean of
            ``E[x_M | x_O, theta]`` (averaged over draws: less Monte Carlo error
            than the draws' mean); ``lower``, ``upper``: the HDI of the draws;
            ``missing``: True at the missing entries. Observed entries are copied
            into every variable.
        """
        import arviz as az

        from ._draws import impute_draws

        hdi_prob = check_hdi_prob(hdi_prob)
        check_seed("random_state", random_state)
        X = self._X if X is None else self._check_X(X)
        posterior = self.posterior
        draws, mean = impute_draws(posterior, X, self.spec_,
                                   np.random.SeedSequence(random_state).generate_state(1)[0])
        chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                  "obs_id": np.arange(len(X)), "feature": list(self.spec_.feature_names)}
        da = xr.DataArray(draws.reshape(chains, n_draws, *X.shape),
                          dims=("chain", "draw", "obs_id", "feature"), coords=coords)
        out = xr.Dataset({"draws": da, "mean": (("obs_id", "feature"), mean)},
                         coords={k: coords[k] for k in ("obs_id", "feature")})
        if chains * n_draws > 2:
            interval = az.hdi(da, prob=hdi_prob)
            out["lower"] = interval.isel(ci_bound=0, drop=True)
            out["upper"] = interval.isel(ci_bound=1, drop=True)
        else:
            out["lower"] = out["upper"] = out["mean"]
        out["missing"] = (("obs_id", "feature"), np.isnan(X))
        out.attrs["hdi_prob"] = hdi_prob
        return out

    def diagnose(self, *, warn=True):
        """Convergence diagnostics per parameter, with a warning naming failures.

        Returns a table (pandas DataFrame) of R-hat, bulk and tail ESS and the
        Monte Carlo standard error per parameter, and in ``.attrs``: divergences,
        tree-depth hits and the lowest E-BFMI. Thresholds: R-hat <= 1.01, ESS >=
        400, no divergence, E-BFMI >= 0.3. See :func:`bayesgmm.diagnostics.diagnose`.
        """
        check_is_fitted(self, "idata_")
        return diagnose(self.idata_, warn=warn)

    def summary(self, hdi_prob=0.94, bootstrap=None):
        """Posterior mean, sd and HDI of weights, means, sds and correlations.

        Columns ``map`` and ``em`` give the posterior mode and the EM estimate of
        the same parameters beside the posterior summaries. The mode is a MAP fit's
        own point (``map_``); for other fits it is found from the EM start on the
        first call and kept in the estimator's private cache (no attribute changes;
        a MAP that fails warns with :class:`MAPConvergenceWarning`). See
        :func:`bayesgmm.diagnostics.summary_table`.

        Parameters
        ----------
        hdi_prob : float, default=0.94
            Probability mass of the HDI (columns ``hdi94_lb``, ``hdi94_ub``).
        bootstrap : BootstrapResult, optional
            A bootstrap of this fit's EM fit, ``bootstrap(fit.em_, X)``
            (:func:`bayesgmm.bootstrap.bootstrap`, any ``kind``). Adds, for every row,
            the frequentist uncertainty of the ``em`` column beside the credible
            interval: ``boot_se`` (the bootstrap standard error) and ``boot94_lb``,
            ``boot94_ub`` (the interval at ``hdi_prob``: percentile, or for the
            jackknife normal), the sigmas and correlations computed per replicate
            from its covariances; failed replicates are left out (``attrs``:
            ``bootstrap_kind``, ``bootstrap_n_boot``, ``bootstrap_n_failed``). A
            bootstrap of an equal EM fit whose components are in another order (the
            ``em`` given to ``fit`` before ``order_by`` sorted it) is matched to
            ``em_``'s components by their parameters.

        Raises
        ------
        ValueError
            ``bootstrap`` is not a BootstrapResult, or not of ``em_`` (other numbers
            of components or features, feature names, covariance type, or estimates
            other than ``em_``'s weights, means and covariances to 1e-8 relative).
        """
        hdi_prob = check_hdi_prob(hdi_prob)
        check_is_fitted(self, "idata_")
        em = _em_posterior(self.em_, self.spec_)
        if bootstrap is not None:  # checked (and put in em_'s order) before any work
            names = getattr(self.em_, "feature_names_in_", None)
            if names is None:  # em_ fitted on an array names its features x0, x1, ...
                names = [f"x{j}" for j in range(self.spec_.n_features)]
            bootstrap = matching_bootstrap(bootstrap, em, em_features=list(names),
                                           covariance_type=self.spec_.structure.name)
        estimates = {"map": self._mode(), "em": em}
        return summary_table(self.posterior, estimates, hdi_prob, bootstrap=bootstrap)

    def _mode(self):
        """The posterior mode the summary shows: ``map_``, or found from the EM start
        (one start, seeded 0) and cached."""
        if getattr(self, "map_", None) is not None:
            return self.map_

        def find():
            starts = _start_points(self.em_, self.spec_, 1, np.random.default_rng(0))
            return posterior_mode(self._read_model(), starts[0])

        return self._cached("mode", find)

    def _cached(self, key, compute):
        """``compute()``, kept under ``key`` in the private cache that fit and load empty
        (what reading methods reuse without changing any attribute)."""
        cache = getattr(self, "_cache", None)
        if cache is None:  # an estimator pickled before the cache existed
            return compute()
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    # ------------------------------------------------------------- predictive
    def log_evidence(self, method="bridge", *, draws=1000, chains=4, random_state=None,
                     progressbar=False):
        """Log marginal likelihood ``log p(X)`` of the fitted model, with its Monte Carlo error.

        ``method="bridge"`` (default): bridge sampling from the fit's NUTS draws
        (:mod:`bayesgmm._bridge`): a normal proposal fitted to half of every chain and
        averaged over all K! relabellings of the components (so the estimate is of
        ``p(X)``, not ``p(X) / K!``: the log K! trap), bridged to the other halves.
        No new sampling; ``draws`` and ``chains`` are not used. Needs a NUTS fit
        with at least ``2 * 5 * (parameters + 1)`` draws and K <= 7.

        ``method="smc"``: ``pm.sample_smc`` tempers ``chains`` independent populations
        of ``draws`` particles from the prior to the posterior; each run gives an
        estimate, and their spread measures the error. Works after any fit (MAP,
        ADVI too), costs a new sampling run, and is about two orders of magnitude
        less precise for the time (``benchmarks/evidence.py``).

        A weighted fit's evidence is that of its power likelihood, ``int p(theta)
        prod_n p(x_n | theta)^{w_n} d theta``: for integer weights the evidence of the
        data with every row repeated ``w_n`` times; for other weights comparable only
        between models fitted with the same weights.

        Both need the exchangeable prior, so they refuse models built with
        ``order_by`` (whose ordered prior is not normalised). An estimate whose
        standard error exceeds 0.5 nats warns (:class:`EvidenceWarning`): too
        uncertain to decide between models by it.

        Returns
        -------
        dict
            ``log_evidence``, ``se`` (its Monte Carlo standard error) and ``method``;
            bridge: ``n_posterior``, ``n_proposal``, ``n_parameters``,
            ``n_permutations``, ``n_iter``; SMC: ``sd`` (the runs' standard
            deviation; ``se = sd / sqrt(chains)``) and ``chains`` (each run's
            estimate). Also stored as ``log_evidence_`` (and a loaded fit's rebuilt
            model as ``model_``).
        """
        from ._bridge import bridge_log_evidence, warn_if_undecidable

        check_is_fitted(self, "spec_")
        check_choice("method", method, EVIDENCE_METHODS)
        check_seed("random_state", random_state)
        if method == "smc":
            draws = check_integer("draws", draws, minimum=1)
            chains = check_integer(
                "chains", chains, minimum=2)  # each run is one estimate: two give a spread
        if self.spec_.order_by is not None:
            raise ValueError("the log evidence needs the exchangeable prior: refit without "
                             "order_by (the ordered-means prior is not normalised).")
        if method == "bridge" and self.spec_.fixed is not None:
            raise ValueError(
                "bridge sampling is not available for a fit with fixed parameters: its "
                "proposal is averaged over every relabelling of the components, which "
                "fixed values make distinguishable. Use log_evidence(method='smc').")
        if method == "bridge":
            fitted_by = self.idata_.attrs.get("method")
            if fitted_by != "nuts":
                raise ValueError(
                    f"bridge sampling needs posterior draws from NUTS; this fit is "
                    f"{fitted_by!r} (MAP has one point, ADVI's draws are not the "
                    "posterior's). Fit with method='nuts', or use "
                    "log_evidence(method='smc').")
        model = self.model_ = self._read_model()  # a loaded fit rebuilds it from its data
        seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])
        if method == "bridge":
            with without_c_compiler():
                result = bridge_log_evidence(model, self.posterior, self.spec_.n_components,
                                             random_state=seed)
        else:
            import pymc as pm

            with warnings.catch_warnings(), _quiet_logger("pymc", progressbar), \
                    without_c_compiler():
                warnings.filterwarnings("ignore", category=FutureWarning)
                warnings.filterwarnings("ignore", category=UserWarning)
                idata = pm.sample_smc(draws=draws, chains=chains, model=model,
                                      random_seed=seed, progressbar=progressbar,
                                      compute_convergence_checks=False)
            values = _final_log_marginal_likelihood(idata["sample_stats"])
            result = {"log_evidence": float(values.mean()), "method": "smc",
                      "sd": float(values.std(ddof=1)),
                      "se": float(values.std(ddof=1) / np.sqrt(len(values))),
                      "chains": values}
        self.log_evidence_ = result
        warn_if_undecidable(result)
        return result

    def sample_prior_predictive(self, draws=500, random_state=None):
        """Draws from the prior and the prior predictive distribution.

        Returns a new DataTree with groups ``prior`` (weights, means, sigmas,
        covariances, ...) and ``prior_predictive`` (``obs``: chain, draw, obs_id,
        feature, as many points as the data). ``prior`` also holds
        ``n_nonempty_components``: per draw, how many components receive at least
        one of the simulated points, the implied prior on the number of clusters
        actually used. The estimator is not changed.
        """
        import pymc as pm

        check_is_fitted(self, "spec_")
        draws = check_integer("draws", draws, minimum=1)
        check_seed("random_state", random_state)
        model = self._read_model()
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

    def _read_model(self):
        """The PyMC model without storing it: ``model_``, or for a loaded fit (whose
        ``model_`` is None) one built again from the data stored with it, cached."""
        if getattr(self, "model_", None) is not None:
            return self.model_
        if getattr(self, "_X", None) is None:
            raise ValueError(
                "this fit has no data to rebuild its model from (the file it was loaded "
                "from lacks the observed_data group); fit the model again.")
        return self._cached("model", lambda: build_model_from_spec(
            self._X, self.spec_, sample_weight=getattr(self, "sample_weight_", None)))

    def _replicate(self, draws_ds, seed):
        """One simulated data set (as many points as the data) per draw, and the
        component of every simulated point (n_draws, n)."""
        return replicate(draws_ds, len(self._X), self.spec_, seed)

    def sample_posterior_predictive(self, random_state=None):
        """Replicate data sets, one per posterior draw.

        Returns a new DataTree: the groups of ``idata_`` (the same arrays, not copied)
        and ``posterior_predictive``, ``obs`` with dims (chain, draw, obs_id,
        feature). ``idata_`` itself is not changed. A replicate has one point per row
        of the data, weighted fit or not: its points are draws from the fitted mixture
        (unweighted), to compare with the data weighted by ``observed_data``'s
        ``sample_weight``.
        """
        check_is_fitted(self, "idata_")
        check_seed("random_state", random_state)
        seed = int(np.random.SeedSequence(random_state).generate_state(1)[0])
        replicates, _ = self._replicate(self.posterior, seed)
        tree = self.idata_.copy(deep=False)
        tree["posterior_predictive"] = xr.DataTree(replicates)
        return tree

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
                    priors=priors_from_dict(config["priors"]),
                    order_by=config["order_by"], missing=config.get("missing", "marginalize"),
                    fixed=None if config.get("fixed") is None else from_dict(config["fixed"]),
                    random_state=config["random_state"])
        X = tree["observed_data"]["obs"].values
        observed = tree["observed_data"]
        weights = (np.asarray(observed["sample_weight"].values, dtype=float)
                   if "sample_weight" in observed.data_vars else None)
        model._X = X
        model.sample_weight_ = weights
        model._cache = {}
        spec = make_spec(X, config["n_components"], config["covariance_type"],
                         priors_from_dict(config["priors"]), config["order_by"],
                         config["feature_names"], sample_weight=weights)
        model.spec_ = with_fixed(dataclasses.replace(spec, center=np.asarray(config["center"])),
                                 model.fixed)
        model.em_ = _em_from_config(config, X, weights)
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
