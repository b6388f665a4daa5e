"""Links from a run's report to its MLflow runs, read from ``DIR/mlflow_runs.jsonl``.

``symgrid run --mlflow`` appends one JSON line per trial start (``trial_id``, ``run_id``,
``experiment_id``, ``tracking_uri``); the last line of a trial wins (a resumed trial keeps its
MLflow run). A server URI links to the run's page in the MLflow UI; a local store inside the run
folder has no server, so its links point at ``mlflow ui``'s default address and the report says
which command serves it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["MLFLOW_RUNS", "mlflow_html", "mlflow_markdown", "mlflow_runs"]

MLFLOW_RUNS = "mlflow_runs.jsonl"  # in the run folder; written by grid.tracking
MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def mlflow_runs(run_path: Path) -> dict[str, dict]:
    """trial_id -> its last recorded line (run_id, experiment_id, tracking_uri); {} if none."""
    path = Path(run_path) / MLFLOW_RUNS
    if not path.exists():
        return {}
    runs = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            runs[entry["trial_id"]] = entry
        except (ValueError, KeyError, TypeError):  # a line cut short by a killed driver
            continue
    return runs


def run_url(entry: dict) -> str:
    """The MLflow UI page of one recorded run."""
    uri = str(entry.get("tracking_uri", ""))
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else MLFLOW_UI
    return f"{base}/#/experiments/{entry['experiment_id']}/runs/{entry['run_id']}"


def serve_hint(runs: dict[str, dict]) -> str:
    """How to open the links: the server, or the `mlflow ui` command for a local store."""
    uri = str(next(iter(runs.values())).get("tracking_uri", ""))
    if uri.startswith(("http://", "https://")):
        return f"MLflow tracking server: {uri}"
    return f"local store; serve it with: mlflow ui --backend-store-uri {uri}"


def mlflow_html(run_path: Path) -> list[str]:
    """An HTML section linking every recorded trial to its MLflow run ([] when none)."""
    runs = mlflow_runs(run_path)
    if not runs:
        return []
    rows = [
        f'<tr><td>{html.escape(t)}</td><td><a href="{html.escape(run_url(e))}">'
        f"{html.escape(e['run_id'])}</a></td></tr>"
        for t, e in sorted(runs.items())
    ]
    return [
        "<h2>MLflow runs</h2>",
        f"<p>{html.escape(serve_hint(runs))}</p>",
        '<table id="mlflow"><tr><th>trial_id</th><th>MLflow run</th></tr>',
        *rows,
        "</table>",
    ]


def mlflow_markdown(run_path: Path) -> list[str]:
    """The same section in Markdown ([] when none)."""
    runs = mlflow_runs(run_path)
    if not runs:
        return []
    lines = [
        "",
        "## MLflow runs",
        "",
        serve_hint(runs),
        "",
        "| trial_id | MLflow run |",
        "|---|---|",
    ]
    return lines + [f"| {t} | [{e['run_id']}]({run_url(e)}) |" for t, e in sorted(runs.items())]
