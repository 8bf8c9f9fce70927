"""Where bayesgmm's EM ends above R mclust's optimum, cell by cell of mclust's table.

Two runs over every fitted cell of ``tests/data/mclust/mclust_reference.csv`` (4 data
sets x 14 families or E/V x G = 1..6):

1. *From mclust's estimates.* mclust stops EM when the log-likelihood changes by less
   than 1e-5 (relative); started at its estimates, bayesgmm's EM (tol 1e-9) goes on.
2. *From bayesgmm's default start* (``init_params="auto"``: mclust's hierarchical start
   and one scale-free k-means start, the better kept; ``random_state=0``, tol 1e-9).
   This also prints every cell that ends *below* mclust's log-likelihood by more than
   0.01 (none when the default start does what tests/test_mclust_starts.py checks).

Each prints the cells that end more than 0.01 above mclust's log-likelihood.
Run: ``.venv/bin/python benchmarks/mclust_optima.py`` (about two minutes); the output
of the last run is ``results-mclust-optima.txt``.
"""

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_families import FITTED, load, log_likelihood, mclust_parameters  # noqa: E402

from bayesgmm import GaussianMixtureEM  # noqa: E402
from bayesgmm._gaussian import get_covariance_structure  # noqa: E402


def fit(cell, start):
    X = load(cell.dataset)
    structure = get_covariance_structure(cell.model)
    if start == "mclust":
        pro, means, sigma = mclust_parameters(cell.dataset, cell.model, cell.G)
        kwargs = dict(weights_init=pro, means_init=means, reg_covar=0,
                      precisions_init=structure.from_full(np.linalg.inv(sigma)))
    else:
        kwargs = dict(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = GaussianMixtureEM(cell.G, covariance_type=cell.model, tol=1e-9, max_iter=5000,
                               **kwargs).fit(X)
    fitted = log_likelihood(X, em.weights_, em.means_,
                            structure.to_full(em.covariances_, cell.G, X.shape[1]))
    return fitted, em.n_iter_


def report(start, title):
    above, below = [], []
    for cell in FITTED.itertuples():
        fitted, n_iter = fit(cell, start)
        row = (cell.dataset, cell.model, cell.G, cell.loglik, fitted, n_iter)
        if fitted > cell.loglik + 0.01:
            above.append(row)
        elif fitted < cell.loglik - 0.01:
            below.append(row)
    print(f"## {title}")
    for name, rows in (("above", above), ("below", below)):
        if name == "below" and start == "mclust":
            continue
        print(f"{len(rows)} of {len(FITTED)} cells end {name} mclust's optimum by more "
              "than 0.01:")
        if not rows:
            continue
        print(f"{'data':9} {'model':5} {'G':>2} {'mclust':>12} {'bayesgmm':>12} {'gain':>8} "
              f"{'iter':>5}")
        for data, model, G, ref, fitted, n_iter in rows:
            print(f"{data:9} {model:5} {G:2d} {ref:12.4f} {fitted:12.4f} {fitted - ref:8.4f} "
                  f"{n_iter:5d}")
    print()


def main():
    report("mclust", "EM from mclust's estimates")
    report("auto", "EM from bayesgmm's default start (init_params='auto', random_state=0)")


if __name__ == "__main__":
    main()
