"""The fused marginal mixture log-density: one PyTensor Op with an analytic gradient.

For component ``k`` with log-weight ``log_w[k]``, mean ``mu[k]`` and covariance
Cholesky factor ``L[k]`` (lower triangular, ``Sigma_k = L_k L_k^T``), each point's
whitened residual is ``z_nk = L_k^{-1} (x_n - mu_k)`` and

    l_nk = log_w[k] - D/2 log(2 pi) - sum_i log|L_k[i, i]| - |z_nk|^2 / 2
    log p(x_n) = logsumexp_k l_nk,        r_nk = exp(l_nk - log p(x_n)).

The gradient of ``sum_n g_n log p(x_n)`` (``g`` is the output gradient PyTensor
hands back; all ones for a log-likelihood) needs only responsibility-weighted
sums of the residuals, the M-step statistics of EM:

    N_k = sum_n g_n r_nk,   s_k = sum_n g_n r_nk z_nk,   S_k = sum_n g_n r_nk z_nk z_nk^T
    d/d log_w[k] = N_k,     d/d mu_k = L_k^{-T} s_k,     d/d L_k = tril(L_k^{-T} (S_k - N_k I)).

:class:`MixtureLogDensity` computes ``log p(x_n)`` together with ``r`` and ``z`` in
one pass over the data (the triangular solves and the exponentials);
:class:`MixtureLogDensityGrad` turns ``g``, ``r`` and ``z`` into the gradient with
no transcendental function at all. When nothing else reads ``r`` and ``z`` (a
log-likelihood, ``g`` all ones, or a weighted one, ``sum_n w_n log p(x_n)``: ``g =
w``), compiled graphs use :class:`MixtureLogDensityValueGrad`, value and gradient in
one call that never writes ``r`` out. Both run as numba kernels inside PyTensor's
numba backend (PyMC's NUTS, nutpie, ``find_MAP``, SMC) and in numpy under the
Python linker (bayesgmm's interpreted MAP graph), so nothing here needs a C
compiler. The kernels' loops over the points are generated as source for the
number of features (the Ops' ``n_features``), so that a component's whitening and
its gradient statistics each take one or a few passes with the sums in registers.
The readable reference formulation, the expanded log-density of
:mod:`bayesgmm._gaussian` differentiated by PyTensor, stays available as
``build_model(..., likelihood="reference")``; the tests hold the two together.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import sys

import numpy as np
import pytensor.tensor as pt
from llvmlite import ir as llvm_ir
from numba import types as numba_types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.type import TensorType

from ._validation import check_integer

__all__ = ["mixture_log_density", "MixtureLogDensity", "MixtureLogDensityGrad",
           "MixtureLogDensityValueGrad"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def mixture_log_density(X, log_weights, means, cov_chol, *, diagonal=False):
    """``log sum_k w_k N(x_n | mu_k, L_k L_k^T)`` for each row of ``X`` (symbolic).

    Parameters
    ----------
    X : TensorVariable of shape (n_samples, n_features)
    log_weights : TensorVariable of shape (n_components,)
    means : TensorVariable of shape (n_components, n_features)
    cov_chol : TensorVariable of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the covariances; the upper triangle is ignored.
    diagonal : bool
        The factors are diagonal (diag, spherical and one-feature models): the
        kernels then skip the off-diagonal terms.

    Returns
    -------
    TensorVariable of shape (n_samples,)

    The number of features must be known when the graph is built (a static
    shape of one of the inputs; ``pt.specify_shape`` gives one): the numba
    kernels are written out for it.
    """
    X, log_weights, means, cov_chol = (pt.as_tensor_variable(v)
                                       for v in (X, log_weights, means, cov_chol))
    op = MixtureLogDensity(diagonal, _n_features(X, means, cov_chol))
    return op(X, log_weights, means, cov_chol)[0]


def _n_features(X, means, cov_chol):
    """The number of features, from whichever input has it as a static shape."""
    known = {v.type.shape[axis] for v, axis in ((X, 1), (means, 1), (cov_chol, 1), (cov_chol, 2))
             if v.ndim > axis and v.type.shape[axis] is not None}
    if len(known) != 1:
        raise ValueError(
            "mixture_log_density needs the number of features as a static shape of X, means "
            f"or cov_chol, and consistent; got {sorted(known) or 'none'}. Give it with "
            "pt.specify_shape, e.g. pt.specify_shape(X, (None, n_features)).")
    return known.pop()


def _float64(x):
    x = pt.as_tensor_variable(x)
    return x if x.dtype == "float64" else pt.cast(x, "float64")


class MixtureLogDensity(Op):
    """Pointwise marginal log-density, with responsibilities and whitened residuals.

    Inputs ``(X (N, D), log_w (K,), mu (K, D), L (K, D, D))``; outputs
    ``(logp (N,), r (K, N), z (K, D, N))``. Only ``logp`` is differentiable: ``r``
    and ``z`` are kept for the gradient Op, which then needs no second pass of
    exponentials. They are stored component-major, so that every inner loop of
    the kernels runs over contiguous points (and vectorises).
    """

    __props__ = ("diagonal", "n_features")

    def __init__(self, diagonal=False, n_features=None):
        self.diagonal = bool(diagonal)
        self.n_features = check_integer("n_features", n_features, minimum=1)

    def make_node(self, X, log_w, mu, L):
        X, log_w, mu, L = (_float64(v) for v in (X, log_w, mu, L))
        for name, value, ndim in (("X", X, 2), ("log_weights", log_w, 1), ("means", mu, 2),
                                  ("cov_chol", L, 3)):
            if value.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions, got {value.ndim}.")
        d = self.n_features
        X, mu, L = (pt.specify_shape(v, shape) for v, shape in (
            (X, (None, d)), (mu, (None, d)), (L, (None, d, d))))
        n = X.type.shape[0]
        k = log_w.type.shape[0]
        outputs = [TensorType("float64", shape=(n,))(), TensorType("float64", shape=(k, n))(),
                   TensorType("float64", shape=(k, d, n))()]
        return Apply(self, [X, log_w, mu, L], outputs)

    def infer_shape(self, node, shapes):
        (n, d), (k,) = shapes[0], shapes[1]
        return [(n,), (k, n), (k, d, n)]

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _forward_numpy(*inputs, self.diagonal)):
            storage[0] = value

    def pullback(self, inputs, outputs, cotangents):
        X, log_w, mu, L = inputs
        _, resp, z = outputs
        g_logp, g_resp, g_z = cotangents
        for name, g in (("responsibilities", g_resp), ("residuals", g_z)):
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError(
                    f"MixtureLogDensity's {name} output is not differentiable; "
                    "differentiate the log-density (its first output) instead.")
        g_log_w, g_mu, g_L = MixtureLogDensityGrad(self.diagonal, self.n_features)(
            g_logp, resp, z, L)
        return [grad_not_implemented(self, 0, X), g_log_w, g_mu, g_L]


class MixtureLogDensityGrad(Op):
    """Gradient of ``sum_n g_n log p(x_n)`` from ``g (N,)``, ``r (K, N)``, ``z (K, D, N)``, ``L``.

    Outputs the gradients with respect to ``log_w (K,)``, ``mu (K, D)`` and
    ``L (K, D, D)`` (lower triangular).
    """

    __props__ = ("diagonal", "n_features")

    def __init__(self, diagonal, n_features):
        self.diagonal = bool(diagonal)
        self.n_features = int(n_features)

    def make_node(self, g, resp, z, L):
        g, resp, z, L = (_float64(v) for v in (g, resp, z, L))
        k, d = z.type.shape[0], z.type.shape[1]
        outputs = [TensorType("float64", shape=(k,))(), TensorType("float64", shape=(k, d))(),
                   TensorType("float64", shape=(k, d, d))()]
        return Apply(self, [g, resp, z, L], outputs)

    def infer_shape(self, node, shapes):
        _, _, (k, d, n), _ = shapes
        return [(k,), (k, d), (k, d, d)]

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _backward_numpy(*inputs, self.diagonal)):
            storage[0] = value

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("second derivatives of the mixture log-density are not "
                                  "implemented")


class MixtureLogDensityValueGrad(Op):
    """``log p(x_n)`` and the gradient of ``sum_n g_n log p(x_n)`` in one call.

    Inputs as :class:`MixtureLogDensity`, and with ``weighted`` the point weights
    ``g (N,)``; outputs ``(logp (N,), d/d log_w (K,), d/d mu (K, D), d/d L (K, D,
    D))``. Unweighted, every point's weight is one (a log-likelihood): the kernel
    takes the gradient statistics straight from the unnormalised exponentials and
    ``1 / sum_k``, and no vector of ones is built. Weighted (a weighted
    log-likelihood, ``sum_n w_n log p(x_n)``), the ``N`` factors ``1 / sum_k`` are
    multiplied by ``g`` first: one more multiplication per point. Either way no
    responsibilities are written out and the gradient Op is not called. Not built
    by hand: :func:`fuse_value_and_gradient` puts it in compiled graphs.
    """

    __props__ = ("diagonal", "n_features", "weighted")

    def __init__(self, diagonal, n_features, weighted=False):
        self.diagonal = bool(diagonal)
        self.n_features = int(n_features)
        self.weighted = bool(weighted)

    def make_node(self, X, log_w, mu, L, *g):
        if len(g) != self.weighted:
            raise TypeError(f"MixtureLogDensityValueGrad(weighted={self.weighted}) takes "
                            f"{4 + self.weighted} inputs, got {4 + len(g)}.")
        forward = MixtureLogDensity(self.diagonal, self.n_features).make_node(X, log_w, mu, L)
        k, d = log_w.type.shape[0], self.n_features
        outputs = [forward.outputs[0].type(), TensorType("float64", shape=(k,))(),
                   TensorType("float64", shape=(k, d))(), TensorType("float64", shape=(k, d, d))()]
        inputs = list(forward.inputs)
        if self.weighted:
            (weights,) = g
            weights = _float64(weights)
            if weights.ndim != 1:
                raise ValueError(f"the point weights must be a vector, got {weights.ndim} "
                                 "dimensions.")
            inputs.append(weights)
        return Apply(self, inputs, outputs)

    def infer_shape(self, node, shapes):
        (n, d), (k,) = shapes[0], shapes[1]
        return [(n,), (k,), (k, d), (k, d, d)]

    def perform(self, node, inputs, output_storage):
        logp, resp, z = _forward_numpy(*inputs[:4], self.diagonal)
        g = inputs[4] if self.weighted else np.ones_like(logp)
        grads = _backward_numpy(g, resp, z, inputs[3], self.diagonal)
        for storage, value in zip(output_storage, (logp, *grads)):
            storage[0] = value

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("MixtureLogDensityValueGrad is built after differentiation; "
                                  "differentiate mixture_log_density instead")


def _is_one(variable):
    try:
        return pt.get_underlying_scalar_constant_value(variable) == 1.0
    except NotScalarConstantError:
        return False


@register_specialize
@node_rewriter([MixtureLogDensityGrad])
def fuse_value_and_gradient(fgraph, node):
    """``MixtureLogDensity`` and ``MixtureLogDensityGrad(g, r, z, L)`` -> one
    :class:`MixtureLogDensityValueGrad`, when nothing else reads ``r`` and ``z``.

    That is a log-likelihood's gradient, which is what NUTS, nutpie and
    ``pm.find_MAP`` compile (rewrites at the specialize stage; bayesgmm's
    interpreted MAP graph keeps the two Ops): ``g`` a constant one (``sum_n log
    p(x_n)``) gives the unweighted Op, anything else (``sum_n w_n log p(x_n)``: ``g =
    w``) the weighted one, with ``g`` as its fifth input.
    """
    g, resp, z, L = node.inputs
    forward = resp.owner
    if (forward is None or not isinstance(forward.op, MixtureLogDensity)
            or forward.outputs[1] is not resp or forward.outputs[2] is not z
            or forward.inputs[3] is not L):
        return None
    if any(client is not node for out in (resp, z) for client, _ in fgraph.clients[out]):
        return None
    unit = _is_one(g)
    op = MixtureLogDensityValueGrad(forward.op.diagonal, forward.op.n_features, not unit)
    if unit:
        logp, *grads = op(*forward.inputs)
    else:  # the kernel reads g[n] for every point: a broadcast g is made a vector
        logp = forward.outputs[0]
        g = _float64(g)
        if g.ndim != 1 or g.type.shape[0] == 1 and logp.type.shape[0] != 1:
            g = pt.broadcast_to(g, logp.shape)
        logp, *grads = op(*forward.inputs, g)
    return {forward.outputs[0]: logp, **dict(zip(node.outputs, grads))}


# ---------------------------------------------------------------- numpy (Python linker)
def _forward_numpy(X, log_w, mu, L, diagonal):
    K, D = mu.shape
    resid = X.T[None, :, :] - mu[:, :, None]  # (K, D, N)
    diag = np.diagonal(L, axis1=1, axis2=2)  # (K, D)
    if diagonal:
        z = resid / diag[:, :, None]
    else:  # forward substitution, all points and components at once
        z = np.empty_like(resid)
        for i in range(D):
            z[:, i] = (resid[:, i] - np.einsum("kjn,kj->kn", z[:, :i], L[:, i, :i])) \
                / diag[:, i, None]
    const = log_w - D * _HALF_LOG_2PI - np.log(np.abs(diag)).sum(axis=1)
    joint = const[:, None] - 0.5 * np.einsum("kdn,kdn->kn", z, z)
    top = joint.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    scaled = np.exp(joint - top)
    total = scaled.sum(axis=0)
    with np.errstate(divide="ignore"):
        logp = np.log(total) + top
    resp = scaled / np.where(total > 0, total, 1.0)
    return logp, resp, z


def _backward_numpy(g, resp, z, L, diagonal):
    D = L.shape[1]
    weighted = resp * g  # (K, N)
    n_k = weighted.sum(axis=1)
    s = np.einsum("kn,kdn->kd", weighted, z)
    S = np.einsum("kn,kin,kjn->kij", weighted, z, z)
    inner = S - n_k[:, None, None] * np.eye(D)
    diag = np.diagonal(L, axis1=1, axis2=2)
    if diagonal:
        g_L = np.zeros_like(L)
        idx = np.arange(D)
        g_L[:, idx, idx] = np.diagonal(inner, axis1=1, axis2=2) / diag
        return n_k, s / diag, g_L
    Lt = np.swapaxes(np.tril(L), 1, 2)  # solve L^T a = b (upper triangular)
    g_mu = np.linalg.solve(Lt, s[:, :, None])[:, :, 0]
    g_L = np.tril(np.linalg.solve(Lt, inner))
    return n_k, g_mu, g_L


# ---------------------------------------------------------------- numba (NUTS, nutpie)
# exp and log, vectorisable. pip's llvmlite has no vector math library, so numba
# calls the scalar libm functions, and the ~K N exponentials and N logarithms of
# an evaluation were over half its time. These loops use only arithmetic and
# integer operations on the floats' bits (reinterpreted in place by the two
# intrinsics below, so each function is one pass), which LLVM turns into SIMD
# code. They must not be compiled with the "reassoc" fast-math flag (it would
# cancel the rounding trick ``(y + MAGIC) - MAGIC``), so they carry their own flags.
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: y + _MAGIC rounds y to an integer
_MAGIC_BITS = int(np.float64(_MAGIC).view(np.int64))
_LOG2_E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 = _LN2_HI + _LN2_LO, _LN2_HI exact in 32 bits
_LN2_LO = 1.90821492927058770002e-10
_MANTISSA = (1 << 52) - 1
_EXPONENT = 0x7FF << 52
_EXPONENT_ONE = 1023 << 52
_SQRT_2 = math.sqrt(2.0)
_EXP_MIN = -708.0  # exp(_EXP_MIN) is still a normal number; below it exp returns 0
# Polynomials: Chebyshev fits (mpmath.chebyfit, 50 digits), lowest degree first.
# exp(r) on |r| <= ln(2)/2, degree 11: error 3.2e-18.
_EXP_POLY = (1.0, 1.0, 0.50000000000000183855, 0.16666666666666680806,
             0.041666666666488095495, 0.0083333333333196006109, 0.0013888888952314774652,
             0.00019841269890047113707, 0.000024801485482328492419, 2.7557240918578969823e-6,
             2.7632639639041029749e-7, 2.5110037605963777712e-8)
# (2 atanh(s) - 2 s) / s**3 in z = s**2 for |s| <= (sqrt(2) - 1) / (sqrt(2) + 1), degree 6:
# error 3.1e-16, so 4.6e-18 relative in the logarithm.
_LOG_POLY = (0.66666666666666696862, 0.3999999999989950449, 0.28571428625975484921,
             0.22222211134795079855, 0.1818288912526172208, 0.15331721600556041269,
             0.1461644968504340586)


@intrinsic
def _bits(typingctx, x):
    """The 64 bits of a double as an int64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return numba_types.int64(numba_types.float64), codegen


