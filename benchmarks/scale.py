"""Scale: the same tiny-trial spec at 100, 1,000 and 4,050 trials, and 50,000 expanded alone.

Each size runs ``symgrid run`` as a user would (a subprocess on an embedded 2-CPU Ray) and reads
the run folder afterwards. Per size:

- ``to_first_trial_s``: from starting the command to the earliest trial's ``started_at``;
- ``overhead_per_trial_s = (wall x slots - sum of trial wall_s) / N`` with ``wall`` from starting
  the command to its exit (Ray's start, the tables and Python's own start included);
- ``steady_overhead_per_trial_s``: the same between the first trial's start and the last one's end;
- ``driver_peak_rss_mib``: the driver's VmHWM, sampled from /proc while it runs;
- ``tables_s`` / ``tables_peak_rss_mib``: ``analysis.collect.build_tables`` again on the finished
  run folder, in a fresh process (the driver already built them once inside ``wall``).

``expand_validate`` times ``symgrid validate --yes`` (load, validate, expand every trial, print the
cost) of a 50,000-trial version of the spec (50,000 seeds: the lecture's axes cross to more than
the 50,000 the spec allows before exclusions). The machine is shared: each row records the load
average before and after it.

    python benchmarks/scale.py                         # 100, 1,000, 4,050 and 50,000; ~1 hour
    python benchmarks/scale.py --sizes 100 1000        # some sizes only
    python benchmarks/scale.py --sizes 300 --env TUNE_MAX_PENDING_TRIALS_PG=200  # a Tune knob
    python benchmarks/scale.py --smoke                 # 6 trials and 1,350 expanded, ~30 s
    python benchmarks/scale.py --sizes 1000 4050 --storage-copy   # the records' copy, off and on

``--storage-copy`` runs each size twice on ``--storage`` (moto's S3 server on loopback,
``tests/s3server.py``): first with the driver's per-trial copy of the records into ``DIR/trials``
turned off (``SYMGRID_COPY_RECORDS=0``; the run copies them all at its end), then on, one after
the other, so the two rows are measured at the same load.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import machine, parser, table, write

REPO = Path(__file__).resolve().parents[1]
# The lecture's axes and exclusions (4,050 trials) over a tiny trial: 2 epochs of 4,096 symbols.
BASE = """
name: scale{n}
description: the lecture's axes over tiny trials, for benchmarks/scale.py
base:
  train: {{ebno_db: [-20, 20], symbols: 4096, val_symbols: 2048, batch_size: 1024, epochs: 2}}
  model: {{hidden: [16]}}
  optimizer: {{name: adam, lr: 0.01}}
  eval: {{ebno_db: [4], min_errors: 50, max_bits: 1.0e+5, biasvar_symbols: 256}}
resources: {{cpu: 1, gpu: 0}}
max_failures: 0
"""
LECTURE_AXES = """
axes:
  scheduler: [none, step, lambda_linear, constant, linear, exponential, multiplicative, cosine,
              one_cycle, plateau]
  loss: [bce, bce_logits, mse, l1, smooth_l1, cross_entropy, nll]
  regularization: [none, l2, l1, elastic_net, dropout, label_smoothing, early_stopping]
  train.ebno_db: [0, 4, 8]
  seed: {seeds}
exclude:
  - {{loss: mse, regularization: label_smoothing}}
  - {{loss: l1, regularization: label_smoothing}}
  - {{loss: smooth_l1, regularization: label_smoothing}}
  - {{loss: nll, regularization: label_smoothing}}
