"""Run an expanded grid on Ray Tune: embedded local Ray by default, a cluster with ``address``.

Output folder layout::

    DIR/spec.yaml            the resolved spec (reproduces the run)
    DIR/run.json             name, spec hash, command, Ray experiment path, timings
    DIR/ray/                 Ray Tune's experiment folder (local storage)
    DIR/trials/<trial_id>/   each finished or failed trial's records, harvested as it ends
    DIR/*.parquet            the tables (``analysis.collect``)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import ray
from ray import tune

from analysis.collect import build_tables
from grid.spec import Spec, TrialSpec, resolved_yaml, spec_hash
from grid.storage import experiment_uri, unshared_storage
from trainables.records import atomic, epochs_frame, write_json, write_parquet
from trainables.tune_adapter import trainable

EXPERIMENT = "ray"  # Ray's experiment folder in DIR when Ray's storage is DIR itself
AUTO_GPU_FRACTION = 0.25  # four trials share a GPU when the cluster has one
# A disk that fills mid-run fails trials one by one; refuse a folder that is clearly too small.
# Measured: a tiny trial leaves about 170 KiB (Ray's trial folder, two checkpoints, its records).
BYTES_PER_TRIAL = 256 * 2**10
MIN_FREE_BYTES = 16 * 2**20  # spec, run.json, Ray's experiment state, the tables and the report
FINISHED = ("completed", "diverged")  # outcomes; "failed" trials run again on resume


class RunError(RuntimeError):
    """A run that cannot start (one line, shown to the user with exit code 2)."""


def prepare_out(out: Path, trials: int) -> None:
    """Check ``out`` is writable, not a previous run, and has room, before Ray starts."""
    if (out / "run.json").exists():
        raise RunError(
            f"--out {out}: holds a run already; use `symgrid resume {out}` or a new --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        free = shutil.disk_usage(out).free
    except OSError as err:
        raise RunError(f"--out {out}: cannot write there ({err.strerror or err})") from err
    need = MIN_FREE_BYTES + trials * BYTES_PER_TRIAL
    if free < need:
        raise RunError(
            f"--out {out}: only {free / 2**20:.1f} MiB free; {trials} trials need about "
            f"{need / 2**20:.0f} MiB (checkpoints and records); free space or choose another --out"
        )


def run_grid(
    spec: Spec,
    trials: list[TrialSpec],
    out: Path,
    *,
    address: str | None = None,
    storage: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    max_concurrent: int | None = None,
    verbose: bool = False,
    command: str = "",
) -> int:
    """Run every trial; harvest records as trials end; write the tables. Returns an exit code.

    On a multi-node cluster (``address``) Ray's storage must be shared: without ``storage`` the run
    is refused before anything is written (``grid.storage.unshared_storage``).
    """
    out = out.resolve()
    prepare_out(out, len(trials))
    with ray_session(address, num_cpus, num_gpus, verbose):
        refusal = unshared_storage(address, storage, sum(n["Alive"] for n in ray.nodes()))
        if refusal:  # before anything is written or run
            raise RunError(refusal)
        (out / "spec.yaml").write_text(resolved_yaml(spec))
        storage_path = storage or str(out)
        # Shared storage holds many runs: name each experiment for its run, so none overwrites
        # another.
        experiment = (
            f"{spec.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}" if storage else EXPERIMENT
        )
        info = {
            "name": spec.name,
            "spec_hash": spec_hash(spec),
            "command": command,
            "experiment_path": experiment_uri(storage_path, experiment),
            "trials": len(trials),
            "axes": list(spec.axes),
            "started_at": now(),
            "ray": {"address": address, "num_cpus": num_cpus, "num_gpus": num_gpus},
        }
        write_json(info, out / "run.json")
        resources = trial_resources(spec)
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"trial": tune.grid_search([dataclasses.asdict(t) for t in trials])},
            tune_config=tune.TuneConfig(
                reuse_actors=True,
                max_concurrent_trials=max_concurrent,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_name,
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=storage_path,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=[Harvest(str(out)), Progress(spec.name, len(trials), verbose)],
                verbose=1 if verbose else 0,
            ),
        )
        return finish(tuner.fit(), out, spec)


def resume_grid(out: Path, spec: Spec, *, verbose: bool = False) -> int:
    """Continue an interrupted run: finished trials are not run again.

    The trials whose records the run folder holds as finished are passed to the trainable, which
    reports them without training: after a killed driver Ray's saved state can lag behind them.
    """
    out = out.resolve()
    info = read_run_json(out)
    path, cfg = info["experiment_path"], info["ray"]
    done = finished_records(out)
    with ray_session(cfg["address"], cfg["num_cpus"], cfg["num_gpus"], verbose):
        if not tune.Tuner.can_restore(path):
            raise RunError(f"{out}: Ray has no experiment state at {path} to resume")
        tuner = tune.Tuner.restore(
            path,
            trainable=tune.with_resources(
                tune.with_parameters(trainable, done=done), trial_resources(spec)
            ),
            resume_unfinished=True,
            restart_errored=True,
        )
        return finish(tuner.fit(), out, spec)


def read_run_json(out: Path) -> dict:
    """run.json of a run folder, or a RunError saying why it cannot be resumed."""
    try:
        info = json.loads((out / "run.json").read_text())
        info["experiment_path"], info["ray"]  # noqa: B018 - both are needed to resume
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"{out / 'run.json'}: unreadable ({one_line(err)}); cannot resume") from err
    return info


def finished_records(out: Path) -> dict[str, str]:
    """trial_id -> status of every trial folder whose trial.json says it finished."""
    done = {}
    for path in (out / "trials").glob("*/trial.json"):
        status = recorded_status(path.parent)
        if status in FINISHED:
            done[path.parent.name] = status
    return done


def recorded_status(target: Path) -> str | None:
    """The status in ``target/trial.json``; None when there is none or it cannot be read."""
    try:
        return json.loads((target / "trial.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def finish(results: tune.ResultGrid, out: Path, spec: Spec) -> int:
    """Harvest any trial the callback missed, write the tables, record the end of the run."""
    for result in results:
        trial = result.config["trial"]
        if not (out / "trials" / trial["trial_id"] / "trial.json").exists():
            harvest(out, trial, result.checkpoint, result.error)
    info = json.loads((out / "run.json").read_text())
    info["finished_at"] = now()
    write_json(info, out / "run.json")
    tables = build_tables(out)
    done = sum(1 for r in results if r.config["trial"]["trial_id"] in tables.finished_ids)
    print(f"[{spec.name}] {done}/{info['trials']} trials have results in {out}", file=sys.stderr)
    return 0 if done == info["trials"] else 1


def harvest(out: Path, trial: dict, checkpoint: tune.Checkpoint | None, error) -> None:
    """Copy a trial's records out of its latest checkpoint into DIR/trials/<trial_id>/."""
    target = out / "trials" / trial["trial_id"]
    if recorded_status(target) in FINISHED:  # a finished trial's records are final; keep them
        return
    final = False
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            final = (Path(directory) / "trial.json").exists()
            files = ["epochs.parquet", "ber.parquet", "predictions.parquet", "trial.json"]
            for name in files if final else ["epochs.parquet"]:
                if (Path(directory) / name).exists():
                    source = Path(directory) / name  # atomic: a killed driver leaves no half file
                    atomic(target / name, lambda tmp, src=source: shutil.copyfile(src, tmp))
    if not final and error is not None:
        if not (target / "epochs.parquet").exists():
            write_parquet(epochs_frame(trial["trial_id"], []), target / "epochs.parquet")
        failed = {"trial_id": trial["trial_id"], "status": "failed", "error": one_line(error)}
        write_json(
            {**failed, "axes": trial["axes"], "config": trial["config"]}, target / "trial.json"
        )