@intrinsic
def _double(typingctx, x):
    """An int64's 64 bits as a double (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return numba_types.float64(numba_types.int64), codegen


@numba_basic.numba_njit(inline="always")
def _aligned_empty(n):
    """A new float64 array of ``n`` entries starting on a 64-byte boundary.

    numba aligns its arrays to 32 bytes; with 64-byte vectors (AVX-512) half of
    the loads of a row starting mid-line span two cache lines, which made the
    whitening pass 1.5 times slower and the timings depend on each process's luck.
    """
    buffer = np.empty(n + 7)
    start = (-(buffer.ctypes.data >> 3)) & 7
    return buffer[start:start + n]


@intrinsic
def _unmanaged(typingctx, array):
    """The same array (data, shape, strides) without numba's memory manager.

    Views of it are not reference-counted (numba's counts are atomic operations,
    tens of them per evaluation otherwise). The caller keeps the owner alive: an
    input of the kernel, an output it returns, or a buffer passed to
    :func:`_keep_alive` after its last use.
    """
    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, value=args[0])
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=source.data, shape=source.shape, strides=source.strides,
                       itemsize=source.itemsize, meminfo=None)
        return out._getvalue()
    return array(array), codegen


@intrinsic
def _keep_alive(typingctx, array):
    """A use of ``array`` that does nothing: numba releases it after this point."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    return numba_types.none(array), codegen


