"""EM with missing entries (missing at random): the E-step on each point's observed
features, the M-step on the conditional expectations of the missing ones.

For a point whose features O are observed and M missing, component k's density of the
observed part is the marginal ``N(x_O; mu_kO, Sigma_kOO)`` (Ghahramani and Jordan 1994),
and the complete-data sufficient statistics the M-step needs are their conditional
expectations given x_O and k:

    E[x_M]       = mu_kM + B_k (x_O - mu_kO),           B_k = Sigma_kMO Sigma_kOO^-1
    Cov[x_M]     = C_k = Sigma_kMM - B_k Sigma_kOM
    E[x x^T]     = x~ x~^T + [0 0; 0 C_k]               (x~: x with x_M := E[x_M])

(McLachlan and Krishnan 2008, section 2.2). The complete rows keep the block engine of
:mod:`bayesgmm.em`; the others are sorted by their pattern of missing features and
computed the block engine's way, by matrix products on expanded rows. Each row becomes
``z = [x - c_k; 1]`` (c_k the centre of component k's moments, missing entries 0) and
its products ``q(z) = (z_i z_j), i <= j``:

- the E-step: ``log w_k + log N(x_O; mu_kO, Sigma_kOO)`` is a quadratic form in z, so a
  pattern's log joint densities are one product ``(K, |q|) @ (|q|, n)`` of per-pattern
  coefficients and the rows' ``q(z)``;
- the M-step: the completed row is linear in z, ``x~ - c_k = A_k z`` with
  ``A_k = [I 0; B_k a_k]`` (observed rows, missing rows), so a pattern's statistics
  follow from ``S_k = sum_n r_nk z z^T``, one product ``(K, n) @ (n, |q|)``:
  ``sum r (x~ - c_k) = A_k S_k e`` (e the last unit vector), ``sum r = e^T S_k e`` and
  ``sum r E[(x - c_k)(x - c_k)^T] = A_k S_k A_k^T + (sum r) [0 0; 0 C_k]``.

Every pattern's marginal and conditional Gaussians are computed at once, in the full
feature indexing (``Sigma_OO`` padded with the identity). Their second moments are
mapped onto each covariance family's features by
:meth:`CovarianceStructure.quad_moments_from_second_moments`, so every family's M-step,
and MAP-EM's, is unchanged. Points whose expanded densities overflow are redone by the
block engine's robust path on their observed features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._gaussian import _LOG_2PI
from .em import (_BLOCK_BYTES, _BlockEngine, _normalise_in_place, _PassResult,
                 _robust_log_joint, with_settings_of)

__all__ = []

#: elements of one (patterns, K, D + 1, D + 1) array of the per-pattern parameters:
#: the patterns are taken that many at a time
_PARAMETER_ELEMENTS = 2**19


@dataclass(frozen=True)
class _Pattern:
    """The rows sharing one pattern of missing features."""

    rows: np.ndarray  # indices into the data
    observed: np.ndarray  # feature indices
    missing: np.ndarray


def _pattern_keys(mask):
    """One integer per row of a boolean mask (n, D), equal for equal rows."""
    packed = np.packbits(mask, axis=1)
    if packed.shape[1] <= 8:
        padded = np.zeros((len(mask), 8), dtype=np.uint8)
        padded[:, :packed.shape[1]] = packed
        return padded.view(np.uint64).ravel()
    return np.unique(packed, axis=0, return_inverse=True)[1].ravel()


def group_patterns(X):
    """(complete row indices, [_Pattern, ...]) of data with NaN for missing entries; the
    patterns' rows concatenated are the incomplete rows sorted by pattern."""
    mask = np.isnan(X)
    incomplete = mask.any(axis=1)
    complete = np.flatnonzero(~incomplete)
    rows = np.flatnonzero(incomplete)
    keys = _pattern_keys(mask[rows])
    order = np.argsort(keys, kind="stable")
    rows, keys = rows[order], keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(rows) else []
    bounds = np.r_[starts, len(rows)]
    patterns = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        members = rows[start:stop]
        key = mask[members[0]]
        patterns.append(_Pattern(members, np.flatnonzero(~key), np.flatnonzero(key)))
    return complete, patterns


