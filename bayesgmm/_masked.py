"""The mixture log-density of data with missing entries: one PyTensor Op with a mask.

A point whose features ``O`` are observed has the marginal density of its observed
part (missing at random: the missing entries are integrated out),

    log p(x_n) = logsumexp_k [ log_w[k] + log N(x_nO | mu_kO, Sigma_kOO) ],

with ``Sigma_k = L_k L_k^T``. The data come with a *pattern index*: ``pattern[n]`` is
the row of ``observed`` (P, D), 1 for an observed feature, that point ``n`` follows
(:func:`missing_patterns`). The kernels first factor every pattern's and component's
``Sigma_kOO = C C^T`` (P K small Cholesky factorisations), then pass once over the
points; the values of missing entries (NaN) are never read. The gradient of ``sum_n
g_n log p(x_n)`` takes, per pattern and component, the responsibility-weighted sums of
the whitened residuals ``z = C^-1 (x_O - mu_kO)``, as the complete-data Op of
:mod:`bayesgmm._fused` does:

    N = sum g r,  s = sum g r z,  S = sum g r z z^T
    d/d mu_kO += C^-T s,    d/d Sigma_kOO += (C^-T (S - N I) C^-1) / 2,
    d/d log_w[k] = sum over patterns of N,    d/d L_k = tril(2 G_k L_k)

with ``G_k`` the gradient with respect to ``Sigma_k`` (the patterns' blocks added
into their observed rows and columns). The loops over patterns run inside the
kernels (numba), not in the graph: any number of patterns is one Op, and a rewrite
(:func:`fuse_masked`) makes the value and the gradient one pass over the data. The
complete rows keep the faster Ops of :mod:`bayesgmm._fused`, written out for the number
of features (these kernels are generic in it): :func:`mixture_log_density_with_missing`
sends each row to its Op. :func:`conditional_gaussian` gives the missing entries'
conditional distributions, for :meth:`GaussianMixtureBayes.impute`.
"""

from __future__ import annotations

import math

import numpy as np
import pytensor.tensor as pt
from numba import njit
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.type import TensorType

from ._fused import _float64, kernel_version

__all__ = ["missing_patterns", "masked_mixture_log_density", "masked_joint_log_density",
           "MaskedMixtureLogDensity", "MaskedMixtureLogDensityGrad",
           "MaskedMixtureLogDensityValueGrad"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def missing_patterns(X):
    """``(pattern, observed)`` of data with NaN for missing entries.

    ``pattern`` (n,) int64 indexes the rows of ``observed`` (P, D) int64, 1 where the
    feature is observed; the patterns are sorted (the complete one, if any, first).
    """
    X = np.asarray(X, dtype=np.float64)
    keys, inverse = np.unique(np.isnan(X), axis=0, return_inverse=True)
    return inverse.ravel().astype(np.int64), (~keys).astype(np.int64)


def masked_mixture_log_density(X, pattern, observed, log_weights, means, cov_chol):
    """``log sum_k w_k N(x_nO | mu_kO, Sigma_kOO)`` for each row of ``X`` (symbolic).

    ``X`` (n, D) may hold anything (NaN) at its missing entries; ``pattern`` and
    ``observed`` as :func:`missing_patterns` gives them; ``cov_chol`` (K, D, D) the
    lower Cholesky factors of the covariances (the upper triangle is ignored).
    """
    return MaskedMixtureLogDensity()(X, pattern, observed, log_weights, means, cov_chol)


def split_rows(X):
    """``(complete, incomplete, pattern, observed)``: the indices of the complete rows and
    of the others, and the others' patterns (:func:`missing_patterns`)."""
    X = np.asarray(X, dtype=np.float64)
    incomplete = np.isnan(X).any(axis=1)
    pattern, observed = missing_patterns(X[incomplete])
    return np.flatnonzero(~incomplete), np.flatnonzero(incomplete), pattern, observed


def mixture_log_density_with_missing(X, rows, log_weights, means, cov_chol, *,
                                     diagonal=False):
    """Each row's (marginal) mixture log-density, (n,), in the rows' order (symbolic).

    ``rows``: :func:`split_rows` of the data, as arrays or variables (``complete`` None
    when no row is). The complete rows go through the fused Op of :mod:`bayesgmm._fused`
    (several times faster per row), the others through the masked one; ``X`` needs its
    number of features as a static shape.
    """
    from ._fused import mixture_log_density

    complete, incomplete, pattern, observed = rows
    out = pt.zeros((X.shape[0],))
    if complete is not None:
        out = pt.set_subtensor(out[complete], mixture_log_density(
            X[complete], log_weights, means, cov_chol, diagonal=diagonal))
    return pt.set_subtensor(out[incomplete], masked_mixture_log_density(
        X[incomplete], pattern, observed, log_weights, means, cov_chol))


def masked_joint_log_density(X, pattern, observed, log_weights, means, cov_chol):
    """``log w_k + log N(x_nO | mu_kO, Sigma_kOO)``: a numpy array (K, n)."""
    return _joint(np.asarray(X, dtype=np.float64), pattern, observed,
                  *(np.asarray(v, dtype=np.float64) for v in (log_weights, means, cov_chol)))


def _as_index(x):
    x = pt.as_tensor_variable(x)
    if not x.dtype.startswith(("int", "uint")):
        raise TypeError(f"pattern and observed must be integer arrays, got {x.dtype}.")
    return x if x.dtype == "int64" else pt.cast(x, "int64")


class MaskedMixtureLogDensity(Op):
    """Inputs ``(X (N, D), pattern (N,), observed (P, D), log_w (K,), mu (K, D), L (K, D,
    D))``; output ``logp (N,)``. Differentiable in ``log_w``, ``mu`` and ``L``."""

    __props__ = ()

    def make_node(self, X, pattern, observed, log_w, mu, L):
        X, log_w, mu, L = (_float64(v) for v in (X, log_w, mu, L))
        pattern, observed = _as_index(pattern), _as_index(observed)
        for name, value, ndim in (("X", X, 2), ("pattern", pattern, 1),
                                  ("observed", observed, 2), ("log_weights", log_w, 1),
                                  ("means", mu, 2), ("cov_chol", L, 3)):
            if value.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got {value.ndim}.")
        out = TensorType("float64", shape=(X.type.shape[0],))()
        return Apply(self, [X, pattern, observed, log_w, mu, L], [out])

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],)]

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = _log_density(*inputs)

    def pullback(self, inputs, outputs, cotangents):
        X, pattern, observed = inputs[:3]
        grads = MaskedMixtureLogDensityGrad()(*inputs, cotangents[0])
        return [grad_not_implemented(self, 0, X), grad_not_implemented(self, 1, pattern),
                grad_not_implemented(self, 2, observed), *grads]


