"""Simulation-based calibration of the Bayesian Gaussian mixture.

If parameters are drawn from the prior, data from the model given them, and the
posterior is computed exactly, then the rank of the true value of any quantity among
independent posterior draws is uniform (Talts et al. 2018). A sampler, a
parametrisation or a likelihood that is wrong shows up as ranks piling at the ends
(posterior too narrow or shifted) or in the middle (too wide).

A mixture's component labels are not identified, so the quantities ranked here are
the label-invariant ones that Modrák et al. (2023) recommend: the mixture's mean and
covariance (each entry), its log-density at fixed points, and the log-likelihood of
the simulated data (a data-dependent quantity, the most sensitive to a wrong
likelihood).

References
----------
Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian inference
algorithms with simulation-based calibration", arXiv:1804.06788.
Modrák, Moon, Kim, Bürkner, Huurre, Faltejsková, Gelman & Vehtari (2023),
"Simulation-based calibration checking for Bayesian computation: the choice of test
quantities shapes sensitivity", Bayesian Analysis.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ._gaussian import DEFAULT_COVARIANCE_TYPE
from ._validation import check_integer, check_seed, describe_error
from .bayes import POSTERIOR_VARS, GaussianMixtureBayes, _n_divergent
from .model import as_array_and_names, build_model_from_spec, make_spec
from .priors import GMMPriors

__all__ = ["CalibrationResult", "simulation_based_calibration"]


@dataclass
class CalibrationResult:
    """Ranks of the true values among thinned posterior draws, one row per replicate.

    Attributes
    ----------
    ranks : pandas.DataFrame
        One row per successful replicate, one column per quantity; each rank is an
        integer in ``0 .. n_rank_draws``.
    n_rank_draws : int
        Posterior draws each rank is taken among (after thinning).
    fits : pandas.DataFrame
        One row per replicate: ``error`` (None, or the error of a fit that raised:
        counted, never dropped silently), ``start`` (how the chains were started, see
        ``GaussianMixtureBayes.start_``), ``divergences``, ``n_draws``,
        ``retried_divergences`` (the first run's divergences when more than 1% of its
        draws diverged and the fit was sampled again, see ``retry_``; else None) and
        ``seconds``.
    seconds : float
        Wall time of the whole run.
    """

    ranks: pd.DataFrame
    n_rank_draws: int
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0

    @property
    def failures(self) -> pd.DataFrame:
        """The replicates whose fit raised."""
        return self.fits[self.fits["error"].notna()] if len(self.fits) else self.fits

    def p_values(self, n_bins=None) -> pd.Series:
        """Chi-square test of rank uniformity per quantity (ranks pooled into bins).

        ``n_bins`` defaults to the largest divisor of ``n_rank_draws + 1`` that leaves
        at least 5 expected replicates per bin (the chi-square approximation's rule),
        so every bin holds the same number of possible ranks.
        """
        n_ranks = self.n_rank_draws + 1
        n_bins = n_bins or _default_bins(n_ranks, len(self.ranks))
        if n_ranks % n_bins:
            raise ValueError(f"n_bins must divide n_rank_draws + 1 = {n_ranks}, got {n_bins}.")
        bins = self.ranks.to_numpy() * n_bins // n_ranks
        counts = np.stack([np.bincount(col, minlength=n_bins) for col in bins.T])
        return pd.Series(stats.chisquare(counts, axis=1).pvalue, index=self.ranks.columns,
                         name="p_value")

    def plot(self, *, n_bins=None, axes=None):
        """Rank histograms with the 99% band of counts under uniformity."""
        import matplotlib.pyplot as plt

        n_ranks = self.n_rank_draws + 1
        n_bins = n_bins or _default_bins(n_ranks, len(self.ranks))
        p = self.p_values(n_bins)
        names = list(self.ranks.columns)
        if axes is None:
            cols = min(4, len(names))
            fig, axes = plt.subplots(-(-len(names) // cols), cols,
                                     figsize=(3.2 * cols, 2.4 * -(-len(names) // cols)),
                                     squeeze=False, constrained_layout=True)
        axes = np.ravel(axes)
        expected = len(self.ranks) / n_bins
        low, high = stats.binom.ppf([0.005, 0.995], len(self.ranks), 1 / n_bins)
        for ax, name in zip(axes, names):
            counts = np.bincount(self.ranks[name].to_numpy() * n_bins // n_ranks,
                                 minlength=n_bins)
            ax.axhspan(low, high, color="0.85")
            ax.axhline(expected, color="0.5", lw=0.8)
            ax.bar(np.arange(n_bins), counts, width=1.0, color="C0", edgecolor="white")
            ax.set_title(f"{name}\np = {p[name]:.3f}", fontsize=8)
            ax.set_xticks([])
        for ax in axes[len(names):]:
            ax.set_visible(False)
        return axes


def _default_bins(n_ranks, n_replicates):
    """The most bins dividing the ranks evenly with 5 replicates expected in each."""
    divisors = [b for b in range(2, n_ranks + 1)
                if n_ranks % b == 0 and n_replicates / b >= 5]
    return max(divisors, default=2)


def simulation_based_calibration(n_components, covariance_type=DEFAULT_COVARIANCE_TYPE,
                                 priors=None, *,
                                 n_samples=60, n_features=2, n_replicates=200,
                                 n_rank_draws=99, fit_priors=None, draws=1000, tune=1000,
                                 chains=4, random_state=None, progressbar=False,
                                 **fit_kwargs):
    """Run simulation-based calibration of ``GaussianMixtureBayes``'s NUTS fit.

    Parameters
    ----------
    n_components, covariance_type
        The model, as for :class:`GaussianMixtureBayes`.
    priors : GMMPriors
        Explicit priors (every scale given): SBC draws the parameters from them, so
        they must not depend on the data. Data-scaled defaults are refused.
    n_samples, n_features : int
        Size of each simulated data set.
    n_replicates : int
        Data sets simulated and fitted (a few hundred for a benchmark).
    n_rank_draws : int
        Posterior draws each rank is taken among, thinned evenly from all chains so
        that they are close to independent (``chains * draws`` must be at least this).
    fit_priors : GMMPriors, optional
        Priors used for fitting, by default ``priors``. Different ones make a
        deliberately miscalibrated run, to see that the check can fail.
    draws, tune, chains, **fit_kwargs
        Passed to :meth:`GaussianMixtureBayes.fit` (e.g. ``target_accept``,
        ``nuts_sampler``).
    random_state : int, optional

    Returns
    -------
    CalibrationResult
    """
    check_seed("random_state", random_state)
    for name, value, minimum in (("n_components", n_components, 1), ("n_samples", n_samples, 2),
                                 ("n_features", n_features, 1),
                                 ("n_replicates", n_replicates, 1),
                                 ("n_rank_draws", n_rank_draws, 1), ("draws", draws, 1),
                                 ("chains", chains, 1), ("tune", tune, 0)):
        check_integer(name, value, minimum=minimum)
    if chains * draws < n_rank_draws:
        raise ValueError(f"chains * draws ({chains * draws}) must be at least n_rank_draws "
                         f"({n_rank_draws}): increase draws or lower n_rank_draws.")
    priors = _explicit(priors, "priors")
    fit_priors = priors if fit_priors is None else _explicit(fit_priors, "fit_priors")
    rng = np.random.default_rng(random_state)
    start = time.perf_counter()

    truths, data = _prior_draws(n_components, covariance_type, priors, n_samples, n_features,
                                n_replicates, int(rng.integers(2**31)))
    fixed_points = _fixed_points(priors, n_features)
    rows, fits = [], []
    replicates = range(n_replicates)
    if progressbar:
        from rich.progress import track
        replicates = track(replicates, description="SBC")
    for r in replicates:
        X = data[r]
        fit = GaussianMixtureBayes(n_components, covariance_type=covariance_type,
                                   priors=fit_priors, random_state=int(rng.integers(2**31)))
        began = time.perf_counter()
        try:
            fit.fit(X, draws=draws, tune=tune, chains=chains, progressbar=False, **fit_kwargs)
        except Exception as error:  # recorded and counted, the run goes on
            fits.append({"replicate": r, "error": describe_error(error),
                         "seconds": time.perf_counter() - began})
            continue
        thinned = _thinned(fit.posterior, n_rank_draws)
        draws_q = _quantities(fit, thinned, X, fixed_points)
        true_q = _quantities(fit, truths.isel(draw=[r]), X, fixed_points)
        rows.append({name: int((draws_q[name] < true_q[name][0]).sum()) for name in draws_q})
        stats = fit.idata_["sample_stats"].to_dataset()
        fits.append({"replicate": r, "error": None, "start": fit.start_["method"],
                     "divergences": _n_divergent(stats),
                     "n_draws": stats.sizes["chain"] * stats.sizes["draw"],
                     "retried_divergences": (fit.retry_ or {}).get("divergences"),
                     "seconds": time.perf_counter() - began})
    return CalibrationResult(pd.DataFrame(rows), n_rank_draws, pd.DataFrame(fits),
                             time.perf_counter() - start)


def _explicit(priors, name):
    """The priors, refused if any of their parameters would be scaled from the data."""
    priors = GMMPriors.from_any(priors)
    if "<" in repr(priors):  # a field left to the data-scaled default
        raise ValueError(
            f"{name} must be explicit for simulation-based calibration (parameters are "
            f"drawn from it, so it may not depend on the data), got {priors!r}: give every "
            "scale, e.g. GMMPriors(means=Normal(0, 3), covariance=InverseGamma(3, 2)).")
    return priors


def _prior_draws(n_components, covariance_type, priors, n_samples, n_features, n_sets, seed):
    """``n_sets`` parameter draws (one chain) and a data set simulated from each."""
    import pymc as pm
    from pytensor.compile.mode import Mode

    placeholder = np.random.default_rng(seed).normal(size=(n_samples, n_features))
    X, names = as_array_and_names(placeholder)
    model = build_model_from_spec(
        X, make_spec(X, n_components, covariance_type, priors, names=names))
    names = [v for v in POSTERIOR_VARS if v in model.named_vars]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # an interpreted graph: the draws are numpy calls, nothing for numba to compile
        # (it would run the likelihood's numpy random draw in object mode, and warn)
        tree = pm.sample_prior_predictive(
            draws=n_sets, model=model, var_names=names + ["obs"], random_seed=seed,
            compile_kwargs={"mode": Mode(linker="py", optimizer="fast_run")})
    prior = tree["prior"].to_dataset()[names]
    return prior, tree["prior_predictive"]["obs"].values[0]


def _fixed_points(priors, n_features):
    """Points at which the mixture's density is ranked: the prior mean and +-1 sd
    (averaged over the components where the means' prior is given per component)."""
    def per_feature(value):
        value = np.atleast_1d(np.asarray(value, float))
        return np.broadcast_to(value, value.shape[:-1] + (n_features,)).reshape(
            -1, n_features).mean(axis=0)

    mu, sigma = per_feature(priors.means.mu), per_feature(priors.means.sigma)
    return np.stack([mu, mu + sigma, mu - sigma * np.r_[1.0, -np.ones(n_features - 1)]])


def _thinned(posterior: xr.Dataset, n_draws):
    """``n_draws`` draws evenly spaced over all chains, as one chain."""
    stacked = posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    keep = np.linspace(0, stacked.sizes["sample"] - 1, n_draws).round().astype(int)
    return xr.Dataset(
        {name: (("chain", "draw") + var.dims[1:], var.values[keep][None])
         for name, var in stacked.data_vars.items()},
        coords={name: posterior[name].values for name in ("component", "feature", "feature2")
                if name in posterior.coords} | {"chain": [0], "draw": np.arange(n_draws)})


def _quantities(fit, draws: xr.Dataset, X, fixed_points):
    """Label-invariant quantities of each draw (arrays of length chain * draw)."""
    flat = draws.stack(sample=("chain", "draw")).transpose("sample", ...)
    w = flat["weights"].transpose("sample", "component").values
    mu = flat["means"].transpose("sample", "component", "feature").values
    cov = flat["covariances"].transpose("sample", "component", "feature", "feature2").values
    mean = np.einsum("sk,skd->sd", w, mu)
    second = np.einsum("sk,skde->sde", w, cov + mu[..., :, None] * mu[..., None, :])
    covariance = second - mean[:, :, None] * mean[:, None, :]
    D = mean.shape[1]
    out = {f"mean[{j}]": mean[:, j] for j in range(D)}
    out |= {f"cov[{i},{j}]": covariance[:, i, j] for i in range(D) for j in range(i, D)}
    density = fit._pointwise_log_likelihood(draws, fixed_points).values.reshape(len(w), -1)
    out |= {f"log_density[point {p}]": density[:, p] for p in range(density.shape[1])}
    out["log_likelihood"] = fit._pointwise_log_likelihood(draws, X).values.reshape(
        len(w), -1).sum(axis=1)
    return out
