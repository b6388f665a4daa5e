"""The MLflow side of ``grid.tracking``: one MLflow run per trial, logged from the driver.

Ray's ``MLflowLoggerCallback`` sets up the experiment and creates the runs; this subclass logs
what Ray's cannot know: the trial's axes and config from the run's plan (keyed by trial id,
the Ray trial's name), the epoch metrics with the epoch as step, and at the trial's end its
records from ``DIR/trials/<trial_id>/`` (BER table, summary, placement) as metrics, tags and
artifacts. Imported only when ``--mlflow`` is given.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.utils import flatten_dict
from symgrid.analysis.links import MLFLOW_RUNS
from symgrid.grid.tracked import EPOCH_METRICS, finite_numbers
from symgrid.trainables.messages import first_line
from symgrid.trainables.records import RecordStore
from symgrid.trainables.tune_adapter import read_plan

__all__ = ["MlflowCallback", "params"]

SUMMARY_METRICS = (
    "ber_ratio_map",
    "val_ber_best",
    "val_loss_best",
    "best_epoch",
    "epochs_run",
    "wall_s",
    "symbols_per_s",
    "num_params",
)
# predictions.parquet stays out: it is a trial's largest file and only the report's
# bias-variance analysis reads it, from the run folder.
ARTIFACTS = ("trial.json", "ber.parquet", "epochs.parquet")


def guarded(hook):
    """Run an MLflow hook; the first error stops MLflow logging with one line, never the grid."""

    @functools.wraps(hook)
    def call(self, *args, **kwargs):
        if self.broken:
            return None
        try:
            return hook(self, *args, **kwargs)
        except Exception as err:  # a server gone away, a full disk: the trials go on
            self.broken = first_line(err)
            print(f"symgrid: MLflow logging stopped: {self.broken}", file=sys.stderr)
            return None

    return call


class MlflowCallback(MLflowLoggerCallback):
    """Ray's MLflow logger, with params from the plan and the trial's records at its end.

    Ray's own logs ``trial.config`` as params and every numeric result field, Ray's bookkeeping
    included, one request per value; this one logs the spec's axes and config, the epoch metrics
    in one batch per epoch, and reuses a trial's MLflow run when the trial restarts or resumes.
    """

    def __init__(self, out: Path, uri: str, experiment: str):
        super().__init__(uri, experiment_name=experiment)
        self.out, self.broken = str(out), None

    @guarded
    def setup(self, *args, **kwargs):
        super().setup(*args, **kwargs)
        self.client = self.mlflow_util._get_client()
        # run.json is written before Tune starts: where the plan (the trials' axes and configs)
        # and the records are. On a cluster the driver's DIR/trials fills only at the end.
        info = json.loads((Path(self.out) / "run.json").read_text())
        self.records = RecordStore(info["records"])
        self.plan = info["plan"]

    @guarded
    def log_trial_start(self, trial):
        trial_id = str(trial)
        run_id = self._trial_runs.get(trial) or self.existing_run(trial_id)
        if run_id is None:
            tags = {"trial_id": trial_id, "status": "running"}
            run_id = self.mlflow_util.start_run(run_name=trial_id, tags=tags).info.run_id
            self.client.log_batch(run_id, params=params(*read_plan(self.plan)[trial_id]))
        else:
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "status", "running")
        self._trial_runs[trial] = run_id
        line = {"trial_id": trial_id, "run_id": run_id, "experiment_id": self.experiment_id}
        with open(Path(self.out) / MLFLOW_RUNS, "a") as f:  # one short append per trial start
            f.write(json.dumps({**line, "tracking_uri": self.tracking_uri}) + "\n")

    @property
    def experiment_id(self) -> str:
        return self.mlflow_util.experiment_id

    def existing_run(self, trial_id: str) -> str | None:
        query = f"tags.trial_id = '{trial_id}'"
        found = self.client.search_runs([self.experiment_id], query, max_results=1)
        return found[0].info.run_id if found else None

    @guarded
    def log_trial_result(self, iteration, trial, result):
        from mlflow.entities import Metric, RunTag

        if trial not in self._trial_runs or "epoch" not in result:
            return
        now, step = now_ms(), int(result["epoch"])
        values = finite_numbers(result, EPOCH_METRICS)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        tags = [RunTag("node", str(result["hostname"]))] if "hostname" in result else []
        self.client.log_batch(self._trial_runs[trial], metrics=metrics, tags=tags)

    @guarded
    def log_trial_end(self, trial, failed=False):
        run_id = self._trial_runs.get(trial)
        if run_id is None:
            return
        with trial_folder(self.records, str(trial)) as folder:
            self.log_end(run_id, trial, folder, failed)

    def log_end(self, run_id: str, trial, folder: Path, failed: bool) -> None:
        from mlflow.entities import Metric, RunTag

        record = read_record(folder)
        status = record.get("status") or ("failed" if failed else "completed")
        node = record.get("hostname") or (trial.last_result or {}).get("hostname")
        tags = {"status": status, "node": node, "device": record.get("device")}
        tags |= {key: record.get(key) for key in ("node_id", "gpu_ids", "error")}
        ber = pd.read_parquet(folder / "ber.parquet") if (folder / "ber.parquet").exists() else None
        values = finite_numbers(record, SUMMARY_METRICS) | ber_metrics(ber)
        self.client.log_batch(
            run_id,
            metrics=[Metric(key, value, now_ms(), 0) for key, value in values.items()],
            tags=[RunTag(key, str(value)) for key, value in tags.items() if value is not None],
        )
        self.log_records(run_id, folder, ber)
        self.client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    def log_records(self, run_id: str, folder: Path, ber: pd.DataFrame | None) -> None:
        """The trial's records, and its BER table as CSV (MLflow's UI shows text files)."""
        for name in ARTIFACTS:
            if (folder / name).exists():
                self.client.log_artifact(run_id, str(folder / name))
        if ber is not None:
            with tempfile.TemporaryDirectory() as tmp:
                ber.to_csv(Path(tmp) / "ber.csv", index=False)
                self.client.log_artifact(run_id, str(Path(tmp) / "ber.csv"))


def params(axes: dict, config: dict) -> list:
    """The trial's axes (as named in the spec) and its flattened config (``config.<path>``)."""
    from mlflow.entities import Param

    flat = flatten_dict({"config": config}, delimiter=".")
    values = {**axes, **flat}
    text = {
        k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
        for k, v in values.items()
    }
    return [Param(key, value) for key, value in text.items()]