class MaskedMixtureLogDensityGrad(Op):
    """The gradient of ``sum_n g_n log p(x_n)`` with respect to ``log_w``, ``mu`` and
    ``L``: inputs those of :class:`MaskedMixtureLogDensity` and ``g (N,)``."""

    __props__ = ()

    def make_node(self, X, pattern, observed, log_w, mu, L, g):
        inputs = MaskedMixtureLogDensity().make_node(X, pattern, observed, log_w, mu, L).inputs
        g = _float64(g)
        if g.ndim == 0:  # one weight for every row
            g = pt.broadcast_to(g, (inputs[0].shape[0],))
        elif g.ndim != 1:
            raise ValueError(f"the output gradient must be a vector, got {g.ndim} dimensions.")
        outputs = [v.type() for v in inputs[3:]]
        return Apply(self, [*inputs, g], outputs)

    def infer_shape(self, node, shapes):
        return [shapes[3], shapes[4], shapes[5]]

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _value_and_gradient(*inputs)[1:]):
            storage[0] = value

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("second derivatives of the masked mixture log-density are "
                                  "not implemented")


class MaskedMixtureLogDensityValueGrad(Op):
    """``log p(x_n)`` and the gradient Op's outputs in one pass over the data: inputs as
    :class:`MaskedMixtureLogDensityGrad`. Not built by hand: :func:`fuse_masked` puts it
    in compiled graphs that need both (a log-likelihood and its gradient)."""

    __props__ = ()

    def make_node(self, X, pattern, observed, log_w, mu, L, g):
        grad = MaskedMixtureLogDensityGrad().make_node(X, pattern, observed, log_w, mu, L, g)
        value = MaskedMixtureLogDensity().make_node(X, pattern, observed, log_w, mu, L)
        return Apply(self, grad.inputs, [value.outputs[0].type()]
                     + [v.type() for v in grad.outputs])

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],), shapes[3], shapes[4], shapes[5]]

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _value_and_gradient(*inputs)):
            storage[0] = value

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("MaskedMixtureLogDensityValueGrad is built after "
                                  "differentiation; differentiate masked_mixture_log_density")