def full_covariances(structure, precisions_cholesky, n_components, n_features):
    """Covariances (K, D, D) from a family's precision factors ``U`` (``U U^T = P``)."""
    factors = structure.to_full(np.asarray(precisions_cholesky, dtype=np.float64),
                                n_components, n_features)
    inverse = np.linalg.inv(factors)
    return np.swapaxes(inverse, -1, -2) @ inverse


def _transpose(a):
    return np.swapaxes(a, -1, -2)


@dataclass(frozen=True)
class _PatternParameters:
    """Every component's marginal and conditional Gaussians for some patterns (G),
    as maps of ``z = [x - c_k; 1]`` (missing entries 0), in the full feature indexing."""

    log_joint: np.ndarray  # (G, K, |q|) coefficients of q(z): log w_k + log N(x_O | k)
    completion: np.ndarray  # (G, K, D, D + 1) A_k: x~ - c_k = A_k z
    conditional: np.ndarray  # (G, K, D, D) C_k in the missing rows and columns, else 0
    whitening: np.ndarray  # (G, K, D, D) L^-1, L L^T = Sigma_OO (identity elsewhere)

    @classmethod
    def of(cls, missing, weights, means, covariances, centres):
        """The parameters for patterns ``missing`` (G, D) bool, components expanded
        about ``centres`` (K, D)."""
        D = means.shape[1]
        m = missing.astype(np.float64)[:, None, :]  # (G, 1, D)
        o = 1.0 - m
        observed_block = o[..., :, None] * o[..., None, :]
        eye = np.eye(D)
        padded = covariances * observed_block + eye * m[..., None, :]
        chol = np.linalg.cholesky(padded)  # (G, K, D, D)
        whitening = np.linalg.inv(chol)
        precision = (_transpose(whitening) @ whitening) * observed_block  # Sigma_OO^-1
        half_log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        offset = means - centres  # (K, D)
        observed_offset = offset * o
        Pd = np.einsum("gkij,gkj->gki", precision, observed_offset)
        with np.errstate(divide="ignore"):
            const = (np.log(weights) - half_log_det
                     - 0.5 * (o[..., 0, :].sum(axis=-1)[:, None] * _LOG_2PI
                              + np.einsum("gki,gki->gk", Pd, observed_offset)))
        # log w_k + log N(x_O | k) = z^T H z with H = [-P/2 Pd/2; (Pd)^T/2 const]
        H = np.empty(padded.shape[:2] + (D + 1, D + 1))
        H[..., :D, :D] = -0.5 * precision
        H[..., :D, D] = H[..., D, :D] = 0.5 * Pd
        H[..., D, D] = const
        upper = np.triu_indices(D + 1)
        log_joint = H[..., upper[0], upper[1]] * np.where(upper[0] == upper[1], 1.0, 2.0)
        gain = (covariances * (m[..., :, None] * o[..., None, :])) @ precision  # B_k
        completion = np.concatenate(
            [eye * o[..., None, :] + gain,
             (offset * m - np.einsum("gkij,kj->gki", gain, offset))[..., None]], axis=-1)
        conditional = (covariances - gain @ covariances) * (m[..., :, None] * m[..., None, :])
        return cls(log_joint, completion, conditional, whitening)


def _as_slice(indices):
    """A run of consecutive indices as a slice (indexing by it makes no copy)."""
    if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[-1] + 1)):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


def _write_products(Zt, out):
    """``out`` (|q|, b) := the products of the rows of ``Zt`` (D + 1, b), z_i z_j for
    i <= j in the order of ``np.triu_indices``."""
    start = 0
    for i in range(len(Zt)):
        np.multiply(Zt[i], Zt[i:], out=out[start:start + len(Zt) - i])
        start += len(Zt) - i


