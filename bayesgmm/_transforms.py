"""Two of PyMC's transforms as PyTensor Ops with analytic gradients.

Written as PyTensor graphs, the transforms of the weights and the correlation
factors, with their gradients, were 59 of the 127 nodes of a three-component
model's log-density and gradient and over a third of its 28 µs. Here each is one
numba kernel forward and one backward. The
transforms are PyMC's, with its ``forward`` and value variable names: the same
map and the same Jacobian, so the same posterior (the tests hold them together).
A graph rewrite (:func:`merge_transform_gradients`) makes the compiled gradient
call each gradient Op once, where PyMC's graph would call it once per use.

**Correlation factor** (:class:`FusedCholeskyCorr`, PyMC's ``CholeskyCorrTransform``).
An unconstrained vector ``y`` (``m = n (n - 1) / 2`` entries, in PyMC's "spiral"
order) gives the Cholesky factor ``L`` of a correlation matrix: row ``i`` of ``L``
is ``(y_i0, ..., y_i,i-1, 1, 0, ...)`` divided by its norm. With ``s_i = 1 +
sum_j<i y_ij^2``:

    L_ij = y_ij / sqrt(s_i),   L_ii = 1 / sqrt(s_i),   log L_ii = -log(s_i) / 2
    d/d y_ij [sum gL * L + sum g_ld * log diag L]
        = L_ii (gL_ij - L_ij (sum_k<=i gL_ik L_ik + g_ld_i))

and the log-Jacobian of ``y -> L`` is ``sum_i (i + 2) log L_ii`` (0-based ``i``).

**Weights** (:class:`FusedSimplex`, PyMC's ``SimplexTransform``). ``y`` (``K - 1``
entries) gives ``x = (y, -sum y)``, ``log w = x - logsumexp(x)``; the
log-Jacobian is ``log K + sum_k log w_k``. With ``G = g_logw + w * g_w``, the
gradient is ``g_x = G - w sum(G)``, ``g_y = g_x[:-1] - g_x[-1]``.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.transforms import CholeskyCorrTransform, SimplexTransform
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.tensor.rewriting.basic import register_canonicalize
from pytensor.tensor.type import TensorType

from ._fused import _float64, kernel_version

__all__ = ["FusedCholeskyCorr", "CorrCholesky", "CorrCholeskyGrad", "FusedSimplex", "Simplex",
           "SimplexGrad", "corr_cholesky_forward", "merge_transform_gradients",
           "simplex_forward", "spiral_index"]


def spiral_index(n):
    """Row and column in ``L`` of each entry of PyMC's unconstrained vector.

    PyMC fills the strictly lower triangle of ``L`` in "spiral" order (its
    ``_fill_triangular_spiral``); the tests check this against its transform.
    """
    m, n1 = n * (n - 1) // 2, n - 1
    order = np.arange(m)
    filled = np.concatenate([order[n1:], order[::-1]]).reshape(n1, n1)
    rows, cols = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64)
    for i in range(n1):
        for j in range(i + 1):
            rows[filled[i, j]], cols[filled[i, j]] = i + 1, j
    return rows, cols


def corr_cholesky_forward(L):
    """The unconstrained vector ``y`` of correlation factors ``L`` (..., n, n), in numpy:
    ``y_ij = L_ij / L_ii`` (the inverse of the map above)."""
    rows, cols = spiral_index(L.shape[-1])
    return L[..., rows, cols] / L[..., rows, rows]


def simplex_forward(w):
    """The unconstrained ``y`` of weights ``w`` (..., K), in numpy: the centred
    log-weights without their last entry."""
    log_w = np.log(w)
    return log_w[..., :-1] - log_w.mean(axis=-1, keepdims=True)


def _connected(cotangents, outputs):
    """The cotangents, with zeros for the outputs the cost does not depend on."""
    return [pt.zeros_like(out) if isinstance(g.type, DisconnectedType) else g
            for g, out in zip(cotangents, outputs)]


class _SizedOp(Op):
    __props__ = ("n",)

    def __init__(self, n):
        self.n = int(n)
        if self.n < 2:
            raise ValueError(f"a correlation factor needs n >= 2, got {self.n}")
        self.m = self.n * (self.n - 1) // 2
        self.rows, self.cols = spiral_index(self.n)


class CorrCholesky(_SizedOp):
    """``y (..., m) -> (L (..., n, n), log diag L (..., n))``."""

    def make_node(self, y):
        y = _float64(y)
        if y.ndim < 1 or y.type.shape[-1] not in (None, self.m):
            raise ValueError(f"CorrCholesky({self.n}) takes (..., {self.m}) vectors, "
                             f"got shape {y.type.shape}")
        batch = y.type.shape[:-1]
        return Apply(self, [y], [TensorType("float64", shape=(*batch, self.n, self.n))(),
                                 TensorType("float64", shape=(*batch, self.n))()])

    def infer_shape(self, node, shapes):
        batch = shapes[0][:-1]
        return [(*batch, self.n, self.n), (*batch, self.n)]

    def perform(self, node, inputs, output_storage):
        (y,) = inputs
        n = self.n
        L = np.zeros(y.shape[:-1] + (n, n))
        L[..., self.rows, self.cols] = y
        L[..., np.arange(n), np.arange(n)] = 1.0
        squared = (L * L).sum(axis=-1)  # s_i
        output_storage[0][0] = L / np.sqrt(squared)[..., None]
        output_storage[1][0] = -0.5 * np.log(squared)

    def pullback(self, inputs, outputs, cotangents):
        return [CorrCholeskyGrad(self.n)(outputs[0], *_connected(cotangents, outputs))]


class CorrCholeskyGrad(_SizedOp):
    """``(L, gL, g_ld) -> gy``: the gradient of ``sum gL * L + sum g_ld * log diag L``."""

    linear_in = (1, 2)  # the cotangent inputs; see merge_transform_gradients

    def make_node(self, L, g_L, g_ld):
        L, g_L, g_ld = (_float64(v) for v in (L, g_L, g_ld))
        return Apply(self, [L, g_L, g_ld],
                     [TensorType("float64", shape=(*L.type.shape[:-2], self.m))()])

    def infer_shape(self, node, shapes):
        return [(*shapes[0][:-2], self.m)]

    def perform(self, node, inputs, output_storage):
        L, g_L, g_ld = inputs
        n = self.n
        inner = (g_L * L).sum(axis=-1) + g_ld  # (..., n)
        diag = L[..., np.arange(n), np.arange(n)]
        g_y = diag[..., :, None] * (g_L - L * inner[..., :, None])
        output_storage[0][0] = np.ascontiguousarray(g_y[..., self.rows, self.cols])

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("second derivatives of the correlation transform are not "
                                  "implemented")


class FusedCholeskyCorr(CholeskyCorrTransform):
    """PyMC's ``CholeskyCorrTransform`` with a fused ``backward`` and ``log_jac_det``.

    Same map, same value variable name (``<name>_cholesky_corr__``), same
    Jacobian; ``forward`` (used once, for initial points) is PyMC's.
    """

    def backward(self, value, *inputs):
        return CorrCholesky(self.n)(value)[0]

    def log_jac_det(self, value, *inputs):
        log_diag = CorrCholesky(self.n)(value)[1]
        return pt.sum(np.arange(2.0, 2.0 + self.n) * log_diag, axis=-1)


class Simplex(Op):
    """``y (..., K - 1) -> (w (..., K), log w (..., K))``."""

    __props__ = ()

    def make_node(self, y):
        y = _float64(y)
        if y.ndim < 1:
            raise ValueError("Simplex takes (..., K - 1) vectors, got a scalar")
        last = y.type.shape[-1]
        shape = (*y.type.shape[:-1], None if last is None else last + 1)
        return Apply(self, [y], [TensorType("float64", shape=shape)(),
                                 TensorType("float64", shape=shape)()])

    def infer_shape(self, node, shapes):
        shape = (*shapes[0][:-1], shapes[0][-1] + 1)
        return [shape, shape]

    def perform(self, node, inputs, output_storage):
        (y,) = inputs
        x = np.concatenate([y, -y.sum(axis=-1, keepdims=True)], axis=-1)
        top = x.max(axis=-1, keepdims=True)
        scaled = np.exp(x - top)
        total = scaled.sum(axis=-1, keepdims=True)
        output_storage[0][0] = scaled / total
        output_storage[1][0] = x - (top + np.log(total))

    def pullback(self, inputs, outputs, cotangents):
        return [SimplexGrad()(outputs[0], *_connected(cotangents, outputs))]


class SimplexGrad(Op):
    """``(w, g_w, g_log_w) -> g_y``."""

    __props__ = ()
    linear_in = (1, 2)

    def make_node(self, w, g_w, g_log_w):
        w, g_w, g_log_w = (_float64(v) for v in (w, g_w, g_log_w))
        last = w.type.shape[-1]
        shape = (*w.type.shape[:-1], None if last is None else last - 1)
        return Apply(self, [w, g_w, g_log_w], [TensorType("float64", shape=shape)()])

    def infer_shape(self, node, shapes):
        return [(*shapes[0][:-1], shapes[0][-1] - 1)]

    def perform(self, node, inputs, output_storage):
        w, g_w, g_log_w = inputs
        G = g_log_w + w * g_w
        g_x = G - w * G.sum(axis=-1, keepdims=True)
        output_storage[0][0] = g_x[..., :-1] - g_x[..., -1:]

    def pullback(self, inputs, outputs, cotangents):
        raise NotImplementedError("second derivatives of the simplex transform are not "
                                  "implemented")


class FusedSimplex(SimplexTransform):
    """PyMC's ``SimplexTransform`` with a fused ``backward`` and ``log_jac_det``."""

    def backward(self, value, *inputs):
        return Simplex()(value)[0]

    def log_jac_det(self, value, *inputs):
        log_w = Simplex()(value)[1]
        return pt.log(pt.cast(log_w.shape[-1], "float64")) + pt.sum(log_w, axis=-1)


