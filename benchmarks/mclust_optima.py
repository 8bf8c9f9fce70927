"""Where EM, started at R mclust's estimates, climbs to a higher optimum than mclust's.

mclust stops EM when the log-likelihood changes by less than 1e-5 (relative); from its
estimates bayesgmm's EM (tol 1e-9) goes on. Prints every cell of
``tests/data/mclust/mclust_reference.csv`` that ends more than 0.01 above mclust's
log-likelihood. Run: ``.venv/bin/python benchmarks/mclust_optima.py``.
"""

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_families import FITTED, load, log_likelihood, mclust_parameters  # noqa: E402

from bayesgmm import GaussianMixtureEM  # noqa: E402
from bayesgmm._gaussian import get_covariance_structure  # noqa: E402


def main():
    rows = []
    for cell in FITTED.itertuples():
        X = load(cell.dataset)
        pro, means, sigma = mclust_parameters(cell.dataset, cell.model, cell.G)
        structure = get_covariance_structure(cell.model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            em = GaussianMixtureEM(cell.G, covariance_type=cell.model, weights_init=pro,
                                   means_init=means, tol=1e-9, max_iter=5000, reg_covar=0,
                                   precisions_init=structure.from_full(np.linalg.inv(sigma)))
            em.fit(X)
        fitted = log_likelihood(X, em.weights_, em.means_,
                                structure.to_full(em.covariances_, cell.G, X.shape[1]))
        if fitted > cell.loglik + 0.01:
            rows.append((cell.dataset, cell.model, cell.G, cell.loglik, fitted, em.n_iter_))
    print(f"{len(rows)} of {len(FITTED)} cells end above mclust's optimum by more than 0.01:")
    print(f"{'data':9} {'model':5} {'G':>2} {'mclust':>12} {'bayesgmm':>12} {'gain':>8} {'iter':>5}")
    for data, model, G, ref, fitted, n_iter in rows:
        print(f"{data:9} {model:5} {G:2d} {ref:12.4f} {fitted:12.4f} {fitted - ref:8.4f} "
              f"{n_iter:5d}")


if __name__ == "__main__":
    main()