class MissingEngine:
    """The EM engine's interface (``sweep``, ``subset``, ``log_prior``,
    ``predict_blocks``) for data with missing entries: the complete rows through a
    :class:`bayesgmm.em._BlockEngine`, the others pattern by pattern."""

    log_prior = _BlockEngine.log_prior

    def __init__(self, X, sample_weight, center, structure):
        self.X, self.sample_weight = X, sample_weight
        self.center = np.asarray(center, dtype=np.float64)
        self.structure = structure
        self.complete_rows, self.patterns = group_patterns(X)
        self.complete = _BlockEngine(X[self.complete_rows], sample_weight[self.complete_rows],
                                     center, structure)
        self.data_variance = None
        self.prior = None
        self.fixed = None
        # the incomplete rows sorted by pattern, feature-major, missing entries 0
        self._rows = (np.concatenate([p.rows for p in self.patterns]) if self.patterns
                      else np.zeros(0, dtype=np.intp))
        self._bounds = np.cumsum([0] + [len(p.rows) for p in self.patterns])
        self._missing_t = np.isnan(X[self._rows]).T
        self._Xt = np.where(self._missing_t, 0.0, X[self._rows].T.astype(np.float64))
        self._weights = np.asarray(sample_weight[self._rows], dtype=np.float64)
        self._unweighted = bool(np.all(self._weights == 1))
        self._pattern_missing = np.array([np.isnan(X[p.rows[0]]) for p in self.patterns],
                                         dtype=bool).reshape(len(self.patterns), X.shape[1])

    def subset(self, rows):
        """The same engine (centre, structure, prior) on some of the rows."""
        return with_settings_of(self, MissingEngine(self.X[rows], self.sample_weight[rows],
                                                    self.center, self.structure))

    # ------------------------------------------------------------- the E-step
    def _incomplete_e_steps(self, weights, means, precisions_cholesky):
        """Yield, for each run of patterns, ``(first, parameters, blocks)``: ``first`` its
        first pattern, its :class:`_PatternParameters`, and ``blocks`` a generator of
        ``(rows, segments, groups, Qs, log_norm, resp)`` over its rows.

        ``rows`` is a slice of the pattern-sorted incomplete rows, ``segments`` the
        (pattern in the run, start, stop) parts of it, ``groups`` the components sharing
        one centre (slices or index arrays), ``Qs`` their expanded rows ``q(z)`` (|q|, b) and
        ``resp`` the responsibilities (K, b). The arrays are views of reused buffers.
        """
        K, D = means.shape
        covariances = full_covariances(self.structure, precisions_cholesky, K, D)
        # the block engine's centres: components small and far from the shared centre are
        # expanded about their own mean
        far, centres = self.complete.plan(means, precisions_cholesky)
        near = np.setdiff1d(np.arange(K), far)
        groups = ([_as_slice(near)] if len(near) else []) + [slice(k, k + 1) for k in far]
        n_q = (D + 1) * (D + 2) // 2
        per_row = 8 * (len(groups) * n_q + (D + 1) + 2 * K)
        block_rows = int(max(256, _BLOCK_BYTES // per_row))
        buffers = np.empty((len(groups), n_q, min(block_rows, len(self._rows))))
        Zt = np.empty((D + 1, buffers.shape[-1]))
        Zt[D] = 1.0
        run = max(1, _PARAMETER_ELEMENTS // (K * (D + 1) ** 2))
        for first in range(0, len(self.patterns), run):
            last = min(first + run, len(self.patterns))
            parameters = _PatternParameters.of(self._pattern_missing[first:last], weights,
                                               means, covariances, centres)
            blocks = self._blocks(first, last, block_rows, parameters, groups, centres,
                                  buffers, Zt, weights, means)
            yield first, parameters, blocks

    def _blocks(self, first, last, block_rows, parameters, groups, centres, buffers, Zt,
                weights, means):
        bounds = self._bounds
        K, D = means.shape
        for start in range(bounds[first], bounds[last], block_rows):
            stop = min(start + block_rows, bounds[last])
            rows = slice(start, stop)
            n = stop - start
            segments = []
            p = int(np.searchsorted(bounds, start, side="right")) - 1
            while p < last and bounds[p] < stop:
                segments.append((p - first, max(bounds[p], start) - start,
                                 min(bounds[p + 1], stop) - start))
                p += 1
            joint = np.empty((K, n))
            Qs = buffers[:, :, :n]
            z = Zt[:, :n]
            for components, Q in zip(groups, Qs):
                # rows beyond 1e154 overflow q(z): their columns are redone robustly
                with np.errstate(over="ignore", invalid="ignore"):
                    np.subtract(self._Xt[:, rows], centres[components][0, :, None],
                                out=z[:D])
                    np.copyto(z[:D], 0.0, where=self._missing_t[:, rows])
                    _write_products(z, Q)
                    for g, lo, hi in segments:
                        joint[components, lo:hi] = (parameters.log_joint[g][components]
                                                    @ Q[:, lo:hi])
            log_norm, resp = _normalise_in_place(
                joint, lambda columns: self._robust_joint(start + columns, parameters, first,
                                                          weights, means))
            yield rows, segments, groups, Qs, log_norm, resp

    def _robust_joint(self, rows, parameters, first, weights, means):
        """Log joint densities (K, c) of some pattern-sorted rows by the block engine's
        robust path on their observed features, and its fallback responsibilities."""
        joint = np.empty((len(means), len(rows)))
        fallback = np.empty_like(joint)
        patterns = np.searchsorted(self._bounds, rows, side="right") - 1
        for p in np.unique(patterns):
            columns = np.flatnonzero(patterns == p)
            O = self.patterns[p].observed
            chol = _transpose(parameters.whitening[p - first][:, O][:, :, O])
            joint[:, columns], fallback[:, columns] = _robust_log_joint(
                self._Xt[O][:, rows[columns]].T, weights, means[:, O], chol)
        return joint, fallback

    # --------------------------------------------------------------- the sweep
    def sweep(self, weights, means, precisions_cholesky, *, moments=True, labels=False):
        """One pass over all rows: the observed-data log-likelihood and the expected
        complete-data moments (see :meth:`bayesgmm.em._BlockEngine.sweep`)."""
        K, D = means.shape
        if len(self.complete_rows):
            result = self.complete.sweep(weights, means, precisions_cholesky,
                                         moments=moments, labels=labels)
        else:
            result = _PassResult(0.0)
            if moments:
                result.centres = self.complete.plan(means, precisions_cholesky)[1]
                result.nk, result.sum_x = np.zeros(K), np.zeros((K, D))
                result.sum_q = np.zeros((K, self.complete.n_quad))
        if labels:
            complete_labels = result.labels
            result.labels = np.empty(len(self.X), dtype=np.intp)
            if len(self.complete_rows):
                result.labels[self.complete_rows] = complete_labels
        second = np.zeros((K, D, D))
        for first, parameters, blocks in self._incomplete_e_steps(weights, means,
                                                                  precisions_cholesky):
            products = np.zeros(parameters.log_joint.shape)  # sum_n r_nk q(z_n)
            for rows, segments, groups, Qs, log_norm, resp in blocks:
                if self._unweighted:
                    result.log_likelihood += float(log_norm.sum())
                else:
                    result.log_likelihood += float(self._weights[rows] @ log_norm)
                    if moments:
                        resp *= self._weights[rows]
                if labels:
                    result.labels[self._rows[rows]] = np.argmax(resp, axis=0)
                if moments:
                    for components, Q in zip(groups, Qs):
                        for g, lo, hi in segments:
                            products[g, components] += resp[components, lo:hi] @ Q[:, lo:hi].T
            if moments:
                nk, sum_x, s = _moments(products, parameters)
                result.nk = result.nk + nk
                result.sum_x = result.sum_x + sum_x
                second += s
        if moments:
            result.sum_q = result.sum_q + self.structure.quad_moments_from_second_moments(second)
        return result

    def predict_blocks(self, weights, means, precisions_cholesky):
        """Yield (rows, log p(x_O), responsibilities (b, K)) for prediction."""
        for block, log_norm, resp in self.complete.predict_blocks(weights, means,
                                                                  precisions_cholesky):
            yield self.complete_rows[block], log_norm, resp
        for _, _, blocks in self._incomplete_e_steps(weights, means, precisions_cholesky):
            for rows, _, _, _, log_norm, resp in blocks:
                yield self._rows[rows], log_norm, resp.T

    def impute(self, weights, means, precisions_cholesky, with_covariance=False):
        """E[x_M | x_O] for every row (observed entries kept), and with
        ``with_covariance`` Cov[x_M | x_O] (n, D, D), zero in observed rows/columns."""
        K, D = means.shape
        filled = np.array(self.X, dtype=np.float64)
        covariance = np.zeros((len(filled), D, D)) if with_covariance else None
        for first, parameters, blocks in self._incomplete_e_steps(weights, means,
                                                                  precisions_cholesky):
            for rows, segments, _, _, _, resp in blocks:
                for g, lo, hi in segments:
                    M = self.patterns[first + g].missing
                    members = self._rows[rows][lo:hi]
                    r = resp[:, lo:hi]  # (K, n)
                    # E[x | x_O, k] = mu_k + B_k (x_O - mu_kO) in the missing rows
                    gain = parameters.completion[g][:, M, :D]  # (K, m, D), 0 at M columns
                    mean = means[:, M, None] + gain @ (self._Xt[:, rows][:, lo:hi]
                                                       - means[:, :, None])  # (K, m, n)
                    mixture = np.einsum("kn,kmn->nm", r, mean)
                    filled[np.ix_(members, M)] = mixture
                    if with_covariance:
                        C = parameters.conditional[g][:, M][:, :, M]
                        second = (np.einsum("kn,kij->nij", r, C)
                                  + np.einsum("kn,kin,kjn->nij", r, mean, mean))
                        covariance[np.ix_(members, M, M)] = (
                            second - mixture[:, :, None] * mixture[:, None, :])
        return filled, covariance


def _moments(products, parameters):
    """nk (K,), sum of r (x~ - c_k) (K, D) and sum of r E[(x - c_k)(x - c_k)^T]
    (K, D, D) of some patterns from their ``sum_n r_nk q(z_n)`` (G, K, |q|)."""
    A = parameters.completion  # (G, K, D, D + 1)
    D = A.shape[-2]
    upper = np.triu_indices(D + 1)
    S = np.empty(A.shape[:2] + (D + 1, D + 1))  # sum_n r_nk z z^T
    S[..., upper[0], upper[1]] = products
    S[..., upper[1], upper[0]] = products
    total = S[..., D, D]  # (G, K)
    AS = A @ S
    nk = total.sum(axis=0)
    sum_x = AS[..., D].sum(axis=0)
    second = (AS @ _transpose(A)).sum(axis=0) + np.einsum("gk,gkij->kij", total,
                                                          parameters.conditional)
    return nk, sum_x, second


def mean_imputed(X, sample_weight):
    """X with each missing entry replaced by its column's weighted mean of the observed
    entries (the start of EM, and the data behind its scale checks)."""
    observed = ~np.isnan(X)
    w = np.asarray(sample_weight, dtype=np.float64)[:, None] * observed
    sums = np.where(observed, X, 0.0).astype(np.float64).T @ np.asarray(sample_weight,
                                                                         np.float64)
    return filled_with(X, observed_means(sums, w.sum(axis=0)))


def observed_means(sums, weights):
    """Each column's weighted mean of its observed entries from their weighted sums and
    weights (D,) (0 for a column with none): what :func:`mean_imputed` fills in, and
    what a pass over data too large for memory gives (:mod:`bayesgmm._dask`)."""
    return sums / np.where(weights > 0, weights, 1.0)


def filled_with(X, means):
    """``X`` with its missing (NaN) entries replaced by ``means`` (D,), in X's dtype."""
    return np.where(np.isnan(X), np.asarray(means).astype(X.dtype), X).astype(X.dtype)
