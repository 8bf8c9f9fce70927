"""Label switching: relabel posterior draws to one common labelling.

The mixture likelihood is invariant to permuting the components, so different
draws (and different chains) may use different labels for the same cluster.
:func:`stephens_relabel` implements Stephens' (2000) Kullback-Leibler algorithm:
starting from reference membership probabilities (the EM or MAP solution, a
pivot), each draw gets the permutation whose membership probabilities are closest
in KL divergence to the current consensus, found with the Hungarian algorithm;
the consensus is then re-averaged and the process repeated until no draw
changes. Stephens, M. (2000), "Dealing with label switching in mixture models",
JRSS B 62(4), 795-809.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

__all__ = ["RelabelResult", "stephens_relabel", "permute_components"]

_TINY = 1e-300


@dataclass(frozen=True)
class RelabelResult:
    """Permutations found for every draw.

    ``permutations[i, k]`` is the original component that becomes component ``k``
    in draw ``i``.
    """

    permutations: np.ndarray  # (n_draws, K)
    n_permuted: int  # draws whose permutation is not the identity
    n_iterations: int
    converged: bool


def stephens_relabel(membership, reference, *, max_iter=50, sample_weight=None, groups=None):
    """Stephens' KL relabelling.

    Parameters
    ----------
    membership : ndarray of shape (n_draws, n_samples, K) or callable
        Membership probabilities of every draw, or ``membership(i)`` returning
        those of draw ``i`` (n_samples, K) when they do not fit in memory.
    reference : ndarray of shape (n_samples, K)
        Pivot membership probabilities that fix the labelling (e.g. from EM).
    max_iter : int
        Maximum number of passes over the draws.
    sample_weight : ndarray of shape (n_samples,), optional
        The fit's sample weights: each point's KL divergence counts with its weight
        (an integer weight as that many copies of the point; zero: not at all).
    groups : ndarray of shape (K,), optional
        A label per component: components are permuted only among those with the same
        label (the interchangeable ones of a model with fixed parameters,
        :meth:`bayesgmm._fixed.FixedParameters.exchangeable_groups`). Default: all of
        them.

    Returns
    -------
    RelabelResult
    """
    if callable(membership):
        get, n_draws = membership, membership.n_draws
    else:
        get, n_draws = membership.__getitem__, len(membership)
    K = reference.shape[1]
    identity = np.arange(K)
    blocks = [identity] if groups is None else [
        np.flatnonzero(np.asarray(groups) == g) for g in np.unique(groups)]
    permutations = np.tile(identity, (n_draws, 1))
    consensus = reference
    converged = False
    for iteration in range(1, max_iter + 1):
        log_q = np.log(np.maximum(consensus, _TINY))
        if sample_weight is not None:
            log_q = log_q * np.asarray(sample_weight, dtype=float)[:, None]
        total = np.zeros_like(reference, dtype=float)
        new = np.empty_like(permutations)
        for i in range(n_draws):
            p = np.asarray(get(i), dtype=float)
            # cost[j, k] = -sum_n p[n, j] log q[n, k]; the entropy of p does not
            # depend on the permutation
            new[i] = _best_permutation(-(p.T @ log_q), blocks)
            total += p[:, new[i]]
        consensus = total / n_draws
        changed = np.any(new != permutations)
        permutations = new
        if not changed and iteration > 1:
            converged = True
            break
    n_permuted = int(np.sum(np.any(permutations != identity, axis=1)))
    return RelabelResult(permutations, n_permuted, iteration, converged)


def _best_permutation(cost, blocks):
    """The permutation (``perm[k]``: the component that becomes k) minimising
    ``sum_j cost[j, to(j)]``, components moved only within their block."""
    permutation = np.arange(len(cost))
    for block in blocks:
        _, columns = linear_sum_assignment(cost[np.ix_(block, block)])
        permutation[block[columns]] = block  # row block[r] goes to block[columns[r]]
    return permutation


def permute_components(dataset: xr.Dataset, permutations, *, sample_dims=("chain", "draw")):
    """Apply per-draw permutations to every variable with a ``component`` dimension.

    Parameters
    ----------
    dataset : xarray.Dataset
        With dims ``chain`` and ``draw``.
    permutations : ndarray of shape (n_chains * n_draws, K)
        In chain-major order, as :func:`stephens_relabel` returns them for the
        stacked draws.
    """
    n_chains, n_draws = (dataset.sizes[d] for d in sample_dims)
    perm = xr.DataArray(
        np.asarray(permutations).reshape(n_chains, n_draws, -1),
        dims=(*sample_dims, "component"),
    )
    out = dataset.copy()
    for name, var in dataset.data_vars.items():
        if "component" in var.dims:
            out[name] = var.isel(component=perm).transpose(*var.dims)
    return out
