"""Known parameters held fixed through EM: ``GaussianMixtureEM(fixed={...})``.

``fixed`` maps any of ``"weights"``, ``"means"`` and ``"covariances"`` to an array of
that parameter's shape in which NaN marks what is estimated:

- ``weights`` (K,): any components' weights; the free components share the rest of the
  mass in proportion to their responsibilities (the constrained maximum);
- ``means`` (K, D): whole rows (a component's mean is known or not);
- ``covariances`` (the family's layout): per component for the families whose
  components are independent (full/VVV, diag/VVI, spherical/VII), else all of them
  (the families that tie components together, e.g. EEV's common volume and shape,
  have no per-component maximum to hold one of them in).

Each M-step is then the maximum over the free parameters given the fixed ones (an ECM
step, Meng and Rubin 1993): a free covariance is the scatter about its component's
mean, fixed or not, which :meth:`FixedParameters.moments` gives every family's M-step
by shifting its second moments; the fixed values are then written over the estimates.
"""

from __future__ import annotations

import numpy as np

__all__ = []

NAMES = ("weights", "means", "covariances")

class FixedParameters:
    """Validated fixed values (NaN: free) and their masks, in some coordinates."""

    def __init__(self, weights, means, covariances, structure):
        self.weights, self.means, self.covariances = weights, means, covariances
        self.structure = structure
        self.weight_mask = None if weights is None else ~np.isnan(weights)
        self.mean_mask = None if means is None else ~np.isnan(means).any(axis=1)
        self.covariance_mask = (None if covariances is None
                                else _component_mask(structure, covariances))

    @classmethod
    def check(cls, fixed, structure, n_components, n_features):
        """``fixed`` as given by the user, validated: a FixedParameters, or None."""
        if fixed is None:
            return None
        if not isinstance(fixed, dict):
            raise ValueError("fixed must be None or a dict with keys among "
                             f"{list(NAMES)}, got {type(fixed).__name__}.")
        unknown = sorted(set(fixed) - set(NAMES))
        if unknown:
            raise ValueError(f"fixed has unknown keys {unknown}; it takes {list(NAMES)} "
                             "(NaN marks the entries that are estimated).")
        K, D = n_components, n_features
        weights = means = covariances = None
        if fixed.get("weights") is not None:
            weights = _as_array("weights", fixed["weights"], (K,))
            known = weights[~np.isnan(weights)]
            if np.any(known < 0) or np.any(known > 1):
                raise ValueError("fixed weights must lie in [0, 1].")
            if len(known) == K and not np.isclose(known.sum(), 1.0, rtol=0, atol=1e-8):
                raise ValueError(f"fixed weights must sum to 1 when all are fixed, got "
                                 f"{known.sum():.10g}.")
            if len(known) < K and not known.sum() < 1.0:
                raise ValueError(
                    f"the fixed weights sum to {known.sum():.10g}, leaving nothing for "
                    "the free components: fix fewer, or all of them (summing to 1).")
        if fixed.get("means") is not None:
            means = _as_array("means", fixed["means"], (K, D))
            partial = np.isnan(means).any(axis=1) & ~np.isnan(means).all(axis=1)
            if partial.any():
                raise ValueError(
                    f"fixed means: a component's mean is fixed whole or estimated whole "
                    f"(NaN in every entry); components {np.flatnonzero(partial).tolist()} "
                    "mix the two.")
        if fixed.get("covariances") is not None:
            shape = structure.covariance_shape(K, D)
            covariances = _as_array("covariances", fixed["covariances"], shape)
            mask = _component_mask(structure, covariances)
            per_component = structure.independent_components
            if not per_component and not mask.all():
                raise ValueError(
                    f"fixed covariances of covariance_type {structure.mclust_name!r} are "
                    "fixed all together (its components share volume, shape or "
                    "orientation); per component only for the families that estimate "
                    "each component's covariance on its own (VVV, VVI, VII). Give every "
                    "entry, or none.")
            if per_component:
                values = np.reshape(covariances, (K, -1))
                partial = np.isnan(values).any(axis=1) & ~np.isnan(values).all(axis=1)
                if partial.any():
                    raise ValueError(
                        "fixed covariances: a component's covariance is fixed whole or "
                        f"estimated whole; components {np.flatnonzero(partial).tolist()} "
                        "mix the two.")
            full = structure.to_full(np.nan_to_num(covariances, nan=1.0), K, D)
            known = full[np.broadcast_to(mask, (K,))] if mask.shape else full
            if not np.allclose(known, np.swapaxes(known, -1, -2)):
                raise ValueError("fixed covariances must be symmetric.")
            if len(known) and np.any(np.linalg.eigvalsh(known)[..., 0] <= 0):
                raise ValueError("fixed covariances must be positive definite.")
        result = cls(weights, means, covariances, structure)
        if result.n_free(K, D) == 0:
            raise ValueError(
                "fixed fixes every parameter, leaving nothing to estimate; to evaluate a "
                "given mixture, fit with fewer fixed and compare, or compute the density "
                "directly.")
        return result

    def n_free(self, n_components, n_features):
        """Free parameters of the mixture given these fixed ones."""
        K, D = n_components, n_features
        structure = self.structure
        n_weights = K - 1
        if self.weight_mask is not None:
            n_weights = max(int((~self.weight_mask).sum()) - 1, 0)
        n_means = K * D if self.mean_mask is None else int((~self.mean_mask).sum()) * D
        n_cov = structure.n_covariance_parameters(K, D)
        if self.covariance_mask is not None:
            if structure.independent_components:
                n_cov = n_cov // K * int((~np.broadcast_to(self.covariance_mask, (K,))).sum())
            else:
                n_cov = 0
        return n_weights + n_means + n_cov

    def exchangeable_groups(self, n_components):
        """Which components stay interchangeable (K,): a group label per component.

        The mixture's posterior is invariant under a permutation of the components only
        if it maps every fixed value onto an equal one: two components are in one group
        when each of their weights, means and covariances is free in both or fixed to
        the same value in both. Relabelling permutes components within groups only (a
        permutation across them would move a fixed value to another component).
        """
        K = n_components
        keys = [[] for _ in range(K)]
        for values, mask in ((self.weights, self.weight_mask), (self.means, self.mean_mask),
                             (self.covariances, self.covariance_mask)):
            if values is None:
                continue
            if not np.shape(mask):  # a shared layout: the same for every component
                continue
            rows = np.reshape(values, (K, -1))
            for k in range(K):
                keys[k].append(tuple(rows[k]) if mask[k] else None)
        labels = {}
        return np.array([labels.setdefault(tuple(key), len(labels)) for key in keys])

    def to_standardised(self, scaling):
        """The same fixed values in ``scaling``'s standardised coordinates."""
        if scaling is None:
            return self
        means = None if self.means is None else scaling.standardise_means(self.means)
        covariances = None
        if self.covariances is not None:
            covariances = scaling._rescale(self.covariances, 1.0 / scaling.scale,
                                           1.0 / scaling.scale)
        return FixedParameters(self.weights, means, covariances, self.structure)

    # ---------------------------------------------------------------- M-step hooks
    def moments(self, nk, means_centred, sum_q, centres):
        """The means the M-step uses (fixed ones in the components' coordinates) and
        second moments shifted so that each covariance is the scatter about them."""
        if self.mean_mask is None or not self.mean_mask.any():
            return means_centred, sum_q
        rows = self.mean_mask
        known = self.means[rows] - centres[rows]
        average = means_centred[rows]
        # E'[xx'] - mu mu' = E[xx'] - xbar mu' - mu xbar' + mu mu'
        shift = (2 * known[:, :, None] * known[:, None, :]
                 - average[:, :, None] * known[:, None, :]
                 - known[:, :, None] * average[:, None, :])
        sum_q = sum_q.copy()
        sum_q[rows] += self.structure.quad_moments_from_second_moments(
            nk[rows, None, None] * shift)
        means_centred = means_centred.copy()
        means_centred[rows] = known
        return means_centred, sum_q

    def weights_from(self, nk):
        """The M-step's weights: fixed ones kept, the rest of the mass shared by nk."""
        weights = nk / nk.sum()
        if self.weight_mask is None:
            return weights
        free = ~self.weight_mask
        out = np.where(self.weight_mask, np.nan_to_num(self.weights), 0.0)
        if free.any():
            out[free] = (1.0 - out[self.weight_mask].sum()) * nk[free] / nk[free].sum()
        return out

    def covariances_from(self, covariances):
        """The M-step's covariances with the fixed ones written over them."""
        if self.covariance_mask is None:
            return covariances
        if not self.covariance_mask.shape:  # a shared layout: all fixed
            return np.array(self.covariances, dtype=np.float64)
        out = np.array(covariances, dtype=np.float64)
        out[self.covariance_mask] = self.covariances[self.covariance_mask]
        return out

    def means_from(self, means):
        """Means with the fixed ones written over them (exactly: the M-step's
        ``(mu - c) + c`` may differ from ``mu`` in the last bit)."""
        if self.mean_mask is None:
            return means
        out = np.array(means, dtype=np.float64)
        out[self.mean_mask] = self.means[self.mean_mask]
        return out

    def apply(self, params):
        """(weights, means, covariances) of a start with the fixed values written in."""
        weights, means, covariances = (np.array(p, dtype=np.float64) for p in params)
        if self.weight_mask is not None:
            weights = self.weights_from(weights)
        return weights, self.means_from(means), self.covariances_from(covariances)

    def holds(self, weights, means, covariances):
        """Whether parameters (EM's attributes, this structure's layout) have these fixed
        values (to rounding: a fit on standardised data maps them back)."""
        pairs = [(value, mask, actual) for value, mask, actual in (
            (self.weights, self.weight_mask, weights), (self.means, self.mean_mask, means),
            (self.covariances, self.covariance_mask, covariances)) if value is not None]
        return all(np.allclose(np.asarray(actual, dtype=np.float64)[mask], value[mask],
                               rtol=1e-9, atol=0.0) for value, mask, actual in pairs)

    def to_dict(self):
        """JSON-ready values (NaN as None) for a saved fit."""
        return {name: np.where(np.isnan(value), None, value).tolist()
                for name, value in (("weights", self.weights), ("means", self.means),
                                    ("covariances", self.covariances)) if value is not None}


def from_dict(values):
    """The user's ``fixed`` from :meth:`FixedParameters.to_dict`."""
    return {name: np.array(value, dtype=float) for name, value in values.items()}


def _as_array(name, value, shape):
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"fixed {name} must be numbers (NaN for free entries).") from None
    if array.shape != tuple(shape):
        raise ValueError(f"fixed {name} must have shape {tuple(shape)}, got {array.shape} "
                         "(NaN marks the entries that are estimated).")
    if np.isinf(array).any():
        raise ValueError(f"fixed {name} must be finite (NaN for free entries).")
    if np.isnan(array).all():
        raise ValueError(f"fixed {name} is all NaN, i.e. nothing fixed: leave it out.")
    return array


def _component_mask(structure, covariances):
    """Which components' covariances are fixed (K,), or a 0-d True for a shared layout."""
    if "component" not in structure.layout:
        return np.array(True)
    values = np.reshape(covariances, (np.shape(covariances)[0], -1))
    return ~np.isnan(values).any(axis=1)