@register_specialize
@node_rewriter([MaskedMixtureLogDensityGrad])
def fuse_masked(fgraph, node):
    """The value Op and the gradient Op on the same inputs -> one
    :class:`MaskedMixtureLogDensityValueGrad` (one pass over the data, not two)."""
    inputs = node.inputs[:6]
    for client, _ in fgraph.clients[inputs[0]]:
        if (isinstance(client.op, MaskedMixtureLogDensity)
                and all(a is b for a, b in zip(client.inputs, inputs))):
            logp, *grads = MaskedMixtureLogDensityValueGrad()(*node.inputs)
            return {client.outputs[0]: logp, **dict(zip(node.outputs, grads))}
    return None


# ------------------------------------------------------------------------ kernels
@njit(cache=True)
def _factors(observed, L):
    """Per pattern p and component k: the Cholesky factor of Sigma_kOO in
    ``C[p, k, :o, :o]``, its log-determinant / 2, and the observed feature indices."""
    P, D = observed.shape
    K = L.shape[0]
    index = np.zeros((P, D), dtype=np.int64)
    count = np.zeros(P, dtype=np.int64)
    for p in range(P):
        for j in range(D):
            if observed[p, j] != 0:
                index[p, count[p]] = j
                count[p] += 1
    Sigma = np.zeros((K, D, D))
    for k in range(K):
        for i in range(D):
            for j in range(i + 1):
                t = 0.0
                for m in range(j + 1):
                    t += L[k, i, m] * L[k, j, m]
                Sigma[k, i, j] = t
                Sigma[k, j, i] = t
    C = np.zeros((P, K, D, D))
    half_log_det = np.zeros((P, K))
    for p in range(P):
        o = count[p]
        for k in range(K):
            c = C[p, k]
            for i in range(o):
                for j in range(i + 1):
                    t = Sigma[k, index[p, i], index[p, j]]
                    for m in range(j):
                        t -= c[i, m] * c[j, m]
                    if i == j:
                        # not positive definite: a zero density (log 0), never a NaN
                        c[i, i] = math.sqrt(t) if t > 0.0 else 0.0
                    else:
                        c[i, j] = t / c[j, j]
            for i in range(o):
                half_log_det[p, k] += math.log(c[i, i]) if c[i, i] > 0.0 else math.inf
    return C, half_log_det, index, count


@njit(cache=True, inline="always")
def _whiten(X, n, index, p, o, C, k, mu, z):
    """z[k, :o] = C[p, k]^-1 (x_nO - mu_kO) for row n of pattern p; returns |z_k|^2.

    Whole arrays and indices, no views: a view per row and component costs numba's
    reference counts, which took most of the time."""
    q = 0.0
    for i in range(o):
        j = index[p, i]
        t = X[n, j] - mu[k, j]
        for m in range(i):
            t -= C[p, k, i, m] * z[k, m]
        t = t / C[p, k, i, i]
        z[k, i] = t
        q += t * t
    return q


@njit(cache=True)
def _joint(X, pattern, observed, log_w, mu, L):
    N, D = X.shape
    K = log_w.shape[0]
    C, half_log_det, index, count = _factors(observed, L)
    out = np.empty((K, N))
    z = np.empty((K, D))
    for n in range(N):
        p = pattern[n]
        for k in range(K):
            q = _whiten(X, n, index, p, count[p], C, k, mu, z)
            out[k, n] = log_w[k] - count[p] * _HALF_LOG_2PI - half_log_det[p, k] - 0.5 * q
    return out


@njit(cache=True)
def _log_density(X, pattern, observed, log_w, mu, L):
    joint = _joint(X, pattern, observed, log_w, mu, L)
    K, N = joint.shape
    out = np.empty(N)
    for n in range(N):
        top = -math.inf
        for k in range(K):
            top = max(top, joint[k, n])
        if not math.isfinite(top):
            out[n] = top
            continue
        total = 0.0
        for k in range(K):
            total += math.exp(joint[k, n] - top)
        out[n] = top + math.log(total)
    return out


