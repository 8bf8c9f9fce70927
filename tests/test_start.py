"""The EM start point (bayesgmm._start) names exactly the model's free variables."""

import numpy as np
import pytest

from bayesgmm import GaussianMixtureEM
from bayesgmm._start import _em_from_config, _em_to_config, _start_points
from bayesgmm.model import as_array_and_names, build_model_from_spec, make_spec
from bayesgmm.priors import LKJ, GMMPriors, HalfNormal

from .conftest import COVARIANCE_TYPES


def _half_normal(model_kind):
    return GMMPriors(covariance=LKJ(sd=HalfNormal()) if model_kind == "matrix"
                     else HalfNormal())


@pytest.mark.parametrize("order_by", [None, 1])
@pytest.mark.parametrize("scale", ["inversegamma", "halfnormal"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_start_points_are_the_model_free_variables(faithful, covariance_type, scale, order_by):
    X, names = as_array_and_names(faithful)
    spec = make_spec(X, 2, covariance_type, None, order_by, names)  # InverseGamma variances
    if scale == "halfnormal":
        spec = make_spec(X, 2, covariance_type, _half_normal(spec.covariance_kind), order_by,
                         names)
    assert spec.priors.scale == scale
    model = build_model_from_spec(X, spec)
    em = GaussianMixtureEM(2, covariance_type=spec.structure.name, random_state=0).fit(X)
    starts = _start_points(em, spec, 3, np.random.default_rng(0))
    assert len(starts) == 3
    free = {rv.name: rv.type.shape for rv in model.free_RVs}  # static shapes
    for start in starts:
        assert set(start) == set(free)
        for name, value in start.items():  # in the model's shapes (constrained space)
            assert np.shape(value) == free[name], name
            assert np.all(np.isfinite(value)), name


def test_em_config_round_trip(faithful):
    X = faithful.to_numpy()
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    config = {"n_components": 2, "covariance_type": em.covariance_type,
              "em": _em_to_config(em)}
    again = _em_from_config(config, X)
    np.testing.assert_allclose(again.predict_proba(X), em.predict_proba(X))
    assert again.log_likelihood_ == em.log_likelihood_


def _fixed_cases(covariance_type):
    """Fixed parameters for 3 components in 2-D: weights and a mean, a component's
    covariance (or, for a shared one, all of it), and weights leaving one free weight."""
    nan = np.nan
    one = {"full": np.eye(2), "diag": np.ones(2), "spherical": 1.0}
    if covariance_type in one:
        free = np.full(np.shape(one[covariance_type]), nan)
        covariances = [one[covariance_type], free, free]
    else:
        covariances = np.eye(2)  # a shared layout: fixed whole
    return [{"weights": [0.2, nan, nan], "means": [[0.0, 0.0], [nan, nan], [nan, nan]]},
            {"covariances": covariances},
            {"weights": [0.2, 0.3, nan], "covariances": covariances}]


@pytest.mark.parametrize("scale", ["inversegamma", "halfnormal"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_start_points_of_fixed_models_are_their_free_variables(random_data, covariance_type,
                                                               scale):
    from bayesgmm.model import with_fixed

    X, names = as_array_and_names(random_data.X[covariance_type])
    priors = None
    if scale == "halfnormal":
        priors = _half_normal(make_spec(X, 3, covariance_type, None, None, names).covariance_kind)
    for fixed in _fixed_cases(covariance_type):
        spec = with_fixed(make_spec(X, 3, covariance_type, priors, None, names), fixed)
        model = build_model_from_spec(X, spec)
        em = GaussianMixtureEM(3, covariance_type=spec.structure.name, fixed=fixed,
                               random_state=0).fit(X)
        free = {rv.name: rv.type.shape for rv in model.free_RVs}
        for start in _start_points(em, spec, 2, np.random.default_rng(0)):
            assert set(start) == set(free), fixed
            for name, value in start.items():
                assert np.shape(value) == free[name], name
                assert np.all(np.isfinite(value)), name
