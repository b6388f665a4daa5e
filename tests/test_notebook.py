"""The example notebook (examples/own_network.ipynb) runs headless with the Jupyter project's own
executor (nbclient): a network class defined in a cell is shipped to Ray's workers by value, the
grid of schedulers x losses runs, and the findings and the figure appear in the outputs. The run it
leaves is then confirmed from the command line, which finds the class in the run folder.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "own_network.ipynb"


def outputs(cell) -> str:
    texts = []
    for out in cell.get("outputs", []):
        texts.append(out.get("text", ""))
        texts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_the_example_notebook_runs_headless(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert "exit code 0" in outputs(code_cells[1])
    table = outputs(code_cells[2])
    assert table.count("__main__:GatedNet(width=16)") == 4, table
    assert "Best setting:" in outputs(code_cells[3])
    images = [o["data"]["image/png"] for o in code_cells[4]["outputs"] if "data" in o]
    assert images and base64.b64decode(images[0]).startswith(b"\x89PNG")
    out = tmp_path / "results" / "own-network"
    trials = pd.read_parquet(out / "trials.parquet")
    assert set(trials["status"]) == {"completed"} and len(trials) == 4
    assert set(trials["num_params"]) == {2 * (2 * 16 + 16) + 16 * 4 + 4, 2 * 48 + 16 * 16 + 16}
    # The notebook is gone; `symgrid confirm` finds the class in DIR/classes.pkl.
    cmd = [
        sys.executable,
        "-m",
        "symgrid",
        "confirm",
        str(out),
        "--top",
        "1",
        "--seeds",
        "1",
        "--no-report",
        "--num-cpus",
        "2",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    confirmed = pd.read_parquet(tmp_path / "results" / "own-network-confirm" / "trials.parquet")
    assert list(confirmed["network"]) == ["__main__:GatedNet(width=16)"]
