"""Plots a statistician would draw of a fitted mixture (matplotlib).

Each function takes an EM fit (:class:`~bayesgmm.GaussianMixtureEM`) or, where it
says so, a Bayesian one (:class:`~bayesgmm.GaussianMixtureBayes`), draws on ``ax``
(a new figure when None) and returns the Axes (or the Figure for grids).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "plot_bootstrap_lrt",
    "plot_clusters",
    "plot_criterion",
    "plot_density",
    "plot_log_likelihood",
    "plot_pairs",
    "plot_posterior",
    "plot_uncertainty",
]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _is_bayes(model):
    return hasattr(model, "idata_")


def _point_estimate(model):
    """(weights, means, full covariances, feature names) of an EM or Bayesian fit."""
    if _is_bayes(model):
        post = model.posterior.mean(("chain", "draw"))
        return (post["weights"].values, post["means"].values, post["covariances"].values,
                [str(f) for f in model.posterior["feature"].values])
    K, D = model.means_.shape
    return (model.weights_, model.means_,
            model._structure.to_full(model.covariances_, K, D), model._feature_names())


def _feature_index(names, feature):
    return names.index(feature) if isinstance(feature, str) else int(feature)


#: Table columns besides the criteria (``compare.CRITERIA``) whose best is the highest,
#: with their axis labels.
_HIGHER_IS_BETTER = {"bic_mclust": "mclust's BIC", "icl_mclust": "mclust's ICL",
                     "log_likelihood": "log-likelihood"}

#: mclust's fourteen family names in mclust's order (EII, VII, EEI, VEI, EVI, VVI, EEE,
#: VEE, EVE, VVE, EEV, VEV, EVV, VVV): volume, shape and orientation each Equal, Variable
#: or the axes (I); a round shape (I) only with the axes as orientation.
_MCLUST_ORDER = tuple(volume + shape + orientation for orientation in "IEV"
                      for shape in "IEV" for volume in "EV"
                      if shape != "I" or orientation == "I")

#: Each family's (colour, marker, filled) in the order of ``_MCLUST_ORDER``: mclust's
#: ``mclust.options("bicPlotColors")`` (mclust 6.0.0), and markers in the spirit of its
#: ``"bicPlotSymbols"`` (R's pch 17, 2, 16, 13, 10, 1, 15, 8, 5, 9, 12, 7, 14, 0, some of
#: which matplotlib has not): filled and open triangles, circles, squares and diamonds,
#: and others. mclust gives one-feature E and V the styles of EII and VII.
_FAMILY_STYLES = (
    ("gray", "^", True), ("black", "^", False),
    ("#218B21", "o", True), ("#508476", "d", True),
    ("#41884F", "h", True), ("#58819C", "o", False),
    ("#597DC3", "s", True), ("#5178EA", "*", True),
    ("#716EE7", "D", False), ("#9B60B8", "D", True),
    ("#B2508B", "P", True), ("#C03F60", "p", True),
    ("#C82A36", "v", True), ("#CC0000", "s", False),
)
#: Styles of covariance types that are not mclust families (a table's own names).
_OTHER_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "h")


def _family_styles(covariance_types):
    """``{covariance type: (label, colour, marker, filled, order)}``: mclust's style per
    family, the same in every plot; the label names both of a family's names (``full
    (VVV)``) and ``order`` is mclust's. Other types take the colour cycle and markers in
    turn (distinct pairs), after the families."""
    from ._gaussian import get_covariance_structure

    styles, others = {}, 0
    for cov in covariance_types:
        try:
            structure = get_covariance_structure(str(cov))
        except ValueError:
            structure = None
        mclust = "" if structure is None else structure.mclust_name
        key = mclust if len(mclust) == 3 else mclust + "II"  # one-feature E and V
        if structure is not None and key in _MCLUST_ORDER:
            order = _MCLUST_ORDER.index(key)
            other = [n for n in dict.fromkeys([structure.name, mclust]) if n != str(cov)]
            label = f"{cov} ({other[0]})" if other else str(cov)
            styles[cov] = (label, *_FAMILY_STYLES[order], order)
        else:
            styles[cov] = (str(cov), f"C{others % 10}",
                           _OTHER_MARKERS[others % len(_OTHER_MARKERS)], True,
                           len(_MCLUST_ORDER) + others)
            others += 1
    return styles


def plot_criterion(table, criterion="bic", *, lower_is_better=None, ax=None, legend=True):
    """One line per covariance type of ``criterion`` against the number of components.

    Models the criterion does not rank (:meth:`ModelComparison.rankable
    <bayesgmm.ModelComparison.rankable>`: Bayesian fits set aside, EM fits that did not
    converge) are crosses off the lines. LOO has bars of ±1 standard error of its
    difference to the best model (``elpd_loo_dse``: the se that judges a comparison; the
    se of each elpd is much larger and shared), the log evidence ±1 its Monte Carlo
    standard error (``log_evidence_se``). The model the criterion chooses is circled
    and named in the title (for the evidence with its posterior probability); when far
    worse models would squash the scale, the axes show the better half of the models.

    Each covariance family has one colour and marker in every plot, after mclust's
    ``plot(mclustBIC(...))`` (its colours, and a marker per family: triangles for EII
    and VII, filled or open circles, squares, diamonds and others), so that all
    fourteen stay apart; the legend names both of a family's names (``full (VVV)``) and
    stands beside the axes when there are more than six lines. ``"bic_mclust"`` draws
    BIC in mclust's sign (``2 log L - p log n``, higher is better), as mclust plots it.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``n_components``, ``covariance_type`` and ``criterion``
        (e.g. :attr:`ModelComparison.table <bayesgmm.ModelComparison>`).
    criterion : str
        Column to plot, or a criterion's name ("loo", "waic", "evidence" for
        ``elpd_loo``, ``elpd_waic``, ``log_evidence``). The best model is circled:
        the lowest BIC, AIC or ICL, the highest elpd, log evidence or mclust-sign
        BIC/ICL.
    lower_is_better : bool, optional
        The direction, needed only for columns other than those.
    ax : matplotlib.axes.Axes, optional
        Where to draw (a new figure when None).
    legend : bool
        Draw a legend of the covariance types.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> result = compare(X, range(1, 5), methods=("em",))  # doctest: +SKIP
    >>> plot_criterion(result.table, "bic")  # doctest: +SKIP
    >>> plot_criterion(result.table, "bic_mclust")  # as mclust plots it  # doctest: +SKIP
    """
    from .compare import CRITERIA, ModelComparison

    if criterion in CRITERIA and criterion not in table:
        criterion = CRITERIA[criterion].column
    if criterion not in table:
        raise ValueError(f"the table has no column {criterion!r}.")
    name = next((n for n, c in CRITERIA.items() if c.column == criterion), None)
    spec = CRITERIA.get(name)  # None for a column that is not one of the criteria
    if lower_is_better is None:
        if spec is not None:
            lower_is_better = spec.lower_is_better
        elif criterion in _HIGHER_IS_BETTER:
            lower_is_better = False
        else:
            raise ValueError(f"is a lower or a higher {criterion!r} better? Pass "
                             "lower_is_better=True or False.")
    rankable = (ModelComparison(table).rankable(name) if spec is not None
                else table[criterion].notna())
    se = table[spec.se_column] if spec is not None and spec.se_column in table else None
    label = spec.label if spec is not None else _HIGHER_IS_BETTER.get(criterion, criterion)
    ax = _axes(ax)
    lines, legend_labels = [], []
    groups = list(table.groupby("covariance_type", sort=False))
    styles = _family_styles([cov for cov, _ in groups])
    for cov, group in groups:
        group = group.sort_values("n_components")
        ranked = rankable[group.index]
        values = group[criterion]
        legend_label, color, marker, filled, _ = styles[cov]
        bars = ax.errorbar(group["n_components"], values.where(ranked),
                           yerr=None if se is None else se[group.index].where(ranked),
                           color=color, marker=marker, ms=6, mec=color,
                           mfc=color if filled else "white", lw=1.2, capsize=2,
                           label=str(cov))
        # errorbar labels only the container; the line too, to find it among ax.lines
        bars.lines[0].set_label(str(cov))
        lines.append(bars)
        legend_labels.append(legend_label)
        aside = group[~ranked & values.notna()]
        if len(aside):  # models the criterion does not rank: a cross, off the line
            ax.plot(aside["n_components"], aside[criterion], "x", ms=6,
                    color=color, gid="set-aside")
    ranked = table[criterion][rankable].dropna()
    if len(ranked):
        best = table.loc[ranked.idxmin() if lower_is_better else ranked.idxmax()]
        k, cov = int(best["n_components"]), str(best["covariance_type"])
        ax.plot(k, best[criterion], "o", ms=13, mfc="none", mec="black", gid="best",
                label=f"best: {cov}, K={k}")
        probability = best.get("posterior_probability") if criterion == "log_evidence" \
            else None
        ax.set_title(f"{label}: {cov}, K={k}" + (
            "" if probability is None or pd.isna(probability)
            else f" (posterior probability {probability:.2f})"))
        _zoom_to_the_better_half(ax, ranked, lower_is_better)
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{label} ({'lower' if lower_is_better else 'higher'} is better)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if legend:  # the choice is in the title; the legend names the lines, mclust's first
        order = sorted(range(len(lines)), key=lambda i: styles[groups[i][0]][4])
        lines, legend_labels = [lines[i] for i in order], [legend_labels[i] for i in order]
        if len(lines) <= _LEGEND_INSIDE:
            ax.legend(lines, legend_labels, fontsize="small")
        else:  # mclust's fourteen families: beside the axes, not over the lines
            ax.legend(lines, legend_labels, fontsize="small", loc="upper left",
                      bbox_to_anchor=(1.02, 1), borderaxespad=0, handlelength=2.5,
                      ncols=-(-len(lines) // 16))
    return ax


#: The most lines whose legend goes inside the axes.
_LEGEND_INSIDE = 6


def _zoom_to_the_better_half(ax, values, lower_is_better):
    """When far worse models squash the scale, show the better half of the models.

    Lines of the worse ones leave the axes, which says enough about them.
    """
    if len(values) < 4:
        return
    best = values.min() if lower_is_better else values.max()
    median = values.median()
    half = abs(median - best)
    if half == 0 or values.max() - values.min() < 4 * half:
        return
    pad = 0.1 * half
    ax.set_ylim(*sorted((best - pad if lower_is_better else best + pad,
                         median + pad if lower_is_better else median - pad)))


def _ellipse_points(mean, cov, n_sd, n_points=100):
    values, vectors = np.linalg.eigh(cov)
    angle = np.linspace(0, 2 * np.pi, n_points)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    return (mean[:, None] + n_sd * vectors @ (np.sqrt(values)[:, None] * circle)).T


def plot_clusters(model, X, *, features=(0, 1), n_sd=(1, 2), n_draws=30, ax=None):
    """Data coloured by most probable component, with covariance ellipses.

    One ellipse per component and entry of ``n_sd`` (contours at that many
    standard deviations of the component's marginal over the two ``features``).
    For a Bayesian fit the ellipses are the posterior mean's, and ``n_draws``
    thin 1-sd ellipses from posterior draws show the uncertainty.
    """
    ax = _axes(ax)
    weights, means, covariances, names = _point_estimate(model)
    i, j = (_feature_index(names, f) for f in features)
    pair = [i, j]
    values = np.asarray(X, dtype=float)
    labels = model.predict(X)
    colors = [f"C{k % 10}" for k in range(len(weights))]
    ax.scatter(values[:, i], values[:, j], c=[colors[k] for k in labels], s=12, alpha=0.7)
    if _is_bayes(model) and n_draws:
        post = model.posterior.stack(sample=("chain", "draw"))
        picks = np.linspace(0, post.sizes["sample"] - 1, min(n_draws, post.sizes["sample"]))
        for s in picks.astype(int):
            draw = post.isel(sample=s)
            for k in range(len(weights)):
                cov = draw["covariances"].values[k][np.ix_(pair, pair)]
                ring = _ellipse_points(draw["means"].values[k, pair], cov, 1)
                ax.plot(ring[:, 0], ring[:, 1], color=colors[k], lw=0.5, alpha=0.25,
                        gid="posterior-draw")
    for k in range(len(weights)):
        mean = means[k, pair]
        cov = covariances[k][np.ix_(pair, pair)]
        for sd in n_sd:
            ring = _ellipse_points(mean, cov, sd)
            ax.plot(ring[:, 0], ring[:, 1], color=colors[k], lw=1.5 if sd == 1 else 0.8,
                    gid=f"ellipse-{sd}sd")
        ax.plot(*mean, "x", color="black", gid="mean")
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    return ax


def plot_pairs(model, X, *, n_sd=(1, 2), n_draws=0):
    """A pairs plot for D > 2: :func:`plot_clusters` for every pair of features below the
    diagonal, each component's histogram on the diagonal. Points with missing (NaN)
    entries are coloured by their membership given the observed ones and drawn where
    both coordinates are observed. Returns the Figure."""
    import matplotlib.pyplot as plt

    weights, means, covariances, names = _point_estimate(model)
    D = len(names)
    values = np.asarray(X, dtype=float)
    labels = model.predict(X)
    fig, axes = plt.subplots(D, D, figsize=(2.6 * D, 2.6 * D), squeeze=False)
    for r in range(D):
        for c in range(D):
            ax = axes[r, c]
            if r == c:  # a missing entry (NaN) is left out of its feature's histogram
                seen = ~np.isnan(values[:, r])
                bins = np.histogram_bin_edges(values[seen, r], bins=20)
                for k in range(len(weights)):
                    ax.hist(values[seen & (labels == k), r], bins=bins, color=f"C{k % 10}",
                            alpha=0.6)
                ax.set_xlabel(names[r])
            elif r > c:
                plot_clusters(model, X, features=(c, r), n_sd=n_sd, n_draws=n_draws, ax=ax)
            else:
                ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_density(model, x, *, bins=30, hdi_prob=0.94, ax=None):
    """1-D data: histogram, the mixture density, each weighted component and a KDE.

    For a Bayesian fit the density is the posterior mean's, with a band holding
    ``hdi_prob`` of the posterior draws' densities (pointwise).
    """
    from scipy import stats

    ax = _axes(ax)
    values = np.asarray(x, dtype=float).reshape(-1)
    weights, means, covariances, names = _point_estimate(model)
    if means.shape[1] != 1:
        raise ValueError(f"plot_density needs a one-feature model, got {means.shape[1]} "
                         "features; use plot_clusters or plot_pairs.")
    span = values.max() - values.min()
    grid = np.linspace(values.min() - 0.1 * span, values.max() + 0.1 * span, 400)
    sds = np.sqrt(covariances[:, 0, 0])
    parts = weights[:, None] * stats.norm.pdf(grid, means[:, :1], sds[:, None])
    ax.hist(values, bins=bins, density=True, color="0.85", edgecolor="white", label="data")
    if _is_bayes(model):
        post = model.posterior.stack(sample=("chain", "draw"))
        dens = np.einsum("ks,ksg->sg", post["weights"].values, stats.norm.pdf(
            grid, post["means"].values[:, 0, :, None],
            np.sqrt(post["covariances"].values[:, 0, 0, :, None])))
        tail = (1 - hdi_prob) / 2
        low, high = np.quantile(dens, [tail, 1 - tail], axis=0)
        ax.fill_between(grid, low, high, color="C0", alpha=0.25, lw=0,
                        label=f"{hdi_prob:.0%} band")
    ax.plot(grid, parts.sum(axis=0), color="C0", lw=2, label="mixture", gid="mixture")
    for k, part in enumerate(parts):
        ax.plot(grid, part, "--", color=f"C{k + 1}", lw=1,
                label=f"component {k} (w={weights[k]:.2f})", gid="component")
    ax.plot(grid, stats.gaussian_kde(values)(grid), ":", color="black", label="KDE", gid="kde")
    ax.set_xlabel(names[0])
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


def plot_log_likelihood(model, *, ax=None):
    """EM's total log-likelihood at each iteration (the start is iteration 0)."""
    ax = _axes(ax)
    trace = model.log_likelihood_trace_
    ax.plot(np.arange(len(trace)), trace, marker="o", ms=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood")
    ax.set_title(f"{'converged' if model.converged_ else 'not converged'} after "
                 f"{model.n_iter_} iterations")
    return ax


def plot_uncertainty(model, X, *, features=(0, 1), hdi_prob=0.94, ax=None):
    """How sure each point's membership is.

    EM: points coloured by component and sized by the uncertainty ``1 - max_k
    p(k | x)``. Bayesian fit: points coloured by the width of the credible interval
    of their most probable component's membership probability (colour bar).
    """
    import matplotlib.pyplot as plt

    ax = _axes(ax)
    names = _point_estimate(model)[3]
    i, j = (_feature_index(names, f) for f in features)
    values = np.asarray(X, dtype=float)
    if _is_bayes(model):
        membership = model.membership(X, hdi_prob=hdi_prob)
        label = membership["mean"].values.argmax(axis=1)
        rows = np.arange(len(label))
        width = (membership["upper"].values - membership["lower"].values)[rows, label]
        points = ax.scatter(values[:, i], values[:, j], c=width, cmap="viridis", s=14,
                            vmin=0, vmax=max(width.max(), 1e-12))
        plt.colorbar(points, ax=ax, label=f"width of the {hdi_prob:.0%} membership interval")
    else:
        proba = model.predict_proba(X)
        uncertainty = 1 - proba.max(axis=1)
        ax.scatter(values[:, i], values[:, j], s=5 + 200 * uncertainty,
                   c=[f"C{k % 10}" for k in proba.argmax(axis=1)], alpha=0.7)
        ax.set_title("point size: 1 - max membership probability")
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    return ax


def plot_posterior(model, kind="trace", *, var_names=("weights", "means")):
    """ArviZ plots of a Bayesian fit's (relabelled) posterior.

    ``kind``: "trace" (``arviz_plots.plot_trace_dist``), "rank"
    (``plot_rank``) or "posterior" (``plot_dist``). Returns the arviz-plots
    PlotCollection (its ``.viz`` holds the matplotlib objects).
    """
    import arviz_plots as azp

    functions = {"trace": azp.plot_trace_dist, "rank": azp.plot_rank,
                 "posterior": azp.plot_dist}
    if kind not in functions:
        raise ValueError(f"kind must be one of {list(functions)}, got {kind!r}.")
    if not _is_bayes(model):
        raise ValueError("plot_posterior needs a GaussianMixtureBayes fit.")
    return functions[kind](model.idata_, var_names=list(var_names), backend="matplotlib")


def plot_bootstrap_lrt(result, *, bins="auto", axes=None):
    """The bootstrap distributions of the likelihood-ratio statistic, one panel per test.

    For each test of G against G + 1 components of a
    :class:`~bayesgmm.bootstrap.LRTResult`: a density histogram of the bootstrap values
    under G, the observed statistic as a vertical line (gid ``"observed"``) and the
    p-value in the title, as mclust's ``plot.mclustBootstrapLRT``. ``axes``: one Axes
    per test (default: a new grid of at most three columns). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    rows = result.table.to_dict("records")
    if axes is None:
        n_columns = min(len(rows), 3)
        n_rows = -(-len(rows) // n_columns)
        _, axes = plt.subplots(n_rows, n_columns, figsize=(4 * n_columns, 3 * n_rows),
                               squeeze=False)
    axes = np.ravel(axes)
    if len(axes) < len(rows):
        raise ValueError(f"plot_bootstrap_lrt needs {len(rows)} axes, one per test, got "
                         f"{len(axes)}.")
    for ax, row in zip(axes, rows):
        values = result.replicates["lrts"].sel(G=row["G"]).values
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, density=True, color="0.6", edgecolor="white", lw=0.3,
                label=f"bootstrap ({len(values)})")
        ax.axvline(row["LRTS"], color="forestgreen", lw=2, ls=":", gid="observed",
                   label="observed")
        low, high = min(values.min(initial=0), row["LRTS"]), max(values.max(initial=0), row["LRTS"])
        pad = 0.05 * (high - low or 1.0)
        ax.set_xlim(low - pad, high + pad)
        ax.set_title(f"{row['G']} vs {row['G+1']} components: LRTS {row['LRTS']:.2f}, "
                     f"p = {row['p_value']:.3g}", fontsize="medium")
        ax.set_xlabel("LRTS")
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize="small")
    fig = axes[0].figure
    fig.suptitle(f"Bootstrap LRT, {result.covariance_type}")
    fig.tight_layout()
    return fig
