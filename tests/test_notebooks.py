"""The notebooks run top to bottom (nbclient, the project's Python kernel)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fds.demo import SHIPPED_CHECKPOINT

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="the shipped checkpoint is not in this checkout")
def test_quickstart_executes(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
