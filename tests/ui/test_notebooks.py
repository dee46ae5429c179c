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


#: (code cell index, text its outputs must show): the results each notebook is there to show
KEY_RESULTS: dict[str, list[tuple[int, str]]] = {
    "01_quickstart": [
        (4, "49"),
        (5, "state: COMPLETED"),
        (5, "its stdout: squaring 7 on"),
        (8, "([0, 1, 4, 9, 16], 20, "),
        (10, "2470"),
        (12, "64"),
        (15, "hello from"),
        (15, "2470"),
    ],
    "02_patterns_python_api": [
        (4, "{'count': 32, 'mean': 0.62054"),
        (7, "'1000 values, mean -0.0057'"),
        (8, "'the pipeline has finished'"),
        (11, "{'COMPLETED': 9} best: {'lr': 0.01, 'depth': 4,"),
        (16, "[0.1419"),
        (18, "[0.0, 0.04003"),
    ],
    "03_patterns_magics": [
        (5, "{'count': 32, 'mean': 0.62054"),
        (9, "'1000 values, mean -0.0057'"),
        (10, "this cell ran after raw and squashed succeeded"),
        (14, "{'lr': 0.01, 'depth': 4, 'loss': 0.0}"),
        (17, "estimate +0.140: 4 refinement task(s)"),
        (18, "[0.1419"),
        (22, "drawing 1000 numbers"),
    ],
    "04_resources": [
        (3, "'label': 'static', 'CPUS_PER_TASK': '2', 'MEM_PER_NODE': '300'"),
        (3, "'label': 'per call', 'CPUS_PER_TASK': '1', 'MEM_PER_NODE': '250'"),
        (5, "1536 MB, 5400 s"),
        (5, "ResourceError: memory='lots' is not a memory size"),
        (7, "'label': 'large', 'CPUS_PER_TASK': '2', 'MEM_PER_NODE': '400'"),
        (9, "[('a', '200'), ('b', '200'), ('c', '400')]"),
        (11, "100 items in 4 array tasks"),
        (11, "5050"),
        (13, "'workers': 4"),
    ],
    "05_failures_and_debugging": [
        (3, "caught: ValueError(\"invalid literal for int() with base 10: 'seven'\")"),
        (3, "Remote traceback (job"),
        (7, "FAILED"),
        (8, "ValueError: invalid literal for int() with base 10: 'seven'"),
        (10, "state: OUT_OF_MEMORY"),
        (12, "state: TIMEOUT"),
        (14, "DEPENDENCY_FAILED"),
        (16, "[1.0, 0.5, ZeroDivisionError('division by zero'), 0.25]"),
        (18, "the second attempt worked"),
        (20, "('CANCELLED', True)"),
    ],
    "06_large_inputs": [
        (2, "16 rows"),
        (4, "{'numpy.memmap'}"),
        (6, "[0.7654, 0.0949, 0.2031]), [0.7654, 0.0949, 0.2031])"),
        (8, "[0.0008, 1.0078, 2.0006, 3.0008]"),
    ],
    "07_jobs_survive_restarts": [
        (4, "144"),
        (5, "COMPLETED> -> 4"),
        (5, "[0, 1, 4, 9]"),
        (8, "'hello notebook, from a job whose submitter has exited'"),
        (9, "'COMPLETED')]"),
    ],
    "08_pipefunc": [
        (7, "'cpus_per_task': '2', 'mem_per_node': '300'"),
        (8, "ResourceError: pool:"),
        (10, "sbatch calls: 1"),
        (10, "elements per task: {'0': 50, '1': 50}"),
        (12, "'cpus_per_task': '2'"),
    ],
}


def _shown(cell: nbformat.NotebookNode) -> str:
    """What a code cell showed: its streams, results and errors, as plain text on one line."""
    texts = []
    for output in cell.outputs:
        if output["output_type"] == "stream":
            texts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            texts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            texts.append(f"{output['ename']}: {output['evalue']}")
    return " ".join(" ".join(texts).split())


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_notebooks_are_committed_clean() -> None:
    assert {path.stem for path in NOTEBOOKS} == EXPECTED == set(KEY_RESULTS)
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
    # ... and each showed what it is there to show.
    for index, expected in KEY_RESULTS[path.stem]:
        shown = _shown(notebook.cells[index])
        assert expected in shown, f"{path.name} cell {index}: {expected!r} not in {shown[-600:]!r}"
