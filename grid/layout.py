"""What a run writes before its first trial, and where: its output folder, plan and run.json.

Output folder layout::

    DIR/spec.yaml            the resolved spec (reproduces the run)
    DIR/run.json             name, spec hash, command, where the plan, records and Ray state are
    DIR/plan.parquet         every trial's id, axes and config (with --storage: in the storage)
    DIR/ray/                 Ray Tune's experiment folder (local storage)
    DIR/trials/<trial_id>/   each trial's records, written by the trial itself as it ends
    DIR/*.parquet            the tables (``analysis.collect``)

With ``--storage URI`` the plan, Ray's experiment and the records live under
``URI/<experiment>/`` (records in ``records/<trial_id>/``), which every node can reach.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from symgrid.grid.errors import RunError
from symgrid.grid.outdir import no_room
from symgrid.grid.spec import Spec, TrialSpec, resolved_yaml, spec_hash
from symgrid.trainables.storage_io import filesystem, join_uri, write_json, write_parquet

__all__ = ["prepare_out", "start_run", "now"]

EXPERIMENT = "ray"  # Ray's experiment folder in DIR when Ray's storage is DIR itself


def prepare_out(out: Path, trials: int) -> None:
    """Make ``out`` and check it has room (after every check that can refuse the run)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"--out {out}: cannot write there ({err.strerror or err})") from err
    refusal = no_room(out, trials)
    if refusal:
        raise RunError(refusal)


def locations(out: Path, storage: str | None, name: str) -> dict:
    """Where a run keeps Ray's experiment, the plan and the records (run.json keys)."""
    if not storage:
        return {
            "experiment_path": str(out / EXPERIMENT),
            "plan": str(out / "plan.parquet"),
            "records": str(out / "trials"),
        }
    # Shared storage holds many runs: name each experiment for its run so none overwrites another.
    root = join_uri(storage, f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}")
    return {
        "experiment_path": root,
        "plan": join_uri(root, "plan.parquet"),
        "records": join_uri(root, "records"),
    }


def write_plan(trials: list[TrialSpec], uri: str) -> None:
    """The plan file the trials read their definitions from (one row per trial)."""
    frame = pd.DataFrame(
        {
            "trial_id": [t.trial_id for t in trials],
            "axes": [json.dumps(t.axes) for t in trials],
            "config": [json.dumps(t.config) for t in trials],
        }
    )
    fs, path = filesystem(uri)
    write_parquet(frame, path, fs=fs)


def start_run(
    out: Path,
    spec: Spec,
    trials: list[TrialSpec],
    storage: str | None,
    run_info: dict,
    command: str,
) -> dict:
    """Write the spec, the plan and run.json (what resume and the report read back).

    Returns run.json's content: after this, run.json and the plan are the run's one source."""
    (out / "spec.yaml").write_text(resolved_yaml(spec))
    where = locations(out, storage, spec.name)
    write_plan(trials, where["plan"])
    info = {
        "name": spec.name,
        "spec_hash": spec_hash(spec),
        "command": command,
        **where,
        "trials": len(trials),
        "axes": list(spec.axes),
        "started_at": now(),
        **run_info,
    }
    write_json(info, out / "run.json")
    return info


def now() -> str:
    return datetime.now(timezone.utc).isoformat()
