"""Grid efficiency: how much of a run's wall time the trials themselves use.

Runs a grid on embedded Ray through ``grid.run.run_grid`` (as ``symgrid run`` does) and reads
``trials.parquet``. ``efficiency = sum(trial wall_s) / (run wall x slots)``, where ``slots`` is how
many trials run at once; ``overhead per trial = (run wall x slots - sum(trial wall_s)) / trials``.
A trial's ``wall_s`` covers building it, training, the per-epoch checkpoints and the evaluation;
the rest (Ray start, actor start, Tune's loop and loggers, the final report, the tables) is
overhead. The process tree's RSS is sampled during the run (``memory.py`` reuses this).

    python benchmarks/grid_efficiency.py                     # the quick preset, ~5-10 minutes
    python benchmarks/grid_efficiency.py --spec lecture.yaml --num-cpus 2
    python benchmarks/grid_efficiency.py --env TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1
    python benchmarks/grid_efficiency.py --smoke             # a tiny grid, ~20 s
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from common import machine, parser, table, write

SMOKE_SPEC = """
name: smoke
description: a tiny grid for the benchmark's smoke mode
base:
  train: {ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 1024, epochs: 2}
  model: {hidden: [16]}
  eval: {ebno_db: [4], min_errors: 50, max_bits: 1.0e+5, biasvar_symbols: 256}
axes:
  seed: [0, 1]
resources: {cpu: 1, gpu: 0}
max_failures: 0
"""


class TreeSampler(threading.Thread):
    """Samples the RSS of this process and all its descendants (Ray's too) every ``period`` s."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        self.period, self.stop, self.samples = period, threading.Event(), []
        self.peak_total = self.peak_worker = 0

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            total = worker = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    is_worker = any("ray::" in part for part in proc.cmdline()[:1])
                except psutil.Error:  # the process ended between listing and reading
                    continue
                total += rss
                worker = max(worker, rss) if is_worker else worker
            self.samples.append(total)
            self.peak_total = max(self.peak_total, total)
            self.peak_worker = max(self.peak_worker, worker)
            self.stop.wait(self.period)


def run_timed(spec_arg: str, out: Path, num_cpus: int) -> dict:
    """Run the grid; the phase timings, the trials' own times and the sampled RSS peaks."""
    import pandas as pd
    import ray
    from symgrid.grid.run import run_grid
    from symgrid.grid.spec import expand, load_spec
    from symgrid.trainables.config import parse_trial_config

    spec = load_spec(spec_arg)
    trials = expand(spec)
    sampler = TreeSampler()
    sampler.start()
    start = time.perf_counter()
    ray.init(
        num_cpus=num_cpus,
        num_gpus=0,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    ray.init_s = time.perf_counter() - start  # run_grid reuses this session (ray_session)
    fit_start, fit_clock = time.perf_counter(), pd.Timestamp.now(tz="UTC")
    code = run_grid(spec, trials, out, num_cpus=num_cpus, command="benchmarks/grid_efficiency.py")
    fit_s, fit_end = time.perf_counter() - fit_start, pd.Timestamp.now(tz="UTC")
    ray.shutdown()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    done = pd.read_parquet(out / "trials.parquet")
    slots = max(1, min(len(trials), num_cpus // max(1, int(spec.resources.cpu))))
    trial_s = float(done["wall_s"].sum())
    # Time in Trainer.train_epoch alone; the rest of wall_s is building, validation, the
    # per-epoch checkpoint and report (which waits for the driver) and the evaluation.
    symbols = done["config_json"].map(lambda c: parse_trial_config(json.loads(c)).train.symbols)
    train_s = float((done["epochs_run"] * symbols / done["symbols_per_s"]).sum())
    first, last = (
        pd.to_datetime(done["started_at"]).min(),
        pd.to_datetime(done["finished_at"]).max(),
    )
    busy_s = (last - first).total_seconds()  # first trial's start to last trial's end
    return {
        "spec": spec.name,
        "exit_code": code,
        "trials": len(trials),
        "trials_with_results": int(done["status"].isin(["completed", "diverged"]).sum()),
        "slots": slots,
        "ray_init_s": ray.init_s,
        "run_grid_s": fit_s,
        "wall_s": wall,
        "sum_trial_wall_s": trial_s,
        "mean_trial_wall_s": trial_s / len(trials),
        "sum_train_epoch_s": train_s,
        "efficiency": trial_s / (wall * slots),
        "efficiency_run_grid": trial_s / (fit_s * slots),
        "overhead_per_trial_s": (wall * slots - trial_s) / len(trials),
        # where the overhead sits: before the first trial starts, between trials, after the last
        "to_first_trial_s": (first - fit_clock).total_seconds(),
        "between_trials_per_trial_s": (busy_s * slots - trial_s) / len(trials),
        "steady_efficiency": trial_s / (busy_s * slots),
        "after_last_trial_s": (fit_end - last).total_seconds(),
        "peak_tree_rss_mib": sampler.peak_total / 2**20,
        "peak_worker_rss_mib": sampler.peak_worker / 2**20,
    }


def main() -> None:
    p = parser("grid_efficiency", __doc__)
    p.add_argument("--spec", default="quick", help="preset name or spec file (default quick)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the embedded Ray")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE set before Ray starts")
    p.add_argument("--out", type=Path, help="keep the run folder here (default: a temp dir)")
    args = p.parse_args()
    info = machine()
    env = dict(item.split("=", 1) for item in args.env)
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        spec = args.spec
        if args.smoke:
            spec = str(Path(tmp) / "smoke.yaml")
            Path(spec).write_text(SMOKE_SPEC)
        out = args.out or Path(tmp) / "out"
        env_text = " ".join(args.env) or "-"
        row = {"env": env_text, **run_timed(spec, out, args.num_cpus)}
    shown = [k for k in row if k not in ("exit_code", "run_grid_s", "efficiency_run_grid")]
    lines = [{"metric": k, "value": row[k]} for k in shown]
    print(table(lines, ["metric", "value"], "grid efficiency (embedded Ray)"))
    write(args.json, {"benchmark": "grid_efficiency", "machine": info, "env": env, **row})


if __name__ == "__main__":
    main()