"""
SLOTS = 2  # --num-cpus 2, one CPU per trial
COPY_ENV = "SYMGRID_COPY_RECORDS"  # grid.record_copy.OFF_ENV
TABLES = """
import json, resource, sys, time
from symgrid.analysis.collect import build_tables
start = time.perf_counter()
build_tables(sys.argv[1])
build_s = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"build_s": build_s, "peak_rss_kib": peak}))
"""


def spec_text(n: int) -> str:
    """Multiples of 1,350 (4,050): the lecture's axes; other sizes: ``n`` seeds of one config."""
    if n % 1350 == 0:
        return BASE.format(n=n) + LECTURE_AXES.format(seeds=list(range(n // 1350)))
    return BASE.format(n=n) + f"axes:\n  seed: {list(range(n))}\n"


class PeakRss(threading.Thread):
    """The peak RSS (VmHWM) of one process, read from /proc until it exits."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kib = pid, 0

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                lines = status.read_text().splitlines()
            except OSError:
                return
            hwm = [line for line in lines if line.startswith("VmHWM")]
            if not hwm:  # a zombie: exited, not yet reaped
                return
            self.peak_kib = max(self.peak_kib, int(hwm[0].split()[1]))
            time.sleep(0.2)


def symgrid(*args: str) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "symgrid", *args]
    start = time.time()
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(cmd, cwd=REPO, env=env, **pipes), start


def run_size(n: int, tmp: Path, storage: str | None = None, copy: str = "") -> dict:
    import pandas as pd

    spec = tmp / f"scale{n}.yaml"
    spec.write_text(spec_text(n))
    out, load = tmp / f"out{n}{copy}", os.getloadavg()
    more = ["--storage", storage] if storage else []
    os.environ[COPY_ENV] = "0" if copy == "off" else "1"
    proc, start = symgrid("run", str(spec), "--out", str(out), "--num-cpus", str(SLOTS),
                          "--no-report", "--yes", *more)  # fmt: skip
    rss = PeakRss(proc.pid)
    rss.start()
    _, err = proc.communicate()
    wall = time.time() - start
    rss.join()
    trials = pd.read_parquet(out / "trials.parquet")
    started = pd.to_datetime(trials["started_at"]).min().timestamp()
    finished = pd.to_datetime(trials["finished_at"]).max().timestamp()
    trial_s = float(trials["wall_s"].sum())
    return {
        "trials": n,
        **({"storage": "s3 (moto, loopback)", "copy_as_trials_end": copy} if storage else {}),
        "exit_code": proc.returncode,
        "last_line": err.strip().splitlines()[-1] if err.strip() else "",
        "with_results": int(trials["status"].isin(["completed", "diverged"]).sum()),
        "wall_s": wall,
        "to_first_trial_s": started - start,
        "sum_trial_wall_s": trial_s,
        "overhead_per_trial_s": (wall * SLOTS - trial_s) / n,
        "steady_overhead_per_trial_s": ((finished - started) * SLOTS - trial_s) / n,
        "after_last_trial_s": start + wall - finished,
        "driver_peak_rss_mib": rss.peak_kib / 1024,
        "trial_processes": len(worker_pids(out)),
        **tables(out),
        "loadavg_before": [round(v, 2) for v in load],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }


def worker_pids(out: Path) -> set[int]:
    """The Ray worker processes that ran trials (the ``pid`` of each trial's last report): with
    reused actors about one per slot, unless Tune starts fresh actors."""
    pids = set()
    for path in (out / "ray").glob("*/result.json"):
        lines = path.read_text().strip().splitlines()
        if lines:
            pids.add(json.loads(lines[-1])["pid"])
    return pids


def tables(out: Path) -> dict:
    """build_tables on a finished run folder, in a fresh process: seconds and peak RSS."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TABLES, str(out)], cwd=REPO, check=True,
                          capture_output=True, text=True)  # fmt: skip
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "tables_s": time.perf_counter() - start,
        "tables_build_s": child["build_s"],
        "tables_peak_rss_mib": child["peak_rss_kib"] / 1024,
    }


@contextlib.contextmanager
def s3_storage(folder: Path, wanted: bool):
    """A ``--storage`` URI on moto's S3 server (loopback, stopped at exit), or None."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from raycluster import free_ports
    from s3server import CREDENTIALS, S3Server

    os.environ.update(CREDENTIALS)
    server = S3Server(free_ports(1)[0], folder / "moto.log")
    server.start()
    try:
        server.create_bucket("scale")
        yield server.uri("scale", "runs")
    finally:
        server.stop()


def expand_validate(n: int, tmp: Path) -> dict:
    spec = tmp / f"validate{n}.yaml"
    spec.write_text(spec_text(n))
    load = os.getloadavg()
    proc, start = symgrid("validate", str(spec), "--yes")
    _, err = proc.communicate()
    return {
        "trials": n,
        "exit_code": proc.returncode,
        "expand_validate_s": time.time() - start,
        "loadavg_before": [round(v, 2) for v in load],
    }


def main() -> None:
    p = parser("scale", __doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 4050])
    p.add_argument("--expand", type=int, default=50_000, help="trials to expand and validate")
    p.add_argument("--keep", type=Path, help="keep the run folders here (default: a temp dir)")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the runs (Tune's)")
    p.add_argument("--storage-copy", action="store_true", help="on S3: the copy off, then on")
    args = p.parse_args()
    os.environ.update(dict(item.split("=", 1) for item in args.env))
    sizes, expand_n = ([6], 1_350) if args.smoke else (args.sizes, args.expand)
    info = machine()
    tmp = tempfile.TemporaryDirectory()  # removed at exit unless --keep names a folder
    folder = Path(tempfile.mkdtemp(dir=args.keep)) if args.keep else Path(tmp.name)
    runs = []
    with s3_storage(folder, args.storage_copy) as storage:
        for n in sizes:
            for copy in ("off", "on") if storage else ("",):
                runs.append(run_size(n, folder, storage, copy))
                print(json.dumps(runs[-1]), flush=True)
    validation = expand_validate(expand_n, folder)
    tmp.cleanup()
    cols = ["trials", *(["copy_as_trials_end"] if args.storage_copy else [])]
    cols += ["to_first_trial_s", "wall_s", "overhead_per_trial_s"]
    cols += ["steady_overhead_per_trial_s", "driver_peak_rss_mib", "tables_s"]
    cols += ["tables_build_s", "tables_peak_rss_mib"]
    if runs:
        print(table(runs, cols, "symgrid run, tiny trials, embedded Ray, 2 slots"))
    print(table([validation], ["trials", "expand_validate_s"], "symgrid validate --yes"))
    result = {"benchmark": "scale", "machine": info, "env": args.env, "runs": runs}
    write(args.json, {**result, "expand": validation})


if __name__ == "__main__":
    main()
