"""simulation_study: replicates seeded apart, tables and choices, selection rates."""

from functools import partial

import numpy as np
import pandas as pd
import pytest

from bayesgmm import compare, datasets, simulation_study

SIMULATE = partial(datasets.simulate_mixture, 150, [0.5, 0.5], [[0, 0], [3, 3]],
                   [[1, 1], [1, 1]])
GRID = dict(n_components=[1, 2, 3], covariance_types=["diag", "full"], methods=("em",))


@pytest.fixture(scope="module")
def study():
    return simulation_study(SIMULATE, 5, truth=(2, "VVI"), random_state=0, progressbar=False,
                            **GRID)


def test_each_replicate_is_compare_on_its_own_simulated_data(study):
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(0).spawn(5)]
    assert study.choices["seed"].tolist() == seeds
    X, _ = SIMULATE(seeds[3])
    expected = compare(X, random_state=seeds[3], progressbar=False, **GRID)
    got = study.table[study.table["replicate"] == 3].drop(columns="replicate")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.table)
    assert study.choices.loc[3, "bic"] == expected.best("bic")
    assert study.truth == (2, "diag")  # the family by its name in COVARIANCE_STRUCTURES


def test_selection_rates_count_the_choices(study):
    rates = study.selection_rates()
    assert list(rates.columns) == ["bic", "aic", "icl"]  # the criteria computed
    np.testing.assert_allclose(rates.sum(axis=0), 1.0)
    for criterion in rates.columns:
        chosen = study.choices[criterion].value_counts() / 5
        for model, share in chosen.items():
            assert rates.loc[[model], criterion].iloc[0] == pytest.approx(share)
    truth = study.truth_rates()
    assert truth["bic"] == pytest.approx((study.choices["bic"] == (2, "diag")).mean())


def test_a_failing_simulation_is_a_row_with_its_error():
    def simulate(seed):
        if seed % 2:
            raise RuntimeError("no data today")
        return SIMULATE(seed)

    result = simulation_study(simulate, 6, random_state=1, progressbar=False, **GRID)
    odd = result.choices["seed"] % 2 == 1
    assert odd.any() and (~odd).any()
    assert (result.choices.loc[odd, "error"] == "RuntimeError: no data today").all()
    assert set(result.table["replicate"]) == set(result.choices.loc[~odd, "replicate"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"simulate": 3}, "simulate must be a callable"),
    ({"n_replicates": 0}, "n_replicates"),
    ({"truth": 2}, "truth must be"),
    ({"truth": (2, "XYZ")}, "covariance"),
    ({"client": object()}, "client must be a running"),
    ({"random_state": 4.5}, "random_state"),
])
def test_bad_arguments(kwargs, match):
    args = {"simulate": SIMULATE, "n_replicates": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulation_study(args.pop("simulate"), args.pop("n_replicates"), progressbar=False,
                         **GRID, **args)

