"""Maximum-likelihood Gaussian mixtures by expectation-maximisation."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.random import sample_without_replacement
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from ._gaussian import (
    DEFAULT_COVARIANCE_TYPE,
    _LOG_2PI,
    COLLAPSE_TOLERANCE,
    CollapsedComponentError,
    CovarianceStructure,
    collapsed_components,
    get_covariance_structure,
)
from . import _dask
from ._hierarchical import hierarchical_classes, quantile_classes, standardise, svd_transform
from ._validation import (
    MISSING_OPTIONS,
    as_numeric_table,
    check_enough_samples,
    check_integer,
    check_number,
    check_sample_weight,
)

__all__ = ["GaussianMixtureEM", "INIT_METHODS", "RegularizationWarning"]

#: Accepted values of ``init_params`` (the first is the default).
INIT_METHODS = ("auto", "hierarchical", "kmeans", "k-means++", "random", "random_from_data")

#: Rows of the subsample the hierarchical start agglomerates (mclust's
#: ``mclust.options("subset")``), and on which ``init_params="auto"`` screens its
#: starts when there are more rows.
HIERARCHICAL_SUBSAMPLE = 2000

#: Rows the hierarchical start of ``init_params="auto"`` agglomerates at most when it
#: screens its starts on a subsample of large data (agglomeration costs the square of
#: the rows: 0.05 s instead of 0.2-0.4 s for 2,000 rows of 10 features) ...
AUTO_HIERARCHICAL_ROWS = 1000

#: ... and per component below that: with 100 rows a component, simulated data with
#: 2-9 components mostly reached the 1,000-row start's optimum (as often higher as
#: lower otherwise); about 40 lost up to 0.27 nats a point at 12 components
#: (benchmarks/README.md, "Whole fits"). Three components: 300 rows, 0.005 s instead
#: of 0.05 s at D = 2.
AUTO_HIERARCHICAL_ROWS_PER_COMPONENT = 100

# "auto" keeps the earlier of two starts whose log-likelihoods differ by less than this
# (relative): they reached the same optimum, and rounding must not pick the labelling.
_SAME_OPTIMUM = 1e-10

# Working memory of one block of rows (features, log-densities, responsibilities).
# A few MiB keeps the temporaries in cache while every matrix product stays large.
_BLOCK_BYTES = 4 * 2**20


_FILE_KIND = "bayesgmm.GaussianMixtureEM"

#: ``reg_covar`` larger than this fraction of a feature's variance (of the data EM
#: works on) draws a :class:`RegularizationWarning`.
REG_COVAR_WARNING_RATIO = 1e-3


class RegularizationWarning(UserWarning):
    """``reg_covar`` is not small against the data's variances: the fit is biased."""


@dataclass
class _PassResult:
    """What one sweep over the data returns: log-likelihood and M-step moments."""

    log_likelihood: float
    nk: np.ndarray | None = None  # (K,) sum of weighted responsibilities
    sum_x: np.ndarray | None = None  # (K, D) sum of r * (x - centres[k])
    sum_q: np.ndarray | None = None  # (K, m) sum of r * q(x - centres[k])
    centres: np.ndarray | None = None  # (K, D) the point each component's moments are about
    labels: np.ndarray | None = None  # (n,) most probable component


#: The error in a log-density (nats per point) that the shared-centre expansion may
#: make before a component gets its own centre: far below rounding in float64; in
#: float32 about 100 ulps of a log-density, so that well-separated clusters keep the
#: single fast product and only small, far components pay for their own.
_EXPANSION_ERROR = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


def _far_threshold(dtype):
    """Largest ``|d|ᵀ|P||d|`` for which the expanded form about a shared centre is kept.

    A component whose mean lies ``d`` from the block centre has its log-density
    computed as ``x'Px - 2 m'Px + m'Pm`` with terms of size ``|d|ᵀ|P||d|`` that cancel
    to O(1) near the component: the absolute error is about ``eps`` times that. Above
    ``_EXPANSION_ERROR / eps`` (4.5e6 in float64, i.e. 2100 standard deviations; 840,
    i.e. 29 standard deviations, in float32) the component gets its own centre.
    """
    return _EXPANSION_ERROR[np.dtype(dtype)] / np.finfo(dtype).eps


