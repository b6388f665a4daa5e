"""The one Ray-aware piece of a trial: report epochs and checkpoints to Ray Tune, resume from them.

Ray Tune calls :func:`trainable` with ``{"trial": {"trial_id", "axes", "config"}}``. Every epoch
reports its row with a checkpoint (the trainer's state and the epochs so far); the final report's
checkpoint holds the trial's whole record folder (see ``trainables.records``).

A trial that had already ended is never trained again: ``symgrid resume`` passes the outcomes the
driver recorded (``done``), and a restored final checkpoint is reported again as it is.

Test hook: with ``SYMGRID_TEST_GATE`` set, a trial can be held between epochs
(:func:`hold_at_gate`), so tests put trials at a known point without racing them.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.records import atomic, epochs_frame, write_parquet, write_trial_dir
from trainables.trial import run_trial

STATE_FILE = "state.pt"
GATE_ENV = "SYMGRID_TEST_GATE"  # test hook only: a folder of hold files, see hold_at_gate
GATE_POLL_S = 0.05  # how often a held trial looks for its hold file


def trainable(config: dict, done: dict | None = None) -> None:
    """Train one trial, or report the outcome it already has.

    Parameters
    ----------
    config : ``{"trial": {"trial_id", "axes", "config"}}``
    done : trial_id -> status of the trials whose records the driver kept before an interrupt.
        Ray saves its experiment state every few seconds, so after a killed driver it may still
        list such a trial as running; resuming it would train it again from an older checkpoint.
    """
    trial = config["trial"]
    trial_id = trial["trial_id"]
    if done and trial_id in done:
        tune.report({"trial_id": trial_id, "final": True, "status": done[trial_id]})
        return
    if report_final_checkpoint(trial_id):
        return
    placement = where_am_i()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))  # torch would otherwise take every core of the node

    def on_epoch(row: dict, trainer) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(trainer.state_dict(), Path(tmp) / STATE_FILE)
            write_parquet(epochs_frame(trial_id, trainer.rows), Path(tmp) / "epochs.parquet")
            metrics = {"trial_id": trial_id, "final": False, **row}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        hold_at_gate(trial_id, row["epoch"])

    outcome = run_trial(trial["config"], on_epoch, load_state(), placement["device"])
    extra = {"axes": trial["axes"], "config": trial["config"], **placement}
    with tempfile.TemporaryDirectory() as tmp:
        write_trial_dir(outcome, trial_id, Path(tmp), extra)
        metrics = {"trial_id": trial_id, "final": True, "status": outcome.status}
        metrics["ber_ratio_map"] = outcome.summary["ber_ratio_map"]
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def report_final_checkpoint(trial_id: str) -> bool:
    """Report a restored checkpoint that already holds the trial's records (it ended before a
    crash or an interrupt); it has no trainer state, so training would start from scratch."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as directory:
        record = Path(directory) / "trial.json"
        if not record.exists():
            return False
        summary = json.loads(record.read_text())
        metrics = {"trial_id": trial_id, "final": True, "status": summary["status"]}
        metrics["ber_ratio_map"] = summary.get("ber_ratio_map")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
    return True


def hold_at_gate(trial_id: str, epoch: int) -> None:
    """Test hook: after reporting ``epoch``, wait while a hold file for it exists.

    The hold file is ``$SYMGRID_TEST_GATE/<trial_id>.<epoch>.hold``.
    A test creates hold files before the run and deletes one to let its trial go on. A held trial
    first writes ``<trial_id>.<epoch>.held`` (JSON: its worker's ``pid`` and ``node_id``). It waits
    after ``tune.report`` has returned, which Tune allows only once the driver has processed that
    epoch's result and checkpoint, so a trial killed while held restarts after ``epoch``. Real runs
    leave the variable unset and this costs nothing.
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
    with checkpoint.as_directory() as directory:
        path = Path(directory) / STATE_FILE
        return torch.load(path, weights_only=True) if path.exists() else None


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
