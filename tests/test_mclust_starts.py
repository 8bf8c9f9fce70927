"""The default start reaches R mclust's optimum in every cell of its table: each of
the four data sets, every covariance family and G = 1..6 (``tests/data/mclust``)."""

import warnings

import pytest

from bayesgmm import GaussianMixtureEM
from tests.test_families import FITTED, load

CELLS = list(FITTED[["dataset", "model", "G", "loglik", "df"]].itertuples(index=False,
                                                                        name=None))


@pytest.mark.parametrize("dataset, model, G, loglik, df", CELLS,
                         ids=[f"{d}-{m}-{g}" for d, m, g, *_ in CELLS])
def test_default_start_reaches_mclusts_optimum(dataset, model, G, loglik, df):
    """init_params="auto" (mclust's hierarchical start in SVD and in standardised
    coordinates and one scale-free k-means start, the best kept) ends at mclust's
    log-likelihood or above (mclust's own stopping rule leaves it up to about 0.01 below
    its optimum). The hierarchical start alone, mclust's partition, reaches it in all
    cells but iris VVE G=5 (-208.07 against -190.84: from the same partition EM climbs
    to another optimum); benchmarks/mclust_optima.py also ran random_state 1 to 4. tol=1e-6: scikit-learn's default
    tol=1e-3 on the mean log-likelihood stops EM early on these small data sets
    (benchmarks/mclust_optima.py prints both)."""
    X = load(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slow M-step or EM convergence on a few cells
        em = GaussianMixtureEM(G, covariance_type=model, tol=1e-6, max_iter=5000,
                               random_state=0).fit(X)
    assert em.log_likelihood_ >= loglik - 0.01
    assert em.n_parameters() == df
