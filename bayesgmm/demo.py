"""The main job: fit EM over a grid of models on Old Faithful and report the criteria."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from . import datasets
from .em import GaussianMixtureEM

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def em_grid(X, n_components=range(1, 7), covariance_types=COVARIANCE_TYPES, *,
            n_init=5, random_state=0):
    """Fit EM for every (K, covariance type); return the criteria table and the fits."""
    rows, fits = [], {}
    for k, cov in itertools.product(n_components, covariance_types):
        model = GaussianMixtureEM(k, covariance_type=cov, n_init=n_init, tol=1e-6,
                                  max_iter=1000, random_state=random_state).fit(X)
        fits[k, cov] = model
        rows.append({
            "n_components": k,
            "covariance_type": cov,
            "log_likelihood": model.log_likelihood_,
            "n_parameters": model.n_parameters(),
            "bic": model.bic(X),
            "aic": model.aic(X),
            "icl": model.icl(X),
        })
    return pd.DataFrame(rows), fits


def main(out_dir="demo-output"):
    import matplotlib.pyplot as plt

    from .plots import plot_clusters, plot_criterion

    X = datasets.load_faithful()
    print(f"Old Faithful: {X.shape[0]} eruptions, features {list(X.columns)}\n")
    table, fits = em_grid(X)
    with pd.option_context("display.width", 120, "display.precision", 2):
        print("EM fits (lower BIC/AIC/ICL is better):")
        print(table.to_string(index=False))
    for criterion in ("bic", "aic", "icl"):
        best = table.loc[table[criterion].idxmin()]
        print(f"best by {criterion.upper()}: {best['n_components']} components, "
              f"{best['covariance_type']}")

    best = table.loc[table["bic"].idxmin()]
    model = fits[best["n_components"], best["covariance_type"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_criterion(table, "bic", ax=left)
    plot_clusters(model, X, ax=right)
    right.set_title(f"best BIC: {best['covariance_type']}, K={best['n_components']}")
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "faithful_em.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nfigure written to {path}")
    return table