@numba_basic.numba_njit(inline="always")
def _rows(buffer, first, count, row):
    """Rows ``first .. first + count`` of a flat ``buffer`` as a (count, row) array."""
    return buffer[first * row:(first + count) * row].reshape((count, row))


def _math_kernels():
    njit = numba_basic.numba_njit
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11 = _EXP_POLY
    q0, q1, q2, q3, q4, q5, q6 = _LOG_POLY

    @njit(fastmath={"contract"}, error_model="numpy")
    def exp_columns(x, top, total, N):
        """``x[k, n] = exp(x[k, n] - top[n])`` and ``total[n] = sum_k x[k, n]``, n < N.

        For ``x <= top`` (2-D and 1-D, contiguous), to 2 ulp; NaN stays NaN.
        ``exp(y) = 2**j exp(r)`` with ``j = round(y / ln 2)``, ``|r| <= ln(2) / 2``
        and ``exp(r)`` a polynomial in Estrin's form (short dependency chains);
        ``y / ln 2 + _MAGIC`` holds ``j`` in its low bits, from which ``2**j`` is
        built as a double's exponent.
        """
        K = x.shape[0]
        for k in range(K):
            xk = x[k]
            for n in range(N):
                y = xk[n] - top[n]
                v = max(y, _EXP_MIN)
                shifted = v * _LOG2_E + _MAGIC
                j = shifted - _MAGIC
                r = (v - j * _LN2_HI) - j * _LN2_LO
                r2 = r * r
                r4 = r2 * r2
                p = ((e0 + e1 * r) + (e2 + e3 * r) * r2) \
                    + ((e4 + e5 * r) + (e6 + e7 * r) * r2) * r4 \
                    + ((e8 + e9 * r) + (e10 + e11 * r) * r2) * (r4 * r4)
                e = p * _double((_bits(shifted) - _MAGIC_BITS + 1023) << 52)
                e = 0.0 if y < _EXP_MIN else e  # 0 below the range; NaN fails the test
                xk[n] = e
                if k == 0:
                    total[n] = e
                else:
                    total[n] += e

    @njit(fastmath={"contract"}, error_model="numpy")
    def log_positive(x, out, N):
        """``out[:N] = log(x[:N])`` for ``x >= 0`` (1-D, contiguous, normal or 0), to 2 ulp.

        ``x = 2**e m`` with ``m`` in [sqrt(2)/2, sqrt(2)); ``log m = 2 atanh(s)``,
        ``s = (m - 1) / (m + 1)``, ``|s| < 0.172``.
        """
        for i in range(N):
            v = x[i]
            b = _bits(v)  # masked first: a logical shift, which vectorises
            e = _double((((b & _EXPONENT) >> 52) - 1023) + _MAGIC_BITS) - _MAGIC
            m = _double((b & _MANTISSA) | _EXPONENT_ONE)  # in [1, 2)
            big = m > _SQRT_2
            m = 0.5 * m if big else m
            e = e + 1.0 if big else e
            s = (m - 1.0) / (m + 1.0)
            z = s * s
            w = z * z
            q = (q0 + q2 * w + (q4 + q6 * w) * (w * w)) + z * (q1 + q3 * w + q5 * (w * w))
            # 0 or NaN: a select, not a branch, so that the loop vectorises
            out[i] = e * _LN2_HI + (s * (2.0 + z * q) + e * _LN2_LO) if v > 0.0 else (
                -np.inf if v == 0.0 else np.nan)

    return exp_columns, log_positive


