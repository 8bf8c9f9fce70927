"""Small data with priors: fits that never fail, and simulation-based calibration."""

import warnings

import numpy as np
import pytest

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, bayes
from bayesgmm._gaussian import CollapsedComponentError
from bayesgmm.calibration import CalibrationResult, simulation_based_calibration
from bayesgmm.priors import LKJ, Dirichlet, GMMPriors, InverseGamma, Normal

from .conftest import seed

EXPLICIT = {  # those of benchmarks/calibration.py: InverseGamma(3, 2) variances, mean 1
    "full": GMMPriors(weights=Dirichlet(1.0), means=Normal(0.0, 3.0),
                      covariance=LKJ(2.0, sd=InverseGamma(3.0, 2.0))),
    "diag": GMMPriors(weights=Dirichlet(1.0), means=Normal(0.0, 3.0),
                      covariance=InverseGamma(3.0, 2.0)),
}


def two_points_apart():
    """58 points around the origin and 2 far away: EM's second component collapses."""
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(58, 2)), [[7.0, 7.0], [7.4, 6.9]]])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_maximum_likelihood_em_collapses_on_this_data(covariance_type):
    """The premise of the next test: every EM restart collapses onto the far pair."""
    X = two_points_apart()
    if covariance_type == "diag":  # a pair off the axes is not singular for diag: align it
        X[-1] = [7.4, 7.0]
    with pytest.raises(CollapsedComponentError):
        GaussianMixtureEM(2, covariance_type=covariance_type, n_init=5, tol=1e-6,
                          max_iter=1000, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_bayesian_fit_starts_from_the_prior_regularised_fit_when_em_collapses(covariance_type):
    X = two_points_apart()
    if covariance_type == "diag":
        X[-1] = [7.4, 7.0]
    fit = GaussianMixtureBayes(2, covariance_type=covariance_type,
                               priors=EXPLICIT[covariance_type],
                               random_state=seed("collapse", covariance_type))
    fit.fit(X, draws=100, tune=200, chains=2, progressbar=False)
    assert fit.start_["method"] == "prior-regularised-em"
    assert "collapsed" in fit.start_["reason"]
    # the prior's scale: the sd at the mode of InverseGamma(3, 2), sqrt(2 / (3 + 1))
    np.testing.assert_allclose(fit.start_["prior_scale"], [np.sqrt(0.5)] * 2)
    # the start is the data's obvious split: the far pair is one component
    labels = fit.em_.predict(X)
    assert len(set(labels[-2:])) == 1 and set(labels[:-2]) == {1 - labels[-1]}
    np.testing.assert_allclose(np.sort(fit.em_.weights_), [2 / 60, 58 / 60], atol=1e-3)
    # mapped back to the data's units, every fitted attribute alike
    em = fit.em_
    precisions = np.linalg.inv(em.covariances_) if covariance_type == "full" \
        else 1 / em.covariances_
    np.testing.assert_allclose(em.precisions_, precisions, rtol=1e-10)
    assert em.log_likelihood_ == pytest.approx(em.score_samples(X).sum(), rel=1e-10)
    assert em.lower_bound_ == pytest.approx(em.log_likelihood_ / 60, rel=1e-12)
    # the record is kept with the fit and in its file
    assert '"prior-regularised-em"' in fit.idata_.attrs["config"]
    # the posterior has the far pair's component: its mean between the two points
    small = np.argmin(fit.posterior["weights"].mean(("chain", "draw")).values)
    mean = fit.posterior["means"].mean(("chain", "draw")).values[small]
    assert np.all(np.abs(mean - X[-2:].mean(axis=0)) < 1.0)


def test_a_maximum_likelihood_start_is_recorded_as_such(faithful):
    fit = GaussianMixtureBayes(2, covariance_type="diag", random_state=0)
    fit.fit(faithful, method="map", progressbar=False)
    assert fit.start_ == {"method": "em"}


# ------------------------------------------------------- calibration machinery
def test_rank_uniformity_p_values_against_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 20, size=(100, 2))
    ranks[:, 1] = np.minimum(ranks[:, 1], 3)  # piled at the low end
    import pandas as pd

    result = CalibrationResult(pd.DataFrame(ranks, columns=["flat", "piled"]), 19)
    p = result.p_values(n_bins=4)
    counts = np.bincount(ranks[:, 0] * 4 // 20, minlength=4)
    assert p["flat"] == pytest.approx(stats.chisquare(counts).pvalue)
    assert p["piled"] < 1e-20
    assert result.p_values().index.tolist() == ["flat", "piled"]  # default bins: 20 / 5
    with pytest.raises(ValueError, match="must divide"):
        result.p_values(n_bins=3)


def test_calibration_refuses_data_scaled_priors():
    with pytest.raises(ValueError, match="explicit"):
        simulation_based_calibration(2, "diag", GMMPriors(), n_replicates=2)
    with pytest.raises(ValueError, match="n_rank_draws"):
        simulation_based_calibration(2, "diag", EXPLICIT["diag"], draws=10, chains=2,
                                     n_rank_draws=99)
    with pytest.raises(ValueError, match="n_replicates"):
        simulation_based_calibration(2, "diag", EXPLICIT["diag"], n_replicates=0)


@pytest.mark.slow
def test_simulation_based_calibration_of_a_small_diag_mixture():
    """Ranks of the true label-invariant quantities are uniform; a wrong prior is caught.

    Both runs use the same simulated data sets (the same random_state). Each of the 9
    quantities' p-values is uniform under a correct fit, so the Bonferroni bound 1e-4 is
    crossed by chance with probability below 1e-4. The fit under a prior on the means
    thirty times too narrow piles the ranks of the mixture's mean at the ends: its smallest
    p-value is far below any chance level.
    """
    # PyMC's sampler: its compiled model is cached across the 80 fits, where nutpie
    # would compile each afresh (4x the time); the benchmark checks the default sampler
    kwargs = dict(n_samples=40, n_replicates=40, n_rank_draws=19, draws=200, tune=300,
                  chains=2, nuts_sampler="pymc", random_state=seed("sbc"))
    good = simulation_based_calibration(2, "diag", EXPLICIT["diag"], **kwargs)
    assert good.failures.empty and len(good.fits) == 40
    assert set(good.fits["start"]) <= {"em", "prior-regularised-em"}
    assert "retried_divergences" in good.fits.columns
    assert good.ranks.shape == (40, 9)
    assert good.p_values().min() > 1e-4 / 9
    narrow = GMMPriors(weights=Dirichlet(1.0), means=Normal(0.0, 0.1),
                       covariance=InverseGamma(3.0, 2.0))
    bad = simulation_based_calibration(2, "diag", EXPLICIT["diag"], fit_priors=narrow,
                                       **kwargs)
    assert bad.p_values()[["mean[0]", "mean[1]"]].min() < 1e-4 / 9  # the same bound, crossed


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_nearly_collinear_features_fit(covariance_type):
    """Correlation 0.9999999: the chains' start is valid and the mode finds it again.

    Two components on one cluster: the mode may leave a component empty (weight
    1e-40 or less), and then its correlation is its prior's (LKJ's mode, 0), not the
    data's. So the bound is on the components that own at least one point. Before
    L-BFGS was restarted where it stalled, some seeds stopped 400 log-posterior units
    below the mode with a correlation of 0.9988.
    """
    rng = np.random.default_rng(0)
    z, e = rng.normal(size=(2, 200, 1))
    r = 0.9999999
    X = np.hstack([z, r * z + np.sqrt(1 - r * r) * e])
    fit = GaussianMixtureBayes(2, covariance_type=covariance_type,
                               random_state=seed("collinear", covariance_type))
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayes.MAPConvergenceWarning)
        fit.fit(X, method="map", progressbar=False)
    correlations = fit.posterior["correlations"].values[0, 0][..., 0, 1]
    owned = fit.posterior["weights"].values[0, 0] * len(X) >= 1
    sample = np.corrcoef(X.T)[0, 1]
    assert sample > 0.9999998
    assert np.all(correlations[owned] > 0.99999)


