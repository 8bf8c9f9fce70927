import numpy as np
import pytest

from bayesgmm.priors import LKJ, Dirichlet, GMMPriors, HalfNormal, InverseGamma, Normal


def test_reprs_are_readable():
    assert repr(GMMPriors(weights=Dirichlet(0.1))) == (
        "GMMPriors(weights=Dirichlet(alpha=0.1), means=Normal(mu=<data mean>, "
        "sigma=<data range>), covariance=<default>)"
    )
    assert repr(LKJ(eta=3, sd=HalfNormal(2.0))) == "LKJ(eta=3, sd=HalfNormal(sigma=2))"


def test_data_scaled_defaults():
    rng = np.random.default_rng(0)
    X = rng.normal([10, -5], [2, 0.5], size=(400, 2))
    r = GMMPriors().resolve(X, 3, "matrix")
    np.testing.assert_allclose(r.alpha, [1, 1, 1])
    np.testing.assert_allclose(r.means_mu, np.tile(X.mean(0), (3, 1)))
    np.testing.assert_allclose(r.means_sigma, np.tile(X.max(0) - X.min(0), (3, 1)))
    assert r.covariance == "lkj" and r.eta == 2 and r.scale == "inversegamma"
    np.testing.assert_allclose(r.ig_alpha, [2, 2])
    np.testing.assert_allclose(r.ig_beta, 0.02 * (X.max(0) - X.min(0)) ** 2)
    ig = GMMPriors().resolve(X, 3, "per_feature")
    assert ig.covariance == "inversegamma" and ig.sd_sigma is None
    np.testing.assert_allclose(ig.ig_beta, 0.02 * (X.max(0) - X.min(0)) ** 2)
    single = GMMPriors().resolve(X, 3, "single")
    assert single.ig_beta == pytest.approx(0.02 * np.mean((X.max(0) - X.min(0)) ** 2))
    half = GMMPriors(covariance=HalfNormal()).resolve(X, 3, "single")
    assert half.scale == "halfnormal" and half.sd_sigma == pytest.approx(np.sqrt(np.mean(X.var(0))))
    lkj_half = GMMPriors(covariance=LKJ(sd=HalfNormal())).resolve(X, 3, "matrix")
    assert lkj_half.scale == "halfnormal" and lkj_half.ig_alpha is None
    np.testing.assert_allclose(lkj_half.sd_sigma, X.std(0))


def test_round_trip_through_dict():
    priors = GMMPriors(Dirichlet([0.5, 1, 2]), Normal(mu=0.0, sigma=[1.0, 2.0]),
                       InverseGamma(3.0, 0.5))
    assert GMMPriors.from_dict(priors.to_dict()) == priors


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Dirichlet(0), "Dirichlet alpha must be positive"),
        (lambda: Dirichlet([1, -1]), "Dirichlet alpha must be positive"),
        (lambda: Normal(sigma=-1), "Normal sigma must be positive"),
        (lambda: Normal(mu=np.nan), "Normal mu must be finite"),
        (lambda: HalfNormal(0), "HalfNormal sigma must be positive"),
        (lambda: InverseGamma(alpha=-2), "InverseGamma alpha must be positive"),
        (lambda: LKJ(eta=-1), "LKJ eta must be positive and finite"),
        (lambda: LKJ(sd=Normal()), "LKJ sd must be a HalfNormal prior .* or an InverseGamma"),
        (lambda: GMMPriors(weights=Normal()), "priors.weights must be"),
        (lambda: GMMPriors.from_any({"weight": Dirichlet()}), r"unknown prior names \['weight'\]"),
    ],
)
def test_bad_priors_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_shapes_are_checked_against_the_data():
    X = np.zeros((10, 2)) + np.arange(10)[:, None]
    with pytest.raises(ValueError, match=r"Dirichlet alpha has shape \(2,\).*\(3,\)"):
        GMMPriors(weights=Dirichlet([1.0, 1.0])).resolve(X, 3, "matrix")
    with pytest.raises(ValueError, match="full and tied covariances take an LKJ prior"):
        GMMPriors(covariance=HalfNormal()).resolve(X, 3, "matrix")
    with pytest.raises(ValueError, match="an LKJ prior needs a full or tied covariance"):
        GMMPriors(covariance=LKJ()).resolve(X, 3, "per_feature")


@pytest.mark.parametrize("spec", [{"dist": []}, {"dist": None}, {"dist": "Cauchy"}, "Normal"])
def test_from_dict_refuses_unknown_distributions(spec):
    from bayesgmm.priors import Prior

    with pytest.raises(ValueError, match="a prior is a dict whose 'dist' is one of"):
        Prior.from_dict(spec)
