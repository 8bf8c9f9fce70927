"""The scripts in examples/ run from start to end and print what they promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), str(tmp_path)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_fit_em(tmp_path):
    out = run_example("fit_em.py", tmp_path)
    assert "log-likelihood -1126.3" in out
    assert (tmp_path / "fit_em.png").stat().st_size > 10_000


def test_save_and_predict(tmp_path):
    out = run_example("save_and_predict.py", tmp_path)
    assert "EM labels:" in out and "MAP membership probabilities:" in out
    assert (tmp_path / "faithful_em.nc").exists() and (tmp_path / "faithful_map.nc").exists()


@pytest.mark.slow
def test_fit_bayes(tmp_path):
    out = run_example("fit_bayes.py", tmp_path)
    assert "max R-hat" in out and "hdi94_lb" in out
    assert (tmp_path / "fit_bayes.png").stat().st_size > 10_000


@pytest.mark.slow
def test_compare_models(tmp_path):
    out = run_example("compare_models.py", tmp_path)
    assert "elpd_loo" in out and "choose" in out
    assert (tmp_path / "compare_models.png").stat().st_size > 10_000


def test_dask_cluster(tmp_path):
    out = run_example("dask_cluster.py", tmp_path)
    assert "workers: 2" in out
    assert "EM: " in out and "converged True" in out
    assert "means: [[0.0, 0.0, 0.0], [3.0, 1.0, -2.0]] weights: [0.3, 0.7]" in out
    assert "compare on the cluster: 12 cells" in out
    assert (tmp_path / "labels.zarr").exists() and (tmp_path / "imputed.zarr").exists()
