"""The command line, driven through click's runner."""

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
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


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
    message = one_line_error(run("fit", tmp_path / "nan.csv", "--out", tmp_path / "a.nc"), 2)
    assert "NaN" in message and "waiting" in message
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
    assert run("fit", tmp_path / "missing.csv", "--out", tmp_path / "a.nc").exit_code == 2
    assert run("fit", faithful_csv, "--out", tmp_path / "a.nc", "--colour", "red").exit_code == 2
    assert run("compare", faithful_csv, "-k", "one-six").exit_code == 2


def test_a_failed_fit_exits_1(tmp_path):
    # three distinct points: a fourth component can only collapse
    X = np.repeat([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]], 10, axis=0)
    path = tmp_path / "three.csv"
    pd.DataFrame(X, columns=["a", "b"]).to_csv(path, index=False)
    message = one_line_error(run("fit", path, "-k", 4, "--covariance", "spherical",
                                 "--out", tmp_path / "a.nc"), 1)
    assert message.startswith("Error: EM failed:") and "reg_covar" in message
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


def test_fit_map_and_predict_with_intervals(faithful_csv, tmp_path):
    out = tmp_path / "map.nc"
    result = run("fit", faithful_csv, "-k", 2, "--method", "map", "--seed", 0, "--out", out)
    assert result.exit_code == 0, result.output
    assert "MAP, 2 components" in result.output and "em" in result.output
    model = GaussianMixtureBayes.load(out)
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