@register_canonicalize
@node_rewriter([pt.add])
def merge_transform_gradients(fgraph, node):
    """``G(w, a1, b1) + G(w, a2, b2) -> G(w, a1 + a2, b1 + b2)`` for a gradient Op ``G``.

    ``G`` is any single-output Op with a ``linear_in`` attribute: the positions of
    the inputs it is linear in (here ``SimplexGrad`` and ``CorrCholeskyGrad``).

    PyMC applies a transform's ``backward`` once for the prior, once for the
    Jacobian and once for each use of the variable; PyTensor merges the copies
    only after differentiating, which leaves one gradient Op per copy, summed.
    The gradients are linear in their cotangents (``linear_in``), so one call on
    the summed cotangents gives the same sum.
    """
    groups = {}
    for position, term in enumerate(node.inputs):
        owner = term.owner
        if (owner is not None and hasattr(owner.op, "linear_in") and len(owner.outputs) == 1
                and len(fgraph.clients[term]) == 1 and term.type == node.outputs[0].type):
            fixed = tuple(v for i, v in enumerate(owner.inputs) if i not in owner.op.linear_in)
            groups.setdefault((owner.op, fixed), []).append(position)
    groups = {key: positions for key, positions in groups.items() if len(positions) > 1}
    if not groups:
        return None
    merged, terms = set(), []
    for (op, _), positions in groups.items():
        owners = [node.inputs[p].owner for p in positions]
        inputs = [pt.add(*(o.inputs[i] for o in owners)) if i in op.linear_in else v
                  for i, v in enumerate(owners[0].inputs)]
        terms.append(op(*inputs))
        merged.update(positions)
    terms += [v for p, v in enumerate(node.inputs) if p not in merged]
    return [terms[0] if len(terms) == 1 else pt.add(*terms)]


