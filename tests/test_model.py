"""The PyMC graph, without sampling: shapes, distributions, log-density."""

import os

import numpy as np
import pymc as pm
import pytensor
import pytest

from bayesgmm import GaussianMixtureEM, build_model, datasets
from bayesgmm.priors import LKJ, Dirichlet, GMMPriors, InverseGamma

from .conftest import COVARIANCE_TYPES


def op_name(model, name):
    return type(model[name].owner.op).__name__


@pytest.mark.parametrize(
    ("cov_type", "expected"),
    [
        ("full", {"variances": (3, 2), "corr_chol": (3, 2, 2)}),
        ("tied", {"variances": (2,), "corr_chol": (2, 2)}),
        ("diag", {"variances": (3, 2)}),
        ("spherical", {"variances": (3,)}),
    ],
)
def test_shapes_and_distributions(faithful, cov_type, expected):
    model = build_model(faithful, 3, covariance_type=cov_type)
    shapes = {k: tuple(int(s) for s in v) for k, v in model.eval_rv_shapes().items()}
    assert shapes["weights"] == (3,)
    assert shapes["means"] == (3, 2)
    for name, shape in expected.items():
        assert shapes[name] == shape
    assert "Dirichlet" in op_name(model, "weights")
    assert "Normal" in op_name(model, "means")
    for name in expected:
        assert ("LKJCorr" if "corr" in name else "InvGamma") in op_name(model, name)
    sds = "sds" if "corr_chol" in expected else "sigmas"  # the variances' square roots
    assert model[sds] in model.deterministics
    assert model.named_vars_to_dims["means"] == ("component", "feature")
    assert list(model.coords["feature"]) == ["eruptions", "waiting"]
    assert model.named_vars_to_dims["obs"] == ("obs_id", "feature")
    assert model["X"] in model.data_vars
    assert [v.name for v in model.free_RVs][:2] == ["weights", "means"]


def test_inverse_gamma_variances():
    model = build_model(datasets.load_galaxies(), 4,
                        priors=GMMPriors(covariance=InverseGamma(2.0, 1e6)))
    assert "InvGamma" in op_name(model, "variances")
    assert tuple(int(s) for s in model.eval_rv_shapes()["variances"]) == (4, 1)


@pytest.mark.parametrize(("cov_type", "shape"), [("full", (3, 2)), ("tied", (2,))])
def test_inverse_gamma_variances_under_lkj(faithful, cov_type, shape):
    """LKJ(sd=InverseGamma) puts the inverse-gamma on the diagonal variances; the sds
    are their square roots and the correlations keep the LKJ prior."""
    from scipy import stats

    priors = GMMPriors(covariance=LKJ(2.0, sd=InverseGamma(3.0, [2.0, 50.0])))
    model = build_model(faithful, 3, covariance_type=cov_type, priors=priors)
    assert "InvGamma" in op_name(model, "variances") and "sds" not in [v.name for v in model.free_RVs]
    assert "LKJCorr" in op_name(model, "corr_chol")
    assert tuple(int(s) for s in model.eval_rv_shapes()["variances"]) == shape
    variances = np.broadcast_to([0.3, 40.0], shape)
    fixed = pm.do(model, {"variances": variances})
    got = float(pytensor.function([], fixed["sds"])()[..., 1].ravel()[0])
    assert got == pytest.approx(np.sqrt(40.0))
    logp = model.compile_logp(vars=[model["variances"]], jacobian=False)
    point = model.initial_point()
    point["variances_log__"] = np.log(variances)
    expected = stats.invgamma.logpdf(variances, 3.0, scale=np.broadcast_to([2.0, 50.0], shape))
    assert logp(point) == pytest.approx(expected.sum(), rel=1e-10)


def point_for(model, em, cov_type):
    """The EM parameters as values of the model's free variables."""
    struct = em._structure
    K, D = em.means_.shape
    full = struct.to_full(em.covariances_, K, D)
    values = {"weights": em.weights_, "means": em.means_}
    sds = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    if cov_type in ("full", "tied") and D > 1:
        corr_chol = np.linalg.cholesky(full) / sds[:, :, None]
        values["sds"], values["corr_chol"] = (sds, corr_chol) if cov_type == "full" \
            else (sds[0], corr_chol[0])
    else:
        values["sigmas"] = {"spherical": sds[:, 0], "tied": sds[0]}.get(cov_type, sds)
    return values


