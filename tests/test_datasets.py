import numpy as np
import pytest

from bayesgmm import datasets


def test_faithful_is_the_classic_table():
    df = datasets.load_faithful()
    assert df.shape == (272, 2)
    assert list(df.columns) == ["eruptions", "waiting"]
    # R: colMeans(faithful) = 3.487783, 70.897059
    np.testing.assert_allclose(df.mean().to_numpy(), [3.487783, 70.897059], atol=1e-6)
    assert df.iloc[0].tolist() == [3.6, 79.0]


def test_galaxies_are_corrected():
    df = datasets.load_galaxies()
    assert df.shape == (82, 1)
    v = df["velocity"].to_numpy()
    assert v[77] == 26960  # MASS's copy has the typo 26690
    assert 26690 not in v
    assert np.all(np.diff(v) >= 0)
    # R: mean(MASS::galaxies) = 20828.17, from the copy with the typo
    assert (v.sum() - (26960 - 26690)) / 82 == pytest.approx(20828.17, abs=0.005)


def test_diabetes_is_mclusts_table_with_its_classes():
    from pathlib import Path

    import pandas as pd

    df = datasets.load_diabetes()
    assert df.shape == (145, 4)
    assert list(df.columns) == ["class", "glucose", "insulin", "sspg"]
    # R: table(mclust::diabetes$class): Chemical 36, Normal 76, Overt 33
    assert df["class"].value_counts(sort=False).to_dict() == {
        "Normal": 76, "Chemical": 36, "Overt": 33}
    assert list(df["class"].cat.categories) == ["Normal", "Chemical", "Overt"]
    # mclust's row order (the 33 Overt last) and row 104's flawed insulin value
    assert df["class"].iloc[-33:].eq("Overt").all() and df["class"].iloc[0] == "Normal"
    assert df.iloc[103].tolist() == ["Chemical", 75, 45, 392]
    # R: colMeans(mclust::diabetes[, -1]) = 121.9862, 540.7862, 186.1172
    np.testing.assert_allclose(df[["glucose", "insulin", "sspg"]].mean().to_numpy(),
                               [121.9862, 540.7862, 186.1172], atol=5e-5)
    # exactly the data mclust's reference fits were made on
    reference = pd.read_csv(Path(__file__).parent / "data" / "mclust" / "diabetes.csv")
    pd.testing.assert_frame_equal(df.drop(columns="class"), reference)


def test_simulate_mixture_has_the_asked_moments():
    weights = [0.25, 0.75]
    means = [[0.0, 0.0], [6.0, -3.0]]
    covs = [[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.5]]]
    X, z = datasets.simulate_mixture(40_000, weights, means, covs, random_state=0)
    assert X.shape == (40_000, 2)
    assert np.mean(z == 0) == pytest.approx(0.25, abs=0.01)
    for k in range(2):
        np.testing.assert_allclose(X[z == k].mean(axis=0), means[k], atol=0.05)
        np.testing.assert_allclose(np.cov(X[z == k].T), covs[k], atol=0.06)
    again, _ = datasets.simulate_mixture(40_000, weights, means, covs, random_state=0)
    np.testing.assert_array_equal(X, again)


def test_simulate_mixture_shorthand_covariances():
    X, z = datasets.simulate_mixture(20_000, [0.5, 0.5], [1.0, 5.0], [0.25, 4.0], random_state=1)
    assert X.shape == (20_000, 1)
    assert X[z == 1].std() == pytest.approx(2.0, rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": [0.5, 0.6]}, "summing to 1"),
        ({"covariances": [[[1.0, 2.0], [2.0, 1.0]]] * 2}, "positive definite"),
        ({"covariances": np.ones((2, 3))}, "must have shape"),
    ],
)
def test_simulate_mixture_rejects_bad_parameters(kwargs, message):
    params = {"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "covariances": [1.0, 1.0]}
    with pytest.raises(ValueError, match=message):
        datasets.simulate_mixture(10, **{**params, **kwargs})
