import hashlib

import matplotlib
import pytest
from click.testing import CliRunner

from bayesgmm.cli import main

from .conftest import seed

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
def test_full_demo_prints_the_comparison(tmp_path, capsys):
    """The Bayesian demo on a reduced grid, with the demo's own chains (4 x 1000)."""
    import numpy as np
    from PIL import Image

    from bayesgmm import demo

    result = demo.main(tmp_path, max_components=2, covariance_types=("full",),
                       random_state=seed("full-demo"), progressbar=False)
    out = capsys.readouterr().out
    assert "4 chains x 1000 draws after 1000 warm-up" in out  # the demo's own settings
    assert "elpd_loo" in out and "max_rhat" in out and "min_ess_bulk" in out
    assert "n_loo_refits" in out and "status" in out
    table = result.table.set_index("n_components")
    # whatever is printed as ranked passed the checks, and only that is chosen
    for k in (1, 2):
        ranked = table.loc[k, "set_aside"] == ""
        assert ranked == (table.loc[k, "max_rhat"] <= 1.01
                          and table.loc[k, "min_ess_bulk"] >= 400), table.loc[k]
    for criterion in ("loo", "waic"):
        if criterion in result.best():
            assert table.loc[result.best(criterion)[0], "set_aside"] == ""
    # two components predict far better than one: beyond 4 se of the difference
    elpd = {k: result.models[k, "full"]["loo"].loo.elpd_i.values for k in (1, 2)}
    diff = elpd[2] - elpd[1]
    assert diff.sum() > 4 * np.sqrt(len(diff) * diff.var())
    assert "best by BIC: 2 components, full" in out
    for line in textwrap_lines(result.agreement()):
        assert line in out
    # the Bayesian figure: EM clusters | posterior ellipses | membership uncertainty
    if "loo" in result.best():
        figure = tmp_path / "faithful_posterior.png"
        with Image.open(figure) as image:
            width, height = image.size
        assert width > 2.5 * height and figure.stat().st_size > 30_000


def textwrap_lines(text):
    import textwrap

    return textwrap.wrap(text, width=110, break_on_hyphens=False)


def test_posterior_figure_has_the_three_panels(faithful):
    """demo.posterior_figure puts the EM clusters, the posterior draws' ellipses and the
    membership-interval widths side by side (a short fit: the figure, not the numbers)."""
    from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, demo
    from bayesgmm.compare import ModelComparison

    X = faithful.to_numpy()
    em = GaussianMixtureEM(2, n_init=2, random_state=0).fit(X)
    bayes = GaussianMixtureBayes(2, random_state=seed("posterior-figure")).fit(
        X, draws=20, tune=50, chains=1, progressbar=False, em=em)
    result = ModelComparison(None, {(2, "full"): {"em": em, "bayes": bayes}})
    fig = demo.posterior_figure(result, X, (2, "full"))
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == [
        "EM: full, K=2", "posterior: 1-sd ellipses of 20 draws",
        "membership uncertainty per point"]
    assert not any(line.get_gid() == "posterior-draw" for line in panels[0].lines)
    assert sum(line.get_gid() == "posterior-draw" for line in panels[1].lines) == 2 * 20
    widths = panels[2].collections[0].get_array()
    assert len(widths) == len(X) and widths.min() >= 0 and widths.max() > 0
    assert len(fig.axes) == 4  # and the colour bar of the widths


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
    assert "-1126.316" in em.GaussianMixtureEM.__doc__


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


def test_a_figure_that_fails_half_way_keeps_the_old_one(tmp_path, monkeypatch):
    import errno
    import os
    import re

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from bayesgmm.demo import MARKER, OutputError, _save_figure

    out = tmp_path / "demo-output"
    out.mkdir()
    path = _save_figure(plt.figure(), out, "faithful_compare.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the format of the extension
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "faithful_compare.png"]
    assert (out / MARKER).read_text() == \
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  faithful_compare.png\n"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def half_then_disk_full(self, fname, *args, **kwargs):
        with open(fname, "wb") as handle:
            handle.write(b"\x89PNG half a figure")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", half_then_disk_full)
    with pytest.raises(OutputError,
                       match=re.escape(f"cannot write {path}: No space left on device")):
        _save_figure(plt.figure(), out, "faithful_compare.png")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
