"""The notebooks run top to bottom (nbclient, the project's Python kernel)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fds.demo import SHIPPED_CHECKPOINT

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, cwd: Path) -> list:
    """Run a notebook in ``cwd``; returns the outputs of its code cells (none may be an error)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="the shipped checkpoint is not in this checkout")
def test_quickstart_executes(tmp_path):
    outputs = execute("quickstart.ipynb", tmp_path)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn


@pytest.mark.slow
def test_training_analysis_trains_a_tiny_run_and_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FDS_RUN", raising=False)  # no run given: the notebook trains `experiment=smoke` itself
    outputs = execute("training_analysis.ipynb", tmp_path)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "val/normal_deg" in text and "train/loss_geo" in text  # the CSV log was read
    assert "2 validation panels" in text  # one per validation epoch of the smoke run, from its W&B run
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # curves, losses, panels