@njit(cache=True)
def _value_and_gradient(X, pattern, observed, log_w, mu, L, g):
    N, D = X.shape
    K = log_w.shape[0]
    P = observed.shape[0]
    C, half_log_det, index, count = _factors(observed, L)
    n_k = np.zeros((P, K))
    s = np.zeros((P, K, D))
    S = np.zeros((P, K, D, D))
    z = np.empty((K, D))
    joint = np.empty(K)
    logp = np.empty(N)
    for n in range(N):
        p = pattern[n]
        o = count[p]
        top = -math.inf
        for k in range(K):
            q = _whiten(X, n, index, p, o, C, k, mu, z)
            joint[k] = log_w[k] - o * _HALF_LOG_2PI - half_log_det[p, k] - 0.5 * q
            top = max(top, joint[k])
        if not math.isfinite(top):
            logp[n] = top
            continue
        total = 0.0
        for k in range(K):
            joint[k] = math.exp(joint[k] - top)
            total += joint[k]
        logp[n] = top + math.log(total)
        if g[n] == 0.0:
            continue
        for k in range(K):
            a = g[n] * joint[k] / total
            if a == 0.0:
                continue
            n_k[p, k] += a
            for i in range(o):
                ai = a * z[k, i]
                s[p, k, i] += ai
                for j in range(i + 1):
                    S[p, k, i, j] += ai * z[k, j]
    d_log_w = np.zeros(K)
    d_mu = np.zeros((K, D))
    G = np.zeros((K, D, D))  # d / d Sigma_k
    u = np.empty(D)
    W = np.empty((D, D))
    for p in range(P):
        o = count[p]
        idx = index[p]
        for k in range(K):
            if n_k[p, k] == 0.0:
                continue
            c = C[p, k]
            d_log_w[k] += n_k[p, k]
            # u = C^-T s: backward substitution
            for i in range(o - 1, -1, -1):
                t = s[p, k, i]
                for m in range(i + 1, o):
                    t -= c[m, i] * u[m]
                u[i] = t / c[i, i]
            for i in range(o):
                d_mu[k, idx[i]] += u[i]
            # W = C^-T (S - N I) C^-1, S symmetric (lower triangle stored)
            for i in range(o):
                for j in range(o):
                    W[i, j] = S[p, k, max(i, j), min(i, j)] - (n_k[p, k] if i == j else 0.0)
            for j in range(o):  # W := C^-T W (columns by backward substitution)
                for i in range(o - 1, -1, -1):
                    t = W[i, j]
                    for m in range(i + 1, o):
                        t -= c[m, i] * W[m, j]
                    W[i, j] = t / c[i, i]
            for i in range(o):  # W := W C^-1 (rows: solve C^T y = w^T)
                for j in range(o - 1, -1, -1):
                    t = W[i, j]
                    for m in range(j + 1, o):
                        t -= W[i, m] * c[m, j]
                    W[i, j] = t / c[j, j]
            for i in range(o):
                for j in range(o):
                    G[k, idx[i], idx[j]] += 0.5 * W[i, j]
    d_L = np.zeros((K, D, D))
    for k in range(K):
        for i in range(D):
            for j in range(i + 1):
                t = 0.0
                for m in range(j, D):  # L lower: L[m, j] = 0 for m < j
                    t += G[k, i, m] * L[k, m, j]
                d_L[k, i, j] = 2.0 * t
    return logp, d_log_w, d_mu, d_L


@njit(cache=True)
def _gradient(X, pattern, observed, log_w, mu, L, g):
    _, d_log_w, d_mu, d_L = _value_and_gradient(X, pattern, observed, log_w, mu, L, g)
    return d_log_w, d_mu, d_L


@numba_basic.register_funcify_default_op_cache_key(MaskedMixtureLogDensity)
def _numba_funcify_masked(op, node=None, **kwargs):
    return _log_density, kernel_version(__name__)


@numba_basic.register_funcify_default_op_cache_key(MaskedMixtureLogDensityGrad)
def _numba_funcify_masked_grad(op, node=None, **kwargs):
    return _gradient, kernel_version(__name__)


@numba_basic.register_funcify_default_op_cache_key(MaskedMixtureLogDensityValueGrad)
def _numba_funcify_masked_value_grad(op, node=None, **kwargs):
    return _value_and_gradient, kernel_version(__name__)


def conditional_gaussian(x_observed, means, covariances, observed, missing):
    """The distribution of the missing features given the observed ones under Gaussians.

    ``x_observed`` (n, o): rows' observed entries (features ``observed``, indices);
    ``means`` (..., D) and ``covariances`` (..., D, D) with any batch axes. Returns
    ``E[x_M | x_O]`` (..., n, m) and ``Cov[x_M | x_O]`` (..., m, m):
    ``mu_M + (x_O - mu_O) Sigma_OO^-1 Sigma_OM`` and ``Sigma_MM - Sigma_MO Sigma_OO^-1
    Sigma_OM``.
    """
    O, M = np.asarray(observed), np.asarray(missing)
    S_OO = covariances[..., O[:, None], O[None, :]]
    S_OM = covariances[..., O[:, None], M[None, :]]
    S_MM = covariances[..., M[:, None], M[None, :]]
    coefficients = np.linalg.solve(S_OO, S_OM)  # Sigma_OO^-1 Sigma_OM, (..., o, m)
    diff = x_observed - means[..., None, O]  # (..., n, o)
    mean = means[..., None, M] + diff @ coefficients
    return mean, S_MM - np.swapaxes(S_OM, -1, -2) @ coefficients
