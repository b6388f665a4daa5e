"""How close ``symgrid validate``'s cost estimate (``grid.cost``) lands to measured wall times.

Three checks, each the estimate against a measurement made by this script or by
``benchmarks/scale.py`` (its ``benchmarks/results/scale.json``):

- one trial of the ``lecture`` base config on one core (``symgrid trial`` with one torch thread);
- the tiny-trial grids of ``benchmarks/scale.py`` (the wall times in scale.json, 2 slots);
- the ``quick`` preset run on an embedded 2-CPU Ray (``--quick``; several minutes).

``ratio = estimate / measured``; the target is 0.7 to 1.3. The rates in ``grid/rates.json`` and
these measurements should be taken close together: the machine is shared, and its load (in each
JSON) moves every figure.

    python benchmarks/estimate.py --quick     # ~5-10 minutes
    python benchmarks/estimate.py --smoke     # a tiny trial and the scale.json rows, ~20 s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, machine, parser, table, write
from scale import spec_text

REPO = Path(__file__).resolve().parents[1]
TINY_TRIAL = {"train": {"symbols": 4096, "val_symbols": 2048, "batch_size": 1024, "epochs": 2}}


def symgrid(*args: str, threads: int | None = None) -> float:
    """Seconds ``symgrid ARGS`` takes (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads: a 1-CPU trial
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "symgrid", *args]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def one_trial(config: dict, tmp: Path, name: str) -> dict:
    """A trial alone on one core: its own wall_s (trial.json) against the modelled seconds."""
    import yaml
    from symgrid.grid.cost import trial_seconds

    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    command_s = symgrid("trial", str(path), "--out", str(tmp / name), threads=1)
    measured = json.loads((tmp / name / "trial.json").read_text())["wall_s"]
    estimate = sum(trial_seconds(config).values())
    return {"case": f"trial {name}", "measured_s": measured, "estimate_s": estimate,
            "command_s": command_s, "load": os.getloadavg()[0]}  # fmt: skip


def grid_row(name: str, spec_arg: str, measured: float, load: float) -> dict:
    from symgrid.grid.spec import estimate, expand, load_spec

    spec = load_spec(spec_arg, allow_large=True)
    cost = estimate(spec, expand(spec), slots=2)
    return {"case": name, "measured_s": measured, "estimate_s": cost["wall_s"], "load": load}


def main() -> None:
    p = parser("estimate", __doc__)
    p.add_argument("--quick", action="store_true", help="also run the quick preset (minutes)")
    args = p.parse_args()
    from symgrid.grid.spec import load_spec
    from symgrid.trainables.config import config_to_dict, parse_trial_config

    info, rows = machine(), []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        base = TINY_TRIAL if args.smoke else load_spec("lecture").base
        name = "tiny" if args.smoke else "lecture_base"
        rows.append(one_trial(config_to_dict(parse_trial_config(base)), tmp, name))
        for run in json.loads((RESULTS / "scale.json").read_text())["runs"]:
            n, path = run["trials"], tmp / f"scale{run['trials']}.yaml"
            path.write_text(spec_text(n))
            load = run["loadavg_before"][0]
            rows.append(grid_row(f"scale {n} trials (scale.json)", str(path), run["wall_s"], load))
        if args.quick:
            load = os.getloadavg()[0]
            out = str(tmp / "quick")
            wall = symgrid("run", "quick", "--out", out, "--num-cpus", "2", "--no-report")
            rows.append(grid_row("quick, 2 slots", "quick", wall, load))
    for row in rows:
        row["ratio"] = row["estimate_s"] / row["measured_s"]
    cols = ["case", "measured_s", "estimate_s", "ratio", "load"]
    print(table(rows, cols, "symgrid validate's estimate against measured wall times"))
    write(args.json, {"benchmark": "estimate", "machine": info, "rows": rows})


if __name__ == "__main__":
    main()
