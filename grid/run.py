"""Run an expanded grid on Ray Tune: embedded local Ray by default, a cluster with ``address``.

What a run writes before its trials, and where, is ``grid.layout``. With ``--storage URI`` the
driver copies each trial's records into ``DIR/trials`` as the trial ends (``grid.record_copy``)
and whatever is missing when the tables are built. The storage is probed before anything is
written (``grid.storage.probe_storage``, by ``symgrid.api`` before Ray starts); a storage that
stops answering ends the run in one line (exit 130, no tables) and ``symgrid resume DIR``
continues once it answers.

Ray sees each trial only as its id (``{"trial": "t0042"}``): the definitions reach the trials
through the plan file, so Tune's variant generation and experiment snapshots stay O(1) per trial.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import ray
from ray import tune
from symgrid.grid import fit
from symgrid.grid.errors import EXIT_INTERRUPTED, RunError, TablesError
from symgrid.grid.layout import now, prepare_out, start_run
from symgrid.grid.outdir import holds_run, remove_run
from symgrid.grid.progress import Progress
from symgrid.grid.ray_session import ray_session
from symgrid.grid.record_copy import copy_records
from symgrid.grid.spec import Spec, TrialSpec
from symgrid.grid.storage import probe_storage, unshared_storage
from symgrid.grid.tuning import EndedFirstFIFO, SharedIdsGrid, loggers, set_tune_env
from symgrid.trainables import network
from symgrid.trainables.messages import last_line
from symgrid.trainables.records import RecordStore
from symgrid.trainables.storage_io import IO_THREADS, StorageUnreachable, write_json
from symgrid.trainables.tune_adapter import (
    PlanMissing,
    RunFiles,
    read_plan,
    trainable,
)

__all__ = [
    "collect_run",
    "finished_before",
    "new_tuner",
    "refuse",
    "run_grid",
    "run_trials",
    "storage_error",
]

AUTO_GPU_FRACTION = 0.25  # four trials share a GPU when the cluster has one


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
    run_facts: dict | None = None,
    tracking=None,
    overwrite: bool = False,
    started: float | None = None,
) -> int:
    """Run every trial (each writes its own records); write the tables. Returns an exit code.

    Nothing is written before every check passed: ``out`` (an earlier run is kept unless
    ``overwrite`` or none of its trials ever started), the storage on a multi-node cluster
    (``grid.storage.unshared_storage``) and the trial's resources against the cluster
    (``grid.fit``). ``run_facts`` join run.json (``symgrid confirm`` names the parent run there,
    ``symgrid run`` the spec file). ``tracking(out)`` returns more Tune callbacks
    (``grid.tracking``); a trial writes its records before its final report, so they are in place
    when a callback sees it end.
    ``started``: ``time.monotonic()`` when the command started (the progress line's clock).
    """
    out = out.resolve()
    ray_args = {"address": address, "num_cpus": num_cpus, "num_gpus": num_gpus}
    ray_args["max_concurrent"] = max_concurrent
    # Guards the removal of an earlier run below; the storage was probed by the caller before
    # the "starting Ray" line (symgrid.api), so a missing bucket costs no second round trip.
    refuse(fit.refusal(spec, len(trials), out, overwrite, ray_args))
    replace = holds_run(out)  # an earlier run that may go (--overwrite, or none started)
    with ray_session(address, num_cpus, num_gpus, verbose):
        refuse(unshared_storage(address, storage, sum(n["Alive"] for n in ray.nodes())))
        # Resolved once (gpu: auto) and kept in run.json: a resume reuses them instead of
        # re-resolving on whatever cluster is up then, which could silently move GPU trials to CPUs.
        resources = trial_resources(spec)
        refuse(fit.on_cluster(resources, address))
        if replace:
            remove_run(out)
        prepare_out(out, len(trials))
        callbacks = tracking(out) if tracking else []  # its errors exit 2, before any record
        settings = {"max_failures": spec.max_failures, "checkpoint": asdict(spec.checkpoint)}
        run_info = {**(run_facts or {}), **settings, "ray": ray_args, "resources": resources}
        info = start_run(out, spec, trials, storage, run_info, command)
        classes = network.registered_for([t.config for t in trials])
        network.save_classes(classes, out)  # resume and confirm find them without the notebook
        files = RunFiles(info["plan"], info["records"], spec.checkpoint, classes=classes)
        ids = [t.trial_id for t in trials]
        callbacks += copy_records(files.records, out)
        tuner = new_tuner(info, files, ids, verbose, callbacks, started)
        return run_trials(tuner, out, spec.name, files)


def new_tuner(
    info: dict,
    files: RunFiles,
    ids: list[str],
    verbose: bool,
    callbacks: list | None = None,
    started: float | None = None,
) -> tune.Tuner:
    """A Tuner whose param space is the trial ids alone, its experiment where run.json says."""
    base, sep, query = info["experiment_path"].partition("?")
    storage, name = base.rstrip("/").rsplit("/", 1)
    set_tune_env(info["resources"]["cpu"])
    progress = Progress(info["name"], info["trials"], verbose, started)
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, run=files), info["resources"]),
        param_space={"trial": tune.grid_search(ids)},  # shared again by SharedIdsGrid
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            scheduler=EndedFirstFIFO(),
            search_alg=SharedIdsGrid(max_concurrent=info["ray"].get("max_concurrent") or 0),
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage + sep + query,
            failure_config=tune.FailureConfig(max_failures=info["max_failures"]),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[*loggers(), progress, *(callbacks or [])],
            verbose=1 if verbose else 0,
        ),
    )


def refuse(refusal: str | None) -> None:
    if refusal:
        raise RunError(refusal)


def finished_before(out: Path, info: dict) -> dict[str, str]:
    """The trials a resumed run need not run again, read before Ray starts; a storage that does
    not answer, or that lost the run's plan, is a one-line RunError."""
    refusal = probe_storage(info["records"]) if "://" in info["records"] else None
    if refusal:
        raise RunError(f"{refusal}; `symgrid resume {out}` continues once it answers")
    try:
        read_plan(info["plan"])
        return RecordStore(info["records"]).finished()
    except PlanMissing as err:
        raise RunError(f"{err}; the records copied so far are in {out / 'trials'}") from err
    except StorageUnreachable as err:
        raise RunError(f"storage unreachable ({err}); `symgrid resume {out}` continues") from err


def run_trials(tuner: tune.Tuner, out: Path, name: str, files: RunFiles) -> int:
    """Run the trials and finish the run; a storage that stopped answering ends it in one line."""
    try:
        return collect_run(tuner.fit(), out, name, files)
    except StorageUnreachable as err:
        cause = err.cause
    except Exception as err:  # Ray's own storage calls (experiment state, checkpoints)
        if "://" not in files.records or probe_storage(files.records) is None:
            raise
        cause = last_line(err)
    print(
        f"[{name}] storage unreachable ({cause}); the finished records are safe there; "
        f"`symgrid resume {out}` continues once it answers",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def collect_run(results: tune.ResultGrid, out: Path, name: str, files: RunFiles) -> int:
    """Record the trials that failed without a record, copy the records, write the tables."""
    store = RecordStore(files.records)
    record_failures(results, store, files.plan)
    store.copy_to(out / "trials")
    info = json.loads((out / "run.json").read_text())
    info["finished_at"] = now()
    write_json(info, out / "run.json")
    try:
        from symgrid.analysis.derive import build_all  # scipy & co. load after the trials

        tables = build_all(out)  # the tables and their statistics (effects, bias-variance)
    except Exception as err:  # any failure here loses no trial: the records are all in place
        raise TablesError(
            f"the trials ran but their tables were not built ({type(err).__name__}: "
            f"{last_line(err)}); `symgrid report {out}` rebuilds them"
        ) from err
    done, ended, total = len(tables.finished_ids), len(tables.trials), info["trials"]
    if done < total:
        print(
            f"[{name}] {done}/{total} trials have results; `symgrid resume {out}` runs the other"
            f" {total - done}",
            file=sys.stderr,
        )
    if ended < total:  # trials without any record: stopped (Ctrl-C) before they ended
        return EXIT_INTERRUPTED
    return 0 if done == total else 1


def record_failures(results: tune.ResultGrid, store: RecordStore, plan: str) -> None:
    """A failed record for every trial Ray ended in error that wrote none itself (its worker
    died); trials that never started have no config and no record (resume runs them)."""
    failed = {
        r.config["trial"]: last_line(r.error)
        for r in results
        if r.error is not None and r.config and not storage_error(r.error)
    }
    recorded = store.statuses() if failed else {}
    missing = [t for t in failed if t not in recorded]
    if not missing:
        return
    trials = read_plan(plan)

    def write(trial_id: str) -> None:
        axes, config = trials[trial_id]
        identity = {"axes": axes, "config": config}
        store.write_failed(trial_id, failed[trial_id], [], identity)

    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(write, missing))


def storage_error(error: BaseException) -> bool:
    """Whether a trial ended for want of the storage: no terminal record (resume reruns it)."""
    return isinstance(error, StorageUnreachable) or "StorageUnreachable" in str(error)


def trial_resources(spec: Spec) -> dict:
    gpu = spec.resources.gpu
    if gpu == "auto":
        gpu = AUTO_GPU_FRACTION if ray.cluster_resources().get("GPU", 0) > 0 else 0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def trial_name(trial) -> str:
    return trial.config["trial"]