# The passes over the points for one component are written out for the number of
# features D (the Ops' ``n_features``): the running sums of the gradient then live
# in registers, and one pass does the work of many. Two details keep every loop
# vectorised: the point index is unsigned (numba wraps negative signed indices, and
# LLVM cannot then prove the rows of z apart), and a pass is capped in size (a few
# rows of z, a few running sums), past which the registers spill.
_WHITEN_ROWS = 3  # rows of z per pass of the whitening
_STATS_SUMS = 10  # running sums per pass of the gradient statistics


def _row_groups(D, size):
    """Consecutive rows ``[i, j)`` of ``range(D)``, each of ``size(i, j)`` at most 1."""
    groups, i = [], 0
    while i < D:
        j = i + 1
        while j < D and size(i, j + 1) <= 1:
            j += 1
        groups.append((i, j))
        i = j
    return groups


def _whiten_source(D, diagonal):
    """``whiten(N, Xt, mu_k, L_k, c, z_k, q, top, top_out)``: z_k = L_k^-1 (x - mu_k) for
    the N points, ``q = c - |z|^2 / 2`` (the joint log-density), ``top_out = max(top, q)``.

    ``top_out`` is not ``top``: LLVM turns a maximum stored back in place into a
    masked store, which AMD processors execute slowly (it doubled this pass)."""
    lines = ["def whiten(N, X, m, L, c, z, q, top, top_out):", "    N = np.uint64(N)"]
    for i in range(D):
        lines.append(f"    m{i} = m[{i}]; v{i} = 1.0 / L[{i}, {i}]; x{i} = X[{i}]; z{i} = z[{i}]")
        lines += [] if diagonal else [f"    l{i}_{j} = L[{i}, {j}]" for j in range(i)]
    groups = _row_groups(D, lambda i, j: (j - i) / _WHITEN_ROWS)
    for i0, i1 in groups:
        lines.append("    for n in range(N):")
        for i in range(i0, i1):  # rows before the pass are read back, rows in it are at hand
            terms = "" if diagonal else "".join(
                f" - l{i}_{j} * " + (f"z{j}[n]" if j < i0 else f"a{j}") for j in range(i))
            lines += [f"        a{i} = (x{i}[n] - m{i}{terms}) * v{i}", f"        z{i}[n] = a{i}"]
        squares = " + ".join(["q[n]"] * (i0 > 0) + [f"a{i} * a{i}" for i in range(i0, i1)])
        if i1 < D:
            lines.append(f"        q[n] = {squares}")
        else:
            lines += [f"        u = c - 0.5 * ({squares})", "        q[n] = u",
                      "        top_out[n] = max(top[n], u)"]
    return "\n".join(lines)


