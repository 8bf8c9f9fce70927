"""Leave-one-out cross-validation whose every term is reliable.

PSIS-LOO (``arviz_stats.loo``) approximates each point's leave-one-out predictive
density by importance sampling from the full posterior; where the Pareto shape k
of the importance weights exceeds 0.7 that approximation is unreliable (the point
is influential: leaving it out moves the posterior further than the draws reach).
:func:`loo_with_refits` replaces exactly those terms by the exact computation,
through ``arviz_stats.reloo``: NUTS is run again on the data without the point
(same model, same priors, the full-data EM fit as start and labelling pivot) and
the held-out point's log-density is averaged over the new draws,
``log (1/S) sum_s p(x_i | theta_s)``, theta_s ~ p(theta | x_{-i}).

Why refits and not moment matching (``arviz_stats.loo_moment_match``): moment
matching moves the draws by affine maps in the unconstrained space, which suits a
unimodal posterior that the point shifts; a mixture's influential points are
those a small component sits on, whose leave-one-out posterior is a different
shape (the component moves or empties), and the refit is exact for any shape.
With the fused sampler a refit costs seconds, and converged models have few such
points (see ``compare``).

**Sample weights.** A fit with integer weights is a fit to the data with row ``n``
repeated ``w_n`` times, and its LOO is that data set's: leaving out one copy of row
``n`` leaves ``w_n - 1`` copies, whose PSIS term is computed from the unweighted
``log p(x_n | theta)`` (the ``log_likelihood`` group), the same for every copy. So
PSIS runs on the rows of positive weight, a refit lowers the row's weight by one, and
the result counts every row's term ``w_n`` times (:func:`repeated_rows`): ``elpd``,
its ``se`` and ``p`` are the repeated data's, and so are the pointwise arrays that
``arviz_stats.compare`` takes differences of. Zero-weight rows are not data and have
no term. Other weights have no observation to leave out: :func:`check_loo_weights`
refuses them.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import xarray as xr

from ._chains import RHAT_MAX
from ._validation import integer_weights

__all__ = ["PARETO_K_MAX", "LooRefits", "loo_with_refits", "check_loo_weights", "repeated_rows"]

#: Pareto k above which a PSIS-LOO term is unreliable.
PARETO_K_MAX = 0.7


class LooRefits:
    """What :func:`loo_with_refits` did: the corrected LOO and the refits behind it.

    Attributes
    ----------
    loo : arviz_stats.ELPDDataLOO
        Pointwise LOO (``elpd_i``, ``pareto_k``; refitted points have k = 0).
    psis : arviz_stats.ELPDDataLOO
        The PSIS-LOO before any refit.
    refitted : list of int
        Indices (``obs_id``) of the points whose term was computed by a refit (for a
        weighted fit, rows of the data: one refit serves every copy of a row).
    mcse : dict
        Monte Carlo standard error of each refitted term, ``{obs_id: se}``.
    refit_rhat : dict
        The largest R-hat of each refit (weights, means, covariances).
    unreliable : str
        Empty when every term is reliable; otherwise why not (too many points
        to refit, a refit whose chains disagree, or draws so repeated that PSIS
        cannot be computed at all: then ``loo`` and ``psis`` are None).
    """

    def __init__(self, loo, psis, refitted, mcse, refit_rhat, unreliable):
        self.loo, self.psis, self.refitted = loo, psis, list(refitted)
        self.mcse, self.refit_rhat, self.unreliable = dict(mcse), dict(refit_rhat), unreliable

    @property
    def n_pareto_k_high(self):
        """Points whose PSIS Pareto k exceeded the threshold (before the refits; for a
        weighted fit, copies of rows); None when PSIS could not be computed."""
        if self.psis is None:
            return None
        return int((np.asarray(self.psis.pareto_k) > PARETO_K_MAX).sum())


def loo_with_refits(bayes, *, k_threshold=PARETO_K_MAX, max_refits=10, points=None,
                    random_state=None, rhat_max=RHAT_MAX, **fit_kwargs):
    """PSIS-LOO of a NUTS fit with exact refits for the points whose Pareto k is high.

    Parameters
    ----------
    bayes : GaussianMixtureBayes
        A NUTS fit (its ``idata_`` holds the pointwise log-likelihood).
    k_threshold : float
        Points with Pareto k above it are refitted (``-inf`` refits every point:
        brute-force leave-one-out).
    max_refits : int
        At most this many refits; with more flagged points none is refitted and
        the result says the LOO is unreliable.
    points : sequence of int, optional
        Refit exactly these points instead (whatever their k): brute-force
        leave-one-out for them, e.g. to check the PSIS terms.
    random_state : int or None
        Seeds the refits (each its own stream).
    rhat_max : float
        A refit whose largest R-hat exceeds this makes the LOO unreliable.
    **fit_kwargs
        NUTS settings of the refits; by default the original fit's (draws, tune,
        chains, sampler, target_accept).

    Returns
    -------
    LooRefits
        For a fit with integer sample weights, the LOO of the data with every row
        repeated as often (see the module docstring); ``points`` are then rows.

    Raises
    ------
    ValueError
        The fit has sample weights that are not all integers.
    """
    from arviz_stats import loo, reloo

    weights = getattr(bayes, "sample_weight_", None)
    check_loo_weights(weights)
    if weights is None:
        idata, rows, counts = bayes.idata_, None, None
    else:  # the rows of positive weight, each once
        rows = np.flatnonzero(weights > 0)
        counts = weights[rows].astype(np.int64)
        idata = xr.DataTree.from_dict({
            "posterior": bayes.idata_["posterior"].to_dataset(),
            "log_likelihood": bayes.idata_["log_likelihood"].to_dataset().isel(obs_id=rows)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # high Pareto k is what this function handles
            psis = loo(idata, pointwise=True)
    except ValueError as error:  # PSIS cannot fit a tail made of one repeated value
        if "tail values are the same" not in str(error):
            raise
        return LooRefits(None, None, [], {}, {}, _repeated_draws(bayes.idata_))

    def done(corrected, refitted, mcse, rhat, unreliable):
        """The result; for a weighted fit, as that of the data with the rows repeated."""
        shown = psis
        if counts is not None:
            shown = repeated_rows(psis, counts, idata)
            corrected = shown if corrected is psis else repeated_rows(corrected, counts, idata)
        return LooRefits(corrected, shown, refitted, mcse, rhat, unreliable)

    k = np.asarray(psis.pareto_k)
    if points is None:
        flagged = np.flatnonzero(k > k_threshold)
    elif rows is None:
        flagged = np.unique(points)
    else:  # rows of the data -> positions among the positively weighted rows
        flagged = np.flatnonzero(np.isin(rows, points))
    if len(flagged) == 0:
        return done(psis, [], {}, {}, "")
    if len(flagged) > max_refits:
        return done(psis, [], {}, {}, (
            f"{len(flagged)} points with Pareto k > {k_threshold:g}, more than "
            f"max_loo_refits={max_refits} refits"))
    wrapper = _refits_wrapper(bayes, fit_kwargs, random_state, idata, rows)
    refit = np.isin(np.arange(k.size), flagged)
    flags = copy.deepcopy(psis)  # reloo refits the points whose k exceeds its threshold
    flags.pareto_k = psis.pareto_k.copy(data=refit.astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corrected = reloo(wrapper, loo_orig=flags, k_threshold=0.5, pointwise=True)
    # PSIS's diagnostics stay for the points it kept; a refitted point's k is 0
    corrected.pareto_k = psis.pareto_k.where(~refit, 0.0)
    corrected.warning = bool((corrected.pareto_k.values > corrected.good_k).any())
    disagree = {i: r for i, r in wrapper.rhat.items() if not r <= rhat_max}
    unreliable = "" if not disagree else (
        "the refits without point" + ("s " if len(disagree) > 1 else " ")
        + ", ".join(str(i) for i in disagree)
        + f" have R-hat {max(disagree.values()):.3f} > {rhat_max}")
    return done(corrected, sorted(wrapper.mcse), wrapper.mcse, wrapper.rhat, unreliable)


def check_loo_weights(weights):
    """Refuse sample weights that are not all integers: LOO (and WAIC) leave out, or
    count, observations, and with a weight of 0.3 there is no observation to leave out."""
    if weights is not None and not integer_weights(weights):
        fractional = np.flatnonzero(np.asarray(weights) != np.round(weights))
        raise ValueError(
            f"LOO and WAIC need integer sample weights (a weight counts its row that many "
            f"times, and one copy is left out); {len(fractional)} weights are not integers "
            f"(row {fractional[0]}: {float(weights[fractional[0]])!r}). With other weights the "
            "posterior is a power posterior with no observations to leave out: compare "
            "such models by EM's criteria (methods=('em',)) or the log evidence of fits "
            "with the same weights, or round the weights if they are counts.")


def repeated_rows(result, counts, idata):
    """A pointwise LOO of the distinct rows (``result``, pointwise) as that of the data
    with row ``i`` repeated ``counts[i]`` times: every pointwise array repeated, and
    ``elpd``, ``se`` (``sqrt(n var(elpd_i))``, arviz's formula) and ``p`` recomputed
    over the ``sum(counts)`` terms. ``idata``'s log-likelihood (the distinct rows) gives
    the ``p_loo_i`` that plain PSIS does not store."""
    from scipy.special import logsumexp

    out = copy.copy(result)
    index = np.repeat(np.arange(len(counts)), counts)
    new_ids = np.arange(len(index))

    def repeat(values):
        return values.isel(obs_id=index).assign_coords(obs_id=new_ids)

    p_loo_i = getattr(result, "p_loo_i", None)
    if p_loo_i is None:
        log_lik = idata["log_likelihood"]["obs"].transpose("chain", "draw", "obs_id").values
        log_lik = log_lik.reshape(-1, log_lik.shape[-1])
        lppd_i = logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])
        p_loo_i = result.elpd_i.copy(data=lppd_i - result.elpd_i.values)
    out.elpd_i, out.pareto_k, out.p_loo_i = (repeat(v) for v in (
        result.elpd_i, result.pareto_k, p_loo_i))
    values = out.elpd_i.values
    out.elpd = float(values.sum())
    out.se = float(np.sqrt(len(values) * np.var(values, ddof=1))) if len(values) > 1 else 0.0
    out.p = float(out.p_loo_i.values.sum())
    out.n_data_points = int(len(values))
    out.log_weights = None  # per distinct row; the repeated rows' would be copies
    return out


def _repeated_draws(idata):
    """Why PSIS failed: the chains repeat draws (a stuck chain), said with numbers."""
    log_lik = idata["log_likelihood"]["obs"].values  # (chain, draw, obs)
    distinct = [np.unique(chain, axis=0).shape[0] for chain in log_lik]
    worst = int(np.argmin(distinct))
    return (f"PSIS-LOO cannot be computed: the draws repeat (chain {worst} has "
            f"{distinct[worst]} distinct draws of {log_lik.shape[1]}; a stuck chain), so "
            "some point's importance weights have a tail of one value")


def _log_mean_exp_mcse(log_values):
    """Monte Carlo se of ``log mean exp(log_values)``, a DataArray (chain, draw): the
    delta method with the ESS of ``exp(log_values)`` for its mean."""
    from arviz_stats import ess

    shifted = np.exp(log_values - float(log_values.max()))
    mean = float(shifted.mean())
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        n_eff = float(ess(shifted, method="mean"))
    if not np.isfinite(n_eff) or n_eff <= 0 or mean == 0:
        return float("nan")
    return float(shifted.std()) / mean / np.sqrt(n_eff)


def _refits_wrapper(bayes, fit_kwargs, random_state, idata, rows):
    """An arviz-stats SamplingWrapper that refits ``bayes`` without one point (for a
    weighted fit, ``rows`` maps the positions of ``idata`` to the data's rows, and a
    refit lowers the row's weight by one: one copy left out)."""
    import json

    from arviz_stats.loo.wrapper import SamplingWrapper

    from ._chains import max_rhat_and_min_ess
    from .bayes import GaussianMixtureBayes

    spec = bayes.spec_
    config = json.loads(bayes.idata_.attrs["config"])["fit"]
    settings = {name: config[name] for name in
                ("draws", "tune", "chains", "nuts_sampler", "target_accept") if name in config}
    settings.update(fit_kwargs, progressbar=False)
    entropy = np.random.SeedSequence(random_state).entropy

    class MixtureRefits(SamplingWrapper):
        def __init__(self):
            super().__init__(model=bayes, idata_orig=idata)
            self.mcse, self.rhat, self.left_out = {}, {}, None

        def sel_observations(self, idx):
            X = bayes._X
            if rows is not None:
                row = int(rows[idx])
                weights = bayes.sample_weight_.copy()
                weights[row] -= 1  # one copy of the row left out
                self.left_out = row
                return (X, weights), X[[row]]
            keep = np.ones(len(X), dtype=bool)
            keep[idx] = False
            self.left_out = int(idx)
            return (X[keep], None), X[[idx]]

        def sample(self, modified_observed_data):
            X, weights = modified_observed_data
            seed = int(np.random.SeedSequence([entropy, self.left_out]).generate_state(1)[0])
            # the same model: the full data's resolved priors, not new data-scaled ones
            refit = GaussianMixtureBayes(
                spec.n_components, covariance_type=spec.structure.name,
                priors=spec.priors.priors, order_by=spec.order_by, missing=bayes.missing,
                random_state=seed)
            return refit.fit(X, sample_weight=weights, em=bayes.em_, **settings)

        def get_inference_data(self, fitted_model):
            self.rhat[self.left_out] = max_rhat_and_min_ess(fitted_model.posterior)[0]
            return fitted_model.idata_

        def log_likelihood__i(self, excluded_obs, idata__i):
            posterior = idata__i["posterior"].to_dataset()
            log_lik = bayes._pointwise_log_likelihood(posterior, excluded_obs)
            self.mcse[self.left_out] = _log_mean_exp_mcse(log_lik.isel(obs_id=0))
            return log_lik

    return MixtureRefits()
