"""scikit-learn's global test fixtures, for its GaussianMixture test module.

``global_dtype`` runs every dtype-aware test in float32 and float64 (scikit-learn
runs float32 only when ``SKLEARN_RUN_FLOAT32_TESTS=1``; bayesgmm keeps float32 data in
float32, so it always checks). ``global_random_seed`` is scikit-learn's default, 42,
or the seeds in ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` ("7", "0-9" or "all"), as in
scikit-learn's own conftest.
"""

import os

import numpy as np
import pytest


def _random_seeds():
    value = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if value is None:
        return [42]
    if value == "all":
        return list(range(100))
    if "-" in value:
        start, stop = value.split("-")
        return list(range(int(start), int(stop) + 1))
    return [int(value)]


def pytest_generate_tests(metafunc):
    if "global_random_seed" in metafunc.fixturenames:
        metafunc.parametrize("global_random_seed", _random_seeds())


@pytest.fixture(params=[np.float32, np.float64])
def global_dtype(request):
    return request.param
