"""``symgrid resume DIR``: continue an interrupted run from its run.json and plan.

After launch the plan (``plan.parquet``) and run.json are the run's one source: the trials, their
resources, the retry count and the checkpoint policy are read from them, never from the spec
again. What may change on resume is how the run goes on (the Ray options), never what it runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from ray import tune
from symgrid.grid import fit
from symgrid.grid.errors import RunError
from symgrid.grid.progress import Progress
from symgrid.grid.ray_session import ray_session
from symgrid.grid.record_copy import copy_records
from symgrid.grid.run import (
    finished_before,
    new_tuner,
    refuse,
    run_trials,
)
from symgrid.grid.spec import Spec, load_spec
from symgrid.grid.tuning import SharedIdsGrid, set_tune_env
from symgrid.trainables import network
from symgrid.trainables.checkpointing import CheckpointPolicy
from symgrid.trainables.messages import last_line
from symgrid.trainables.storage_io import write_json
from symgrid.trainables.tune_adapter import RunFiles, read_plan, trainable

__all__ = ["resume_grid", "read_run_json"]


def resume_grid(
    out: Path,
    ray_options: dict | None = None,
    *,
    verbose: bool = False,
    started=None,
    finished: dict | None = None,
) -> int:
    """Continue an interrupted run: finished trials are not run again.

    Everything comes from run.json and the plan. ``ray_options`` (``address``, ``num_cpus``,
    ``num_gpus``, ``max_concurrent``) replace the ones the run had (how it runs, never what), and
    are checked against the cluster like a new run's. The trials whose records are finished are
    passed to the trainable, which reports them without training: after a killed driver Ray's
    saved state can lag behind them. A run stopped before Ray saved any state (Ctrl-C while Ray
    started) starts again from its plan. ``finished``: the finished records, when the caller
    already read them (:func:`grid.run.finished_before`).
    """
    out = out.resolve()
    info = read_run_json(out)
    given = {k: v for k, v in (ray_options or {}).items() if v is not None}
    cfg = {**info["ray"], **given}
    info["ray"] = cfg
    policy = CheckpointPolicy(**info["checkpoint"])
    if finished is None:  # the caller's read, or this one: probes the storage, one line if gone
        finished = finished_before(out, info)
    network.load_classes(out)  # network classes the run was given as objects (classes.pkl)
    plan = read_plan(info["plan"])
    classes = network.registered_for([config for _, config in plan.values()])
    files = RunFiles(info["plan"], info["records"], policy, finished, classes)
    refuse(fit.before_start(info["resources"], cfg))
    with ray_session(cfg["address"], cfg["num_cpus"], cfg["num_gpus"], verbose):
        refuse(fit.on_cluster(info["resources"], cfg["address"]))
        write_json(info, out / "run.json")  # the options this run goes on with
        path = info["experiment_path"]
        if tune.Tuner.can_restore(path):
            tuner = restored_tuner(info, files, verbose, started)
        else:
            copier = copy_records(files.records, out)
            tuner = new_tuner(info, files, sorted(plan), verbose, copier, started)
        return run_trials(tuner, out, info["name"], files)


def restored_tuner(info: dict, files: RunFiles, verbose: bool, started) -> tune.Tuner:
    """Tune's saved experiment, with this session's progress line and concurrency limit."""
    set_tune_env(info["resources"]["cpu"])
    tuner = tune.Tuner.restore(
        info["experiment_path"],
        trainable=tune.with_resources(
            tune.with_parameters(trainable, run=files), info["resources"]
        ),
        resume_unfinished=True,
        restart_errored=True,
    )
    # Tune restores its TuneConfig and RunConfig as saved; the limit and the progress line's
    # clock are this session's (Tune has no public way to change them on restore; through Ray
    # Client, ray://, the tuner is remote and keeps the saved ones).
    internal = tuner._local_tuner
    if internal is None:
        return tuner
    limit = info["ray"].get("max_concurrent")
    search = internal._tune_config.search_alg
    if isinstance(search, SharedIdsGrid):  # it keeps this limit over the saved one
        search.max_concurrent = limit or 0
    else:  # a run started before SharedIdsGrid
        internal._tune_config = replace(internal._tune_config, max_concurrent_trials=limit)
    callbacks = internal._run_config.callbacks or []
    for i, callback in enumerate(callbacks):
        if isinstance(callback, Progress):
            callbacks[i] = Progress(info["name"], info["trials"], verbose, started)
    return tuner


def read_run_json(out: Path) -> dict:
    """run.json of a run folder, or a RunError saying why it cannot be resumed."""
    try:
        info = json.loads((out / "run.json").read_text())
        for key in ("experiment_path", "ray", "plan", "records", "resources", "name", "trials"):
            info[key]  # noqa: B018
        info.setdefault("max_failures", legacy_spec(out).max_failures)
        info.setdefault("checkpoint", asdict(legacy_spec(out).checkpoint))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"{out / 'run.json'}: unreadable ({last_line(err)}); cannot resume") from err
    return info


def legacy_spec(out: Path) -> Spec:
    """A run started before run.json kept max_failures and checkpoint: they are in its spec."""
    return load_spec(str(out / "spec.yaml"), allow_large=True)
