import matplotlib
import pytest

from bayesgmm import demo
from bayesgmm.__main__ import main

matplotlib.use("Agg")


def test_demo_picks_mclusts_model_and_writes_the_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # mclust's BIC choice for Old Faithful is EEE (tied) with 3 components
    assert "best by BIC: 3 components, tied" in out
    assert (tmp_path / "faithful_em.png").stat().st_size > 10_000


def test_em_grid_table():
    from bayesgmm import datasets

    table, fits = demo.em_grid(datasets.load_faithful(), n_components=[1, 2],
                               covariance_types=["full", "VII"])
    assert len(table) == 4 and len(fits) == 4
    row = table[(table.n_components == 1) & (table.covariance_type == "full")].iloc[0]
    # one full Gaussian: the closed-form maximum likelihood
    X = datasets.load_faithful().to_numpy()
    import numpy as np
    from scipy import stats

    expected = stats.multivariate_normal(X.mean(0), np.cov(X.T, bias=True)).logpdf(X).sum()
    assert row["log_likelihood"] == pytest.approx(expected, rel=1e-6)
    assert row["n_parameters"] == 5