class Harvest(tune.Callback):
    """Saves each trial's records the moment it ends, so an interrupted run loses nothing."""

    def __init__(self, out: str):
        self.out = out

    def on_trial_complete(self, iteration, trials, trial, **info):
        harvest(Path(self.out), trial.config["trial"], trial.checkpoint, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.error_msg or "trial failed"
        harvest(Path(self.out), trial.config["trial"], trial.checkpoint, error)


class Progress(tune.Callback):
    """One live line: trials done/total, running, failed and an ETA (Ray's table when verbose)."""

    def __init__(self, name: str, total: int, verbose: bool):
        self.name, self.total, self.verbose = name, total, verbose
        self.started, self.last = time.monotonic(), None

    def on_step_end(self, iteration, trials, **info):
        if self.verbose:
            return
        states = [t.status for t in trials]
        counts = (states.count("TERMINATED"), states.count("RUNNING"), states.count("ERROR"))
        tty = sys.stderr.isatty()
        if not tty and counts == self.last:  # a log file gets a line per change, not per second
            return
        self.last = counts
        print(self.line(*counts).ljust(80), end="\r" if tty else "\n", file=sys.stderr, flush=True)

    def line(self, done: int, running: int, failed: int) -> str:
        elapsed = time.monotonic() - self.started
        text = f"[{self.name}] {done}/{self.total} done, {running} running, {failed} failed"
        text += f", {clock(elapsed)} elapsed"
        if done:
            text += f", ETA {clock(elapsed / done * (self.total - done - failed))}"
        return text

    def on_experiment_end(self, trials, **info):
        if not self.verbose and sys.stderr.isatty():
            print(file=sys.stderr)


def trial_resources(spec: Spec) -> dict:
    gpu = spec.resources.gpu
    if gpu == "auto":
        gpu = AUTO_GPU_FRACTION if ray.cluster_resources().get("GPU", 0) > 0 else 0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


class ray_session:
    """``ray.init`` for the run and ``ray.shutdown`` after, unless Ray was already up."""

    def __init__(self, address, num_cpus, num_gpus, verbose):
        local = {"num_cpus": num_cpus, "num_gpus": num_gpus, "include_dashboard": False}
        self.kwargs = {"address": address} if address else local
        self.verbose, self.owned = verbose, False

    def __enter__(self):
        if not self.verbose:
            # Tune's new console output prints a config box and a TensorBoard hint even at
            # verbose=0; its legacy reporter (Ray's documented switch) prints nothing.
            os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        if not ray.is_initialized():
            quiet = {} if self.verbose else {"logging_level": "ERROR", "log_to_driver": False}
            ray.init(**quiet, **self.kwargs)
            self.owned = True
        return self

    def __exit__(self, *exc):
        if self.owned:
            ray.shutdown()


def trial_name(trial) -> str:
    return trial.config["trial"]["trial_id"]


def one_line(error) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:500] if text else type(error).__name__


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def now() -> str:
    return datetime.now(timezone.utc).isoformat()
