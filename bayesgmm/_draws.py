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
    """Per-draw weights (S, K), means (S, K, D) and precision factors (structure layout)."""
    weights, means, full = stacked_draws(posterior)
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


def joint_log_prob_chunks(X, params, spec, max_elements=2**23):
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


def membership_draws(posterior, X, spec):
    """Membership probabilities of every draw, (n_draws, n_samples, K)."""
    params = stacked_parameters(posterior, spec)
    return np.concatenate([
        np.exp(joint - logsumexp(joint, axis=2, keepdims=True))
        for joint in joint_log_prob_chunks(X, params, spec)
    ])


class Memberships:
    """Membership probabilities per draw, computed in chunks and cached (float32), as
    :func:`bayesgmm.relabel.stephens_relabel` asks for them: ``memberships(i)``."""

    def __init__(self, X, params, spec):
        self.n_draws = len(params["weights"])
        self._values = np.concatenate([
            np.exp(joint - logsumexp(joint, axis=2, keepdims=True)).astype(np.float32)
            for joint in joint_log_prob_chunks(X, params, spec)
        ])

    def __call__(self, i):
        return self._values[i]


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
