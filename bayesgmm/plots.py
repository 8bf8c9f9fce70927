"""Plots a statistician would draw of a fitted mixture (matplotlib; each returns its Axes)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_criterion", "plot_clusters"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def plot_criterion(table, criterion="bic", *, ax=None):
    """One line per covariance type of ``criterion`` against the number of components.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``n_components``, ``covariance_type`` and ``criterion``.
    criterion : str
        Column to plot (lower is better); the best model is circled.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    for name, group in table.groupby("covariance_type", sort=False):
        group = group.sort_values("n_components")
        ax.plot(group["n_components"], group[criterion], marker="o", label=str(name))
    best = table.loc[table[criterion].idxmin()]
    ax.plot(best["n_components"], best[criterion], "o", ms=14, mfc="none", mec="black",
            label=f"best: {best['covariance_type']}, K={best['n_components']}")
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.legend()
    return ax


def _ellipse_points(mean, cov, n_sd, n_points=100):
    values, vectors = np.linalg.eigh(cov)
    angle = np.linspace(0, 2 * np.pi, n_points)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    return (mean[:, None] + n_sd * vectors @ (np.sqrt(values)[:, None] * circle)).T


def plot_clusters(model, X, *, features=(0, 1), n_sd=(1, 2), ax=None):
    """Data coloured by most probable component, with covariance ellipses.

    Draws one ellipse per component and per entry of ``n_sd`` (contours at that many
    standard deviations of the component's marginal over the two ``features``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    names = model._feature_names()
    i, j = (names.index(f) if isinstance(f, str) else f for f in features)
    values = np.asarray(X, dtype=float)
    labels = model.predict(X)
    covariances = model._structure.to_full(
        model.covariances_, model.n_components, model.means_.shape[1]
    )
    colors = [f"C{k % 10}" for k in range(model.n_components)]
    ax.scatter(values[:, i], values[:, j], c=[colors[k] for k in labels], s=12, alpha=0.7)
    for k in range(model.n_components):
        mean = model.means_[k, [i, j]]
        cov = covariances[k][np.ix_([i, j], [i, j])]
        for sd in n_sd:
            ring = _ellipse_points(mean, cov, sd)
            ax.plot(ring[:, 0], ring[:, 1], color=colors[k], lw=1.5 if sd == 1 else 0.8)
        ax.plot(*mean, "x", color="black")
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    return ax
