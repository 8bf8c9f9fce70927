"""The fused transforms against PyMC's graphs and finite differences."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.distributions.transforms import CholeskyCorrTransform
from pymc.logprob.transforms import SimplexTransform

from bayesgmm import build_model
from bayesgmm._transforms import (CorrCholesky, CorrCholeskyGrad, FusedCholeskyCorr, FusedSimplex,
                                   SimplexGrad, spiral_index)


def _functions(transform, shape, out_shape, mode):
    """The constrained value, log|J| and the gradient of a test objective, from y.

    The objective uses the value as the likelihood does (``sum(w * value)``) and
    as the prior does (the log-diagonal of a correlation factor, the log of
    the weights), plus the log-Jacobian.
    """
    # no static shapes: fewer distinct graphs to compile
    y = pt.tensor("y", shape=(None,) * len(shape), dtype="float64")
    w = pt.tensor("w", shape=(None,) * len(out_shape), dtype="float64")
    value, log_jac = transform.backward(y), transform.log_jac_det(y)
    logs = (pt.log(pt.diagonal(value, axis1=-2, axis2=-1)) if value.ndim > y.ndim
            else pt.log(value))
    objective = (pt.sum(w * value) + pt.sum(log_jac)
                 + pt.sum(logs * np.arange(3.0, 3.0 + out_shape[-1])))
    values = pytensor.function([y, w], [value, log_jac, pt.grad(objective, y)], mode=mode)
    return values, pytensor.function([y, w], objective, mode=mode)


def _check_against(expected_transform, fused_transform, y, w, mode):
    # PyMC's graph under the Python linker is the reference: in the numba
    # backend (PyTensor 3.3.7) CholeskyCorrTransform's gradient comes out wrong
    # when L is also an output of the function
    expected, _ = _functions(expected_transform, y.shape, w.shape, "FAST_COMPILE")
    fused, objective = _functions(fused_transform, y.shape, w.shape, mode)
    for got, want in zip(fused(y, w), expected(y, w)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    step = 1e-6
    directions = np.eye(y.size).reshape((y.size,) + y.shape) * step
    finite = np.array([(objective(y + h, w) - objective(y - h, w)) / (2 * step)
                       for h in directions]).reshape(y.shape)
    np.testing.assert_allclose(fused(y, w)[2], finite, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("batch", [(), (4,)])
def test_spiral_index_is_pymcs_fill_order(n, batch):
    m = n * (n - 1) // 2
    y = np.random.default_rng(n).normal(size=batch + (m,))
    L = CholeskyCorrTransform(n).backward(pt.as_tensor(y)).eval()
    rows, cols = spiral_index(n)
    raw = np.zeros(batch + (n, n))
    raw[..., rows, cols] = y
    raw[..., np.arange(n), np.arange(n)] = 1.0
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=-1, keepdims=True), L,
                               rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_fused_transform_equals_pymcs(mode, n, batch):
    rng = np.random.default_rng(10 * n + len(batch))
    shape = batch + (n * (n - 1) // 2,)
    y = rng.normal(size=shape) * 2.0
    y.flat[0] = 25.0  # a correlation near 1
    w = rng.normal(size=batch + (n, n))
    _check_against(CholeskyCorrTransform(n), FusedCholeskyCorr(n), y, w, mode)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize("K", [1, 2, 3, 8])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_fused_simplex_equals_pymcs(mode, K, batch):
    rng = np.random.default_rng(10 * K + len(batch))
    y = rng.normal(size=batch + (K - 1,)) * 3.0
    if K > 1:
        y.flat[0] = -30.0  # a weight near 0
    _check_against(SimplexTransform(), FusedSimplex(), y, rng.normal(size=batch + (K,)), mode)


def test_transform_round_trip_and_bad_shapes():
    L = np.linalg.cholesky(np.array([[1.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 1.0]]))
    transform = FusedCholeskyCorr(3)
    y = transform.forward(pt.as_tensor(L)).eval()
    np.testing.assert_allclose(transform.backward(pt.as_tensor(y)).eval(), L, atol=1e-14)
    with pytest.raises(ValueError, match=r"takes \(\.\.\., 3\) vectors"):
        CorrCholesky(3)(pt.vector("y", shape=(2,)))
    with pytest.raises(ValueError, match="n >= 2"):
        CorrCholesky(1)


def test_models_use_the_fused_transforms():
    X = np.random.default_rng(0).normal(size=(30, 2))
    for covariance_type in ("full", "tied", "diag"):
        model = build_model(X, 2, covariance_type=covariance_type)
        fused = {"weights": (FusedSimplex, "weights_simplex__")}
        if covariance_type != "diag":
            fused["corr_chol"] = (FusedCholeskyCorr, "corr_chol_cholesky_corr__")
        for name, (kind, value_name) in fused.items():
            assert isinstance(model.rvs_to_transforms[model[name]], kind)
            assert model.rvs_to_values[model[name]].name == value_name


def _count_ops(function, kinds):
    return sum(isinstance(node.op, kinds) for node in function.maker.fgraph.apply_nodes)


@pytest.mark.parametrize("transform, shape, out_shape", [(FusedSimplex(), (4,), (5,)),
                                                         (FusedCholeskyCorr(3), (2, 3), (2, 3, 3))])
def test_gradients_of_repeated_backwards_are_merged(transform, shape, out_shape):
    # _functions applies backward and log_jac_det apart, as PyMC does;
    # the compiled gradient calls the gradient Op once, on summed cotangents
    # (the values are checked against PyMC's in the tests above)
    values, _ = _functions(transform, shape, out_shape, "NUMBA")
    assert _count_ops(values, (SimplexGrad, CorrCholeskyGrad)) == 1
    without = pytensor.compile.mode.get_mode("NUMBA").excluding("merge_transform_gradients")
    unmerged, _ = _functions(transform, shape, out_shape, without)
    assert _count_ops(unmerged, (SimplexGrad, CorrCholeskyGrad)) == 2


def test_model_gradient_calls_each_transform_gradient_once():
    X = np.random.default_rng(0).normal(size=(30, 2))
    model = build_model(X, 3, covariance_type="full")
    function = model.logp_dlogp_function(ravel_inputs=True)._pytensor_function
    assert _count_ops(function, SimplexGrad) == 1
    assert _count_ops(function, CorrCholeskyGrad) == 1
