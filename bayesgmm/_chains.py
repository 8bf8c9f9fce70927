"""Do a NUTS fit's chains agree? R-hat, bulk ESS, and posteriors with several modes.

A mixture's posterior can have modes that relabelling cannot merge: an overfitted
model whose extra component splits one cluster in one chain and another cluster in
the next. Its chains then disagree for ever, however long they run, and the
disagreement shows in label-invariant quantities too (the log-likelihood of the
data). :func:`chain_agreement` tells the two cases apart: R-hat above 1.01 or a
bulk ESS below 400 means the chains disagree; if, besides, two chains' means of
some quantity lie apart by a sizeable fraction of its (pooled) within-chain sd and
by many of their own Monte Carlo errors (each chain explored its region well, and the regions
differ: more draws would not bring them together), the chains sit in different
modes.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["RHAT_MAX", "ESS_MIN", "SEPARATION_MIN", "chain_agreement", "max_rhat_and_min_ess"]

#: Thresholds for trusting a fit's draws (those of GaussianMixtureBayes.diagnose).
RHAT_MAX, ESS_MIN = 1.01, 400
#: Chain means this many within-chain sds apart: the chains sit in different modes.
SEPARATION_MIN = 0.5

#: The parameters whose R-hat and ESS are checked (relabelled, label-aligned).
CHECKED = ("weights", "means", "covariances")


def max_rhat_and_min_ess(posterior, var_names=CHECKED):
    """The largest R-hat and the smallest bulk ESS over the elements of ``var_names``.

    Constant elements (the weight of a one-component model, the zero covariances
    of diagonal ones) have neither and are skipped.
    """
    import arviz as az

    ds = posterior[[v for v in var_names if v in posterior]]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat, ess = az.rhat(ds), az.ess(ds, method="bulk")
    rhats = np.concatenate([np.ravel(rhat[v].values) for v in rhat.data_vars])
    esss = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars])
    rhats, esss = rhats[np.isfinite(rhats)], esss[np.isfinite(esss)]
    return (float(rhats.max()) if rhats.size else float("nan"),
            float(esss.min()) if esss.size else float("nan"))


def chain_agreement(bayes):
    """Whether the chains of a NUTS fit agree, and if not, why.

    The chains sit in different modes when, for the log-likelihood or a relabelled
    parameter, two chains' means lie at least :data:`SEPARATION_MIN` within-chain sds
    apart and at least 5 of their own Monte Carlo standard errors (each chain's
    ESS alone): then each chain has explored its own region well, and the regions
    differ. A chain that explores one mode slowly has a large Monte Carlo error of
    its own, and is only "not converged".

    Returns
    -------
    dict
        ``max_rhat`` and ``min_ess_bulk`` (weights, means, covariances),
        ``chain_log_likelihood`` (each chain's mean total log-likelihood),
        ``separation`` (the largest such distance, in within-chain sds) with
        ``separated`` (the quantity's name), ``multimodal`` (bool) and ``reason``
        (empty when the chains agree).
    """
    import arviz as az
    import xarray as xr

    posterior = bayes.posterior
    max_rhat, min_ess = max_rhat_and_min_ess(posterior)
    log_lik = bayes.idata_["log_likelihood"]["obs"]
    weights = getattr(bayes, "sample_weight_", None)
    if weights is not None:  # the (weighted) log-likelihood the posterior is built on
        log_lik = log_lik * xr.DataArray(weights, dims="obs_id")
    total = log_lik.sum("obs_id").transpose("chain", "draw").values
    names, columns = ["the log-likelihood"], [total]
    for name in CHECKED:
        if name in posterior:
            values = posterior[name].transpose("chain", "draw", ...).values
            flat = values.reshape(values.shape[0], values.shape[1], -1)
            names += [f"{name}[{j}]" for j in range(flat.shape[2])]
            columns += list(np.moveaxis(flat, 2, 0))
    values = np.stack(columns, axis=2)  # (chain, draw, quantity)
    separation, separated, multimodal = 0.0, "", False
    if values.shape[0] > 1 and values.shape[1] > 3:
        means, variances = values.mean(axis=1), values.var(axis=1, ddof=1)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            within = np.sqrt(variances.mean(axis=0))
            own_ess = np.stack([az.ess(xr.DataArray(values[[c]], dims=("chain", "draw", "q")),
                                       method="mean").values for c in range(values.shape[0])])
            mcse2 = variances / own_ess
            high, low = means.argmax(axis=0), means.argmin(axis=0)
            q = np.arange(values.shape[2])
            gap = means[high, q] - means[low, q]
            gaps_in_sd = np.where(within > 0, gap / within, 0.0)
            gaps_in_mcse = gap / np.sqrt(mcse2[high, q] + mcse2[low, q])
        apart = (gaps_in_sd >= SEPARATION_MIN) & (gaps_in_mcse >= 5)
        pick = int(np.argmax(np.where(apart, gaps_in_sd, -1))) if apart.any() \
            else int(np.nanargmax(gaps_in_sd))
        separation, separated, multimodal = float(gaps_in_sd[pick]), names[pick], bool(apart.any())
    chain_ll = total.mean(axis=1)
    disagree = []
    if not max_rhat <= RHAT_MAX and np.isfinite(max_rhat):
        disagree.append(f"R-hat {max_rhat:.3f} > {RHAT_MAX}")
    if not min_ess >= ESS_MIN and np.isfinite(min_ess):
        disagree.append(f"ESS-bulk {min_ess:.0f} < {ESS_MIN}")
    multimodal = multimodal and bool(disagree)
    if multimodal:
        reason = (f"multimodal: its chains settle in different modes even after relabelling, "
                  f"{separated} differs between chains by {separation:.1f} within-chain sd "
                  "(mean log-likelihood per chain "
                  + ", ".join(f"{v:.1f}" for v in chain_ll) + "), " + ", ".join(disagree))
    elif disagree:
        reason = "chains disagree: " + ", ".join(disagree) + " (run longer)"
    else:
        reason = ""
    return {"max_rhat": max_rhat, "min_ess_bulk": min_ess, "chain_log_likelihood": chain_ll,
            "separation": separation, "separated": separated, "multimodal": multimodal,
            "reason": reason}