def _stats_source(D, diagonal):
    """``stats(N, g, r_k, z_k, s_k, S_k, w)``: N_k (returned), ``s_k = sum_n w_n z_n`` and
    the lower triangle (diagonal) of ``S_k = sum_n w_n z_n z_n^T``, ``w = g r_k``, n < N."""
    def columns(i):
        return [i] if diagonal else list(range(i + 1))

    groups = _row_groups(D, lambda i, j: (
        (i == 0) + sum(1 + len(columns(r)) for r in range(i, j))) / _STATS_SUMS)
    lines = ["def stats(N, g, r, z, s, S, w):", "    N = np.uint64(N)", "    t = 0.0"]
    lines += [f"    z{i} = z[{i}]" for i in range(D)]
    for i0, i1 in groups:
        sums = [f"b{i}" for i in range(i0, i1)] + [
            f"c{i}_{j}" for i in range(i0, i1) for j in columns(i)]
        lines += ["    " + " = ".join(sums) + " = 0.0", "    for n in range(N):"]
        if i0 == 0:  # the first pass forms the weights, the others read them back
            lines += ["        u = g[n] * r[n]", "        t += u"]
            lines += ["        w[n] = u"] * (i1 < D)
        else:
            lines.append("        u = w[n]")
        read = sorted({j for i in range(i0, i1) for j in columns(i)})
        lines += [f"        y{j} = z{j}[n]" for j in read]
        for i in range(i0, i1):
            lines += [f"        u{i} = u * y{i}", f"        b{i} += u{i}"]
            lines += [f"        c{i}_{j} += u{i} * y{j}" for j in columns(i)]
        for i in range(i0, i1):
            lines.append(f"    s[{i}] = b{i}")
            lines += [f"    S[{i}, {j}] = c{i}_{j}" for j in columns(i)]
    lines.append("    return t")
    return "\n".join(lines)


