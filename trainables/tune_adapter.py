"""The one Ray-aware piece of a trial: report epochs and checkpoints to Ray Tune, resume from them.

Ray Tune calls :func:`trainable` with ``{"trial": {"trial_id", "axes", "config"}}``. Every epoch
reports its row with a checkpoint (the trainer's state and the epochs so far); the final report's
checkpoint holds the trial's whole record folder (see ``trainables.records``).

A trial that had already ended is never trained again: ``symgrid resume`` passes the outcomes the
driver recorded (``done``), and a restored final checkpoint is reported again as it is.
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.records import epochs_frame, write_parquet, write_trial_dir
from trainables.trial import run_trial

STATE_FILE = "state.pt"


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


def load_state() -> dict | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        path = Path(directory) / STATE_FILE
        # map_location: a state written on a CUDA node must load on a CPU node (the trainer
        # copies the tensors to its own device).
        return torch.load(path, weights_only=True, map_location="cpu") if path.exists() else None


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
