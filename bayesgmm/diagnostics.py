"""Convergence diagnostics and summary tables of a Bayesian fit.

:func:`diagnose` reads a NUTS fit's result (``GaussianMixtureBayes.idata_``): R-hat,
bulk and tail ESS and MCSE per parameter, divergences, tree-depth hits and E-BFMI,
with a :class:`DiagnosticsWarning` that names each failure and its usual remedy.
:func:`summary_table` tabulates a posterior (mean, sd, HDI) with point estimates (the
MAP, EM) and, optionally, the bootstrap of the EM fit beside it
(:func:`bootstrap_variables` turns a :class:`~bayesgmm.bootstrap.BootstrapResult` into
the table's variables; :func:`matching_bootstrap` checks that it is the EM fit's). Both
tabulate the same parameters: weights, means, sigmas and the off-diagonal correlations
(:func:`_summary_dataset`), labelled ``means[0, x0]``, ``correlations[x0:x1, 2]``.
``GaussianMixtureBayes.diagnose`` and ``.summary`` are thin calls of these; no function
here changes its arguments.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from ._chains import ESS_MIN, RHAT_MAX
from ._validation import check_number

__all__ = ["diagnose", "summary_table", "bootstrap_variables", "matching_bootstrap",
           "DiagnosticsWarning", "EBFMI_MIN", "RHAT_MAX", "ESS_MIN"]

#: Thresholds of :func:`diagnose` (R-hat and ESS: :mod:`bayesgmm._chains`).
EBFMI_MIN = 0.3
_PACKAGE_DIR = os.path.dirname(__file__) + os.sep  # warnings point past these frames
#: A bootstrap is of a given EM fit when its estimates are the fit's parameters to this
#: relative precision (weights relative to 1, covariances to the largest entry, means to
#: the largest mean or standard deviation, whichever is larger).
SAME_FIT_RTOL = 1e-8


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
        R-hat, bulk and tail ESS and the Monte Carlo standard error per parameter
        (no row for one equal in every draw: a fixed parameter), and in ``.attrs``:
        ``divergences``, ``max_treedepth_hits``, the lowest E-BFMI
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
    constant = _constant_labels(ds)
    with warnings.catch_warnings():
        if constant:  # fixed parameters: no spread, so R-hat divides 0 by 0
            warnings.simplefilter("ignore", RuntimeWarning)
        table = az.summary(ds, kind="diagnostics", round_to="none")
    # a fixed parameter (the same in every draw) has nothing to diagnose: no row
    table = table.drop(index=[label for label in constant if label in table.index])
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


def summary_table(posterior, estimates=None, hdi_prob=0.94, bootstrap=None):
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
    bootstrap : BootstrapResult, optional
        A bootstrap of the EM fit whose components and features are the posterior's
        (see :func:`matching_bootstrap`). Adds the columns ``boot_se`` (the bootstrap
        standard error) and ``boot94_lb``, ``boot94_ub`` (for 0.94: the interval at
        ``hdi_prob``, percentile or, for the jackknife, normal) of every row, computed
        by :func:`bootstrap_variables` per replicate, and ``bootstrap_kind``,
        ``bootstrap_n_boot``, ``bootstrap_n_failed`` in the table's ``attrs``.
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
            table[name] = _labelled(_shaped_like(_summary_dataset(point), ds)).reindex(
                table.index)
    if bootstrap is not None:
        for name, column in _bootstrap_columns(bootstrap, posterior, hdi_prob).items():
            table[name] = column.reindex(table.index)
        table.attrs.update(bootstrap_kind=bootstrap.kind, bootstrap_n_boot=bootstrap.n_boot,
                           bootstrap_n_failed=bootstrap.n_failed)
    return table


def bootstrap_variables(result, like):
    """A bootstrap's estimate and replicates as the summary table's variables.

    Parameters
    ----------
    result : BootstrapResult
        Its ``estimates`` and ``replicates`` (full covariance matrices).
    like : xarray.Dataset
        A posterior (dims chain, draw, ...): the variables and their dimensions to
        give. ``correlations`` only when it has them; a dimension its variable lacks
        (``feature`` of a spherical model's ``sigmas``) is taken at its first entry.

    Returns
    -------
    estimate, replicates : xarray.Dataset
        ``weights``, ``means``, ``sigmas`` (the square roots of the covariances'
        diagonals) and ``correlations`` (``cov_ij / (sd_i sd_j)``, the pairs above the
        diagonal along ``pair``), computed per replicate from its covariances; the
        estimate as one chain of one draw, the successful replicates (failed ones, NaN,
        left out) as the draws of one chain.
    """
    ok = np.asarray(result.replicates["error"].values == "", dtype=bool)
    replicates = result.replicates[["weights", "means", "covariances"]].isel(replicate=ok)
    replicates = replicates.rename(replicate="draw").drop_vars("draw").expand_dims(chain=[0])
    estimate = result.estimates[["weights", "means", "covariances"]].expand_dims(
        chain=[0], draw=[0])
    table = _summary_dataset(like)
    return tuple(_shaped_like(_summary_dataset(_with_scales(ds, "correlations" in like)),
                              table)
                 for ds in (estimate, replicates))


def _with_scales(ds, correlations):
    """``ds`` (weights, means, covariances) with ``sigmas`` and, if asked, ``correlations``."""
    covariances = ds["covariances"]
    diagonal = np.diagonal(covariances.values, axis1=-2, axis2=-1)
    sigmas = covariances.isel(feature2=0, drop=True).copy(data=np.sqrt(diagonal))
    ds = ds.assign(sigmas=sigmas)
    if correlations:
        ds = ds.assign(correlations=(covariances / (sigmas * sigmas.rename(
            feature="feature2"))).transpose(*covariances.dims))
    return ds


def _shaped_like(ds, table):
    """The variables of ``table`` (a summary dataset) in ``ds``, each with its dims: a
    dimension the table's variable lacks is taken at its first entry (a spherical
    model's sigmas are the same for every feature)."""
    out = {}
    for name, variable in table.data_vars.items():
        if name not in ds:
            continue
        values = ds[name]
        extra = [d for d in values.dims if d not in variable.dims]
        out[name] = values.isel({d: 0 for d in extra}, drop=True).transpose(*variable.dims)
    return xr.Dataset(out)


def _labelled(ds):
    """One value per parameter of ``ds`` (one chain of one draw, or no chain and draw
    dims) as a Series labelled as the summary's rows (``means[0, x0]``)."""
    import arviz as az

    if "chain" not in ds.dims:
        ds = ds.expand_dims(chain=[0], draw=[0])
    return az.summary(ds, kind="stats", round_to="none")["mean"]


def _bootstrap_columns(result, like, hdi_prob):
    """``boot_se`` and the interval at ``hdi_prob`` of every summary row (a dict of
    Series): the successful replicates' standard deviation (m - 1) and percentile
    interval, or for the jackknife its standard error and ``estimate -+ z se`` (as
    :meth:`BootstrapResult.standard_errors` and ``.intervals`` for the parameters)."""
    estimate, replicates = bootstrap_variables(result, like)
    draws = replicates.squeeze("chain", drop=True)
    tail = (1 - hdi_prob) / 2
    if result.kind == "jackknife":
        m = draws.sizes["draw"]
        se = np.sqrt((m - 1) / m * ((draws - draws.mean("draw")) ** 2).sum("draw"))
        centre = estimate.squeeze(("chain", "draw"), drop=True)
        half = norm.ppf(1 - tail) * se
        lower, upper = centre - half, centre + half
    else:
        se = draws.std("draw", ddof=1)
        bounds = draws.quantile([tail, 1 - tail], dim="draw")
        lower = bounds.isel(quantile=0, drop=True)
        upper = bounds.isel(quantile=1, drop=True)
    percent = int(hdi_prob * 100)  # as arviz names the HDI columns
    return {"boot_se": _labelled(se), f"boot{percent}_lb": _labelled(lower),
            f"boot{percent}_ub": _labelled(upper)}


def matching_bootstrap(result, em, em_features=None, covariance_type=None):
    """``result`` checked to be a bootstrap of the EM fit ``em``, in its order.

    Parameters
    ----------
    result : BootstrapResult
    em : xarray.Dataset
        The EM fit's ``weights``, ``means`` and ``covariances`` (component, feature,
        feature2), its components and features named as the posterior's (e.g.
        ``_em_posterior(fit.em_, spec)``; a leading chain and draw are ignored).
    em_features : sequence of str, optional
        The names the EM fit itself gives its features (``em_.feature_names_in_``;
        ``x0``, ``x1``, ... when it has none). The bootstrap's features must be named
        as these or as ``em``'s.
    covariance_type : str, optional
        The EM fit's (its primary name, e.g. ``"full"``): a bootstrap of another
        covariance type is refused.

    Returns
    -------
    BootstrapResult
        ``result`` itself when its components are ``em``'s in the same order and its
        features so named; otherwise a new one whose estimates and replicates are
        permuted to ``em``'s components (matched by their parameters, which must be
        ``em``'s to ``SAME_FIT_RTOL``) and whose features are renamed to ``em``'s.

    Raises
    ------
    ValueError
        ``result`` is not a BootstrapResult, or not a bootstrap of ``em`` (other
        numbers of components or features, other feature names or covariance type, or
        other parameters).
    """
    from .bootstrap import BootstrapResult

    advice = "bootstrap the Bayesian fit's own EM fit: bootstrap(fit.em_, X)."
    if not isinstance(result, BootstrapResult):
        raise ValueError(f"bootstrap must be a BootstrapResult (from "
                         f"bayesgmm.bootstrap.bootstrap), got {type(result).__name__}; "
                         f"{advice}")
    em = em.squeeze([d for d in ("chain", "draw") if d in em.dims], drop=True)
    estimates = result.estimates
    K, D = em.sizes["component"], em.sizes["feature"]
    got = estimates.sizes["component"], estimates.sizes["feature"]
    if got != (K, D):
        raise ValueError(f"bootstrap is of a fit with {got[0]} components and {got[1]} "
                         f"features, this fit's EM fit has {K} and {D}: {advice}")
    features = [str(f) for f in estimates["feature"].values]
    names = [str(f) for f in em["feature"].values]
    own = None if em_features is None else [str(f) for f in em_features]
    if features not in (names, own):
        raise ValueError(f"bootstrap's features are {features}, this fit's are {names}: "
                         f"{advice}")
    theirs = estimates.attrs.get("covariance_type")
    if theirs and covariance_type and theirs != covariance_type:
        raise ValueError(f"bootstrap is of a {theirs!r} fit, this fit's EM fit is "
                         f"{covariance_type!r}: {advice}")
    order, distance = _matching_components(em, estimates)
    if distance > SAME_FIT_RTOL:
        raise ValueError(
            f"bootstrap's estimates are not this fit's EM fit (em_): their weights, means "
            f"and covariances differ by {distance:.2g} relative to its, more than "
            f"{SAME_FIT_RTOL:g}, whatever the order of the components: {advice}")
    replicate_features = [str(f) for f in result.replicates["feature"].values]
    if np.array_equal(order, np.arange(K)) and features == replicate_features == names:
        return result

    def aligned(ds):
        ds = ds.isel(component=order).assign_coords(component=em["component"].values)
        return ds.assign_coords(feature=names, feature2=names)

    return dataclasses.replace(result, estimates=aligned(result.estimates),
                               replicates=aligned(result.replicates))


def _matching_components(em, estimates):
    """The bootstrap's component for each of ``em``'s (index array (K,)), and the
    largest relative difference of their parameters under that matching."""
    names = ("weights", "means", "covariances")
    ours = [np.asarray(em[v].values, dtype=float) for v in names]
    theirs = [np.asarray(estimates[v].values, dtype=float) for v in names]
    K = len(ours[0])
    largest_covariance = float(np.max(np.abs(ours[2])))
    scales = (1.0, max(float(np.max(np.abs(ours[1]))), np.sqrt(largest_covariance)),
              largest_covariance)
    cost = np.zeros((K, K))
    for a, b, scale in zip(ours, theirs, scales):
        scale = max(scale, np.finfo(float).tiny)
        a, b = a.reshape(K, -1), b.reshape(K, -1)
        difference = np.abs(a[:, None, :] - b[None, :, :]).max(axis=-1) / scale
        cost = np.maximum(cost, np.where(np.isnan(difference), np.inf, difference))
    rows, columns = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e300))
    order = columns[np.argsort(rows)]
    return order, float(cost[np.arange(K), order].max())


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


def _constant_labels(ds):
    """The table labels (``means[0, x0]``) of the entries equal in every draw."""
    labels = []
    for name, var in ds.data_vars.items():
        dims = [d for d in var.dims if d not in ("chain", "draw")]
        spread = (var.max(("chain", "draw")) - var.min(("chain", "draw"))).transpose(*dims)
        for index in np.argwhere(np.atleast_1d(spread.values == 0)):
            coords = ", ".join(str(var[d].values[i]) for d, i in zip(dims, index))
            labels.append(f"{name}[{coords}]" if dims else name)
    return labels


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
