"""Plots a statistician would draw of a fitted mixture (matplotlib).

Each function takes an EM fit (:class:`~bayesgmm.GaussianMixtureEM`) or, where it
says so, a Bayesian one (:class:`~bayesgmm.GaussianMixtureBayes`), draws on ``ax``
(a new figure when None) and returns the Axes (or the Figure for grids).
"""

from __future__ import annotations

import numpy as np

__all__ = [
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


#: Table columns besides the criteria (``compare.CRITERIA``) whose best is the highest.
_HIGHER_IS_BETTER = ("bic_mclust", "icl_mclust", "log_likelihood")


def plot_criterion(table, criterion="bic", *, lower_is_better=None, ax=None):
    """One line per covariance type of ``criterion`` against the number of components.

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
    """
    from .compare import CRITERIA

    if criterion in CRITERIA and criterion not in table:
        criterion = CRITERIA[criterion].column
    if criterion not in table:
        raise ValueError(f"the table has no column {criterion!r}.")
    if lower_is_better is None:
        directions = {c.column: c.lower_is_better for c in CRITERIA.values()}
        directions.update(dict.fromkeys(_HIGHER_IS_BETTER, False))
        lower_is_better = directions.get(criterion)
        if lower_is_better is None:
            raise ValueError(f"is a lower or a higher {criterion!r} better? Pass "
                             "lower_is_better=True or False.")
    ax = _axes(ax)
    for name, group in table.groupby("covariance_type", sort=False):
        group = group.sort_values("n_components")
        ax.plot(group["n_components"], group[criterion], marker="o", label=str(name))
    values = table[criterion].dropna()
    if len(values):
        best = table.loc[values.idxmin() if lower_is_better else values.idxmax()]
        ax.plot(best["n_components"], best[criterion], "o", ms=14, mfc="none", mec="black",
                gid="best", label=f"best: {best['covariance_type']}, K={best['n_components']}")
    ax.set_xlabel("number of components")
    label = next((c.label for c in CRITERIA.values() if c.column == criterion), criterion)
    ax.set_ylabel(f"{label} ({'lower' if lower_is_better else 'higher'} is better)")
    ax.legend()
    return ax


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
    diagonal, each component's histogram on the diagonal. Returns the Figure."""
    import matplotlib.pyplot as plt

    weights, means, covariances, names = _point_estimate(model)
    D = len(names)
    values = np.asarray(X, dtype=float)
    labels = model.predict(X)
    fig, axes = plt.subplots(D, D, figsize=(2.6 * D, 2.6 * D), squeeze=False)
    for r in range(D):
        for c in range(D):
            ax = axes[r, c]
            if r == c:
                bins = np.histogram_bin_edges(values[:, r], bins=20)
                for k in range(len(weights)):
                    ax.hist(values[labels == k, r], bins=bins, color=f"C{k % 10}", alpha=0.6)
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
