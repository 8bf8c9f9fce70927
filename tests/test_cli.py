"""The command line, driven through click's runner (and once as a real process)."""

import errno
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets
from bayesgmm.cli import main


@pytest.fixture
def faithful_csv(tmp_path):
    path = tmp_path / "faithful.csv"
    datasets.load_faithful().to_csv(path, index=False)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, code):
    """The error is one line on stderr, ``bayesgmm: error: ...``; returns its message."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bayesgmm: error: "), lines[0]
    assert "Traceback" not in result.output and "Usage:" not in result.output
    return lines[0].removeprefix("bayesgmm: error: ")


def test_fit_em_prints_saves_and_plots(faithful_csv, tmp_path):
    out, plot = tmp_path / "em.nc", tmp_path / "em.png"
    result = run("fit", faithful_csv, "-k", 3, "--covariance", "EEE", "--seed", 0,
                 "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "covariance tied (mclust EEE)" in result.output
    direct = GaussianMixtureEM(3, covariance_type="tied", n_init=5, tol=1e-6, max_iter=1000,
                               random_state=0).fit(datasets.load_faithful())
    assert f"log-likelihood {direct.log_likelihood_:.3f}" in result.output
    np.testing.assert_allclose(GaussianMixtureEM.load(out).means_, direct.means_)
    assert plot.stat().st_size > 10_000


def test_outputs_are_not_overwritten_without_force(faithful_csv, tmp_path):
    out = tmp_path / "em.nc"
    out.write_text("precious")
    message = one_line_error(run("fit", faithful_csv, "--out", out), 2)
    assert "exists; pass --force" in message
    assert out.read_text() == "precious"
    assert run("fit", faithful_csv, "--out", out, "--force").exit_code == 0


def test_bad_input_is_one_line_with_exit_code_2(tmp_path, faithful_csv):
    frame = datasets.load_faithful()
    frame["site"] = "yellowstone"
    frame.to_csv(tmp_path / "text.csv", index=False)
    message = one_line_error(run("fit", tmp_path / "text.csv", "--out", tmp_path / "a.nc"), 2)
    assert "site" in message and "non-numeric" in message
    frame = datasets.load_faithful()
    frame.iloc[3, 1] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    message = one_line_error(run("fit", tmp_path / "nan.csv", "--missing", "raise", "--out",
                                 tmp_path / "a.nc"), 2)
    assert "NaN" in message and "waiting" in message
    frame.iloc[:, :] = np.nan
    frame.to_csv(tmp_path / "empty.csv", index=False)
    message = one_line_error(run("fit", tmp_path / "empty.csv", "--out", tmp_path / "a.nc"), 2)
    assert "every feature missing" in message
    message = one_line_error(run("fit", faithful_csv, "--columns", "eruptions,height",
                                 "--out", tmp_path / "a.nc"), 2)
    assert "height" in message and "eruptions" in message
    small = tmp_path / "small.csv"
    datasets.load_faithful().head(3).to_csv(small, index=False)
    message = one_line_error(run("fit", small, "-k", 4, "--out", tmp_path / "a.nc"), 2)
    assert "n_components = 4" in message
    (tmp_path / "binary.parquet").write_bytes(b"\x00not parquet")
    message = one_line_error(run("fit", tmp_path / "binary.parquet", "--out",
                                 tmp_path / "a.nc"), 2)
    assert "cannot read" in message
    message = one_line_error(run("compare", faithful_csv, "-k", "one-six"), 2)
    assert message == "--components must look like 1-6 or 1,2,4; got 'one-six'."


def test_a_failed_fit_exits_1(tmp_path):
    # three distinct points: a fourth component can only collapse
    X = np.repeat([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]], 10, axis=0)
    path = tmp_path / "three.csv"
    pd.DataFrame(X, columns=["a", "b"]).to_csv(path, index=False)
    message = one_line_error(run("fit", path, "-k", 4, "--covariance", "spherical",
                                 "--out", tmp_path / "a.nc"), 1)
    assert message.startswith("EM failed:") and "reg_covar" in message
    assert not (tmp_path / "a.nc").exists()


def test_predict_with_an_em_result(faithful_csv, tmp_path):
    out = tmp_path / "em.nc"
    assert run("fit", faithful_csv, "-k", 2, "--seed", 1, "--out", out).exit_code == 0
    labels = tmp_path / "labels.csv"
    result = run("predict", out, faithful_csv, "--out", labels)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(labels)
    model = GaussianMixtureEM.load(out)
    np.testing.assert_array_equal(table["label"], model.predict(datasets.load_faithful()))
    np.testing.assert_allclose(table[["prob_0", "prob_1"]].sum(axis=1), 1.0)
    message = one_line_error(run("predict", faithful_csv, faithful_csv, "--out",
                                 tmp_path / "x.csv"), 2)
    assert "not a netCDF file written by bayesgmm" in message


def test_fit_map_and_predict_with_intervals(faithful_csv, tmp_path, drawn_axes):
    out = tmp_path / "map.nc"
    result = run("fit", faithful_csv, "-k", 2, "--method", "map", "--seed", 0, "--out", out,
                 "--plot", tmp_path / "map.png")
    assert result.exit_code == 0, result.output
    assert "MAP, 2 components" in result.output and "em" in result.output
    model = GaussianMixtureBayes.load(out)
    # the plot is the MAP's (one "draw": one posterior ellipse per component), not EM's
    (ax,) = drawn_axes
    assert len(gids(ax, "posterior-draw")) == 2
    map_means = model.posterior["means"].values[0, 0]
    np.testing.assert_allclose([m.get_xydata()[0] for m in gids(ax, "mean")], map_means)
    assert not np.allclose(map_means, model.em_.means_)
    labels = tmp_path / "labels.csv"
    assert run("predict", out, faithful_csv, "--out", labels).exit_code == 0
    table = pd.read_csv(labels)
    assert {"prob_0", "lower_0", "upper_0", "prob_1"} <= set(table.columns)
    np.testing.assert_array_equal(table["label"], model.predict(datasets.load_faithful()))


def test_compare_em_only_writes_table_and_plot(faithful_csv, tmp_path):
    out, plot = tmp_path / "table.csv", tmp_path / "criteria.png"
    result = run("compare", faithful_csv, "-k", "1-3", "--covariance", "full,tied",
                 "--em-only", "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "BIC" in result.output
    table = pd.read_csv(out)
    assert len(table) == 6 and set(table["covariance_type"]) == {"full", "tied"}
    assert plot.stat().st_size > 10_000
    message = one_line_error(run("compare", faithful_csv, "--covariance", "round",
                                 "--em-only"), 2)
    assert "round" in message


def test_quiet_prints_nothing(faithful_csv, tmp_path):
    result = run("--quiet", "fit", faithful_csv, "--out", tmp_path / "em.nc")
    assert result.exit_code == 0 and result.output == ""


def test_quiet_silences_warnings_and_sampler_logs(faithful_csv, tmp_path, monkeypatch):
    import logging
    import warnings

    original = GaussianMixtureEM.fit

    def noisy_fit(self, X, *args, **kwargs):
        logging.getLogger("pymc").warning("a sampler note")
        warnings.warn("a fit warning", UserWarning)
        return original(self, X, *args, **kwargs)

    class Collect(logging.Handler):
        def emit(self, record):
            notes.append(record.getMessage())

    notes, handler = [], Collect()
    logging.getLogger("pymc").addHandler(handler)
    monkeypatch.setattr(GaussianMixtureEM, "fit", noisy_fit)
    try:
        result = run("--quiet", "fit", faithful_csv, "--out", tmp_path / "q.nc")
        assert result.exit_code == 0 and result.output == "" and notes == []
        result = run("fit", faithful_csv, "--out", tmp_path / "loud.nc")
    finally:
        logging.getLogger("pymc").removeHandler(handler)
    assert result.exit_code == 0
    assert "warning: a fit warning" in result.stderr
    assert notes == ["a sampler note"]  # logging is back on after --quiet


# ----------------------------------------------------------- usage errors, one line each
@pytest.mark.parametrize(("args", "start", "command"), [
    (["fit", "{csv}", "--out", "{tmp}/a.nc", "--colour", "red"],
     "No such option '--colour'", "bayesgmm fit"),
    (["fit", "{csv}", "-k", "0", "--out", "{tmp}/a.nc"],
     "Invalid value for '--components' / '-k': 0 is not in the range x>=1", "bayesgmm fit"),
    (["fit", "{tmp}/missing.csv", "--out", "{tmp}/a.nc"],
     "Invalid value for 'DATA': File '{tmp}/missing.csv' does not exist", "bayesgmm fit"),
    (["fit", "{csv}"], "Missing option '--out' / '-o'", "bayesgmm fit"),
    (["fit"], "Missing argument 'DATA'", "bayesgmm fit"),
    (["fit", "{csv}", "--out", "{tmp}/a.nc", "--method", "gibbs"],
     "Invalid value for '--method': 'gibbs' is not one of", "bayesgmm fit"),
    (["frobnicate"], "No such command 'frobnicate'", "bayesgmm"),
    (["demo", "--draws", "many"], "Invalid value for '--draws': 'many' is not a valid integer",
     "bayesgmm demo"),
])
def test_usage_errors_are_one_line_with_exit_code_2(args, start, command, faithful_csv,
                                                    tmp_path):
    args = [a.format(csv=faithful_csv, tmp=tmp_path) for a in args]
    result = run(*args)
    message = one_line_error(result, 2)
    assert message.startswith(start.format(tmp=tmp_path)), message
    assert message.endswith(f"(try '{command} --help')")
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faithful.csv"]


def test_help_and_version_still_exit_0():
    result = run("--help")
    assert result.exit_code == 0 and result.output.startswith("Usage: bayesgmm [OPTIONS]")
    assert "fit" in result.output and "demo" in result.output
    result = run("fit", "--help")
    assert result.exit_code == 0 and "--plot FILE" in result.output
    result = run("--version")
    assert result.exit_code == 0 and "version" in result.output


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    """The real process (``python -m bayesgmm``): stderr and the exit status."""
    process = subprocess.run(
        [sys.executable, "-m", "bayesgmm", "fit", str(tmp_path / "nope.csv"), "--out",
         str(tmp_path / "a.nc")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stdout == ""
    assert process.stderr.splitlines() == [
        f"bayesgmm: error: Invalid value for 'DATA': File '{tmp_path / 'nope.csv'}' does "
        "not exist. (try 'python -m bayesgmm fit --help')"]


# ------------------------------------------------------------------------------- outputs
@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if a command fits anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command fitted a model before checking its outputs")

    monkeypatch.setattr(GaussianMixtureEM, "fit", refuse)
    monkeypatch.setattr(GaussianMixtureBayes, "fit", refuse)


def test_output_paths_are_checked_before_fitting(faithful_csv, tmp_path, no_fitting):
    message = one_line_error(run("fit", faithful_csv, "--out", tmp_path / "nodir" / "a.nc"), 2)
    assert message == f"cannot write --out {tmp_path / 'nodir' / 'a.nc'}: there is no " \
                      f"folder {tmp_path / 'nodir'}."
    message = one_line_error(run("fit", faithful_csv, "--method", "nuts", "--out",
                                 tmp_path / "a.nc", "--plot", tmp_path / "nodir" / "p.png"), 2)
    assert message == f"cannot write --plot {tmp_path / 'nodir' / 'p.png'}: there is no " \
                      f"folder {tmp_path / 'nodir'}."
    (tmp_path / "p.png").write_text("someone's figure")
    message = one_line_error(run("fit", faithful_csv, "--out", tmp_path / "a.nc", "--plot",
                                 tmp_path / "p.png"), 2)
    assert message == f"{tmp_path / 'p.png'} exists; pass --force to overwrite it."
    assert (tmp_path / "p.png").read_text() == "someone's figure"
    message = one_line_error(run("fit", faithful_csv, "--out", tmp_path / "a.nc", "--plot",
                                 tmp_path / "p.jpeg2000"), 2)
    assert message.startswith(f"--plot {tmp_path / 'p.jpeg2000'}: cannot write .jpeg2000 "
                              "figures; use one of") and ".png" in message
    message = one_line_error(run("fit", faithful_csv, "--out", tmp_path / "a.nc", "--plot",
                                 tmp_path / "a.nc"), 2)
    assert message == f"--out and --plot are the same file {tmp_path / 'a.nc'}; give them " \
                      "different names."
    message = one_line_error(run("fit", faithful_csv, "--out", faithful_csv, "--force"), 2)
    assert message == f"--out {faithful_csv} is an input file; choose another output."
    (tmp_path / "folder").mkdir()
    message = one_line_error(run("compare", faithful_csv, "--em-only", "--out",
                                 tmp_path / "table.csv", "--plot",
                                 tmp_path / "nodir" / "c.png"), 2)
    assert message.startswith("cannot write --plot")
    message = one_line_error(run("predict", faithful_csv, faithful_csv, "--out",
                                 tmp_path / "nodir" / "labels.csv"), 2)
    assert message.startswith("cannot write --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faithful.csv", "folder", "p.png"]


def test_a_failed_write_is_one_line_exit_2_and_leaves_no_outputs(faithful_csv, tmp_path,
                                                                 monkeypatch):
    from matplotlib.figure import Figure

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", disk_full)
    out, plot = tmp_path / "a.nc", tmp_path / "p.png"
    result = run("fit", faithful_csv, "--out", out, "--plot", plot)
    message = one_line_error(result, 2)
    assert message == f"cannot write {plot}: No space left on device"
    assert "log-likelihood" in result.stdout  # the fit itself was reported
    # neither the result nor any temporary file is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faithful.csv"]
    # an existing result is kept when the new one cannot be written in full
    out.write_text("earlier result")
    one_line_error(run("fit", faithful_csv, "--out", out, "--plot", plot, "--force"), 2)
    assert out.read_text() == "earlier result" and not plot.exists()
    # --debug adds the traceback
    result = run("--debug", "fit", faithful_csv, "--out", out, "--plot", plot, "--force")
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1] == \
        f"bayesgmm: error: cannot write {plot}: No space left on device"


def test_compare_and_predict_outputs_are_written_together(faithful_csv, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", disk_full)
    message = one_line_error(run("compare", faithful_csv, "-k", "1-2", "--covariance", "full",
                                 "--em-only", "--out", tmp_path / "t.csv", "--plot",
                                 tmp_path / "c.png"), 2)
    assert message == f"cannot write {tmp_path / 'c.png'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faithful.csv"]


def test_a_write_failing_half_way_keeps_every_existing_output(faithful_csv, tmp_path,
                                                              monkeypatch):
    from matplotlib.figure import Figure

    def half_then_disk_full(self, fname, *args, **kwargs):
        with open(fname, "wb") as handle:
            handle.write(b"\x89PNG half a figure")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out, plot = tmp_path / "a.nc", tmp_path / "p.png"
    out.write_bytes(b"earlier result \x00")
    plot.write_bytes(b"earlier figure \xff")
    monkeypatch.setattr(Figure, "savefig", half_then_disk_full)
    message = one_line_error(run("fit", faithful_csv, "--out", out, "--plot", plot,
                                 "--force"), 2)
    assert message == f"cannot write {plot}: No space left on device"
    assert out.read_bytes() == b"earlier result \x00"
    assert plot.read_bytes() == b"earlier figure \xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "faithful.csv", "p.png"]


def test_outputs_are_renamed_together_or_not_at_all(faithful_csv, tmp_path, monkeypatch):
    out, plot = tmp_path / "a.nc", tmp_path / "p.png"
    rename = os.replace

    def refuse_the_plot(src, dst):
        if os.fspath(dst) == os.fspath(plot):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        rename(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_plot)
    message = one_line_error(run("fit", faithful_csv, "--out", out, "--plot", plot), 2)
    assert message == f"cannot write {plot}: Permission denied"
    # the result, written first, is not renamed into place without the figure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faithful.csv"]
    monkeypatch.undo()
    assert run("fit", faithful_csv, "--out", out, "--plot", plot).exit_code == 0
    assert GaussianMixtureEM.load(out).n_components == 2
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "faithful.csv", "p.png"]


def test_tables_are_plain_csv_whatever_their_extension(faithful_csv, tmp_path):
    """The temporary file keeps the output's extension; to_csv must not compress it."""
    model = tmp_path / "em.nc"
    assert run("fit", faithful_csv, "-k", 2, "--out", model).exit_code == 0
    labels, table = tmp_path / "labels.csv.gz", tmp_path / "table.zip"
    assert run("predict", model, faithful_csv, "--out", labels).exit_code == 0
    assert labels.read_text().startswith("label,prob_0,prob_1\n")
    assert run("compare", faithful_csv, "-k", "1-2", "--covariance", "full", "--em-only",
               "--out", table).exit_code == 0
    assert len(pd.read_csv(table, compression=None)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "em.nc", "faithful.csv", "labels.csv.gz", "table.zip"]