def obs_logp(model, values):
    fixed = pm.do(model, values)
    return float(pytensor.function([], fixed.logp(vars=[fixed["obs"]]))())


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_log_likelihood_equals_em(faithful, cov_type):
    em = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0).fit(faithful)
    model = build_model(faithful, 3, covariance_type=cov_type)
    got = obs_logp(model, point_for(model, em, cov_type))
    assert got == pytest.approx(em.score(faithful) * len(faithful), rel=1e-8)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_one_dimensional_log_likelihood_equals_em(cov_type):
    X = datasets.load_galaxies()
    em = GaussianMixtureEM(3, covariance_type=cov_type, n_init=3, random_state=0).fit(X)
    model = build_model(X, 3, covariance_type=cov_type)
    got = obs_logp(model, point_for(model, em, cov_type))
    assert got == pytest.approx(em.log_likelihood_, rel=1e-8)


def test_ordered_means_constraint(faithful):
    """Any point of the sampler's unconstrained space maps to ordered means."""
    model = build_model(faithful, 3, order_by="waiting")
    [means] = model.replace_rvs_by_values([model["means"]])
    inputs = [v for v in model.value_vars if v.name.startswith("means_")]
    assert {v.name for v in inputs} == {"means_ordered_ordered__", "means_rest"}
    means_fn = pytensor.function(inputs, means)
    rng = np.random.default_rng(1)
    for _ in range(20):
        values = means_fn(*(rng.normal(size=(3,) if "ordered" in v.name else (3, 1)) * 3
                            for v in inputs))
        assert np.all(np.diff(values[:, 1]) > 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1"),
        ({"covariance_type": "VEW"}, "covariance_type must be one of"),
        ({"covariance_type": "VEV"}, "VEV.*fitted by EM only.*full"),
        ({"priors": GMMPriors(weights=Dirichlet([1, 1]))}, r"Dirichlet alpha has shape \(2,\)"),
        ({"order_by": "height"}, r"order_by must be one of the features \['eruptions'"),
        ({"order_by": 1.7}, r"order_by must be a feature name .* or an integer position"),
        ({"n_components": 500}, "n_components = 500, n_samples = 272"),
    ],
)
def test_bad_model_arguments(faithful, kwargs, message):
    args = {"n_components": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(faithful, **args)


def test_nan_is_refused_before_building(faithful):
    X = faithful.copy()
    X.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN \(column 'waiting': 1\)"):
        build_model(X, 2, missing="raise")



def test_without_c_compiler_is_scoped(monkeypatch):
    """bayesgmm's compiles switch PyTensor's g++ off, restore it, and respect the user's cxx."""
    from bayesgmm._pytensor import without_c_compiler

    before = pytensor.config.cxx
    monkeypatch.delenv("PYTENSOR_FLAGS", raising=False)
    monkeypatch.setenv("PYTENSORRC", "/nonexistent")
    with without_c_compiler():
        assert pytensor.config.cxx == ""
    assert pytensor.config.cxx == before
    monkeypatch.setenv("PYTENSOR_FLAGS", f"cxx={before}")
    with without_c_compiler():
        assert pytensor.config.cxx == before


def test_user_set_reads_the_flag_not_its_section(monkeypatch, tmp_path):
    """A .pytensorrc [global] section without cxx, or a gcc__cxxflags, is not a user's cxx."""
    from bayesgmm._pytensor import _user_set

    rc = tmp_path / "pytensorrc"
    rc.write_text("[global]\nfloatX = float64\n[blas]\nldflags = -lopenblas\n")
    monkeypatch.setenv("PYTENSORRC", str(rc))
    monkeypatch.setenv("PYTENSOR_FLAGS", "gcc__cxxflags=-O2")
    assert not _user_set("cxx")
    assert _user_set("blas__ldflags")
    rc.write_text("[global]\ncxx = /usr/bin/g++\n")
    assert _user_set("cxx")
    assert not _user_set("blas__ldflags")


def test_no_blas_warning_when_fitting(tmp_path):
    """A pip environment has no system BLAS for PyTensor's C backend: no warning from
    bayesgmm, while plain PyTensor gives one in the same environment (the control)."""
    import subprocess
    import sys

    env = {**os.environ, "PYTENSORRC": str(tmp_path / "none"), "PYTENSOR_FLAGS": ""}

    def stderr_of(code):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, check=True).stderr

    control = stderr_of("import pytensor; pytensor.config.blas__ldflags")
    assert "could not link to a BLAS" in control
    fitted = stderr_of(
        "from bayesgmm import GaussianMixtureBayes, datasets\n"
        "model = GaussianMixtureBayes(2, random_state=0).fit(datasets.load_faithful(), "
        "method='map', progressbar=False).model_\n"
        "import pytensor\n"
        "assert pytensor.config.blas__ldflags == ''\n"
        "model.compile_logp()(model.initial_point())\n")
    assert "BLAS" not in fitted, fitted