def ber_metrics(ber: pd.DataFrame | None) -> dict[str, float]:
    """The BER table as metrics: ``ber_<Eb/N0>dB``, ``ber_map_<Eb/N0>dB``, ``ber_ratio_map_...``."""
    if ber is None:
        return {}
    metrics = {}
    for row in ber.itertuples():
        at = f"{row.ebno_db:g}dB"
        metrics[f"ber_{at}"], metrics[f"ber_map_{at}"] = float(row.ber), float(row.ber_map)
        ratio = getattr(row, "ber_ratio_map", None)  # continuity-corrected (metrics.ratio_to_map)
        if ratio is not None:
            metrics[f"ber_ratio_map_{at}"] = float(ratio)
    return metrics


@contextlib.contextmanager
def trial_folder(records: RecordStore, trial_id: str):
    """A local folder with the trial's records: the folder itself on a local disk, otherwise a
    temporary copy of the files logged here (:data:`ARTIFACTS`; not the predictions, a trial's
    largest file) from the shared storage."""
    if isinstance(records.fs, pafs.LocalFileSystem):
        yield Path(records.folder(trial_id))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in ARTIFACTS:
            # a file the trial did not write (a worker that died): logged from Ray's state alone
            with contextlib.suppress(OSError):
                pafs.copy_files(
                    f"{records.folder(trial_id)}/{name}",
                    f"{tmp}/{name}",
                    source_filesystem=records.fs,
                    destination_filesystem=pafs.LocalFileSystem(),
                )
        yield Path(tmp)


def read_record(folder: Path) -> dict:
    try:
        return json.loads((folder / "trial.json").read_text())
    except (OSError, ValueError):
        return {}


def now_ms() -> int:
    return int(time.time() * 1000)
