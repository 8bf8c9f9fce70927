"""Convergence diagnostics and summary tables of a Bayesian fit.

:func:`diagnose` reads a NUTS fit's result (``GaussianMixtureBayes.idata_``): R-hat,
bulk and tail ESS and MCSE per parameter, divergences, tree-depth hits and E-BFMI,
with a :class:`DiagnosticsWarning` that names each failure and its usual remedy.
:func:`summary_table` tabulates a posterior (mean, sd, HDI) with point estimates (the
MAP, EM) beside it. Both tabulate the same parameters: weights, means, sigmas and the
off-diagonal correlations (:func:`_summary_dataset`), labelled ``means[0, x0]``,
``correlations[x0:x1, 2]``. ``GaussianMixtureBayes.diagnose`` and ``.summary`` are thin
calls of these; neither function changes its arguments.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ._chains import ESS_MIN, RHAT_MAX
from ._validation import check_number

__all__ = ["diagnose", "summary_table", "DiagnosticsWarning", "EBFMI_MIN", "RHAT_MAX",
           "ESS_MIN"]

#: Thresholds of :func:`diagnose` (R-hat and ESS: :mod:`bayesgmm._chains`).
EBFMI_MIN = 0.3
_PACKAGE_DIR = os.path.dirname(__file__) + os.sep  # warnings point past these frames


class DiagnosticsWarning(UserWarning):
    """A sampling diagnostic failed its threshold."""


def diagnose(idata, *, warn=True):
    """Convergence diagnostics per parameter, with a warning naming failures.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's result with groups ``posterior`` and ``sample_stats`` (NUTS).
    warn : bool
        Warn (:class:`DiagnosticsWarning`) when a diagnostic fails.

    Returns
    -------
    pandas.DataFrame
        R-hat, bulk and tail ESS and the Monte Carlo standard error per parameter,
        and in ``.attrs``: ``divergences``, ``max_treedepth_hits``, the lowest E-BFMI
        (``min_ebfmi``) and the ``problems`` found. Thresholds: R-hat <= 1.01, ESS >=
        400, no divergence, E-BFMI >= 0.3.
    """
    import arviz as az

    if "sample_stats" not in idata.children:
        raise ValueError(
            "diagnostics need posterior samples: fit with method='nuts' "
            f"(this fit used method={idata.attrs.get('method')!r})."
        )
    ds = _summary_dataset(idata["posterior"].to_dataset())
    table = az.summary(ds, kind="diagnostics", round_to="none")
    stats = idata["sample_stats"].to_dataset()
    divergences = _n_divergent(stats)
    depth_hits = int(stats["reached_max_treedepth"].sum()) \
        if "reached_max_treedepth" in stats else 0
    bfmi = np.atleast_1d(np.asarray(az.bfmi(idata)["energy"]
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
                      DiagnosticsWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    return table


def summary_table(posterior, estimates=None, hdi_prob=0.94):
    """Posterior mean, sd and HDI of weights, means, sds and correlations.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with dims (chain, draw, ...). With a single draw (a MAP fit) only its
        value is given (column ``mean``).
    estimates : dict, optional
        Column name -> point estimate (a Dataset of the same variables with one chain
        of one draw) or None (no column): e.g. ``{"map": ..., "em": ...}``.
    hdi_prob : float
        Probability mass of the HDI (columns ``hdi94_lb``, ``hdi94_ub`` for 0.94).
    """
    import arviz as az

    hdi_prob = check_hdi_prob(hdi_prob)
    ds = _summary_dataset(posterior)
    if ds.sizes["chain"] * ds.sizes["draw"] > 1:
        table = az.summary(ds, kind="stats", ci_prob=hdi_prob, ci_kind="hdi", round_to="none")
    else:
        table = az.summary(ds, kind="stats", round_to="none").iloc[:, :1]
    for name, point in (estimates or {}).items():
        if point is not None:
            values = _summary_dataset(point)
            table[name] = az.summary(values, kind="stats", round_to="none")["mean"].reindex(
                table.index)
    return table


def check_hdi_prob(hdi_prob):
    """``hdi_prob`` as a float in (0, 1), or a ValueError saying what it is."""
    return check_number("hdi_prob", hdi_prob, low=0, high=1, low_open=True, high_open=True,
                        hint=" (the probability mass of the interval, e.g. 0.94)")


def _n_divergent(sample_stats):
    """Divergent transitions in a sample_stats dataset (PyMC's or nutpie's)."""
    name = next((v for v in ("diverging", "divergences") if v in sample_stats), None)
    return int(sample_stats[name].sum()) if name else 0


def _summary_dataset(posterior):
    """Weights, means, sigmas and (off-diagonal) correlations, for tables."""
    ds = posterior[[v for v in ("weights", "means", "sigmas") if v in posterior]]
    if "correlations" in posterior:
        ds = ds.assign(correlations=_correlation_pairs(posterior["correlations"]))
    return ds


def _correlation_pairs(corr):
    """The correlations above the diagonal, along a dimension ``pair`` ("x0:x1", ...)."""
    features = list(corr["feature"].values)
    pairs, values = [], []
    for i in range(len(features)):
        for j in range(i + 1, len(features)):
            pairs.append(f"{features[i]}:{features[j]}")
            values.append(corr.isel(feature=i, feature2=j, drop=True))
    return xr.concat(values, dim=pd.Index(pairs, name="pair"))


def _few(labels, limit=6):
    labels = [str(x) for x in labels]
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more"
                                        if len(labels) > limit else "")