def _compile_source(source, name):
    namespace = {"np": np}
    exec(compile(source, f"<bayesgmm {name}>", "exec"), namespace)
    return numba_basic.numba_njit(error_model="numpy")(namespace[name])


def _numba_kernels(diagonal, n_features):
    """The kernels for D = ``n_features`` (forward, backward, value and unit gradient,
    value and weighted gradient);
    every inner loop runs over contiguous points."""
    D = n_features
    exp_columns, log_positive = _math_kernels()
    whiten = _compile_source(_whiten_source(D, diagonal), "whiten")
    stats = _compile_source(_stats_source(D, diagonal), "stats")
    njit = numba_basic.numba_njit

    @njit(error_model="numpy", inline="always")
    def unnormalised(X, log_w, mu, L, Xt, z, exps, tops, total, logp):
        """Fills ``logp`` with log p(x_n), ``exps`` with exp(l_nk - max_k l_nk), ``total``
        with their reciprocal sums over k and ``z`` with the whitened residuals, for
        the N points; ``Xt`` (D, >= N) and ``tops`` (2, >= N) are scratch."""
        N = X.shape[0]
        K = log_w.shape[0]
        mu, L = _unmanaged(mu), _unmanaged(L)
        for i in range(D):
            xi = Xt[i]
            for n in range(N):
                xi[n] = X[n, i]
        for n in range(N):
            tops[0, n] = -np.inf
        for k in range(K):
            c = log_w[k] - D * _HALF_LOG_2PI
            for i in range(D):
                c -= np.log(np.abs(L[k, i, i]))
            whiten(N, Xt, mu[k], L[k], c, z[k], exps[k], tops[k % 2], tops[1 - k % 2])
        top, last = tops[1 - K % 2], tops[K % 2]
        for n in range(N):  # -inf: every component has weight zero at this point
            top[n] = last[n] if last[n] > -np.inf else 0.0
        exp_columns(exps, top, total, N)
        log_positive(total, logp, N)
        for n in range(N):
            logp[n] += top[n]
            total[n] = 1.0 / total[n] if total[n] > 0.0 else 1.0

    @njit(error_model="numpy")
    def forward(X, log_w, mu, L):
        N, K = X.shape[0], log_w.shape[0]
        logp, resp, z = _aligned_empty(N), np.empty((K, N)), np.empty((K, D, N))
        scratch = _aligned_empty((D + 3) * N)
        base = _unmanaged(scratch)
        Xt, tops, total = _rows(base, 0, D, N), _rows(base, D, 2, N), base[(D + 2) * N:]
        unnormalised(X, log_w, mu, L, Xt, _unmanaged(z), _unmanaged(resp), tops, total, logp)
        for k in range(K):
            for n in range(N):
                resp[k, n] *= total[n]
        _keep_alive(scratch)
        return logp, resp, z

    @njit(error_model="numpy")
    def backward(g, resp, z, L):
        K = z.shape[0]
        n_k, s, S = np.empty(K), np.empty((K, D)), np.zeros((K, D, D))
        w = _aligned_empty(g.shape[0])
        statistics(g, _unmanaged(resp), _unmanaged(z), g.shape[0], n_k, s, S, w)
        return finish(n_k, s, S, L)

    def value_and_gradient_kernel(weighted):
        """The value-and-gradient kernel, unweighted or weighted by ``g`` (a constant of
        the closure: the unweighted kernel never reads ``g``)."""
        return njit(error_model="numpy", inline="always")(
            lambda X, log_w, mu, L, g: value_and_gradient_body(X, log_w, mu, L, g, weighted))

    @njit(error_model="numpy", inline="always")
    def value_and_gradient_body(X, log_w, mu, L, g, weighted):
        N, K = X.shape[0], log_w.shape[0]
        # One scratch buffer, carved into arrays that numba does not reference-count
        # (kept alive to the end): each view numba counts costs atomic operations.
        # Rows padded to whole 64-byte lines, so that every row starts on one.
        row = (N + 7) & ~7
        scratch = _aligned_empty((D + K * D + K + 4) * row)
        base = _unmanaged(scratch)
        Xt = _rows(base, 0, D, row)
        z = _rows(base, D, K * D, row).reshape((K, D, row))
        exps = _rows(base, D + K * D, K, row)
        tops = _rows(base, D + K * D + K, 2, row)
        rest = _rows(base, D + K * D + K + 2, 2, row)
        total, w = rest[0], rest[1]
        logp = _aligned_empty(N)
        unnormalised(X, log_w, mu, L, Xt, z, exps, tops, total, logp)
        # the responsibilities are exps / total: weighting the unnormalised exps
        # by 1 / total gives the unit-weight statistics without normalising, by
        # g / total the weighted ones
        if weighted:
            for n in range(N):
                total[n] *= g[n]
        n_k, s, S = np.empty(K), np.empty((K, D)), np.zeros((K, D, D))
        statistics(total, exps, z, N, n_k, s, S, w)
        _keep_alive(scratch)
        return (logp,) + finish(n_k, s, S, L)

    @njit(error_model="numpy", inline="always")
    def statistics(g, resp, z, N, n_k, s, S, w):
        s_, S_ = _unmanaged(s), _unmanaged(S)
        for k in range(z.shape[0]):
            n_k[k] = stats(N, g, resp[k], z[k], s_[k], S_[k], w)

    @njit(error_model="numpy", inline="always")
    def finish(n_k, s, S, L):
        """The gradients from the statistics, in place: ``s`` becomes ``L^-T s`` and
        the lower triangle of ``S``, ``tril(L^-T (S - N I))`` (its upper triangle,
        never written by ``stats``, stays 0)."""
        K = n_k.shape[0]
        for k in range(K):
            for i in range(D):
                S[k, i, i] -= n_k[k]
            if diagonal:
                for i in range(D):
                    s[k, i] /= L[k, i, i]
                    S[k, i, i] /= L[k, i, i]
                continue
            # back substitution with L^T (upper triangular), from the last row up;
            # column c of the lower triangle needs rows c..D-1 only
            for i in range(D - 1, -1, -1):
                v = s[k, i]
                for j in range(i + 1, D):
                    v -= L[k, j, i] * s[k, j]
                s[k, i] = v / L[k, i, i]
            for c in range(D):
                for i in range(D - 1, c - 1, -1):
                    v = S[k, i, c]
                    for j in range(i + 1, D):
                        v -= L[k, j, i] * S[k, j, c]
                    S[k, i, c] = v / L[k, i, i]
        return n_k, s, S

    unit_kernel, weighted_kernel = value_and_gradient_kernel(False), value_and_gradient_kernel(True)

    @njit(error_model="numpy")
    def value_and_gradient(X, log_w, mu, L):
        return unit_kernel(X, log_w, mu, L, log_w)  # g is not read

    @njit(error_model="numpy")
    def weighted_value_and_gradient(X, log_w, mu, L, g):
        return weighted_kernel(X, log_w, mu, L, g)

    return forward, backward, value_and_gradient, weighted_value_and_gradient


def kernel_version(module=__name__):
    """An integer that changes whenever a module's source (its kernels') does.

    PyTensor caches compiled kernels on disk under a key made of the Op's type and
    properties; this salt keeps an upgraded bayesgmm from loading stale kernels.
    """
    source = inspect.getsource(sys.modules[module]).encode()
    return int.from_bytes(hashlib.sha256(source).digest()[:7], "big")


@numba_basic.register_funcify_default_op_cache_key(MixtureLogDensity)
def _numba_funcify_mixture_log_density(op, node=None, **kwargs):
    return _numba_kernels(op.diagonal, op.n_features)[0], kernel_version()


@numba_basic.register_funcify_default_op_cache_key(MixtureLogDensityGrad)
def _numba_funcify_mixture_log_density_grad(op, node=None, **kwargs):
    return _numba_kernels(op.diagonal, op.n_features)[1], kernel_version()


@numba_basic.register_funcify_default_op_cache_key(MixtureLogDensityValueGrad)
def _numba_funcify_mixture_log_density_value_grad(op, node=None, **kwargs):
    return _numba_kernels(op.diagonal, op.n_features)[3 if op.weighted else 2], kernel_version()