class _BlockEngine:
    """E-step and M-step moments computed in row blocks by matrix products.

    Each block of rows is centred and expanded, feature-major, into one array
    ``F = [x; q(x); 1]`` of shape (D + m + 1, b). The log joint densities of all
    components are then one product ``C @ F`` with the coefficients ``C = [b_k,
    -a_k/2, c_k]``, and all M-step moments (``Σr·x``, ``Σr·q(x)``, ``Σr``) are one
    more, ``R @ Fᵀ``. The data is never copied whole and the block buffer is reused,
    so memory beyond X is a few MiB whatever n is; the same code would serve
    out-of-core blocks.

    The expanded form cancels when a component is small and far from the shared
    centre (``x'Px`` and ``2 m'Px`` are then huge and nearly equal): such a component
    is expanded about its own mean instead, in a buffer of its own (one more
    product per block for it). Its moments are then about that mean too, which also
    keeps the M-step's ``E[q] - m m'`` from cancelling; the covariance formulas of
    every structure are per component and do not depend on the centre.
    """

    def __init__(self, X, sample_weight, center, structure: CovarianceStructure):
        self.X = X
        self.sample_weight = sample_weight
        self.unweighted = bool(np.all(sample_weight == 1))
        self.center = np.asarray(center, dtype=X.dtype)
        self.structure = structure
        n_features = X.shape[1]
        self.n_quad = structure.quad_features(np.zeros((1, n_features), X.dtype)).shape[1]
        self.n_rows_f = n_features + self.n_quad + 1
        per_row = X.dtype.itemsize * self.n_rows_f + 8 * 4 * 8
        self.block_rows = int(max(256, _BLOCK_BYTES // per_row))
        self.far_threshold = _far_threshold(X.dtype)
        #: each feature's variance (None if the data covariance is singular)
        self.data_variance = None
        #: the ResolvedConjugatePrior of MAP-EM, in these data's coordinates
        self.prior = None
        #: the FixedParameters (bayesgmm._fixed), in these data's coordinates
        self.fixed = None
        #: whether EM's final pass labels the rows (not for ``fit``, nor on a subsample)
        self.labels_wanted = True

    def subset(self, rows):
        """The same engine (centre, structure, prior) on some of the rows."""
        return with_settings_of(self, _BlockEngine(self.X[rows], self.sample_weight[rows],
                                                   self.center, self.structure))

    def log_prior(self, params):
        """The prior's log density at (weights, means, covariances, ...); 0 without one."""
        if self.prior is None:
            return 0.0
        value = self.structure.log_prior(self.prior, params[1], params[2])
        # a family whose M-step is the mode of no density (EEI): EM monitors the
        # log-likelihood, as mclust does for every family
        return 0.0 if math.isnan(value) else value

    def _block_size(self, n_centres):
        """Rows of a block when ``n_centres`` components have buffers of their own."""
        return max(256, self.block_rows // (1 + n_centres))

    def blocks(self, centres=(), start=0, stop=None):
        """Yield (rows, F, Fs) for the rows ``start:stop`` (all by default; ``start`` a
        block boundary): ``F = [x - center; q(x - center); 1]`` of shape (D + m + 1, b)
        and one such array in ``Fs`` for each row of ``centres``.

        The arrays are views of reused buffers: use them before asking for the next block.
        """
        n, n_features = self.X.shape
        stop = n if stop is None else stop
        centres = [np.asarray(c, dtype=self.X.dtype) for c in centres]
        rows = self._block_size(len(centres))
        buffers = np.empty((1 + len(centres), self.n_rows_f, min(rows, stop - start)),
                           dtype=self.X.dtype)
        buffers[:, -1] = 1.0
        for first in range(start, stop, rows):
            block = slice(first, min(first + rows, stop))
            size = block.stop - first
            Fs = []
            for buffer, centre in zip(buffers, [self.center, *centres]):
                F = buffer[:, :size]
                xt = F[:n_features]
                # points beyond 1e154 overflow q(x): their columns are redone robustly
                with np.errstate(over="ignore", invalid="ignore"):
                    np.subtract(self.X[block].T, centre[:, None], out=xt)
                    self.structure.quad_features_by_feature(xt, F[n_features:-1])
                Fs.append(F)
            yield block, Fs[0], Fs[1:]

    def plan(self, means, precisions_cholesky):
        """The components expanded about their own mean, and every component's centre (K, D)."""
        n_components, n_features = means.shape
        offsets = np.abs(means - self.center)
        chol = self.structure.to_full(precisions_cholesky, n_components, n_features)
        precisions = np.abs(chol @ np.swapaxes(chol, -1, -2))
        spread = np.einsum("ki,kij,kj->k", offsets, precisions, offsets)
        far = np.flatnonzero(~(spread <= self.far_threshold))
        centres = np.broadcast_to(self.center.astype(np.float64), means.shape).copy()
        # rounded to the data's dtype, so the coefficients refer to the exact centre used
        centres[far] = means[far].astype(self.X.dtype)
        return far, centres

    def coefficients(self, weights, means, precisions_cholesky, centres):
        """The rows ``[b_k, -a_k/2, c_k + log w_k]`` of the coefficient matrix (K, D + m + 1),
        component k expanded about ``centres[k]``."""
        coef = self.structure.coefficients(means - centres, precisions_cholesky)
        with np.errstate(divide="ignore"):
            const = coef.const + np.log(weights)
        return np.hstack([coef.lin, -0.5 * coef.quad, const[:, None]]).astype(self.X.dtype)

    @staticmethod
    def _products(left, F, Fs, near, far, *, moments=False):
        """``left @ F`` (K, b): the log joint densities, ``left`` the coefficients; or
        with ``moments`` ``left @ Fᵀ`` (K, D + m + 1): the moments, ``left`` the
        responsibilities. The far components' rows use their own buffers ``Fs``."""
        def right(G):
            return G.T if moments else G

        with np.errstate(over="ignore", invalid="ignore"):
            if not len(far):
                return left @ right(F)
            out = np.empty((len(left), right(F).shape[1]), dtype=F.dtype)
            out[near] = left[near] @ right(F)
            for k, Fk in zip(far, Fs):
                out[k] = left[k] @ right(Fk)
            return out

    def joint_blocks(self, weights, means, precisions_cholesky):
        """Yield (block, joint): the log joint densities (K, b) of every block."""
        far, centres = self.plan(means, precisions_cholesky)
        coef = self.coefficients(weights, means, precisions_cholesky, centres)
        near = np.setdiff1d(np.arange(len(means)), far)
        for block, F, Fs in self.blocks(centres[far]):
            yield block, self._products(coef, F, Fs, near, far)

    def sweep(self, weights, means, precisions_cholesky, *, moments=True, labels=False):
        """One pass over the data at the given parameters.

        The blocks are shared among threads (:func:`_sweep_threads`; numpy and BLAS
        release the GIL), each with buffers of its own; the blocks' log-likelihoods and
        moments are added in block order, so the result does not depend on the number
        of threads.
        """
        n_components, n_features = means.shape
        far, centres = self.plan(means, precisions_cholesky)
        coef = self.coefficients(weights, means, precisions_cholesky, centres)
        near = np.setdiff1d(np.arange(n_components), far)
        result = _PassResult(0.0)
        if labels:
            result.labels = np.empty(self.X.shape[0], dtype=np.intp)

        def run(start, stop):
            parts = []
            for block, F, Fs in self.blocks(centres[far], start, stop):
                joint = self._products(coef, F, Fs, near, far)
                log_norm, resp = _normalise_in_place(
                    joint, lambda cols: self._robust_joint(block, cols, weights, means,
                                                            precisions_cholesky),
                    normalise=moments or labels)
                if labels:
                    result.labels[block] = np.argmax(resp, axis=0)
                if self.unweighted:
                    log_likelihood = float(log_norm.sum(dtype=np.float64))
                else:
                    wb = self.sample_weight[block]
                    log_likelihood = float(wb @ log_norm.astype(np.float64))
                    if moments:
                        resp *= wb
                parts.append((log_likelihood, self._products(resp, F, Fs, near, far,
                                                             moments=True)
                              if moments else None))
            return parts

        totals = np.zeros((n_components, self.n_rows_f))
        for log_likelihood, part in _over_blocks(run, self.X.shape[0],
                                                 self._block_size(len(far)),
                                                 n_components * self.n_rows_f):
            result.log_likelihood += log_likelihood
            if moments:
                totals += part
        if moments:
            result.sum_x, result.sum_q, result.nk = _split_moments(totals, n_features)
            result.centres = centres
        return result

    def _robust_joint(self, block, columns, weights, means, precisions_cholesky):
        """Log joint densities (K, c) of some columns of a block, without overflow."""
        X = self.X[block][columns].astype(np.float64)
        n_components, n_features = means.shape
        chol = self.structure.to_full(precisions_cholesky, n_components, n_features)
        return _robust_log_joint(X, weights, means, chol)

    def moments_from_resp(self, resp):
        """Weighted moments (nk, sum_x, sum_q, centres) for given responsibilities (n, K).

        Two passes, as scikit-learn's ``X - means[k]``: the means first, then every
        component's second moments about its own mean, so they do not cancel.
        """
        n_components, n_features = resp.shape[1], self.X.shape[1]
        sums = np.zeros((n_components, n_features + 1))
        for block, F, _ in self.blocks():
            weighted = resp[block] * self.sample_weight[block, None]
            sums[:, :-1] += weighted.T @ F[:n_features].T
            sums[:, -1] += weighted.sum(axis=0)
        nk = sums[:, -1] + 10 * np.finfo(np.float64).eps
        centres = (sums[:, :-1] / nk[:, None] + self.center).astype(self.X.dtype)
        totals = np.zeros((n_components, self.n_rows_f))
        for block, _, Fs in self.blocks(centres):
            weighted = resp[block] * self.sample_weight[block, None]
            for k, Fk in enumerate(Fs):
                totals[k] += weighted[:, k].astype(Fk.dtype) @ Fk.T
        sum_x, sum_q, nk = _split_moments(totals, n_features)
        return nk, sum_x, sum_q, centres.astype(np.float64)

    def data_covariance(self):
        """Weighted covariance matrix of the data (D, D) and each feature's largest
        deviation from the centre, accumulated block by block."""
        n, n_features = self.X.shape
        scatter = np.zeros((n_features, n_features))
        spread = np.zeros(n_features)
        rows = max(256, _BLOCK_BYTES // (3 * self.X.dtype.itemsize * n_features))
        buffer = np.empty((n_features, min(rows, n)), dtype=self.X.dtype)
        for start in range(0, n, rows):
            block = slice(start, min(start + rows, n))
            xt = buffer[:, :block.stop - start]
            with np.errstate(over="ignore", invalid="ignore"):
                np.subtract(self.X[block].T, self.center[:, None], out=xt)
            scatter += (xt if self.unweighted else xt * self.sample_weight[block]) @ xt.T
            # the largest |deviation| without a temporary of |xt|
            np.maximum(spread, xt.max(axis=1), out=spread)
            np.maximum(spread, -xt.min(axis=1), out=spread)
        return scatter / self.sample_weight.sum(), spread

    def predict_blocks(self, weights, means, precisions_cholesky):
        """Yield (block, log p(x), responsibilities (b, K)) for prediction."""
        for block, joint in self.joint_blocks(weights, means, precisions_cholesky):
            log_norm, resp = _normalise_in_place(
                joint, lambda cols: self._robust_joint(block, cols, weights, means,
                                                        precisions_cholesky))
            yield block, log_norm, resp.T


#: A sweep runs on one thread below this many rows, or below this many products per
#: row (components x expanded features): threads then cost more than they save
#: (measured: 1.5x faster at (1e6, 10, 8, full), 1.3x at diag, 1.07x at (1e5, 3, 8),
#: 0.8-0.9x at D = 2, K = 3; benchmarks/README.md, "Threaded sweeps").
_THREADED_ROWS = 50_000
_THREADED_PRODUCTS = 100


def _sweep_threads(n_rows, products_per_row):
    """Threads a sweep shares its blocks among: as many as BLAS may use
    (``OMP_NUM_THREADS`` and the like, threadpoolctl's limits, Dask workers' one thread
    all respected) and the process may run on; one for small work."""
    if n_rows < _THREADED_ROWS or products_per_row < _THREADED_PRODUCTS:
        return 1
    blas = [info["num_threads"] for info in _threadpool_controller().select(
        user_api="blas").info()]
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, min([available, *blas]))


@functools.cache
def _thread_pool(n_threads, pid):
    """A pool of ``n_threads`` threads of process ``pid`` (a forked child, whose copy of
    its parent's pool has no threads, makes its own)."""
    return concurrent.futures.ThreadPoolExecutor(n_threads,
                                                 thread_name_prefix="bayesgmm-sweep")


def _over_blocks(run, n_rows, block_size, products_per_row):
    """``run(start, stop)``'s lists of per-block results over the rows in blocks of
    ``block_size``, in block order: the blocks split into one contiguous run per
    thread, each thread's BLAS on one thread meanwhile."""
    n_blocks = -(-n_rows // block_size)
    n_threads = min(_sweep_threads(n_rows, products_per_row), n_blocks)
    if n_threads <= 1:
        return run(0, n_rows)
    bounds = [min(n_rows, (n_blocks * t // n_threads) * block_size)
              for t in range(n_threads + 1)]
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        pool = _thread_pool(n_threads, os.getpid())
        futures = [pool.submit(run, bounds[t], bounds[t + 1])
                   for t in range(n_threads)]
        return [part for future in futures for part in future.result()]


def engine_for(X, sample_weight, center, structure, has_missing=None):
    """The EM engine of in-memory ``X``: the block engine, or with missing entries the
    pattern-by-pattern one (:mod:`bayesgmm._missing`). ``has_missing``: whether X has
    NaN, when the caller knows (None: look)."""
    if np.isnan(X).any() if has_missing is None else has_missing:
        from ._missing import MissingEngine

        return MissingEngine(X, sample_weight, center, structure)
    return _BlockEngine(X, sample_weight, center, structure)


def with_settings_of(source, engine):
    """``engine`` given the fit's settings of ``source`` (the data's variances for the
    collapse check, the prior, the fixed parameters), for a subsample: no labels."""
    engine.data_variance, engine.prior, engine.fixed = (source.data_variance, source.prior,
                                                        source.fixed)
    engine.labels_wanted = False
    return engine


class _ArrayData:
    """The data of an in-memory fit, as :meth:`GaussianMixtureEM._fit` asks for them.

    :class:`bayesgmm._dask.DaskData` answers the same questions of a Dask array; the
    fit itself is one code path for both.
    """

    def __init__(self, model, X, sample_weight):
        self.X = model._validate_X(X, reset=True)
        self.weights = check_sample_weight(sample_weight, self.X.shape[0], np.float64)
        self.n_features = self.X.shape[1]
        self.dtype = self.X.dtype
        self.n_points = int(np.count_nonzero(self.weights))
        self.total_weight = self.weights.sum()
        self.n_missing = 0
        self.filled = self.X

    def scan(self, structure):
        """The centre (D,), covariance (D, D) and each feature's largest deviation from
        the centre (D,) of the data, mean-imputed where entries are missing (as are EM's
        start, the scale checks and the prior's defaults)."""
        X, weights = self.X, self.weights
        # the weighted total is NaN when an entry is (0 * NaN is NaN too), and it is
        # needed for the centre anyway: the NaN count only when it is not finite
        total = weights @ X
        self.n_missing = 0 if np.isfinite(total).all() else int(np.isnan(X).sum())
        if self.n_missing:
            from ._missing import mean_imputed

            self.filled = mean_imputed(X, weights)
            total = weights @ self.filled
        center = total / weights.sum()
        covariance, spread = _BlockEngine(self.filled, weights, center,
                                          structure).data_covariance()
        return center, covariance, spread

    def resolve_prior(self, prior, n_components, structure):
        return prior.resolve(self.filled, n_components, structure, sample_weight=self.weights)

    def standardise(self, scaling):
        """The data standardised (``standardize=True``); returns their new centre."""
        self.X, self.filled = scaling.standardise(self.X), scaling.standardise(self.filled)
        return (self.weights @ self.filled) / self.weights.sum()

    def log_jacobian(self, scaling):
        """log|det| of the standardisation per unit of weight (missing entries, which
        have no density, not counted)."""
        if not self.n_missing:
            return scaling.log_jacobian
        observed = self.weights @ ~np.isnan(self.X)
        return scaling.log_jacobian_of(observed / self.weights.sum())

    def engines(self, structure, center, labels):
        """The engine EM runs on, and the one its starts are computed on (the
        mean-imputed data when entries are missing)."""
        engine = engine_for(self.X, self.weights, center, structure,
                            has_missing=self.n_missing > 0)
        engine.labels_wanted = labels
        start = engine if not self.n_missing else _BlockEngine(self.filled, self.weights,
                                                                center, structure)
        return engine, start

    def start_engines(self, engine, start, random_state, screened):
        """(the engine the starts are computed on, the engine they run EM on first, or
        None for all the data). ``screened`` ("auto"): on more rows than the
        hierarchical subsample every start runs EM on the subsample, and only the best
        continues on all the data."""
        rows = _subsample(engine.sample_weight, random_state) if screened else None
        if rows is None:
            return start, None
        return start.subset(rows), engine.subset(rows)

    def continued(self, model, engine, params, random_state):
        """The best screened start, moved towards the optimum of all the data."""
        return model._refined_on_more_rows(engine, params, random_state)


def _split_moments(totals, n_features):
    """(K, D + m + 1) moment rows -> sum_x (K, D), sum_q (K, m), nk (K,)."""
    return totals[:, :n_features], totals[:, n_features:-1], totals[:, -1].copy()


def _normalise_in_place(joint, robust_joint=None, normalise=True):
    """Turn log joint densities (K, b) into responsibilities; return log p(x) too
    (without ``normalise``, when only log p(x) is wanted, the densities are left
    unnormalised).

    The max and sum run over the short component axis of a component-major
    array, i.e. as K vectorised passes over long rows. Columns whose expanded
    densities overflowed (NaN or +inf: points near 1e154) or that are -inf for every
    component are recomputed by ``robust_joint(columns)`` and, if still zero for
    every component, given to the nearest component in its own metric.
    """
    top = joint.max(axis=0)
    bad = ~np.isfinite(top)
    if bad.any() and robust_joint is not None:
        columns = np.flatnonzero(bad)
        fixed, fallback = robust_joint(columns)
        with np.errstate(over="ignore"):  # float32 blocks: beyond range is -inf
            joint[:, columns] = fixed
        top[columns] = joint[:, columns].max(axis=0)
    else:
        fallback = None
    top[~np.isfinite(top)] = 0.0
    joint -= top
    np.exp(joint, out=joint)
    total = joint.sum(axis=0)
    with np.errstate(divide="ignore"):
        log_norm = np.log(total) + top
    if fallback is not None:
        empty = total[columns] == 0
        if empty.any():
            # zero density under every component (beyond the float range): the limit
            # of the responsibilities is the component nearest in its own metric
            cols = columns[empty]
            joint[:, cols] = fallback[:, empty]
            total[cols] = 1.0
    if normalise:
        joint /= total
    return log_norm, joint


def _robust_log_joint(X, weights, means, chol):
    """log w_k + log N(x | k) (K, c) by whitening residuals scaled to avoid overflow.

    Returns the log joints and, for points so far out that every density is zero
    in floating point, the limiting responsibilities (K, c): the component(s) of
    smallest Mahalanobis distance among those of positive weight.
    """
    n_components, n_features = means.shape
    t = np.max(np.abs(X), axis=1)
    t[~(t > 0)] = 1.0
    scaled = np.empty((n_components, len(X)))
    log_det = np.empty(n_components)
    for k in range(n_components):
        z = (X / t[:, None] - means[k] / t[:, None]) @ chol[k]
        scaled[k] = np.einsum("ij,ij->i", z, z)
        log_det[k] = np.sum(np.log(np.abs(np.diag(chol[k]))))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        distance = scaled * (t * t)
        joint = (np.log(weights) + log_det - 0.5 * n_features * _LOG_2PI)[:, None] - 0.5 * distance
    joint[np.isnan(joint)] = -np.inf
    scaled[~(np.asarray(weights) > 0)] = np.inf
    nearest = scaled == scaled.min(axis=0)
    fallback = nearest / nearest.sum(axis=0)
    return joint, fallback


class GaussianMixtureEM(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood with the EM algorithm.

    A scikit-learn estimator with the same parameters, attributes and results as
    :class:`sklearn.mixture.GaussianMixture` (from the same initial parameters it
    reaches the same estimates), plus sample weights, mclust's model names,
    hierarchical initialisation, the log-likelihood trace, ICL and labelled
    (xarray) output. The E- and M-steps run in row blocks through sufficient
    statistics computed with large matrix products, which makes each iteration
    many times faster than scikit-learn's and keeps memory flat.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : str, default="full"
        ``"full"`` (mclust ``"VVV"``): each component its own covariance matrix;
        ``"tied"`` (``"EEE"``): one shared covariance matrix; ``"diag"``
        (``"VVI"``): per-component diagonal covariances; ``"spherical"``
        (``"VII"``): one variance per component.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean per-sample log-likelihood.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of each covariance, which keeps
        them positive definite. As in scikit-learn it is absolute, in the data's
        units squared: when it is not small against a feature's variance (more than
        ``1e-3`` of it, e.g. data measured on a scale of 1e-3) the fit is biased and a
        :class:`RegularizationWarning` says so. With ``standardize=True`` it is
        relative to each feature's variance instead.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one reaching the highest log-likelihood is
        kept. With ``init_params="auto"``: the number of k-means starts tried beside
        the hierarchical ones.
    init_params : {"auto", "hierarchical", "kmeans", "k-means++", "random", "random_from_data"}
        How EM starts (each start is an M-step from responsibilities):

        - "auto" (default): mclust's hierarchical start (below) in its SVD
          coordinates and in standardised ones, and ``n_init`` k-means starts on the
          features divided by their standard deviations (so no start depends on the
          units), keeping the one that ends highest. On more than 2,000 rows every
          start runs EM on the same random 2,000 (the hierarchical one agglomerating
          1,000 of them, once) and only the best continues on all the data, so the
          starts cost little. With ``tol=1e-6`` this ends at mclust's optimum (its
          single hierarchical start) or higher in every cell of mclust's own tables
          (``tests/data/mclust``: 4 data sets, every family, 1 to 6 components), for
          each ``random_state`` from 0 to 4.
        - "hierarchical": mclust's start: model-based agglomerative hierarchical
          clustering (Fraley 1998) under unconstrained Gaussian clusters, of the data
          in mclust's scaled SVD coordinates (``hcUse="SVD"``), on a random
          subsample of 2,000 rows when there are more; for one feature, classes
          between quantiles. The same partitions as mclust 6's ``hc``/``hclass``
          (ties included), independent of the units and the order of the features.
        - "kmeans", "k-means++", "random", "random_from_data": scikit-learn's starts
          (k-means labels; k-means++ seeds; uniform random responsibilities; random
          data points as seeds), on the data as given, with scikit-learn's numbers:
          the same ``random_state`` gives scikit-learn's start.

        scikit-learn's default is "kmeans": pass it for scikit-learn's results.
    weights_init : array-like of shape (n_components,), default=None
        User-given initial weights (they must sum to 1).
    means_init : array-like of shape (n_components, n_features), default=None
        User-given initial means.
    precisions_init : array-like, default=None
        User-given initial precisions (inverse covariances), shaped like
        ``covariances_`` for the covariance type.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        If True, a new ``fit`` starts from the previous solution (and ``n_init`` is
        ignored).
    verbose : int, default=0
        1 prints each initialisation, 2 also every iteration.
    standardize : bool, default=False
        If True, EM runs on the data standardised per feature (weighted mean 0,
        standard deviation 1; one common scale for ``"spherical"``) and the estimates
        are mapped back. ``reg_covar`` is then relative to each feature's variance,
        and the fit is scale-equivariant: ``fit(X * c)`` gives ``c`` times the means,
        ``c**2`` times the covariances and the log-likelihood minus ``n * D * log c``
        of ``fit(X)`` (to rounding; exactly for powers of two). This is the choice
        for a statistician: the answer then does not depend on the units the data
        were recorded in. The default, False, keeps scikit-learn's absolute
        ``reg_covar`` and its numbers. The initialisation (k-means, random) sees the
        standardised data too, and X is copied once.
    prior : ConjugatePrior, default=None
        ``bayesgmm.priors.ConjugatePrior()``: EM for the posterior mode (MAP-EM) under
        mclust's conjugate prior (Fraley & Raftery 2007: ``Mclust(..., prior =
        priorControl())``), with mclust's data-scaled defaults. The prior keeps every
        covariance away from singularity, so small data and many components can be
        fitted where maximum likelihood collapses (and the check that the data have
        more values than the model has parameters is skipped). ``log_likelihood_``
        and the criteria stay those of the data at the estimates, as in mclust;
        ``log_prior_`` is the prior's log density there, and EM monitors the log
        posterior, their sum, which each iteration increases. mclust has no prior
        for EVE, VEE, VVE and EVV, nor has this; the same prior in the Bayesian model
        (``GaussianMixtureBayes(priors=ConjugatePrior())``) has this fit as its mode.
    missing : {"marginalize", "raise"}, default="marginalize"
        What NaN in ``X`` means. ``"marginalize"``: a missing entry, missing at random
        (MAR). EM then maximises the observed-data likelihood: each row's density is
        the marginal over its observed features, and the M-step uses the conditional
        expectations of the missing entries and their outer products (Ghahramani &
        Jordan 1994). This is the default because it is the likelihood the observed
        entries define, uses every observed value, and is unbiased under MAR, where
        dropping incomplete rows (complete-case analysis) is biased and imputing
        first understates the uncertainty; on data without NaN it is exactly the fit
        without this option. Rows with every feature missing are refused. The start
        is computed on the data with each missing entry set to its column's mean.
        ``score_samples``, ``predict_proba``, ``predict`` and the criteria take NaN
        rows too (the observed-data log-likelihood), and :meth:`impute` fills the
        missing entries. ``"raise"``: NaN is refused, as scikit-learn does.
    fixed : dict, default=None
        Known parameters, held exactly through EM: any of ``"weights"`` (K,),
        ``"means"`` (K, D) and ``"covariances"`` (this family's layout, as
        ``covariances_``), with NaN where a value is estimated. Weights: any
        components' (the free ones share the remaining mass); means: whole
        components; covariances: whole components for 'full', 'diag' and
        'spherical', all together for the other families. Each M-step maximises over
        the free parameters given the fixed ones (a free covariance is the scatter
        about its component's mean, fixed or not), and :meth:`n_parameters`, hence
        BIC, AIC and ICL, counts only the free ones. Not with ``prior``.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        ``(K, D, D)`` for full, ``(D, D)`` for tied, ``(K, D)`` for diag, ``(K,)``
        for spherical.
    precisions_cholesky_ : ndarray
        Factors ``L`` of the precision matrices (``P = L @ L.T``), same layout;
        upper triangular for full and tied, as scikit-learn's.
    precisions_ : ndarray
        The precision matrices (inverse covariances), same layout.
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean (weighted) per-sample log-likelihood of the fitted parameters.
    lower_bounds_ : list of float
        scikit-learn's per-iteration record: the mean log-likelihood at the E-step
        of each iteration (``log_likelihood_trace_[:-1] / n``).
    log_likelihood_ : float
        Total (weighted) log-likelihood of the fitted parameters.
    prior_ : ConjugatePrior or None
        The prior in use, with every default filled in from the data (None without one).
    log_prior_ : float
        Log density of the prior at the estimates (0 without a prior).
    n_missing_ : int
        Missing (NaN) entries of the data fitted on.
    log_likelihood_trace_ : ndarray of shape (n_iter_ + 1,)
        Total log-likelihood at the initial parameters and after every iteration
        of the best initialisation. EM never decreases it (up to rounding) when
        ``reg_covar`` is small against the components' variances; a regularised
        M-step is not the likelihood's maximiser, and a large ``reg_covar`` can
        lower it (hence the :class:`RegularizationWarning`).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on data with column names.

    Notes
    -----
    ``bic``, ``aic`` and ``icl`` follow scikit-learn's sign: lower is better.
    mclust reports ``2 * loglik - p * log(n)``, higher is better: it equals
    ``-model.bic(X)``; likewise its ICL is ``-model.icl(X)``.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, datasets
    >>> X = datasets.load_faithful()
    >>> gm = GaussianMixtureEM(3, covariance_type="EEE", tol=1e-6, random_state=0).fit(X)
    >>> round(gm.log_likelihood_, 3)
    -1126.316

    (mclust: -1126.326, from the same hierarchical start.) The default ``tol=1e-3``
    (scikit-learn's) stops earlier, at -1126.426 here: lower ``tol`` when the
    log-likelihood itself is reported.
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type=DEFAULT_COVARIANCE_TYPE,
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="auto",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        standardize=False,
        prior=None,
        missing="marginalize",
        fixed=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.standardize = standardize
        self.prior = prior
        self.missing = missing
        self.fixed = fixed

    # ------------------------------------------------------------------ checks
    @property
    def _structure(self) -> CovarianceStructure:
        return get_covariance_structure(self.covariance_type)

    def _check_parameters(self):
        check_integer("n_components", self.n_components, minimum=1)
        check_integer("max_iter", self.max_iter, minimum=0)
        check_integer("n_init", self.n_init, minimum=1)
        check_number("tol", self.tol, low=0)
        check_number("reg_covar", self.reg_covar, low=0)
        _check_random_state(self.random_state)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}.")
        structure = self._structure  # raises a clear error for unknown names
        if self.prior is not None:
            from .priors import ConjugatePrior

            if not isinstance(self.prior, ConjugatePrior):
                raise ValueError(
                    "prior must be None or a bayesgmm.priors.ConjugatePrior (mclust's "
                    f"conjugate prior, e.g. prior=ConjugatePrior()), got {self.prior!r}.")
            structure.check_prior()
        if self.missing not in MISSING_OPTIONS:
            raise ValueError(f"missing must be one of {list(MISSING_OPTIONS)}, got "
                             f"{self.missing!r}.")
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {list(INIT_METHODS)}, got {self.init_params!r}."
            )

    def _check_initial_parameters(self, n_features):
        """Validate user-given initial weights, means and precisions."""
        self._structure.check_n_features(n_features)
        K = self.n_components
        if self.weights_init is not None:
            weights = _as_float_array("weights_init", self.weights_init, (K,))
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
                raise ValueError(
                    "weights_init must be non-negative and sum to 1, got sum "
                    f"{weights.sum():.6g} and minimum {weights.min():.6g}."
                )
        if self.means_init is not None:
            _as_float_array("means_init", self.means_init, (K, n_features))
        if self.precisions_init is not None:
            shape = self._structure.covariance_shape(K, n_features)
            precisions = _as_float_array("precisions_init", self.precisions_init, shape)
            full = self._structure.to_full(precisions, K, n_features)
            if not np.allclose(full, np.swapaxes(full, -1, -2)):
                raise ValueError("precisions_init must be symmetric.")
            if np.any(np.linalg.eigvalsh(full)[..., 0] <= 0):
                raise ValueError("precisions_init must be positive definite.")

    def _validate_X(self, X, *, reset):
        allow_nan = getattr(self, "missing", "raise") == "marginalize"
        X = as_numeric_table(X, allow_nan=allow_nan)
        return validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
            ensure_all_finite="allow-nan" if allow_nan else True,
        )

    def _engine(self, X, sample_weight, center):
        """The EM engine of in-memory ``X`` (see :func:`engine_for`)."""
        return engine_for(X, sample_weight, center, self._structure)

    # -------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the mixture's parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numpy array, pandas DataFrame or xarray DataArray (dims sample x feature),
            or a Dask array (or DataArray backed by one: see :mod:`bayesgmm._dask`).
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; an integer weight counts a row that many times.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight, labels=False)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of every sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Identical to ``fit(X).predict(X)``. For a Dask ``X`` (see
            :mod:`bayesgmm._dask`), a lazy Dask array.
        """
        labels = self._fit(X, sample_weight, labels=True)
        return self.predict(X) if _dask.is_dask_input(X) else labels

    def _fit(self, X, sample_weight, *, labels):
        """Fit to ``X`` (in memory, or a Dask array: :mod:`bayesgmm._dask`); return the
        most probable component of every sample if ``labels`` (else None: ``fit`` saves
        the final pass the arg-max)."""
        self._check_parameters()
        data = (_dask.DaskData if _dask.is_dask_input(X) else _ArrayData)(
            self, X, sample_weight)
        n_features = data.n_features
        self._check_initial_parameters(n_features)
        structure = self._structure
        fixed = self._fixed_parameters(n_features)
        center, covariance, spread = data.scan(structure)
        check_enough_samples(data.n_points, self.n_components)
        prior = None
        if self.prior is None:
            structure.check_estimable(self.n_components, n_features, data.n_points)
        else:
            prior = data.resolve_prior(self.prior, self.n_components, structure)
        _check_representable(spread, data.dtype)
        scaling = _Scaling.of(structure, center, covariance) if self.standardize else None
        if scaling is not None:
            center = data.standardise(scaling)
            covariance = scaling.standardise_covariance(covariance)
        engine, start_engine = data.engines(structure, center, labels)
        for e in {id(engine): engine, id(start_engine): start_engine}.values():
            e.data_variance = _variance_if_nonsingular(covariance)
            e.prior = (prior if prior is None or scaling is None
                       else prior.standardised(scaling.center, scaling.scale))
            e.fixed = None if fixed is None else fixed.to_standardised(scaling)
        self._warn_if_regularisation_dominates(np.diag(covariance))
        random_state = check_random_state(self.random_state)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        # log|det| of the map to standardised data, per unit of weight
        log_jacobian = 0.0 if scaling is None else data.log_jacobian(scaling)
        # scikit-learn carries the last lower bound of a warm start over, so that a
        # refit that no longer improves is recognised as converged
        previous = (self.lower_bounds_[-1] + log_jacobian
                    if not do_init and len(getattr(self, "lower_bounds_", ())) else -np.inf)
        user_init = self._user_initial_parameters(scaling)

        screen = None
        if do_init and not all(p is not None for p in user_init):
            start_engine, screen = data.start_engines(engine, start_engine, random_state,
                                                      screened=self.init_params == "auto")
        best = self._best_of_starts(engine, start_engine, screen, scaling, random_state,
                                    user_init, previous, n_init, do_init)
        if screen is not None:
            if self.verbose:
                print("Best start on the subsample, continued on all the data")
            params = data.continued(self, engine, best["params"], random_state)
            best = self._run_em(engine, params)

        params = best["params"]
        if scaling is not None:
            params = scaling.to_original(params)
        self._set_parameters(params, data.dtype)
        self.prior_ = None if prior is None else prior.prior
        self.log_prior_ = 0.0 if prior is None else structure.log_prior(prior, *params[1:3])
        self.n_missing_ = data.n_missing
        self._set_run(best, log_jacobian * data.total_weight, data.total_weight,
                      stacklevel=3)
        return best["labels"]

    def _set_run(self, best, log_jacobian, total_weight, stacklevel):
        """The best run's convergence, iterations and log-likelihood trace (less the
        standardisation's ``log_jacobian``), with scikit-learn's warning if it did not
        converge (its sentence first, so that code matching it keeps working)."""
        self.converged_ = best["converged"]
        self.n_iter_ = best["n_iter"]
        self._set_trace(np.asarray(best["trace"]) - log_jacobian, total_weight)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data. "
                f"(max_iter={self.max_iter}, tol={self.tol})",
                ConvergenceWarning,
                stacklevel=stacklevel,
            )

    def _best_of_starts(self, engine, start_engine, screen, scaling, random_state, user_init,
                        previous, n_init, do_init):
        """EM from every start (or, for a warm start, from the fitted parameters) and the
        best run: the starts' initial parameters from ``start_engine``, EM on ``screen``
        (a subsample the best continues from; the caller continues it) or ``engine``.
        Restarts that collapse are dropped; all collapsing is an error. Shared by the
        in-memory fit and the Dask one (:mod:`bayesgmm._dask`)."""
        starts = (self._start_methods(n_init, user_init, screened=screen is not None)
                  if do_init else [None])
        best, failure = None, None
        for init, method in enumerate(starts):
            if self.verbose:
                print(f"Initialization {init}" + (f" ({method})" if method else ""))
            try:
                if do_init:
                    params = self._initial_parameters(start_engine, random_state, user_init,
                                                      method)
                else:
                    params = (self.weights_, self.means_, self.covariances_,
                              self.precisions_cholesky_)
                    params = tuple(np.asarray(p, dtype=np.float64) for p in params)
                    if scaling is not None:
                        params = scaling.to_standardised(params)
                run = self._run_em(screen or engine, params, previous)
            except CollapsedComponentError as error:
                # A restart that collapses is dropped; the others may be sound.
                if self.verbose:
                    print(f"  {error}")
                failure = error
                continue
            # scikit-learn keeps the first of equal restarts; "auto" also the first of
            # starts equal to rounding
            margin = _SAME_OPTIMUM if self.init_params == "auto" else 0.0
            if best is None or run["objective"] > best["objective"] + margin * abs(
                    best["objective"]):
                best = run
        if best is None:
            if len(starts) > 1:
                raise CollapsedComponentError(
                    failure.components, self.reg_covar,
                    prefix=f"All {len(starts)} initializations failed; in the last one ",
                ) from failure
            raise failure
        return best

    def _warn_if_regularisation_dominates(self, variances):
        """Warn when ``reg_covar`` is not small against the variances EM works with."""
        if not regularisation_dominates(self.reg_covar, variances):
            return
        positive = variances[variances > 0]
        j = int(np.flatnonzero(variances == positive.min())[0])
        if self.standardize:
            what = (f"reg_covar={self.reg_covar:g} is not small against the variances of the "
                    f"standardised data (standardize=True; feature {j} has variance "
                    f"{positive.min():.3g}, e.g. under the one common scale of "
                    "'spherical')")
            remedy = "Lower reg_covar, or put the features on comparable scales."
        else:
            what = (f"reg_covar={self.reg_covar:g} is not small against the data's variances "
                    f"(feature {j} has variance {positive.min():.3g})")
            remedy = ("Use standardize=True (reg_covar then relative to each feature's "
                      "variance: scale-equivariant), rescale X, or lower reg_covar.")
        warnings.warn(
            f"{what}: it is added to every component's covariance, inflating small "
            "components (all points may end up in one) and biasing the log-likelihood. "
            f"{remedy}",
            RegularizationWarning, stacklevel=3,
        )

    def _run_em(self, engine, params, previous=-np.inf):
        """EM from ``params`` until the mean log-likelihood (with a prior: the mean log
        posterior, which MAP-EM increases) changes by less than ``tol``."""
        total_weight = engine.sample_weight.sum()
        trace = []
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            sweep = engine.sweep(*params[:2], params[3], moments=True)
            _check_finite_log_likelihood(sweep.log_likelihood)
            trace.append(sweep.log_likelihood)
            objective = sweep.log_likelihood + engine.log_prior(params)
            params = self._m_step(engine, sweep.nk, sweep.sum_x, sweep.sum_q, sweep.centres,
                                  previous=params[2])
            mean_ll = objective / total_weight
            change = mean_ll - previous
            previous = mean_ll
            if self.verbose > 1:
                print(f"  Iteration {n_iter}\t log-likelihood {sweep.log_likelihood:.6f}")
            if abs(change) < self.tol:
                converged = True
                break
        final = engine.sweep(*params[:2], params[3], moments=False,
                             labels=getattr(engine, "labels_wanted", True))
        _check_finite_log_likelihood(final.log_likelihood)
        # max_iter=0 asks for the initialisation itself, as in scikit-learn
        collapsed = (
            collapsed_components(engine.structure, params[2], engine.data_variance)
            if engine.data_variance is not None and self.max_iter > 0 else []
        )
        if collapsed:
            raise CollapsedComponentError(collapsed, self.reg_covar)
        trace.append(final.log_likelihood)
        if self.verbose:
            print(f"Initialization converged: {converged}\t log-likelihood {final.log_likelihood:.6f}")
        return {
            "params": params,
            "converged": converged,
            "n_iter": n_iter,
            "log_likelihood": final.log_likelihood,
            "objective": final.log_likelihood + engine.log_prior(params),
            "trace": trace,
            "labels": final.labels,
        }

    def _refined_on_more_rows(self, engine, params, random_state):
        """The screened start after one EM step on m = p / tol random rows (p free
        parameters), or ``params`` unchanged when m is more than 3/5 of the rows.

        A 2,000-row optimum is about p / 4000 nats a point below the full data's, so
        EM on all the rows needs a third iteration before a change falls below
        ``tol``; an m-row optimum is about p / 2m = tol / 2 below, and where EM
        converges in about one step (separated clusters) one step on m rows gets
        there. EM on all the rows can then stop after its second iteration: the step
        costs m / n of a pass plus drawing and copying the rows, and saves one pass
        (at (1e6, 10, 8, full), m / n = 0.53: 0.153 s against a 0.169 s pass).
        """
        n_params = engine.structure.n_parameters(self.n_components, engine.X.shape[1])
        size = math.ceil(n_params / self.tol) if self.tol > 0 else math.inf
        if 5 * size > 3 * np.count_nonzero(engine.sample_weight):
            return params
        more = engine.subset(_subsample(engine.sample_weight, random_state, size))
        sweep = more.sweep(*params[:2], params[3], moments=True)
        return self._m_step(more, sweep.nk, sweep.sum_x, sweep.sum_q, sweep.centres,
                            previous=params[2])

    def _m_step(self, engine, nk, sum_x, sum_q, centres, previous=None):
        """Parameters maximising the expected complete-data log-likelihood.

        The moments of component k are about ``centres[k]``; ``previous`` (the current
        covariances) is where an iterative M-step starts.
        """
        nk = nk + 10 * np.finfo(np.float64).eps
        means_centred = sum_x / nk[:, None]
        prior, fixed = engine.prior, engine.fixed
        if fixed is not None:
            means_centred, sum_q = fixed.moments(nk, means_centred, sum_q, centres)
        if prior is None:
            covariances = engine.structure.covariances(nk, means_centred, sum_q, self.reg_covar,
                                                       previous=previous)
            if fixed is not None:
                covariances = fixed.covariances_from(covariances)
        else:
            # the prior mean in every component's own coordinates
            offsets = prior.mean - centres
            covariances = engine.structure.map_covariances(
                nk, means_centred, sum_q, prior, offsets, self.reg_covar, previous=previous)
            if engine.structure.map_shrinks_means(len(nk)):
                means_centred = ((nk[:, None] * means_centred + prior.shrinkage * offsets)
                                 / (nk + prior.shrinkage)[:, None])
        precisions_cholesky = engine.structure.precisions_cholesky(covariances, self.reg_covar)
        means = means_centred + centres
        return (
            nk / nk.sum() if fixed is None else fixed.weights_from(nk),
            means if fixed is None else fixed.means_from(means),
            covariances,
            precisions_cholesky,
        )

    def _user_initial_parameters(self, scaling):
        """The user's weights_init, means_init, precisions_init (None where not given),
        in the coordinates EM runs in."""
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=float)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=float)
        if self.precisions_init is not None:
            precisions = np.asarray(self.precisions_init, dtype=float)
        if scaling is not None:
            if means is not None:
                means = scaling.standardise_means(means)
            if precisions is not None:
                precisions = scaling.standardise_precisions(precisions)
        return weights, means, precisions

    def _start_methods(self, n_init, user_init, screened=False):
        """The start of every initialisation: ``n_init`` of ``init_params``. For "auto":
        mclust's hierarchical start in its SVD coordinates and in standardised ones (one
        start for one feature: quantiles), then ``n_init`` scale-free k-means starts;
        when the starts are ``screened`` on a subsample of large data, one hierarchical
        start on ``AUTO_HIERARCHICAL_ROWS_PER_COMPONENT`` rows a component of its rows
        (at most ``AUTO_HIERARCHICAL_ROWS``). When the user gives every
        initial parameter all starts are equal, and one is run."""
        if all(p is not None for p in user_init):
            return [self.init_params]
        if self.init_params != "auto":
            return [self.init_params] * n_init
        if screened:
            hierarchical = ["hierarchical-screen"]
        elif self.n_features_in_ > 1:
            hierarchical = ["hierarchical", "hierarchical-std"]
        else:
            hierarchical = ["hierarchical"]
        return hierarchical + ["scaled-kmeans"] * n_init

    def _initial_parameters(self, engine, random_state, user_init, method):
        """Initial parameters: from responsibilities, overridden by the user's.

        As in scikit-learn, the responsibilities are only computed (and the random
        state only consumed) when some initial parameter is not given.
        """
        structure = engine.structure
        weights = means = covariances = precisions_cholesky = None
        if any(p is None for p in user_init):
            resp, rows = self._initial_responsibilities(engine, random_state, method)
            if rows is not None:
                engine = engine.subset(rows)
            weights, means, covariances, precisions_cholesky = self._m_step(
                engine, *engine.moments_from_resp(resp)
            )
        user_weights, user_means, user_precisions = user_init
        if user_weights is not None:
            weights = user_weights
        if user_means is not None:
            means = user_means
        if user_precisions is not None:
            covariances = structure.covariances_from_precisions(user_precisions)
            precisions_cholesky = structure.precisions_cholesky_from_precisions(user_precisions)
        if engine.fixed is not None and any(p is not None for p in user_init):
            # the fixed values win over a user's start
            weights, means, covariances = engine.fixed.apply((weights, means, covariances))
            precisions_cholesky = structure.precisions_cholesky(covariances, self.reg_covar)
        return weights, means, covariances, precisions_cholesky

    def _initial_responsibilities(self, engine, random_state, method):
        """Responsibilities (n, K) to start from, and the rows they refer to."""
        X, w, K = engine.X, engine.sample_weight, self.n_components
        n_samples = X.shape[0]
        if method == "kmeans":
            labels = (
                KMeans(n_clusters=K, n_init=1, random_state=random_state)
                .fit(X, sample_weight=w)
                .labels_
            )
            return _one_hot(labels, K), None
        if method == "scaled-kmeans":
            # k-means on the features divided by their (weighted) standard deviations,
            # so that the start does not depend on the units of the features
            sd = np.sqrt(np.maximum(np.average((X - engine.center) ** 2, axis=0, weights=w), 0))
            sd[~(sd > 0)] = 1.0
            # one thread: on these at most 2,000 rows scikit-learn's OpenMP threads took
            # 0.07-0.12 s after the screening EM (contending, it seems, with BLAS's
            # threads) instead of 0.003 s
            with _threadpool_controller().limit(limits=1, user_api="openmp"):
                labels = (
                    KMeans(n_clusters=K, n_init=1, random_state=random_state)
                    .fit(X / sd, sample_weight=w)
                    .labels_
                )
            return _one_hot(labels, K), None
        if method == "k-means++":
            _, indices = kmeans_plusplus(X, K, random_state=random_state, sample_weight=w)
            return _one_hot_at(indices, n_samples, K), None
        if method == "random":
            resp = random_state.uniform(size=(n_samples, K))
            return resp / resp.sum(axis=1, keepdims=True), None
        if method == "random_from_data":
            candidates = np.flatnonzero(w > 0)
            indices = random_state.choice(candidates, size=K, replace=False)
            return _one_hot_at(indices, n_samples, K), None
        # hierarchical: mclust's start (model-based agglomeration of a subsample in
        # SVD coordinates, or standardised ones; classes between quantiles for one
        # feature)
        size = (min(AUTO_HIERARCHICAL_ROWS, AUTO_HIERARCHICAL_ROWS_PER_COMPONENT * K)
                if method == "hierarchical-screen" else HIERARCHICAL_SUBSAMPLE)
        rows = _subsample(w, random_state, size)
        rows = np.flatnonzero(w > 0) if rows is None else rows
        if X.shape[1] == 1:
            labels = quantile_classes(X[rows, 0], K)
        else:
            coordinates = standardise if method == "hierarchical-std" else svd_transform
            labels = hierarchical_classes(coordinates(X[rows]), K)
        return _one_hot(labels, K), (None if rows.size == n_samples else rows)

    # ------------------------------------------------------------ prediction
    def _set_parameters(self, params, dtype=np.float64):
        """Set the fitted parameters from (weights, means, covariances, precision factors)."""
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_) = (
            np.asarray(p, dtype=dtype) for p in params)
        self.precisions_ = self._structure.precisions_from_cholesky(
            np.asarray(params[3], dtype=np.float64)).astype(dtype)

    def _set_trace(self, trace, total_weight):
        """Set the log-likelihood attributes from the total log-likelihood per iteration."""
        self.log_likelihood_trace_ = np.asarray(trace, dtype=np.float64)
        self.log_likelihood_ = float(self.log_likelihood_trace_[-1])
        self.lower_bound_ = self.log_likelihood_ / total_weight
        self.lower_bounds_ = [float(t) / total_weight for t in self.log_likelihood_trace_[:-1]]

    def _predict_blocks(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        weights, means, precisions_cholesky = (
            np.asarray(p, dtype=np.float64)
            for p in (self.weights_, self.means_, self.precisions_cholesky_))
        engine = self._engine(X, np.ones(X.shape[0]), weights @ means)
        return X, engine.predict_blocks(weights, means, precisions_cholesky)

    def _log_prob_and_resp(self, X):
        X, blocks = self._predict_blocks(X)
        log_prob = np.empty(X.shape[0], dtype=X.dtype)
        resp = np.empty((X.shape[0], self.n_components), dtype=X.dtype)
        for block, log_norm, block_resp in blocks:
            log_prob[block] = log_norm
            resp[block] = block_resp
        return log_prob, resp

    def score_samples(self, X):
        """Log-density of the mixture at each sample, shape (n_samples,).

        In the data's dtype; ``-inf`` for points beyond the floating-point range of
        every component's density (never NaN). For a Dask ``X``, a lazy Dask array.
        """
        if _dask.is_dask_input(X):
            return _dask.score_samples(self, X)
        X, blocks = self._predict_blocks(X)
        log_prob = np.empty(X.shape[0], dtype=X.dtype)
        for block, log_norm, _ in blocks:
            log_prob[block] = log_norm
        return log_prob

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood per sample."""
        if _dask.is_dask_input(X):
            return _dask.score(self, X, sample_weight)
        log_prob = self.score_samples(X)
        if sample_weight is None:  # scikit-learn's score_samples(X).mean(), in X's dtype
            return float(log_prob.mean())
        weights = check_sample_weight(sample_weight, len(log_prob), np.float64)
        return float(np.average(log_prob, weights=weights))

    def impute(self, X, return_covariance=False):
        """``X`` with every missing (NaN) entry replaced by its conditional expectation
        under the fitted mixture, ``E[x_M | x_O] = sum_k p(k | x_O) E[x_M | x_O, k]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_covariance : bool, default=False
            Also return ``Cov[x_M | x_O]`` of every row, shape (n_samples, D, D): the
            mixture's conditional covariance of the missing entries (within and
            between components), zero in the observed rows and columns.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
        covariance : ndarray of shape (n_samples, n_features, n_features)
            Only with ``return_covariance``.

        For a Dask ``X`` both are lazy Dask arrays chunked as its rows.
        """
        from ._missing import MissingEngine

        check_is_fitted(self)
        if not isinstance(return_covariance, (bool, np.bool_)):
            raise ValueError("return_covariance must be True or False, got "
                             f"{return_covariance!r}.")
        if _dask.is_dask_input(X):
            return _dask.impute(self, X, bool(return_covariance))
        X = as_numeric_table(X, allow_nan=True)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan")
        params = [np.asarray(p, dtype=np.float64)
                  for p in (self.weights_, self.means_, self.precisions_cholesky_)]
        engine = MissingEngine(X, np.ones(len(X)), params[0] @ params[1], self._structure)
        filled, covariance = engine.impute(*params, with_covariance=return_covariance)
        filled = filled.astype(X.dtype)
        return (filled, covariance) if return_covariance else filled

    def predict_proba(self, X):
        """Posterior probability of each component for each sample, (n_samples, K)."""
        if _dask.is_dask_input(X):
            return _dask.predict_proba(self, X)
        return self._log_prob_and_resp(X)[1]

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        if _dask.is_dask_input(X):
            return _dask.predict(self, X)
        return np.argmax(self.predict_proba(X), axis=1)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Uses ``random_state`` exactly as scikit-learn's ``GaussianMixture.sample``,
        so both give the same draws for the same parameters and seed.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component each sample was drawn from.
        """
        check_is_fitted(self)
        check_integer("n_samples", n_samples, minimum=1)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        X = self._structure.sample(rng, self.means_, self.covariances_, counts)
        y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
        return X, y

    # -------------------------------------------------------------- criteria
    def n_parameters(self):
        """Number of free parameters (weights, means and covariances), those in
        ``fixed`` not counted."""
        check_is_fitted(self)
        fixed = self._fixed_parameters(self.means_.shape[1])
        if fixed is not None:
            return fixed.n_free(self.n_components, self.means_.shape[1])
        return self._structure.n_parameters(self.n_components, self.means_.shape[1])

    def _fixed_parameters(self, n_features):
        """``fixed`` validated (bayesgmm._fixed.FixedParameters), or None."""
        if self.fixed is None:
            return None
        from ._fixed import FixedParameters

        if self.prior is not None:
            raise ValueError("fixed and prior cannot be combined (MAP-EM with known "
                             "parameters is not implemented): drop one of them.")
        return FixedParameters.check(self.fixed, self._structure, self.n_components,
                                     n_features)

    def _log_likelihood_and_n(self, X, sample_weight):
        log_prob, resp = self._log_prob_and_resp(X)
        weights = check_sample_weight(sample_weight, len(log_prob), np.float64)
        return log_prob, resp, weights

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better).

        mclust's BIC (higher is better) is ``-bic``.
        """
        if _dask.is_dask_input(X):
            return _dask.bic(self, X, sample_weight)
        log_prob, _, w = self._log_likelihood_and_n(X, sample_weight)
        return float(-2 * (w @ log_prob) + self.n_parameters() * math.log(w.sum()))

    def aic(self, X, sample_weight=None):
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        if _dask.is_dask_input(X):
            return _dask.aic(self, X, sample_weight)
        log_prob, _, w = self._log_likelihood_and_n(X, sample_weight)
        return float(-2 * (w @ log_prob) + 2 * self.n_parameters())

    def icl(self, X, sample_weight=None):
        """Integrated completed likelihood: BIC plus twice the classification entropy.

        ``ICL = BIC - 2 sum_i log z_i,map(i)`` where ``z`` are the membership
        probabilities and ``map(i)`` the most probable component (Biernacki,
        Celeux and Govaert 2000). Lower is better; mclust's ICL is ``-icl``.
        """
        if _dask.is_dask_input(X):
            return _dask.icl(self, X, sample_weight)
        log_prob, resp, w = self._log_likelihood_and_n(X, sample_weight)
        bic = -2 * (w @ log_prob) + self.n_parameters() * math.log(w.sum())
        with np.errstate(divide="ignore"):
            entropy = -(w @ np.log(resp.max(axis=1)))
        return float(bic + 2 * entropy)

    # ---------------------------------------------------------------- output
    def _feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{j}" for j in range(self.n_features_in_)]
        return [str(n) for n in names]

    def to_xarray(self):
        """Fitted parameters as an :class:`xarray.Dataset` with named dimensions.

        Variables: ``weights`` (component), ``means`` (component, feature),
        ``covariances`` (component, feature, feature2) as full matrices whatever
        the covariance type, and ``log_likelihood_trace`` (iteration).
        """
        import xarray as xr

        check_is_fitted(self)
        K, D = self.means_.shape
        features = self._feature_names()
        coords = {"component": np.arange(K), "feature": features, "feature2": features}
        covariances = self._structure.to_full(self.covariances_, K, D)
        return xr.Dataset(
            {
                "weights": ("component", self.weights_),
                "means": (("component", "feature"), self.means_),
                "covariances": (("component", "feature", "feature2"), covariances),
                "log_likelihood_trace": ("iteration", self.log_likelihood_trace_),
            },
            coords=coords,
            attrs={
                "model": "GaussianMixtureEM",
                "covariance_type": self._structure.name,
                "mclust_model": self._structure.mclust_name,
                "n_components": K,
                "log_likelihood": self.log_likelihood_,
                "n_parameters": self.n_parameters(),
                "n_iter": self.n_iter_,
                "converged": int(self.converged_),
                "reg_covar": self.reg_covar,
                "log_prior": self.log_prior_,
                "n_missing": getattr(self, "n_missing_", 0),
                **({} if self.prior_ is None
                   else {"prior_resolved": json.dumps(self.prior_.to_dict())}),
            },
        )

    def save(self, path):
        """Write the fitted parameters and settings to netCDF (``to_xarray()``), atomically.

        A failed save leaves any earlier file at ``path`` intact. Read it back with
        :meth:`GaussianMixtureEM.load`.
        """
        from ._io import write_atomically

        ds = self.to_xarray()
        params = {k: v for k, v in self.get_params().items()
                  if v is None or isinstance(v, (str, int, float, bool))}
        if self.prior is not None:
            params["prior"] = self.prior.to_dict()
        fixed = self._fixed_parameters(self.means_.shape[1])
        if fixed is not None:
            params["fixed"] = fixed.to_dict()
        ds.attrs.update({"bayesgmm_kind": _FILE_KIND, "params": json.dumps(params),
                         "lower_bound": self.lower_bound_,
                         "named_features": int(hasattr(self, "feature_names_in_"))})
        return write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; refuses files of other models."""
        from ._io import read_kind

        tree, kind = read_kind(path)
        if kind != _FILE_KIND:
            raise ValueError(
                f"{path} was not written by GaussianMixtureEM.save (its bayesgmm_kind "
                f"attribute is {kind!r}); it cannot be loaded as one.")
        ds = tree.to_dataset()
        params = json.loads(ds.attrs["params"])
        from .priors import ConjugatePrior, Prior

        if params.get("prior") is not None:
            params["prior"] = Prior.from_dict(params["prior"])
            if not isinstance(params["prior"], ConjugatePrior):
                raise ValueError(f"{path}: its prior is not a ConjugatePrior.")
        if params.get("fixed") is not None:
            from ._fixed import from_dict

            params["fixed"] = from_dict(params["fixed"])
        model = cls(**params)
        structure = model._structure
        covariances = structure.from_full(ds["covariances"].values)
        model._set_parameters((ds["weights"].values, ds["means"].values, covariances,
                               structure.precisions_cholesky(covariances)))
        model.n_iter_, model.converged_ = int(ds.attrs["n_iter"]), bool(ds.attrs["converged"])
        model.log_prior_ = float(ds.attrs.get("log_prior", 0.0))
        model.n_missing_ = int(ds.attrs.get("n_missing", 0))
        model.prior_ = (None if "prior_resolved" not in ds.attrs
                        else Prior.from_dict(json.loads(ds.attrs["prior_resolved"])))
        # the total weight (n, or the sum of sample weights) is the ratio of the two
        log_likelihood = float(ds.attrs["log_likelihood"])
        lower_bound = float(ds.attrs["lower_bound"])
        model._set_trace(ds["log_likelihood_trace"].values,
                         log_likelihood / lower_bound if lower_bound else 1.0)
        model.n_features_in_ = model.means_.shape[1]
        if ds.attrs["named_features"]:
            model.feature_names_in_ = np.asarray(ds["feature"].values, dtype=object)
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags


# ------------------------------------------------------------------- helpers
@functools.cache
def _threadpool_controller():
    """The thread pools of the loaded libraries, found once (finding them takes ms)."""
    return ThreadpoolController()


def _subsample(sample_weight, random_state, size=HIERARCHICAL_SUBSAMPLE):
    """``size`` sorted random rows of positive weight, or None when there are at most
    ``size`` such rows."""
    rows = np.flatnonzero(sample_weight > 0)
    if rows.size <= size:
        return None
    return rows[np.sort(sample_without_replacement(rows.size, size,
                                                   random_state=random_state))]


def _one_hot(labels, n_components):
    resp = np.zeros((len(labels), n_components))
    resp[np.arange(len(labels)), labels] = 1.0
    return resp


def _one_hot_at(indices, n_samples, n_components):
    resp = np.zeros((n_samples, n_components))
    resp[indices, np.arange(n_components)] = 1.0
    return resp


def _check_random_state(value):
    """scikit-learn's accepted seeds, refused here with a message naming the parameter."""
    if value is None or isinstance(value, np.random.RandomState):
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if 0 <= value <= 2**32 - 1:
            return
        raise ValueError(
            f"random_state must be None, an integer in [0, 2**32 - 1] or a "
            f"numpy.random.RandomState, got {value!r} (out of range): use a non-negative seed."
        )
    raise ValueError(
        "random_state must be None, an integer in [0, 2**32 - 1] or a "
        f"numpy.random.RandomState, got {value!r} of type {type(value).__name__}."
    )