def test_restarted_lbfgs_reaches_the_minimum_where_one_run_stalls():
    """A quadratic with curvatures 1e-3 .. 1e5 around a value of 1000 (a log posterior's
    size): scipy's L-BFGS-B stops on its relative-reduction test 0.01 above the minimum
    with most coordinates far from it; the restarted run finds the minimiser."""
    from scipy import optimize

    curvature = np.logspace(-3, 5, 12)

    def objective(x):
        return 0.5 * np.sum(curvature * (x - 1) ** 2) + 1000.0, curvature * (x - 1)

    once = optimize.minimize(objective, np.zeros(12), jac=True, method="L-BFGS-B")
    assert once.fun - 1000 > 1e-3 and np.abs(once.x - 1).max() > 0.5  # the failure shown
    result = bayes._restarted_lbfgs(objective, np.zeros(12))
    assert result.success
    assert result.fun - 1000 < 1e-9
    np.testing.assert_allclose(result.x, 1, atol=1e-4)


def test_fixed_points_of_per_component_mean_priors():
    from bayesgmm.calibration import _fixed_points

    points = _fixed_points(GMMPriors(means=Normal([[0.0, 1.0], [2.0, 3.0]], [1.0, 2.0])), 2)
    np.testing.assert_allclose(points, [[1.0, 2.0], [2.0, 4.0], [0.0, 4.0]])
