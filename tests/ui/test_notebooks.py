"""Every notebook in notebooks/ runs top to bottom in a real kernel against the dev cluster.

Each runs in its own kernel (nbclient), from notebooks/, with a fresh registry and run
folder; any cell error fails the test (cells tagged ``raises-exception`` are expected to
raise). The executed copies land in test-artifacts/notebooks/ for inspection.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import require_cluster

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
ARTIFACTS = REPO / "test-artifacts" / "notebooks"
EXPECTED = {
    "01_quickstart",
    "02_patterns_python_api",
    "03_patterns_magics",
    "04_resources",
    "05_failures_and_debugging",
    "06_large_inputs",
    "07_jobs_survive_restarts",
    "08_pipefunc",
}


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_notebooks_are_committed_clean() -> None:
    assert {path.stem for path in NOTEBOOKS} == EXPECTED
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            where = f"{path.name} cell {index}"
            assert cell.outputs == [], f"{where} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{where} has an execution count"


@pytest.mark.cluster
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    require_cluster()
    notebook = nbformat.read(path, as_version=4)
    environment = {
        **os.environ,
        "SLURM_MAGICS_REGISTRY": str(tmp_path / "registry.db"),
        "SLURM_MAGICS_ROOT": str(tmp_path / "root"),
        # The kernel (and the processes it starts) import this checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.monotonic()
    try:
        client.execute(env=environment)  # raises CellExecutionError at the first failing cell
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, ARTIFACTS / path.name)
    seconds = time.monotonic() - started
    print(f"{path.name}: {seconds:.1f} s")

    # Tracebacks a cell printed to stderr without failing (a background thread, a warning
    # turned error) are failures too; tagged cells may raise.
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" in _tags(cell):
            continue
        for output in cell.outputs:
            assert output["output_type"] != "error", f"{path.name} cell {index}: {output}"
            if output["output_type"] == "stream" and output["name"] == "stderr":
                assert "Traceback" not in output["text"], (
                    f"{path.name} cell {index} printed a traceback:\n{output['text']}"
                )
    tagged = [cell for cell in notebook.cells if "raises-exception" in _tags(cell)]
    for cell in tagged:  # and a cell that should raise did raise
        assert any(output["output_type"] == "error" for output in cell.outputs)
