"""Plots: what is drawn (ellipses, line data, sizes, labels), not only that it runs."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets, plots

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


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


def test_pairs_plot_with_missing_entries():
    X, _ = datasets.simulate_mixture(200, [0.5, 0.5], [[0, 0, 0], [4, 4, 4]],
                                     [np.eye(3), np.eye(3)], random_state=0)
    X[::5, 1] = np.nan
    model = GaussianMixtureEM(2, random_state=0).fit(X)
    fig = plots.plot_pairs(model, X)
    middle = fig.axes[3 * 1 + 1]  # feature 1's histogram: its 160 observed entries
    assert sum(p.get_height() for p in middle.patches) == 160


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
    ax = plots.plot_uncertainty(bayes, X, hdi_prob=0.8)
    widths = ax.collections[0].get_array()
    # the colour of each point is the width of its most probable component's HDI
    membership = bayes.membership(X, hdi_prob=0.8)
    best = membership["mean"].values.argmax(axis=1)
    expected = (membership["upper"] - membership["lower"]).values[np.arange(len(X)), best]
    np.testing.assert_allclose(widths, expected, rtol=1e-12)
    assert expected.max() > 0.1 and expected.min() < 0.01  # some points sure, some not
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), X.to_numpy())
    assert ax.figure.axes[-1].get_ylabel() == "width of the 80% membership interval"


def panels(viz):
    """The distinct Axes an arviz-plots PlotCollection drew on."""
    axes = {id(ax) for var in viz["plot"].data_vars.values() for ax in var.values.ravel()}
    return len(axes)


def test_posterior_plots_through_arviz(faithful_bayes, faithful_em):
    _, model = faithful_bayes
    posterior = model.posterior
    # trace: a density and a trace panel per variable; the trace lines are the draws
    viz = plots.plot_posterior(model, "trace", var_names=["weights", "means"]).viz
    assert panels(viz) == 2 * 2
    assert list(viz["plot"]["weights"]["column"].values) == ["dist", "trace"]
    for chain in range(2):
        for k in range(2):
            line = viz["trace"]["weights"].sel(chain=chain, component=k).item()
            np.testing.assert_array_equal(line.get_ydata(),
                                          posterior["weights"].sel(chain=chain, component=k))
            for feature in ("eruptions", "waiting"):
                line = viz["trace"]["means"].sel(chain=chain, component=k,
                                                 feature=feature).item()
                np.testing.assert_array_equal(
                    line.get_ydata(),
                    posterior["means"].sel(chain=chain, component=k, feature=feature))
    # posterior: one panel per scalar (2 weights + 2 x 2 means), marked at the mean
    viz = plots.plot_posterior(model, "posterior", var_names=["weights", "means"]).viz
    assert panels(viz) == 2 + 4
    for k in range(2):
        point = viz["point_estimate"]["means"].sel(component=k, feature="waiting").item()
        assert point.get_offsets()[0][0] == pytest.approx(
            float(posterior["means"].sel(component=k, feature="waiting").mean()))
    # rank: one panel per component's weight, one ECDF line per chain in each
    viz = plots.plot_posterior(model, "rank", var_names=["weights"]).viz
    assert panels(viz) == 2
    assert viz["ecdf_lines"]["weights"].sizes == {"component": 2, "chain": 2}
    with pytest.raises(ValueError, match="kind must be one of"):
        plots.plot_posterior(model, "forest")
    with pytest.raises(ValueError, match="needs a GaussianMixtureBayes"):
        plots.plot_posterior(faithful_em[1])


# ------------------------------------------------------------------------ criteria
CRITERIA_TABLE = pd.DataFrame({
    "n_components": [1, 2, 3, 1, 2, 3],
    "covariance_type": ["full"] * 3 + ["diag"] * 3,
    "bic": [300.0, 250.0, 260.0, 310.0, 255.0, 240.0],        # lowest: diag, K=3
    "elpd_loo": [-150.0, -120.0, -125.0, -155.0, -119.0, -130.0],  # highest: diag, K=2
    "elpd_loo_dse": [30.0, 1.5, 2.0, 35.0, 0.0, 4.0],
    "log_evidence": [-160.0, -131.0, -140.0, -170.0, -135.0, -150.0],  # highest: full, K=2
})


@pytest.mark.parametrize(("criterion", "best", "value", "direction"), [
    ("bic", (3, "diag"), 240.0, "lower"),
    ("aic", None, None, "lower"),
    ("elpd_loo", (2, "diag"), -119.0, "higher"),
    ("loo", (2, "diag"), -119.0, "higher"),
    ("log_evidence", (2, "full"), -131.0, "higher"),
    ("evidence", (2, "full"), -131.0, "higher"),
])
def test_criterion_plot_circles_the_best_in_the_right_direction(criterion, best, value,
                                                                direction):
    table = CRITERIA_TABLE.assign(aic=CRITERIA_TABLE["bic"] - 5)
    ax = plots.plot_criterion(table, criterion)
    (circle,) = lines_with(ax, "best")
    if best is None:  # aic: bic - 5, so the same model as bic
        best, value = (3, "diag"), 235.0
    np.testing.assert_array_equal(circle.get_xydata(), [[best[0], value]])
    assert circle.get_label() == f"best: {best[1]}, K={best[0]}"
    assert ax.get_ylabel().endswith(f"({direction} is better)")
    # one line per covariance type with the table's values
    full = [line for line in ax.lines if line.get_label() == "full"][0]
    column = {"loo": "elpd_loo", "evidence": "log_evidence"}.get(criterion, criterion)
    np.testing.assert_array_equal(full.get_ydata(), table[column][:3])


def test_criterion_plot_needs_a_direction_for_other_columns():
    table = CRITERIA_TABLE.assign(score=[1.0, 2.0, 3.0, 4.0, 5.0, 0.5])
    with pytest.raises(ValueError, match="lower_is_better"):
        plots.plot_criterion(table, "score")
    (circle,) = lines_with(plots.plot_criterion(table, "score", lower_is_better=False), "best")
    np.testing.assert_array_equal(circle.get_xydata(), [[2, 5.0]])
    with pytest.raises(ValueError, match="no column 'elpd_waic'"):
        plots.plot_criterion(table, "waic")


def test_model_comparison_plot_draws_the_table(faithful_em):
    from bayesgmm import ModelComparison

    result = ModelComparison(CRITERIA_TABLE.copy())
    fig = result.plot(["bic", "loo", "evidence"])
    bic, loo, evidence = (ax for ax in fig.axes if ax.get_visible())
    for ax, column in ((bic, "bic"), (loo, "elpd_loo"), (evidence, "log_evidence")):
        for container in ax.containers:
            rows = CRITERIA_TABLE[CRITERIA_TABLE.covariance_type == container.get_label()]
            np.testing.assert_array_equal(container.lines[0].get_xydata(),
                                          rows[["n_components", column]].to_numpy())
    # the LOO bars are +-1 se of the difference to the best model
    full = [c for c in loo.containers if c.get_label() == "full"][0]
    (bars,) = full.lines[2]
    segments = np.array(bars.get_segments())
    np.testing.assert_allclose(segments[:, 1, 1] - segments[:, 0, 1],
                               2 * CRITERIA_TABLE["elpd_loo_dse"][:3])
    # each panel circles its criterion's choice: lowest BIC, highest elpd and evidence
    for ax, (k, value, title) in ((bic, (3, 240.0, "BIC: diag, K=3")),
                                  (loo, (2, -119.0, "LOO: diag, K=2")),
                                  (evidence, (2, -131.0, "log evidence: full, K=2"))):
        circles = [line for line in ax.lines if line.get_markersize() == 13]
        np.testing.assert_array_equal(circles[0].get_xydata(), [[k, value]])
        assert ax.get_title() == title
    assert bic.get_ylabel() == "BIC (lower is better)"
    assert loo.get_ylabel() == "LOO (higher is better)"


def drawn(ax):
    """Everything a criterion panel shows: lines (data, label, gid, marker, size), the
    error bars, the labels, the title, the y range and the legend."""
    lines = [(line.get_label(), line.get_gid(), line.get_marker(), line.get_markersize(),
              line.get_xydata()) for line in ax.lines]
    bars = [[np.asarray(s) for s in c.get_segments()] for c in ax.collections]
    legend = ax.get_legend()
    return {"lines": lines, "bars": bars, "title": ax.get_title(), "ylim": ax.get_ylim(),
            "labels": (ax.get_xlabel(), ax.get_ylabel()),
            "containers": [c.get_label() for c in ax.containers],
            "legend": None if legend is None else [t.get_text() for t in legend.get_texts()]}


# set-aside and non-converged models, so that crosses and masked points are compared too
RANKED_TABLE = CRITERIA_TABLE.assign(
    em_converged=[True, True, True, True, True, False],
    elpd_waic=CRITERIA_TABLE["elpd_loo"] - 1,
    log_evidence_se=[0.5, 0.2, 0.3, 0.4, 0.6, 0.1],
    evidence_method="smc",
    set_aside=["", "", "multimodal", "", "LOO unreliable: 3 points with Pareto k > 0.7", ""])


def test_model_comparison_plot_is_plot_criterion_of_its_table():
    import matplotlib.pyplot as plt

    from bayesgmm import ModelComparison

    result = ModelComparison(RANKED_TABLE.copy())
    names = result.criteria
    assert names == ["bic", "loo", "waic", "evidence"]
    panels = [ax for ax in result.plot().axes if ax.get_visible()]
    assert len(panels) == len(names)
    for i, (panel, name) in enumerate(zip(panels, names)):
        _, ax = plt.subplots()
        alone = plots.plot_criterion(result.table, name, ax=ax, legend=i == 0)
        np.testing.assert_equal(drawn(panel), drawn(alone))
        # and the circle is the model the comparison chooses
        (circle,) = lines_with(alone, "best")
        k, cov = result.best(name)
        assert circle.get_label() == f"best: {cov}, K={k}"


def test_criterion_plot_crosses_models_it_does_not_rank():
    ax = plots.plot_criterion(RANKED_TABLE, "loo")
    # diag K=2 has the highest elpd but an unreliable LOO: a cross, and full K=2 is chosen
    (cross,) = [line for line in lines_with(ax, "set-aside") if line.get_xydata()[0, 0] == 2]
    np.testing.assert_array_equal(cross.get_xydata(), [[2, -119.0]])
    np.testing.assert_array_equal(lines_with(ax, "best")[0].get_xydata(), [[2, -120.0]])
    assert ax.get_title() == "LOO: full, K=2"
    diag = [c for c in ax.containers if c.get_label() == "diag"][0]
    np.testing.assert_array_equal(diag.lines[0].get_ydata().astype(float),  # errorbar: object
                                  [-155.0, np.nan, -130.0])
    # an EM fit that did not converge is not BIC's choice: diag K=3 is crossed
    ax = plots.plot_criterion(RANKED_TABLE, "bic")
    np.testing.assert_array_equal(lines_with(ax, "set-aside")[0].get_xydata(), [[3, 240.0]])
    assert ax.get_title() == "BIC: full, K=2"
    # WAIC has no standard error of differences, hence no bars
    ax = plots.plot_criterion(RANKED_TABLE, "waic")
    assert not any(c.has_yerr for c in ax.containers)
    # the evidence has bars of +-1 se (a NUTS fit set aside keeps its SMC estimate)
    ax = plots.plot_criterion(RANKED_TABLE, "evidence")
    full = [c for c in ax.containers if c.get_label() == "full"][0]
    (bars,) = full.lines[2]
    segments = np.array(bars.get_segments())
    np.testing.assert_allclose(segments[:, 1, 1] - segments[:, 0, 1], [1.0, 0.4, 0.6])
    # the legend names the covariance types, with their mclust names, in mclust's order
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["diag (VVI)", "full (VVV)"]


def test_model_comparison_plot_bad_criteria():
    import matplotlib.pyplot as plt

    from bayesgmm import ModelComparison

    result = ModelComparison(CRITERIA_TABLE[["n_components", "covariance_type", "bic"]])
    with pytest.raises(ValueError, match="unknown criteria \\['dic'\\]"):
        result.plot(["bic", "dic"])
    with pytest.raises(ValueError, match="no column 'elpd_waic'"):
        result.plot(["bic", "waic"])
    assert plt.get_fignums() == []  # the half-drawn figure is closed
    with pytest.raises(ValueError, match="nothing to plot"):
        result.plot([])


# mclust's fourteen families, in mclust's order, as compare's table names them
MCLUST_FAMILIES = ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
                   "EEV", "VEV", "EVV", "VVV"]


def fourteen_families_table(names=None):
    """mclust-sign BIC of 14 families x K = 1..6 (higher is better), best VVV K=3."""
    from bayesgmm import get_covariance_structure

    rng = np.random.default_rng(0)
    names = names or [get_covariance_structure(f).name for f in MCLUST_FAMILIES]
    rows = [{"n_components": k, "covariance_type": cov,
             "bic_mclust": -4900.0 + 10 * i - 5 * (k - 3) ** 2 + rng.normal()}
            for i, cov in enumerate(names) for k in range(1, 7)]
    table = pd.DataFrame(rows)
    table.loc[(table.covariance_type == names[-1]) & (table.n_components == 3),
              "bic_mclust"] = -4751.3
    return table.sample(frac=1, random_state=1)  # the table's order is not the plot's


def styles(ax):
    return {c.get_label(): (matplotlib.colors.to_hex(c.lines[0].get_color()),
                            c.lines[0].get_marker(),
                            matplotlib.colors.to_hex(c.lines[0].get_markerfacecolor()))
            for c in ax.containers}


def test_criterion_plot_tells_mclusts_fourteen_families_apart():
    table = fourteen_families_table()
    ax = plots.plot_criterion(table, "bic_mclust")
    # one line per family, each with its values in the order of K
    assert len(ax.containers) == 14
    assert {c.get_label() for c in ax.containers} == set(table.covariance_type)
    for container in ax.containers:
        rows = table[table.covariance_type == container.get_label()].sort_values("n_components")
        np.testing.assert_array_equal(container.lines[0].get_xydata(),
                                      rows[["n_components", "bic_mclust"]].to_numpy())
    # 14 distinct (colour, marker, fill): the colour cycle alone repeats after 10
    drawn_styles = styles(ax)
    assert len(set(drawn_styles.values())) == 14
    assert len({marker for _, marker, _ in drawn_styles.values()}) >= 9
    # the best is the highest mclust-sign BIC, circled at VVV (full), K=3
    (circle,) = lines_with(ax, "best")
    np.testing.assert_array_equal(circle.get_xydata(), [[3, -4751.3]])
    assert ax.get_title() == "mclust's BIC: full, K=3"
    assert ax.get_ylabel() == "mclust's BIC (higher is better)"
    # the legend: every family once, in mclust's order, beside the axes
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert [t.split(" ")[0] if "(" not in t else t[t.index("(") + 1:-1] for t in texts] \
        == MCLUST_FAMILIES
    assert texts[-1] == "full (VVV)" and texts[0] == "EII"
    ax.figure.canvas.draw()
    assert legend.get_window_extent().x0 > ax.get_window_extent().x1  # outside, on the right


def test_a_family_has_the_same_style_under_either_name_and_in_every_plot():
    by_sklearn = styles(plots.plot_criterion(fourteen_families_table(), "bic_mclust"))
    table = fourteen_families_table(MCLUST_FAMILIES)
    by_mclust = styles(plots.plot_criterion(table, "bic_mclust"))
    from bayesgmm import get_covariance_structure

    for name in MCLUST_FAMILIES:
        assert by_mclust[name] == by_sklearn[get_covariance_structure(name).name]
    # a subset keeps each family's style (it is the family's, not its position's)
    few = table[table.covariance_type.isin(["VVV", "EEV", "VII"])]
    assert styles(plots.plot_criterion(few, "bic_mclust")) == {
        name: by_mclust[name] for name in ("VVV", "EEV", "VII")}
    # and mclust's names read "VVV (full)"
    texts = [t.get_text() for t in plots.plot_criterion(few, "bic_mclust").get_legend().get_texts()]
    assert texts == ["VII (spherical)", "EEV", "VVV (full)"]


def test_other_covariance_names_get_distinct_styles():
    table = pd.DataFrame({"n_components": np.tile([1, 2], 12),
                          "covariance_type": np.repeat([f"type{i}" for i in range(12)], 2),
                          "score": np.arange(24.0)})
    ax = plots.plot_criterion(table, "score", lower_is_better=True)
    assert len(set(styles(ax).values())) == 12
