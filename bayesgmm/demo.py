"""The main job: compare EM and Bayesian mixtures on Old Faithful and report the criteria."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from . import datasets
from .compare import COVARIANCE_TYPES, compare

#: Columns printed by the demo.
SHOWN = ["n_components", "covariance_type", "n_parameters", "log_likelihood", "bic", "aic",
         "icl", "elpd_loo", "elpd_loo_diff", "elpd_loo_dse", "n_pareto_k_high", "elpd_waic",
         "loo_weight", "max_rhat"]


def main(out_dir="demo-output", *, max_components=4, covariance_types=COVARIANCE_TYPES,
         bayes=True, draws=300, tune=300, chains=2, random_state=0, progressbar=True):
    """Compare 1..max_components x the covariance types by EM and NUTS.

    Prints the criteria table and the agreement summary, and writes
    ``faithful_compare.png`` (criteria against K) and ``faithful_clusters.png``
    (the data with the BIC-chosen fit) to ``out_dir``. Returns the
    :class:`~bayesgmm.ModelComparison`.
    """
    import matplotlib.pyplot as plt

    from .plots import plot_clusters

    X = datasets.load_faithful()
    print(f"Old Faithful: {X.shape[0]} eruptions, features {list(X.columns)}")
    methods = ("em", "bayes") if bayes else ("em",)
    if bayes:
        print(f"fitting {max_components * len(covariance_types)} models by EM and by NUTS "
              f"({chains} chains x {draws} draws after {tune} warm-up) ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(X, range(1, max_components + 1), covariance_types, methods=methods,
                         draws=draws, tune=tune, chains=chains, random_state=random_state,
                         progressbar=progressbar)
    shown = [c for c in SHOWN if c in result.table]
    with pd.option_context("display.width", 160, "display.precision", 2,
                           "display.max_columns", None):
        print("\nBIC, AIC, ICL: lower is better; elpd (LOO, WAIC): higher is better")
        print(result.table[shown].round({"loo_weight": 2}).to_string(index=False))
    for name, (k, cov) in result.best().items():
        print(f"best by {name.upper()}: {k} components, {cov}")
    print(result.agreement())
    if "max_rhat" in result.table:
        unsettled = result.table[result.table["max_rhat"] > 1.01]
        if len(unsettled):
            names = ", ".join(f"K={k} {c}" for k, c in zip(unsettled["n_components"],
                                                           unsettled["covariance_type"]))
            print(f"note: R-hat > 1.01 for {names}: their chains disagree at these short "
                  "runs (--draws/--tune to run longer); read their LOO/WAIC with care.")
    for warning in caught:
        print(f"note: {warning.message}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = result.plot()
    fig.savefig(out / "faithful_compare.png", dpi=110)
    plt.close(fig)
    k, cov = result.best("bic")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    plot_clusters(result.models[k, cov]["em"], X, ax=ax)
    ax.set_title(f"best BIC: {cov}, K={k}")
    fig.tight_layout()
    fig.savefig(out / "faithful_clusters.png", dpi=110)
    plt.close(fig)
    print(f"\nfigures written to {out / 'faithful_compare.png'} and "
          f"{out / 'faithful_clusters.png'}")
    return result
