import matplotlib
import pytest
from click.testing import CliRunner

from bayesgmm.cli import main

matplotlib.use("Agg")


def test_em_demo_picks_mclusts_model_and_writes_the_figures(tmp_path):
    argv = ["demo", "--out", str(tmp_path), "--em-only", "--max-components", "6",
            "--no-progress"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    out = result.output
    # mclust's BIC choice for Old Faithful is EEE (tied) with 3 components
    assert "best by BIC: 3 components, tied" in out
    assert "elpd_loo" not in out
    for name in ("faithful_compare.png", "faithful_clusters.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_one_full_gaussian_is_the_closed_form_fit():
    import numpy as np
    from scipy import stats

    from bayesgmm import compare, datasets

    X = datasets.load_faithful()
    table = compare(X, [1, 2], ["full", "VII"], methods=("em",), progressbar=False).table
    assert len(table) == 4
    row = table[(table.n_components == 1) & (table.covariance_type == "full")].iloc[0]
    values = X.to_numpy()
    expected = stats.multivariate_normal(values.mean(0), np.cov(values.T, bias=True)) \
        .logpdf(values).sum()
    assert row["log_likelihood"] == pytest.approx(expected, rel=1e-6)
    assert row["n_parameters"] == 5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PSIS-LOO is unreliable")
def test_full_demo_prints_the_comparison(tmp_path, capsys):
    result = __import__("bayesgmm.demo", fromlist=["main"]).main(
        tmp_path, max_components=2, covariance_types=("full",), draws=100, tune=100,
        progressbar=False)
    out = capsys.readouterr().out
    assert "elpd_loo" in out and "best by LOO:" in out
    assert result.agreement() in out
    assert set(result.best()) == {"bic", "aic", "icl", "loo", "waic"}
    assert result.best("loo") == (2, "full")


def test_em_docstring_example_prints_what_it_claims():
    """The Old Faithful example in GaussianMixtureEM's docstring runs as a doctest."""
    import doctest

    from bayesgmm import em

    tests = doctest.DocTestFinder().find(em.GaussianMixtureEM, "GaussianMixtureEM")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= 4 and results.failed == 0
    assert "-1126.317" in em.GaussianMixtureEM.__doc__
