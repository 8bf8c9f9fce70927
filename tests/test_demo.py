import hashlib

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


# ------------------------------------------------------- quiet, and what may be overwritten
def run_demo(*args):
    argv = ["demo", "--em-only", "--max-components", "2", "--no-progress"]
    return CliRunner().invoke(main, [*argv[:1], *map(str, args), *argv[1:]])


def figures(folder):
    return {name: (folder / name).read_bytes() for name in
            ("faithful_compare.png", "faithful_clusters.png")}


def test_quiet_demo_prints_nothing(tmp_path):
    result = CliRunner().invoke(main, ["--quiet", "demo", "--out", str(tmp_path / "out"),
                                       "--em-only", "--max-components", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert all(len(data) > 10_000 for data in figures(tmp_path / "out").values())
    loud = run_demo("--out", tmp_path / "loud")
    assert loud.exit_code == 0 and "best by BIC: 2 components" in loud.output


def test_demo_reruns_over_its_own_figures(tmp_path):
    out = tmp_path / "demo-output"
    assert run_demo("--out", out).exit_code == 0
    marker = (out / ".bayesgmm-demo").read_text().splitlines()
    first = figures(out)
    assert sorted(line.split("  ")[1] for line in marker) == sorted(first)
    assert {line.split("  ")[0] for line in marker} == {
        hashlib.sha256(data).hexdigest() for data in first.values()}
    # `make demo` twice in a row: the second run replaces the demo's own figures
    (out / "notes.txt").write_text("mine")
    again = run_demo("--out", out, "--seed", 1)
    assert again.exit_code == 0, again.output
    assert set(figures(out)) == set(first)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [
        ".bayesgmm-demo", "faithful_clusters.png", "faithful_compare.png", "notes.txt"]


def test_demo_keeps_files_it_did_not_write(tmp_path, monkeypatch):
    import bayesgmm.demo

    out = tmp_path / "demo-output"
    out.mkdir()
    (out / "faithful_clusters.png").write_bytes(b"someone else's figure")
    fits = []
    monkeypatch.setattr(bayesgmm.demo, "compare",
                        lambda *a, **k: fits.append(1) or pytest.fail("fitted first"))
    result = run_demo("--out", out)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"bayesgmm: error: {out / 'faithful_clusters.png'} exists and was not written by the "
        "demo; pass --force to overwrite it, or --out another folder."]
    assert fits == [] and (out / "faithful_clusters.png").read_bytes() == \
        b"someone else's figure"
    assert sorted(p.name for p in out.iterdir()) == ["faithful_clusters.png"]
    with pytest.raises(bayesgmm.demo.OutputError, match="not written by the demo"):
        bayesgmm.demo.main(out, bayes=False)
    # nor a demo figure that was changed afterwards
    monkeypatch.undo()
    assert run_demo("--out", out, "--force").exit_code == 0
    assert (out / "faithful_clusters.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "faithful_compare.png", "ab") as handle:
        handle.write(b"edited")
    assert run_demo("--out", out).exit_code == 2
    # a file where the folder should be
    (tmp_path / "taken").write_text("x")
    result = run_demo("--out", tmp_path / "taken")
    assert result.exit_code == 2 and "bayesgmm: error:" in result.stderr