# ---------------------------------------------------------------- numba
# Each kernel works on one factor (or one weight vector); the Ops' kernels apply it
# to an unbatched input, to the rows of a batch, or (more batch dimensions) to the
# rows of a reshaped copy. numba compiles one branch per input rank (its cache key
# includes the rank): the common ranks need no reshape, which costs numba tens of
# nanoseconds a call, about what these kernels' arithmetic takes.
def _kernels(n, rows, cols):
    njit = numba_basic.numba_njit
    m = n * (n - 1) // 2
    rows, cols = tuple(int(r) for r in rows), tuple(int(c) for c in cols)
    position = np.zeros((n, n), dtype=np.int64)  # entry of y of L's (i, j), j < i
    position[list(rows), list(cols)] = np.arange(m)

    @njit(error_model="numpy")
    def factor(y, L, log_diag):
        """One factor: ``y (m,)`` into ``L (n, n)`` (its upper triangle stays as it
        is, zeros) and ``log diag L (n,)``."""
        for e in range(m):
            L[rows[e], cols[e]] = y[e]
        for i in range(n):
            L[i, i] = 1.0
            s = 0.0
            for j in range(i + 1):
                s += L[i, j] * L[i, j]
            inv = 1.0 / np.sqrt(s)
            for j in range(i + 1):
                L[i, j] *= inv
            log_diag[i] = -0.5 * np.log(s)

    @njit(error_model="numpy")
    def factor_grad(L, g_L, g_ld, g_y):
        for i in range(1, n):
            inner = g_ld[i]
            for j in range(i + 1):
                inner += g_L[i, j] * L[i, j]
            for j in range(i):
                g_y[position[i, j]] = L[i, i] * (g_L[i, j] - L[i, j] * inner)

    @njit(error_model="numpy")
    def forward(y):
        if y.ndim == 1:
            L, log_diag = np.zeros((n, n)), np.empty(n)
            factor(y, L, log_diag)
            return L, log_diag
        if y.ndim == 2:
            B = y.shape[0]
            L, log_diag = np.zeros((B, n, n)), np.empty((B, n))
            for b in range(B):
                factor(y[b], L[b], log_diag[b])
            return L, log_diag
        flat = np.ascontiguousarray(y).reshape((-1, m))
        B = flat.shape[0]
        L, log_diag = np.zeros((B, n, n)), np.empty((B, n))
        for b in range(B):
            factor(flat[b], L[b], log_diag[b])
        return L.reshape(y.shape[:-1] + (n, n)), log_diag.reshape(y.shape[:-1] + (n,))

    @njit(error_model="numpy")
    def backward(L, g_L, g_ld):
        if L.ndim == 2:
            g_y = np.empty(m)
            factor_grad(L, g_L, g_ld, g_y)
            return g_y
        if L.ndim == 3:
            B = L.shape[0]
            g_y = np.empty((B, m))
            for b in range(B):
                factor_grad(L[b], g_L[b], g_ld[b], g_y[b])
            return g_y
        Lf = np.ascontiguousarray(L).reshape((-1, n, n))
        gf = np.ascontiguousarray(g_L).reshape((-1, n, n))
        gd = np.ascontiguousarray(g_ld).reshape((-1, n))
        B = Lf.shape[0]
        g_y = np.empty((B, m))
        for b in range(B):
            factor_grad(Lf[b], gf[b], gd[b], g_y[b])
        return g_y.reshape(L.shape[:-2] + (m,))

    return forward, backward


