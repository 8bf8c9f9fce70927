"""Shared fixtures: simulated mixtures with known truth, bundled data, and the test seed.

Every test that samples (NUTS, ADVI, SMC, posterior predictive) takes its seed from
``seed(...)``: the global test seed ``BAYESGMM_TEST_SEED`` (default 0) combined with the
test's own key. Running the suite under several values of it checks that no assertion on
sampler output depends on one set of draws.
"""

import os
import zlib

import numpy as np
import pytest

from bayesgmm import datasets
from bayesgmm._gaussian import bayesian_covariance_names

#: the structures both engines fit, from the registry
COVARIANCE_TYPES = tuple(bayesian_covariance_names())

TEST_SEED = int(os.environ.get("BAYESGMM_TEST_SEED", "0"))


def seed(*key) -> int:
    """A seed derived from the global test seed and ``key`` (any values with a str())."""
    text = ":".join(str(part) for part in (TEST_SEED, *key))
    return zlib.crc32(text.encode())


def pytest_report_header(config):
    return f"BAYESGMM_TEST_SEED={TEST_SEED} (sampling tests derive their seeds from it)"


class RandomData:
    """Well-separated mixtures with known parameters, one per covariance type."""

    def __init__(self, n_samples=600, n_features=2, n_components=3, seed=0):
        rng = np.random.default_rng(seed)
        self.n_samples, self.n_features, self.n_components = n_samples, n_features, n_components
        self.weights = np.array([0.2, 0.3, 0.5])[:n_components] / np.array(
            [0.2, 0.3, 0.5]
        )[:n_components].sum()
        self.means = rng.uniform(-1, 1, (n_components, n_features)) * 12
        self.means[:, 0] = np.arange(n_components) * 12.0  # ordered, well separated
        A = rng.normal(size=(n_components, n_features, n_features))
        full = A @ np.swapaxes(A, 1, 2) + n_features * np.eye(n_features)
        self.covariances = {
            "full": full,
            "tied": full[0],
            "diag": rng.uniform(0.5, 2.0, (n_components, n_features)),
            "spherical": rng.uniform(0.5, 2.0, n_components),
        }
        self.X, self.labels = {}, {}
        for cov_type, cov in self.covariances.items():
            as_full = np.broadcast_to(cov, full.shape) if cov_type == "tied" else cov
            self.X[cov_type], self.labels[cov_type] = datasets.simulate_mixture(
                n_samples, self.weights, self.means, as_full, random_state=seed + 1
            )


@pytest.fixture(scope="session")
def random_data():
    return RandomData()


@pytest.fixture(scope="session")
def faithful():
    return datasets.load_faithful()
