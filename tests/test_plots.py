"""Plots: what is drawn (ellipses, line data, sizes, labels), not only that it runs."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets, plots

matplotlib.use("Agg")


def lines_with(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


@pytest.fixture(scope="module")
def faithful_em():
    X = datasets.load_faithful()
    return X, GaussianMixtureEM(3, covariance_type="tied", n_init=3, random_state=0).fit(X)


@pytest.fixture(scope="module")
def faithful_bayes():
    X = datasets.load_faithful()
    model = GaussianMixtureBayes(2, random_state=0).fit(X, draws=50, tune=100, chains=2,
                                                         progressbar=False)
    return X, model


@pytest.fixture(scope="module")
def waiting():
    x = datasets.load_faithful()[["waiting"]]
    return x, GaussianMixtureEM(2, random_state=0).fit(x)


def test_clusters_draw_an_ellipse_per_component_and_sd(faithful_em):
    X, model = faithful_em
    ax = plots.plot_clusters(model, X)
    assert len(lines_with(ax, "ellipse-1sd")) == 3 and len(lines_with(ax, "ellipse-2sd")) == 3
    assert len(lines_with(ax, "mean")) == 3
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")
    # every point of a 2-sd ellipse is at Mahalanobis distance 2 from its mean
    ring = lines_with(ax, "ellipse-2sd")[1].get_xydata()
    diff = ring - model.means_[1]
    d2 = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(model.covariances_), diff)
    np.testing.assert_allclose(d2, 4.0, rtol=1e-10)
    np.testing.assert_allclose(lines_with(ax, "mean")[2].get_xydata()[0], model.means_[2])


def test_bayesian_clusters_show_posterior_draws(faithful_bayes):
    X, model = faithful_bayes
    ax = plots.plot_clusters(model, X, n_draws=10)
    assert len(lines_with(ax, "posterior-draw")) == 10 * 2
    mean = model.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(lines_with(ax, "mean")[0].get_xydata()[0], mean[0])


def test_pairs_plot_for_three_features():
    X, _ = datasets.simulate_mixture(200, [0.5, 0.5], [[0, 0, 0], [4, 4, 4]],
                                     [np.eye(3), np.eye(3)], random_state=0)
    model = GaussianMixtureEM(2, random_state=0).fit(X)
    fig = plots.plot_pairs(model, X)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6  # 3 histograms + 3 scatter panels below the diagonal
    lower = fig.axes[3 * 2 + 0]  # row 2, column 0: features (0, 2)
    assert (lower.get_xlabel(), lower.get_ylabel()) == ("x0", "x2")
    assert len(lines_with(lower, "ellipse-1sd")) == 2


def test_density_is_the_mixture_with_components_and_kde(waiting):
    x, model = waiting
    ax = plots.plot_density(model, x)
    (mixture,) = lines_with(ax, "mixture")
    grid, density = mixture.get_xdata(), mixture.get_ydata()
    expected = np.exp(model.score_samples(pd.DataFrame({"waiting": grid})))
    np.testing.assert_allclose(density, expected, rtol=1e-10)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=0.01)
    components = lines_with(ax, "component")
    assert len(components) == 2
    np.testing.assert_allclose(sum(c.get_ydata() for c in components), density, rtol=1e-10)
    assert len(lines_with(ax, "kde")) == 1
    assert ax.get_xlabel() == "waiting"
    with pytest.raises(ValueError, match="one-feature model"):
        plots.plot_density(GaussianMixtureEM(2).fit(datasets.load_faithful()), x)


def test_bayesian_density_has_a_band_around_the_mixture():
    x = datasets.load_faithful()[["waiting"]]
    model = GaussianMixtureBayes(2, covariance_type="diag", random_state=0).fit(
        x, draws=50, tune=100, chains=2, progressbar=False)
    ax = plots.plot_density(model, x)
    (band,) = ax.collections
    (mixture,) = lines_with(ax, "mixture")
    top = band.get_paths()[0].vertices[:, 1].max()
    assert top >= mixture.get_ydata().max() * 0.95


def test_log_likelihood_trace(faithful_em):
    _, model = faithful_em
    ax = plots.plot_log_likelihood(model)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.log_likelihood_trace_)
    assert f"{model.n_iter_} iterations" in ax.get_title()


def test_uncertainty_sizes_and_interval_widths(faithful_em, faithful_bayes):
    X, model = faithful_em
    ax = plots.plot_uncertainty(model, X)
    sizes = ax.collections[0].get_sizes()
    np.testing.assert_allclose(sizes, 5 + 200 * (1 - model.predict_proba(X).max(axis=1)))
    X, bayes = faithful_bayes
    ax = plots.plot_uncertainty(bayes, X)
    widths = ax.collections[0].get_array()
    assert widths.shape == (len(X),) and 0 <= widths.min() and widths.max() <= 1
    assert "membership interval" in ax.figure.axes[-1].get_ylabel()


def test_posterior_plots_through_arviz(faithful_bayes, faithful_em):
    _, model = faithful_bayes
    for kind in ("trace", "rank", "posterior"):
        collection = plots.plot_posterior(model, kind, var_names=["weights"])
        assert collection.viz is not None
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.plot_posterior(model, "forest")
    with pytest.raises(ValueError, match="needs a GaussianMixtureBayes"):
        plots.plot_posterior(faithful_em[1])
