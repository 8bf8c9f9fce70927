"""The notebooks run top to bottom (each ends with assertions of its claims) and are
stored without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
QUICK = {"01_iris_em.ipynb", "02_one_dimensional_em.ipynb"}


def test_there_are_five_notebooks_stored_without_outputs():
    assert len(NOTEBOOKS) == 5
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_the_notebooks_are_what_make_writes_and_end_with_their_claims(tmp_path):
    """notebooks/_make.py regenerates the stored notebooks byte for byte, and each
    notebook's last code cell asserts its claims."""
    import shutil
    import subprocess
    import sys

    shutil.copy(NOTEBOOKS[0].parent / "_make.py", tmp_path / "_make.py")
    subprocess.run([sys.executable, str(tmp_path / "_make.py")], check=True, timeout=120)
    for path in NOTEBOOKS:
        assert (tmp_path / path.name).read_text() == path.read_text(), \
            f"{path.name} differs from what notebooks/_make.py writes; rerun it"
        nb = nbformat.read(path, as_version=4)
        last = [c for c in nb.cells if c.cell_type == "code"][-1].source
        asserts = [line for line in last.splitlines() if line.startswith("assert ")]
        assert len(asserts) >= 2, path.name


@pytest.mark.parametrize("path", [
    p if p.name in QUICK else pytest.param(p, marks=pytest.mark.slow) for p in NOTEBOOKS
], ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
