"""Per-draw maths of a posterior (or prior): every draw's mixture, evaluated in bulk.

:func:`stacked_draws` is the one place a Dataset with dims (chain, draw, ...) becomes
arrays with one ``sample`` axis (chain-major): weights (S, K), means (S, K, D) and full
covariances (S, K, D, D). From it come the precision factors of every draw
(:func:`stacked_parameters`), the joint log densities ``log w_k + log N(x | k)`` in
chunks (:func:`joint_log_prob_chunks`), hence pointwise log-likelihoods and membership
probabilities, and simulated data sets (:func:`replicate`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from ._gaussian import sample_mixture

__all__ = []


def stacked_draws(ds):
    """Weights (S, K), means (S, K, D) and covariances (S, K, D, D) of every draw."""
    stacked = ds.stack(sample=("chain", "draw")).transpose("sample", ...)
    weights = stacked["weights"].values
    means = stacked["means"].transpose("sample", "component", "feature").values
    full = stacked["covariances"].transpose("sample", "component", "feature", "feature2").values
    return weights, means, full


def stacked_parameters(posterior, spec):
    """Per-draw weights (S, K), means (S, K, D), precision factors (structure layout) and
    full covariances (S, K, D, D)."""
    weights, means, full = stacked_draws(posterior)
    return {
        "weights": weights,
        "means": means,
        "precisions_cholesky": _batched_precisions_cholesky(spec.structure, full),
        "covariances": full,
    }


def _batched_precisions_cholesky(structure, full):
    """Precision factors, in the structure's layout, for a batch of full covariances
    (S, K, D, D)."""
    chol = np.linalg.cholesky(full)
    return structure.from_full(np.swapaxes(np.linalg.inv(chol), -1, -2))  # U = L^-T


def joint_log_prob_chunks(X, params, spec, max_elements=2**23):
    """Yield log w_k + log N(x_n | k) for chunks of draws: arrays (s, n, K).

    Draws and components are flattened into one batch of S*K Gaussians, so a
    chunk of draws costs one matrix product with the shared data features. Data with
    missing (NaN) entries: each row's observed features' marginal densities, by the
    masked kernel of the model's likelihood (:mod:`bayesgmm._masked`), a draw at a time.
    """
    if np.isnan(X).any():
        yield from _masked_joint_log_prob_chunks(X, params, max_elements)
        return
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


def _masked_joint_log_prob_chunks(X, params, max_elements):
    from ._masked import masked_joint_log_density, missing_patterns

    pattern, observed = missing_patterns(X)
    factors = np.linalg.cholesky(params["covariances"])
    with np.errstate(divide="ignore"):
        log_weights = np.log(params["weights"])
    n_draws, K = log_weights.shape
    step = max(1, max_elements // (len(X) * K))
    for start in range(0, n_draws, step):
        yield np.stack([
            masked_joint_log_density(X, pattern, observed, log_weights[s], params["means"][s],
                                     factors[s]).T
            for s in range(start, min(start + step, n_draws))])


def pointwise_log_likelihood(posterior, X, spec):
    """``log p(x_n | draw)``: a DataArray (chain, draw, obs_id)."""
    params = stacked_parameters(posterior, spec)
    out = np.concatenate([
        logsumexp(joint, axis=2) for joint in joint_log_prob_chunks(X, params, spec)
    ])
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    return xr.DataArray(
        out.reshape(chains, draws, len(X)), dims=("chain", "draw", "obs_id"),
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                "obs_id": np.arange(len(X))},
    )


def _memberships(X, params, spec, dtype=np.float64):
    """Membership probabilities of every draw of ``params``, (n_draws, n_samples, K)."""
    return np.concatenate([
        np.exp(joint - logsumexp(joint, axis=2, keepdims=True)).astype(dtype, copy=False)
        for joint in joint_log_prob_chunks(X, params, spec)
    ])


def membership_draws(posterior, X, spec):
    """Membership probabilities of every draw, (n_draws, n_samples, K)."""
    return _memberships(X, stacked_parameters(posterior, spec), spec)


class Memberships:
    """Membership probabilities per draw, computed in chunks and cached (float32), as
    :func:`bayesgmm.relabel.stephens_relabel` asks for them: ``memberships(i)``."""

    def __init__(self, X, params, spec):
        self.n_draws = len(params["weights"])
        self._values = _memberships(X, params, spec, np.float32)

    def __call__(self, i):
        return self._values[i]


def impute_draws(posterior, X, spec, seed):
    """Posterior predictive draws of the missing (NaN) entries of ``X``.

    For every draw ``theta`` and row, a component is drawn from the row's membership
    probabilities given its observed entries, then the missing entries from that
    component's conditional Gaussian given them. Returns the completed data of every
    draw (S, n, D) and the posterior mean of ``E[x_M | x_O, theta]`` (n, D): the
    Rao-Blackwellised predictive mean, with less Monte Carlo error than the draws'.
    Observed entries are copied.
    """
    from ._masked import conditional_gaussian, missing_patterns

    params = stacked_parameters(posterior, spec)
    S, K = params["weights"].shape
    rng = np.random.default_rng(seed)
    draws = np.broadcast_to(X, (S,) + X.shape).copy()
    mean = X.copy()
    incomplete = np.flatnonzero(np.isnan(X).any(axis=1))  # the complete rows are copied
    if len(incomplete) == 0:
        return draws, mean
    memberships = _memberships(X[incomplete], params, spec)  # (S, incomplete rows, K)
    pattern, observed = missing_patterns(X[incomplete])
    for p, mask in enumerate(observed):
        members = np.flatnonzero(pattern == p)
        rows = incomplete[members]
        O, M = np.flatnonzero(mask), np.flatnonzero(~mask.astype(bool))
        cond_mean, cond_cov = conditional_gaussian(X[np.ix_(rows, O)], params["means"],
                                                   params["covariances"], O, M)
        r = memberships[:, members]  # (S, r, K)
        mean[np.ix_(rows, M)] = np.einsum("srk,skrm->rm", r, cond_mean) / S
        # a component per draw and row, by inverting the cumulative memberships
        u = rng.random((S, len(rows), 1))
        labels = np.minimum((np.cumsum(r, axis=2) < u).sum(axis=2), K - 1)  # (S, r)
        s_index = np.arange(S)[:, None]
        factors = np.linalg.cholesky(cond_cov)[s_index, labels]  # (S, r, m, m)
        noise = rng.standard_normal((S, len(rows), len(M), 1))
        values = cond_mean[s_index, labels, np.arange(len(rows))[None, :]] \
            + (factors @ noise)[..., 0]
        draws[:, rows[:, None], M[None, :]] = values
    return draws, mean


def replicate(draws_ds, n, spec, seed):
    """One simulated data set of ``n`` points per draw.

    Returns the replicates (a Dataset: ``obs`` with dims chain, draw, obs_id, feature)
    and each point's component, (n_draws, n).
    """
    weights, means, full = stacked_draws(draws_ds)
    factors = np.linalg.cholesky(full)
    rng = np.random.default_rng(seed)
    n_draws = len(weights)
    out = np.empty((n_draws, n, spec.n_features))
    labels = np.empty((n_draws, n), dtype=int)
    for s in range(n_draws):
        out[s], labels[s] = sample_mixture(weights[s], means[s], factors[s], n, rng)
    chains, draws = draws_ds.sizes["chain"], draws_ds.sizes["draw"]
    replicates = xr.Dataset(
        {"obs": (("chain", "draw", "obs_id", "feature"), out.reshape(chains, draws, n, -1))},
        coords={"feature": list(spec.feature_names), "obs_id": np.arange(n)},
    )
    return replicates, labels