@numba_basic.register_funcify_default_op_cache_key(CorrCholesky)
def _numba_funcify_corr_cholesky(op, node=None, **kwargs):
    return _kernels(op.n, op.rows, op.cols)[0], kernel_version(__name__)


@numba_basic.register_funcify_default_op_cache_key(CorrCholeskyGrad)
def _numba_funcify_corr_cholesky_grad(op, node=None, **kwargs):
    return _kernels(op.n, op.rows, op.cols)[1], kernel_version(__name__)


def _simplex_kernels():
    njit = numba_basic.numba_njit

    @njit(error_model="numpy")
    def weights(y, w, log_w):
        """One vector: ``y (K - 1,)`` into ``w (K,)`` and ``log w (K,)``."""
        K = w.shape[0]
        last = 0.0
        for k in range(K - 1):
            log_w[k] = y[k]
            last -= y[k]
        log_w[K - 1] = last
        top = log_w[0]
        for k in range(1, K):
            top = max(top, log_w[k])
        total = 0.0
        for k in range(K):
            w[k] = np.exp(log_w[k] - top)
            total += w[k]
        shift = top + np.log(total)
        for k in range(K):
            log_w[k] -= shift
            w[k] /= total

    @njit(error_model="numpy")
    def weights_grad(w, g_w, g_log_w, g_y):
        K = w.shape[0]
        total = 0.0  # sum of G = g_log_w + w g_w
        for k in range(K):
            total += g_log_w[k] + w[k] * g_w[k]
        g_last = g_log_w[K - 1] + w[K - 1] * g_w[K - 1] - w[K - 1] * total
        for k in range(K - 1):
            g_y[k] = g_log_w[k] + w[k] * g_w[k] - w[k] * total - g_last

    @njit(error_model="numpy")
    def forward(y):
        K = y.shape[-1] + 1
        if y.ndim == 1:
            w, log_w = np.empty(K), np.empty(K)
            weights(y, w, log_w)
            return w, log_w
        B = 1
        for d in range(y.ndim - 1):  # not reshape(-1, 0): one component has K - 1 = 0
            B *= y.shape[d]
        flat = np.ascontiguousarray(y).reshape((B, K - 1))
        w, log_w = np.empty((B, K)), np.empty((B, K))
        for b in range(B):
            weights(flat[b], w[b], log_w[b])
        shape = y.shape[:-1] + (K,)
        return w.reshape(shape), log_w.reshape(shape)

    @njit(error_model="numpy")
    def backward(w, g_w, g_log_w):
        K = w.shape[-1]
        if w.ndim == 1:
            g_y = np.empty(K - 1)
            weights_grad(w, g_w, g_log_w, g_y)
            return g_y
        wf = np.ascontiguousarray(w).reshape((-1, K))
        gw = np.ascontiguousarray(g_w).reshape((-1, K))
        gl = np.ascontiguousarray(g_log_w).reshape((-1, K))
        B = wf.shape[0]
        g_y = np.empty((B, K - 1))
        for b in range(B):
            weights_grad(wf[b], gw[b], gl[b], g_y[b])
        return g_y.reshape(w.shape[:-1] + (K - 1,))

    return forward, backward


@numba_basic.register_funcify_default_op_cache_key(Simplex)
def _numba_funcify_simplex(op, node=None, **kwargs):
    return _simplex_kernels()[0], kernel_version(__name__)


@numba_basic.register_funcify_default_op_cache_key(SimplexGrad)
def _numba_funcify_simplex_grad(op, node=None, **kwargs):
    return _simplex_kernels()[1], kernel_version(__name__)