def _as_float_array(name, value, shape):
    array = np.asarray(value, dtype=float)
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} (from n_components and n_features), "
            f"got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf.")
    return array


def _variance_if_nonsingular(covariance):
    """Per-feature variances, or None when the data's own covariance is singular.

    Components are checked for collapse relative to the data's spread; when the
    data itself spans fewer dimensions than it has features (more features than
    points, or collinear features) every component is singular and the check is
    meaningless, so it is skipped.
    """
    variance = np.diag(covariance).copy()
    keep = variance > 0
    scale = 1.0 / np.sqrt(variance[keep])
    standardised = covariance[np.ix_(keep, keep)] * scale[:, None] * scale[None, :]
    if keep.any() and np.linalg.eigvalsh(standardised)[0] < COLLAPSE_TOLERANCE:
        return None
    return variance


def regularisation_dominates(reg_covar, variances):
    """Whether ``reg_covar`` is not small against the smallest positive variance
    (the condition of :class:`RegularizationWarning`)."""
    positive = variances[variances > 0]
    return bool(positive.size) and reg_covar > REG_COVAR_WARNING_RATIO * positive.min()


def _check_finite_log_likelihood(value):
    if not np.isfinite(value):
        raise ValueError(
            "The log-likelihood became non-finite during EM, usually because a component "
            "collapsed onto a few points. Try increasing reg_covar, using fewer "
            "components, or scaling the input data."
        )


