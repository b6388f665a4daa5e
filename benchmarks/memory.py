"""Memory: peak RSS of one trial in its own process, and of a whole grid run's process tree.

A trial runs in a fresh subprocess (plain ``run_trial``, no Ray; one torch thread) that reports
its ``ru_maxrss``. The grid run (default ``quick``) samples the RSS of the driver and every Ray
process under it twice a second; a Ray worker's figure includes Ray's own libraries. Summed RSS
counts shared pages once per process, so the tree total is an upper bound.

    python benchmarks/memory.py            # two trials and the quick grid, ~5-10 minutes
    python benchmarks/memory.py --smoke    # a tiny trial and a tiny grid, ~20 s
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, parser, table, write
from grid_efficiency import SMOKE_SPEC, run_timed

LIMIT_MIB = 1024  # target: under 1 GiB per worker

CHILD = """
import json, resource, sys, torch
torch.set_num_threads(1)
from symgrid.trainables.trial import run_trial
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = run_trial(json.loads(sys.argv[1]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"status": out.status, "import_rss_kib": base, "peak_rss_kib": peak}))
"""

TINY = {
    "train": {"ebno_db": [0, 10], "symbols": 4096, "val_symbols": 2048, "batch_size": 1024},
    "model": {"hidden": [16]},
    "eval": {"ebno_db": [4], "min_errors": 50, "max_bits": 100_000, "biasvar_symbols": 256},
}


def preset_trial(name: str) -> dict:
    from symgrid.grid.spec import expand, load_spec

    return expand(load_spec(name))[0].config


def trial_rss(config: dict) -> dict:
    """Peak RSS of one trial run alone in a fresh Python process."""
    cmd = [sys.executable, "-c", CHILD, json.dumps(config)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "status": child["status"],
        "after_imports_mib": child["import_rss_kib"] / 1024,
        "peak_rss_mib": child["peak_rss_kib"] / 1024,
    }


def main() -> None:
    p = parser("memory", __doc__)
    p.add_argument("--spec", default="quick", help="grid for the whole-run figure")
    p.add_argument("--num-cpus", type=int, default=2)
    args = p.parse_args()
    info = machine()
    configs = {"tiny": TINY} if args.smoke else {}
    if not args.smoke:
        configs = {"quick t0000": preset_trial("quick"), "notebook": preset_trial("notebook")}
    trials = [{"trial": name, **trial_rss(cfg)} for name, cfg in configs.items()]
    with tempfile.TemporaryDirectory() as tmp:
        spec = args.spec
        if args.smoke:
            spec = str(Path(tmp) / "smoke.yaml")
            Path(spec).write_text(SMOKE_SPEC)
        run = run_timed(spec, Path(tmp) / "out", args.num_cpus)
    grid = {
        "spec": run["spec"],
        "trials": run["trials"],
        "wall_s": run["wall_s"],
        "peak_tree_rss_mib": run["peak_tree_rss_mib"],
        "peak_worker_rss_mib": run["peak_worker_rss_mib"],
    }
    print(table(trials, ["trial", "status", "after_imports_mib", "peak_rss_mib"], "one trial"))
    cols = ["spec", "trials", "wall_s", "peak_tree_rss_mib", "peak_worker_rss_mib"]
    print(table([grid], cols, "whole run (driver + Ray processes, sampled every 0.5 s)"))
    worst = max([t["peak_rss_mib"] for t in trials] + [grid["peak_worker_rss_mib"]])
    print(f"worst per-worker peak {worst:.0f} MiB; target < {LIMIT_MIB} MiB")
    result = {"benchmark": "memory", "machine": info, "trials": trials, "grid": grid}
    write(args.json, {**result, "worst_worker_mib": worst, "limit_mib": LIMIT_MIB})


if __name__ == "__main__":
    main()
