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
:mod:`bayesgmm.em`; the others are grouped by their pattern of missing features, so
that each pattern is a few batched products over its rows and components. Their
second moments are mapped onto each covariance family's features by
:meth:`CovarianceStructure.quad_moments_from_second_moments`, so every family's M-step,
and MAP-EM's, is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._gaussian import _LOG_2PI
from .em import _BlockEngine, _PassResult

__all__ = []

#: rows of a pattern processed at once (the working arrays are rows x K x D)
_BLOCK_ROWS = 2**14


@dataclass(frozen=True)
class _Pattern:
    """The rows sharing one pattern of missing features."""

    rows: np.ndarray  # indices into the data
    observed: np.ndarray  # feature indices
    missing: np.ndarray
    X: np.ndarray  # (n, |observed|) float64, the observed entries
    weights: np.ndarray  # (n,)


def group_patterns(X, sample_weight):
    """(complete row indices, [_Pattern, ...]) of data with NaN for missing entries."""
    mask = np.isnan(X)
    incomplete = mask.any(axis=1)
    complete = np.flatnonzero(~incomplete)
    rows = np.flatnonzero(incomplete)
    patterns = []
    if len(rows):
        keys, inverse = np.unique(mask[rows], axis=0, return_inverse=True)
        order = np.argsort(inverse.ravel(), kind="stable")
        bounds = np.searchsorted(inverse.ravel()[order], np.arange(len(keys) + 1))
        for p, key in enumerate(keys):
            members = rows[order[bounds[p]:bounds[p + 1]]]
            observed, missing = np.flatnonzero(~key), np.flatnonzero(key)
            patterns.append(_Pattern(members, observed, missing,
                                     X[np.ix_(members, observed)].astype(np.float64),
                                     np.asarray(sample_weight[members], dtype=np.float64)))
    return complete, patterns


def full_covariances(structure, precisions_cholesky, n_components, n_features):
    """Covariances (K, D, D) from a family's precision factors ``U`` (``U U^T = P``)."""
    factors = structure.to_full(np.asarray(precisions_cholesky, dtype=np.float64),
                                n_components, n_features)
    inverse = np.linalg.inv(factors)
    return np.swapaxes(inverse, -1, -2) @ inverse


class _PatternPass:
    """One pattern's rows (a block of them) under every component."""

    def __init__(self, pattern, rows, weights, means, covariances):
        O, M = pattern.observed, pattern.missing
        self.pattern, self.rows = pattern, rows
        chol = np.linalg.cholesky(covariances[:, O][:, :, O])  # (K, o, o)
        self.inverse = np.linalg.inv(chol)  # lower: L^-1
        self.diff = pattern.X[rows][None, :, :] - means[:, None, O]  # (K, n, o)
        z = self.diff @ np.swapaxes(self.inverse, -1, -2)
        distance = np.einsum("kno,kno->kn", z, z)
        log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        with np.errstate(divide="ignore"):
            self.joint = (np.log(weights) - log_det)[:, None] - 0.5 * (
                len(O) * _LOG_2PI + distance)
        top = self.joint.max(axis=0)
        far = ~np.isfinite(top)
        top[far] = 0.0
        scaled = np.exp(self.joint - top)
        total = scaled.sum(axis=0)
        with np.errstate(divide="ignore"):
            self.log_norm = np.log(total) + top
        if far.any():  # beyond every density's range: the nearest component in its metric
            nearest = distance[:, far] == distance[:, far].min(axis=0)
            scaled[:, far], total[far] = nearest, nearest.sum(axis=0)
        self.resp = scaled / total  # (K, n)
        self.means, self.covariances = means, covariances

    def conditional(self):
        """E[x_M | x_O, k] (K, n, m) and Cov[x_M | x_O, k] (K, m, m)."""
        O, M = self.pattern.observed, self.pattern.missing
        S_MO = self.covariances[:, M][:, :, O]
        # B = S_MO S_OO^-1 = S_MO L^-T L^-1
        B = S_MO @ np.swapaxes(self.inverse, -1, -2) @ self.inverse  # (K, m, o)
        mean = self.means[:, None, M] + self.diff @ np.swapaxes(B, -1, -2)
        cov = self.covariances[:, M][:, :, M] - B @ np.swapaxes(S_MO, -1, -2)
        return mean, cov

    def moments(self, centres, n_features):
        """This block's nk (K,), sum of r (x~ - c_k) (K, D) and second moments (K, D, D)
        about the components' centres."""
        O, M = self.pattern.observed, self.pattern.missing
        r = self.resp * self.pattern.weights[self.rows]  # (K, n)
        mean, cov = self.conditional()
        K, n = r.shape
        filled = np.empty((K, n, n_features))
        filled[:, :, O] = self.pattern.X[self.rows][None] - centres[:, None, O]
        filled[:, :, M] = mean - centres[:, None, M]
        nk = r.sum(axis=1)
        sum_x = np.einsum("kn,knd->kd", r, filled)
        second = np.swapaxes(filled * r[:, :, None], -1, -2) @ filled
        second[np.ix_(np.arange(K), M, M)] += nk[:, None, None] * cov
        return nk, sum_x, second