class _Scaling:
    """``standardize=True``: EM on ``(X - center) / scale``, estimates mapped back.

    ``scale`` is each feature's (weighted) standard deviation, or one common scale
    for structures that are not closed under per-feature scaling (spherical);
    constant features keep scale 1. ``reg_covar`` then acts on the standardised
    data, i.e. relative to each feature's variance.
    """

    def __init__(self, structure, center, scale):
        self.structure, self.center, self.scale = structure, center, scale
        #: log|det| of the map to the standardised data, per sample
        self.log_jacobian = float(np.sum(np.log(scale)))

    def log_jacobian_of(self, observed):
        """The mean log|det| per unit of weight when feature j is observed in a share
        ``observed[j]`` of the weight (a missing entry carries no density):
        ``log_jacobian`` for complete data."""
        log_scale = np.broadcast_to(np.log(self.scale), np.shape(observed))
        return float(observed @ log_scale)

    @classmethod
    def of(cls, structure, center, covariance):
        variances = np.diag(covariance).copy()
        positive = variances > 0
        if structure.per_feature_scaling:
            scale = np.where(positive, np.sqrt(np.where(positive, variances, 1.0)), 1.0)
        else:
            common = math.sqrt(variances[positive].mean()) if positive.any() else 1.0
            scale = np.full(len(variances), common)
        return cls(structure, np.asarray(center, dtype=np.float64), scale)

    def standardise(self, X):
        dtype = X.dtype
        return (X - self.center.astype(dtype)) / self.scale.astype(dtype)

    def standardise_covariance(self, covariance):
        return covariance / np.outer(self.scale, self.scale)

    def standardise_means(self, means):
        return (means - self.center) / self.scale

    def standardise_precisions(self, precisions):
        return self._rescale(precisions, self.scale, self.scale)

    def _rescale(self, values, rows, cols):
        """Multiply the full matrices of ``values`` by ``rows[i] * cols[j]``, same layout."""
        full = self.structure.full_matrices(values, len(self.scale))
        return self.structure.from_full(full * rows[:, None] * cols[None, :])

    def to_original(self, params):
        weights, means, covariances, precisions_cholesky = params
        ones = np.ones_like(self.scale)
        return (
            weights,
            means * self.scale + self.center,
            self._rescale(covariances, self.scale, self.scale),
            self._rescale(precisions_cholesky, 1.0 / self.scale, ones),
        )

    def to_standardised(self, params):
        weights, means, covariances, precisions_cholesky = params
        ones = np.ones_like(self.scale)
        return (
            weights,
            self.standardise_means(means),
            self._rescale(covariances, 1.0 / self.scale, 1.0 / self.scale),
            self._rescale(precisions_cholesky, self.scale, ones),
        )


def _representable_spread(dtype):
    """The range of a feature's spread whose squares (and their inverses, with room
    for components far smaller than the data) stay within the floating-point range."""
    info = np.finfo(dtype)
    margin = float(info.max) ** 0.05
    return math.sqrt(float(info.tiny)) * margin, math.sqrt(float(info.max)) / margin


def _check_representable(spread, dtype):
    """Refuse features whose squared deviations under- or overflow ``dtype``."""
    low, high = _representable_spread(dtype)
    bad = np.flatnonzero(((spread > 0) & (spread < low)) | (spread > high))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"Feature {j} of X spreads {spread[j]:.3g} around its mean (largest "
            f"deviation), outside the range [{low:.0e}, {high:.0e}] that EM can handle in "
            f"{np.dtype(dtype).name}: its squared deviations, variances and precisions "
            "would under- or overflow. Rescale X before fitting (e.g. X / X.std(axis=0)) "
            "and scale the estimates back."
        )
