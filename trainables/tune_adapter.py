"""The one Ray-aware piece of a trial: report epochs and checkpoints to Ray Tune, resume from them.

Two trainables share the trial code (``trainables.trial.run_trial``) and :class:`EpochReporter`:
:func:`search_trainable` (``symgrid.trainable``) takes a whole trial config, for any of Tune's
searchers and schedulers; :func:`trainable` runs one trial of a grid, named by its id.

Ray Tune calls :func:`trainable` with ``{"trial": trial_id}`` and nothing else: the trial's
definition is read from the run's plan (``plan.parquet``, once per worker process), so nothing Ray
keeps or snapshots grows with the size of the configs. Every epoch reports its row; the
:class:`~trainables.checkpointing.CheckpointPolicy` decides which reports carry a checkpoint (the
trainer's whole state). The trial writes its own records (``trainables.records.RecordStore``), a
finished one before its final report and a failed one before its error reaches Ray, so the driver
copies nothing while the grid runs.

A trial that had already ended is never trained again: ``symgrid resume`` passes the outcomes the
records held when it started (``RunFiles.done``), and a trial also checks its own record first.

Test hook: with ``SYMGRID_TEST_GATE`` set, a trial can be held between epochs
(:func:`hold_at_gate`), so tests put trials at a known point without racing them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch
from ray import tune
from symgrid.trainables import network
from symgrid.trainables.checkpointing import CheckpointPolicy
from symgrid.trainables.messages import last_line
from symgrid.trainables.records import FINISHED, RecordStore
from symgrid.trainables.storage_io import (
    StorageUnreachable,
    atomic,
    filesystem,
    read_bytes,
    retrying,
)
from symgrid.trainables.trial import Trainer, run_trial

__all__ = [
    "GATE_ENV",
    "PlanMissing",
    "RunFiles",
    "STATE_FILE",
    "hold_at_gate",
    "load_state",
    "nested",
    "read_plan",
    "save_state",
    "search_trainable",
    "storage_error",
    "trainable",
]

STATE_FILE = "state.pt"
GATE_ENV = "SYMGRID_TEST_GATE"  # test hook only: a folder of hold files, see hold_at_gate
GATE_POLL_S = 0.05  # how often a held trial looks for its hold file
# A searcher's scheduler may stop or pause a trial after any epoch (ASHA, PBT): save every epoch,
# so a paused or restarted trial continues exactly where it was.
SEARCH_CHECKPOINTS = CheckpointPolicy(every_epochs=1, min_interval_s=0)
FINAL_METRICS = (  # per-trial figures of the last report (trainables.trial.trial_summary)
    "ber_ratio_map",
    "points_no_map_errors",
    "val_loss_best",
    "val_ber_best",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "wall_s",
    "symbols_per_s",
    "num_params",
)


@dataclass(frozen=True)
class RunFiles:
    """What every trial of a run shares (``tune.with_parameters`` stores it once)."""

    plan: str  # URI of plan.parquet: trial_id, axes (JSON), config (JSON) of every trial
    records: str  # root of the trial record folders (a RecordStore)
    checkpoint: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    done: dict = field(default_factory=dict)  # trial_id -> status, finished before a resume
    # Network classes passed as objects (a notebook's), by their config name; cloudpickled with
    # the trainable, so the workers need not import them (trainables.network).
    classes: dict = field(default_factory=dict)


class PlanMissing(RuntimeError):
    """The plan is gone from the storage that held it: the storage lost this run."""


@functools.lru_cache(maxsize=4)
def read_plan(uri: str) -> dict[str, tuple[dict, dict]]:
    """trial_id -> (axes, config) of every trial in the plan; read once per worker process.

    Retried while the storage is unreachable; :class:`PlanMissing` when it answers without it."""
    fs, path = filesystem(uri)
    data = retrying(read_bytes, path, fs)
    if data is None:
        raise PlanMissing(f"{uri}: the run's plan is missing: the storage lost this run")
    table = pq.read_table(pa.BufferReader(data)).to_pydict()
    rows = zip(table["trial_id"], table["axes"], table["config"], strict=True)
    return {trial_id: (json.loads(axes), json.loads(config)) for trial_id, axes, config in rows}


@functools.lru_cache(maxsize=4)
def record_store(root: str) -> RecordStore:
    return RecordStore(root)


def trainable(config: dict, run: RunFiles) -> None:
    """Train one trial, or report the outcome it already has.

    Parameters
    ----------
    config : ``{"trial": trial_id}``, Ray's whole view of the trial
    run : the run's plan, record store, checkpoint policy and finished trials
    """
    trial_id = config["trial"]
    network.register_all(run.classes)  # before any config naming them is parsed
    store = record_store(run.records)
    status = run.done.get(trial_id) or retrying(store.status, trial_id)
    if status in FINISHED:  # Ray's saved state can lag behind the records after a killed driver
        tune.report({"trial_id": trial_id, "final": True, "status": status})
        return
    axes, trial_config = read_plan(run.plan)[trial_id]
    placement = where_am_i()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))  # torch would otherwise take every core of the node
    identity = {"axes": axes, "config": trial_config, **placement}
    reporter = EpochReporter(trial_id, run.checkpoint)
    try:
        outcome = run_trial(trial_config, reporter, retrying(load_state), placement["device"])
    except StorageUnreachable:
        raise  # not the trial's fault: no terminal record, Ray's retry (or resume) runs it again
    except Exception as err:
        retrying(store.write_failed, trial_id, last_line(err), reporter.rows, identity)
        raise
    retrying(store.write_outcome, outcome, trial_id, identity)
    metrics = {"trial_id": trial_id, "final": True, "status": outcome.status}
    tune.report({**metrics, "ber_ratio_map": outcome.summary["ber_ratio_map"]})


def search_trainable(config: dict) -> None:
    """A Ray Tune function trainable for any searcher: one trial config in, Tune reports out.

    Parameters
    ----------
    config : the trial config ``symgrid trial`` takes (``trainables.config``), with Tune's
        sampled values inside it, nested (``{"optimizer": {"lr": tune.loguniform(...)}}``) or as
        dotted keys ``"section.field"`` (``{"optimizer.lr": tune.loguniform(...)}``), which set
        that one field over the nested sections. A bad config fails the trial with the one-line
        error ``symgrid trial`` prints.

    Output
    ------
    One report per epoch: ``epoch``, ``lr``, ``train_loss``, ``val_loss``, ``val_loss_plain``,
    ``train_ber``, ``val_ber``, with a checkpoint of the trainer's whole state (weights,
    optimizer, schedule, random generators), so a paused or restarted trial resumes exactly.
    The last epoch's report waits for the evaluation and also holds ``final`` True, ``status``
    and :data:`FINAL_METRICS` (``ber_ratio_map``: the trial's BER over the bitwise-MAP
    detector's on the same samples, ``trainables.metrics``); ``training_iteration`` is the
    epoch, so a scheduler's ``max_t`` of ``train.epochs`` lets the last epoch finish.
    """
    placement = where_am_i()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))  # torch would otherwise take every core of the node
    reporter = EpochReporter(None, SEARCH_CHECKPOINTS, hold_last=True)
    outcome = run_trial(nested(config), reporter, load_state(), placement["device"])
    figures = {k: outcome.summary[k] for k in FINAL_METRICS}
    metrics, folder = reporter.held or ({**(outcome.epochs or [{}])[-1]}, None)
    final = {**metrics, "final": True, "status": outcome.status, **figures}
    if folder is None:  # restored from its last checkpoint: no epoch was left to train
        tune.report(final)
        return
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(folder))
    shutil.rmtree(folder, ignore_errors=True)


def nested(config: dict) -> dict:
    """``config`` with each dotted key ``"section.field"`` set inside its section."""
    plain = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items() if "." not in k}
    for key, value in config.items():
        if "." in key:
            section, _, name = key.partition(".")
            inner = plain.get(section)
            plain[section] = {**(inner if isinstance(inner, dict) else {}), name: value}
    return plain


class EpochReporter:
    """``run_trial``'s ``on_epoch``: report each epoch, with a checkpoint when the policy says."""

    def __init__(self, trial_id: str | None, policy: CheckpointPolicy, hold_last: bool = False):
        self.trial_id, self.policy = trial_id, policy  # trial_id: None outside a grid
        self.rows, self.last_save = [], time.monotonic()
        # hold_last: the last epoch's metrics and checkpoint folder are kept in ``held``, for a
        # report that adds the evaluation (search_trainable); the caller removes the folder.
        self.hold_last, self.held = hold_last, None

    def __call__(self, row: dict, trainer: Trainer) -> None:
        self.rows = trainer.rows
        named = {"trial_id": self.trial_id} if self.trial_id else {}
        metrics = {**named, "final": False, **row}
        final = trainer.done or trainer.diverged
        if final and self.hold_last:
            folder = tempfile.mkdtemp(prefix="symgrid-state-")
            save_state(trainer, Path(folder))
            self.held = (metrics, folder)
            return
        if self.policy.due(trainer.epoch, final, time.monotonic() - self.last_save):
            with tempfile.TemporaryDirectory() as tmp:
                save_state(trainer, Path(tmp))
                checkpoint = tune.Checkpoint.from_directory(tmp)
                retrying(storage_call, tune.report, metrics, checkpoint=checkpoint)
            self.last_save = time.monotonic()
        else:
            tune.report(metrics)
        if self.trial_id:
            hold_at_gate(self.trial_id, trainer.epoch)


def storage_call(call, *args, **kwargs):
    """``call`` with Ray's own storage errors (checkpoint upload, restore) as StorageUnreachable,
    so that :func:`retrying` waits for the storage instead of spending the trial's retries.
    Ray uploads a checkpoint before it takes the report, so a retried report counts once."""
    try:
        return call(*args, **kwargs)
    except OSError as err:
        raise storage_error(err) from err


def storage_error(err: OSError) -> Exception:
    """A remote storage's error as StorageUnreachable; a local one (it carries an errno: a full
    disk, a missing file) stays itself and fails the trial."""
    return err if err.errno is not None else StorageUnreachable("checkpoint storage", err)


def save_state(trainer: Trainer, directory: Path) -> None:
    torch.save(trainer.state_dict(), Path(directory) / STATE_FILE)


def hold_at_gate(trial_id: str, epoch: int) -> None:
    """Test hook: after reporting ``epoch``, wait while a hold file for it exists.

    The hold file is ``$SYMGRID_TEST_GATE/<trial_id>.<epoch>.hold``. A test creates hold files
    before the run and deletes one to let its trial go on. A held trial first writes
    ``<trial_id>.<epoch>.held`` (JSON: its worker's ``pid`` and ``node_id``). It waits after
    ``tune.report`` has returned, which Tune allows only once the driver has processed that epoch's
    result and checkpoint, so a trial killed while held restarts from its last checkpoint at or
    before ``epoch``. Real runs leave the variable unset and this costs nothing.
    """
    folder = os.environ.get(GATE_ENV)
    hold = Path(folder) / f"{trial_id}.{epoch}.hold" if folder else None
    if hold is None or not hold.exists():
        return
    held = {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
    atomic(hold.with_suffix(".held"), lambda tmp: Path(tmp).write_text(json.dumps(held)))
    while hold.exists():
        time.sleep(GATE_POLL_S)


def load_state() -> dict | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as directory:  # a download from a remote storage
            path = Path(directory) / STATE_FILE
            # map_location: a state written on a CUDA node must load on a CPU node (the trainer
            # copies the tensors to its own device).
            if not path.exists():
                return None
            return torch.load(path, weights_only=True, map_location="cpu")
    except OSError as err:
        raise storage_error(err) from err


def where_am_i() -> dict:
    """Node, host and GPUs Ray placed this trial on; CUDA only when Ray assigned a GPU."""
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "gpu_ids": ",".join(gpu_ids),
        "device": device,
    }
