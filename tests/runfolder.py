"""A real, small run folder built without Ray, shared by the analysis tests.

``make_run_folder(DIR)`` trains a handful of tiny trials with ``run_trial`` (scheduler x
regularization x model.hidden x seed), writes each trial folder and ``run.json`` the way
``grid.run`` does, and collects the tables and their statistics with
``analysis.derive.build_all`` (as ``grid.run`` does).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path

from symgrid.analysis.derive import build_all
from symgrid.trainables.config import config_to_dict, parse_trial_config
from symgrid.trainables.records import write_trial_dir
from symgrid.trainables.storage_io import write_json
from symgrid.trainables.trial import run_trial

AXES = ["scheduler", "regularization", "model.hidden", "seed"]
SCHEDULERS = {"none": "none", "step": {"name": "step", "step_size": 1, "gamma": 0.5}}
REGULARIZERS = {"none": "none", "l2": {"name": "l2", "weight": 1e-3}}
HIDDEN = {"[8]": [8], "[32]": [32]}
SEEDS = [0, 1]
SPEC_TEXT = "name: tiny\ndescription: a tiny analysis test grid\n"

BASE = {
    "train": {
        "symbols": 4096,  # small finite training set: replicates differ visibly
        "val_symbols": 2048,
        "batch_size": 512,
        "epochs": 3,
    },
    "optimizer": {"name": "adam", "lr": 0.02},
    "eval": {"ebno_db": [0, 6], "min_errors": 50, "max_bits": 200_000, "biasvar_symbols": 1024},
}


def trial_configs() -> list[tuple[str, dict, dict]]:
    """(trial_id, axes with display values, raw config) for every grid point."""
    out = []
    grid = itertools.product(SCHEDULERS.items(), REGULARIZERS.items(), HIDDEN.items(), SEEDS)
    for i, ((s_name, sched), (r_name, regu), (h_name, hidden), seed) in enumerate(grid):
        raw = {**BASE, "scheduler": sched, "regularization": regu, "seed": seed}
        raw["model"] = {"hidden": hidden}
        axes = {"scheduler": s_name, "regularization": r_name, "model.hidden": h_name, "seed": seed}
        out.append((f"t{i:04d}", axes, raw))
    return out


def make_run_folder(
    out: Path, limit: int | None = None, grid: list | None = None, axes: list | None = None
) -> Path:
    """Train the grid (the first ``limit`` trials) into ``out`` and build its tables.

    ``grid`` (as :func:`trial_configs`) and ``axes`` default to this module's tiny grid.
    """
    out = Path(out)
    started = datetime.now(timezone.utc).isoformat()
    grid = trial_configs() if grid is None else grid
    configs = grid[:limit]
    for trial_id, trial_axes, raw in configs:
        config = config_to_dict(parse_trial_config(raw))
        outcome = run_trial(config)
        identity = {"axes": trial_axes, "config": config}
        write_trial_dir(outcome, trial_id, out / "trials" / trial_id, identity)
    (out / "spec.yaml").write_text(SPEC_TEXT)
    info = {
        "name": "tiny",
        "spec_hash": "0" * 16,
        "command": f"symgrid run tiny.yaml --out {out}",
        "experiment_path": str(out / "ray"),
        "trials": len(grid),
        "axes": AXES if axes is None else axes,
        "started_at": started,
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    write_json(info, out / "run.json")
    build_all(out)
    return out