def _blocks(pattern):
    n = len(pattern.rows)
    for start in range(0, n, _BLOCK_ROWS):
        yield np.arange(start, min(start + _BLOCK_ROWS, n))


class MissingEngine:
    """The EM engine's interface (``sweep``, ``subset``, ``log_prior``,
    ``predict_blocks``) for data with missing entries: the complete rows through a
    :class:`bayesgmm.em._BlockEngine`, the others pattern by pattern."""

    log_prior = _BlockEngine.log_prior

    def __init__(self, X, sample_weight, center, structure):
        self.X, self.sample_weight = X, sample_weight
        self.center = np.asarray(center, dtype=np.float64)
        self.structure = structure
        self.complete_rows, self.patterns = group_patterns(X, sample_weight)
        self.complete = _BlockEngine(X[self.complete_rows], sample_weight[self.complete_rows],
                                     center, structure)
        self.data_variance = None
        self.prior = None
        self.fixed = None

    def subset(self, rows):
        engine = MissingEngine(self.X[rows], self.sample_weight[rows], self.center,
                               self.structure)
        engine.data_variance, engine.prior, engine.fixed = (self.data_variance, self.prior,
                                                            self.fixed)
        return engine

    def _incomplete_passes(self, weights, means, precisions_cholesky):
        K, D = means.shape
        covariances = full_covariances(self.structure, precisions_cholesky, K, D)
        with np.errstate(divide="ignore"):
            for pattern in self.patterns:
                for rows in _blocks(pattern):
                    yield _PatternPass(pattern, rows, weights, means, covariances)

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
        for block in self._incomplete_passes(weights, means, precisions_cholesky):
            pattern, rows = block.pattern, block.rows
            result.log_likelihood += float(pattern.weights[rows] @ block.log_norm)
            if labels:
                result.labels[pattern.rows[rows]] = np.argmax(block.resp, axis=0)
            if moments:
                nk, sum_x, s = block.moments(result.centres, D)
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
        for block in self._incomplete_passes(weights, means, precisions_cholesky):
            yield block.pattern.rows[block.rows], block.log_norm, block.resp.T

    def impute(self, weights, means, precisions_cholesky, with_covariance=False):
        """E[x_M | x_O] for every row (observed entries kept), and with
        ``with_covariance`` Cov[x_M | x_O] (n, D, D), zero in observed rows/columns."""
        K, D = means.shape
        filled = np.array(self.X, dtype=np.float64)
        covariance = np.zeros((len(filled), D, D)) if with_covariance else None
        for block in self._incomplete_passes(weights, means, precisions_cholesky):
            M, rows = block.pattern.missing, block.pattern.rows[block.rows]
            mean, cov = block.conditional()  # (K, n, m), (K, m, m)
            r = block.resp  # (K, n)
            mixture = np.einsum("kn,knm->nm", r, mean)
            filled[np.ix_(rows, M)] = mixture
            if with_covariance:
                second = (np.einsum("kn,kij->nij", r, cov)
                          + np.einsum("kn,kni,knj->nij", r, mean, mean))
                covariance[np.ix_(rows, M, M)] = (second - mixture[:, :, None]
                                                  * mixture[:, None, :])
        return filled, covariance


def mean_imputed(X, sample_weight):
    """X with each missing entry replaced by its column's weighted mean of the observed
    entries (the start of EM, and the data behind its scale checks)."""
    observed = ~np.isnan(X)
    w = np.asarray(sample_weight, dtype=np.float64)[:, None] * observed
    totals = w.sum(axis=0)
    means = np.where(observed, X, 0.0).astype(np.float64).T @ np.asarray(sample_weight,
                                                                          np.float64)
    means = means / np.where(totals > 0, totals, 1.0)
    return np.where(observed, X, means.astype(X.dtype)).astype(X.dtype)