# -------------------------------------------------------------------- plots of the fits
@pytest.fixture
def drawn_axes(monkeypatch):
    """The Axes that plots.plot_clusters draws when the command line calls it."""
    from bayesgmm import plots

    axes = []
    original = plots.plot_clusters

    def recording(*args, **kwargs):
        axes.append(original(*args, **kwargs))
        return axes[-1]

    monkeypatch.setattr(plots, "plot_clusters", recording)
    return axes


def gids(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def test_em_plot_has_the_em_ellipses_only(faithful_csv, tmp_path, drawn_axes):
    result = run("fit", faithful_csv, "-k", 2, "--seed", 0, "--out", tmp_path / "em.nc",
                 "--plot", tmp_path / "em.png")
    assert result.exit_code == 0, result.output
    (ax,) = drawn_axes
    model = GaussianMixtureEM.load(tmp_path / "em.nc")
    assert len(gids(ax, "ellipse-1sd")) == 2 and gids(ax, "posterior-draw") == []
    np.testing.assert_allclose([m.get_xydata()[0] for m in gids(ax, "mean")], model.means_)
    assert ax.figure.get_suptitle() == "EM: 2 components, full"


@pytest.mark.slow
def test_bayesian_plot_draws_the_posterior_not_em(faithful_csv, tmp_path, drawn_axes):
    out, plot = tmp_path / "post.nc", tmp_path / "post.png"
    result = run("fit", faithful_csv, "-k", 2, "--method", "nuts", "--draws", 50, "--tune",
                 100, "--chains", 2, "--seed", 0, "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert plot.stat().st_size > 10_000
    (ax,) = drawn_axes
    model = GaussianMixtureBayes.load(out)
    # 30 posterior draws (plot_clusters' default) x 2 components, beside the 1- and 2-sd
    # ellipses of the posterior mean: 64 ellipses, where the EM plot has 4
    assert len(gids(ax, "posterior-draw")) == 30 * 2
    assert len(gids(ax, "ellipse-1sd")) == 2 and len(gids(ax, "ellipse-2sd")) == 2
    posterior_mean = model.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose([m.get_xydata()[0] for m in gids(ax, "mean")], posterior_mean)
    assert not np.allclose(posterior_mean, model.em_.means_)
    assert ax.figure.get_suptitle() == "NUTS: 2 components, full"


# ---------------------------------------------------------------------------- inputs
def test_parquet_input_is_read(faithful_csv, tmp_path):
    frame = datasets.load_faithful()
    frame.to_parquet(tmp_path / "faithful.parquet")
    from_parquet = run("fit", tmp_path / "faithful.parquet", "-k", 2, "--seed", 0, "--out",
                       tmp_path / "pq.nc")
    assert from_parquet.exit_code == 0, from_parquet.output
    from_csv = run("fit", faithful_csv, "-k", 2, "--seed", 0, "--out", tmp_path / "csv.nc")
    assert from_csv.stdout.splitlines()[0] == from_parquet.stdout.splitlines()[0]
    model = GaussianMixtureEM.load(tmp_path / "pq.nc")
    assert list(model.feature_names_in_) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(model.means_, GaussianMixtureEM.load(tmp_path / "csv.nc")
                                  .means_)


def test_pyarrow_is_a_runtime_dependency():
    """Parquet input must work without the optional extras."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip()
             for d in pyproject["project"]["dependencies"]]
    assert "pyarrow" in names


# ------------------------------------------------------------- reading tables
def test_semicolon_csv_with_decimal_commas_is_read_as_numbers(tmp_path):
    frame = datasets.load_faithful()
    expected = GaussianMixtureEM(2, n_init=5, tol=1e-6, max_iter=1000, random_state=0).fit(frame)
    for name, sep in (("semicolon.csv", ";"), ("tab.tsv", "\t")):
        path = tmp_path / name
        frame.to_csv(path, sep=sep, decimal=",", index=False)
        assert "," in path.read_text().splitlines()[1]  # decimal commas were written
        out = tmp_path / f"{name}.nc"
        result = run("fit", path, "-k", 2, "--seed", 0, "--out", out)
        assert result.exit_code == 0, result.output
        assert f"log-likelihood {expected.log_likelihood_:.3f}" in result.output
        np.testing.assert_allclose(GaussianMixtureEM.load(out).means_, expected.means_)


def test_an_index_column_is_never_fitted(tmp_path):
    # a 2-column header over 3-field rows: pandas would make the first field the index
    path = tmp_path / "extra.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 3}.5,{i % 5}.25\n" for i in range(20)))
    message = one_line_error(run("fit", path, "-k", 1, "--out", tmp_path / "a.nc"), 2)
    assert "line 2 has 3 fields but the header has 2 (a, b)" in message
    assert "index" in message
    # an index written with an empty header name: refused unless --columns leaves it out
    datasets.load_faithful().to_csv(tmp_path / "indexed.csv")
    message = one_line_error(run("fit", tmp_path / "indexed.csv", "--out", tmp_path / "a.nc"),
                             2)
    assert "unnamed" in message and "--columns" in message
    result = run("fit", tmp_path / "indexed.csv", "--columns", "eruptions,waiting", "-k", 1,
                 "--out", tmp_path / "b.nc")
    assert result.exit_code == 0, result.output
    assert GaussianMixtureEM.load(tmp_path / "b.nc").n_features_in_ == 2


@pytest.mark.parametrize(("content", "args", "expected"), [
    ("a,b\n", (), "has a header (a, b) but no data rows"),
    ("a,b\n1.5,2.5\n", (), "has only 1 data row: fitting a mixture needs at least 2"),
    ("", (), "is empty"),
    ("a,b\n1,2\n3,4\n5,6\n", ("--columns", ","), "--columns ',' names no column"),
    ("a,b\n1,2\n3,4\n5,6\n", ("--columns", "a,a"), "--columns names ['a'] more than once"),
    ("a,b\n1,2\n3,4\n5,6\n", ("--seed", "-3"), "'--seed': -3 is not in the range x>=0"),
])
def test_unusable_tables_and_options_are_one_line(tmp_path, content, args, expected):
    path = tmp_path / "data.csv"
    path.write_text(content)
    message = one_line_error(run("fit", path, "-k", 1, *args, "--out", tmp_path / "a.nc"), 2)
    assert expected in message


@pytest.mark.parametrize(("components", "expected"), [
    ("3-1", "--components '3-1' is an empty range: the first number must not exceed the "
            "second (e.g. 1-3)"),
    ("1,1", "--components lists [1] more than once"),
    ("1-500", "asks for 500 values; give at most 100"),
    ("two", "--components must look like 1-6 or 1,2,4"),
])
def test_compare_components_option_is_checked(faithful_csv, components, expected):
    message = one_line_error(run("compare", faithful_csv, "-k", components, "--em-only"), 2)
    assert expected in message


def test_compare_needs_a_covariance_type(faithful_csv):
    message = one_line_error(run("compare", faithful_csv, "-k", "1", "--covariance", ",",
                                 "--em-only"), 2)
    assert "--covariance ',' names no covariance type" in message


def test_predict_of_a_damaged_result_is_one_line(faithful_csv, tmp_path):
    out = tmp_path / "em.nc"
    assert run("fit", faithful_csv, "-k", 2, "--seed", 0, "--out", out).exit_code == 0
    data = bytearray(out.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # the second half zeroed
    out.write_bytes(bytes(data))
    message = one_line_error(run("predict", out, faithful_csv, "--out", tmp_path / "p.csv"), 2)
    assert str(out) in message


def test_missing_entries_are_marginalised_by_default(tmp_path):
    frame = datasets.load_faithful()
    frame.iloc[[3, 10, 50], 1] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    result = run("fit", tmp_path / "nan.csv", "--components", "2", "--seed", "0",
                 "--out", tmp_path / "a.nc", "--plot", tmp_path / "a.png")
    assert result.exit_code == 0, result.output
    model = GaussianMixtureEM.load(tmp_path / "a.nc")
    expected = GaussianMixtureEM(2, n_init=5, tol=1e-6, max_iter=1000, random_state=0).fit(
        frame)
    assert model.n_missing_ == 3
    assert model.log_likelihood_ == pytest.approx(expected.log_likelihood_, rel=1e-10)


def test_the_pairs_figure_keeps_the_incomplete_rows(tmp_path, monkeypatch):
    """With more than two features each panel shows the rows observed in its pair."""
    from bayesgmm import plots

    frame = datasets.load_diabetes().drop(columns="class")  # three features
    frame.iloc[[3, 60], 2] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    seen = []
    original = plots.plot_pairs
    monkeypatch.setattr(plots, "plot_pairs",
                        lambda model, X, **kw: seen.append(len(X)) or original(model, X, **kw))
    result = run("fit", tmp_path / "nan.csv", "--components", "2", "--seed", "0",
                 "--out", tmp_path / "a.nc", "--plot", tmp_path / "a.png")
    assert result.exit_code == 0, result.output
    assert seen == [len(frame)]
    assert (tmp_path / "a.png").stat().st_size > 10_000


def test_compare_on_local_dask_workers_writes_the_sequential_table(faithful_csv, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr("bayesgmm.cli.SCHEDULER_TIMEOUT", 1)
    args = ["compare", faithful_csv, "-k", "1-3", "--covariance", "diag,VEV", "--em-only",
            "--seed", "2"]
    assert run(*args, "--out", tmp_path / "a.csv").exit_code == 0
    result = run(*args, "--workers", "2", "--out", tmp_path / "b.csv")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b.csv"),
                                  pd.read_csv(tmp_path / "a.csv"))
    message = one_line_error(run(*args, "--workers", "2", "--scheduler", "tcp://x:1"), 2)
    assert "not both" in message
    message = one_line_error(run(*args, "--scheduler", "tcp://127.0.0.1:9"), 2)
    assert "--scheduler 'tcp://127.0.0.1:9': cannot reach it" in message
