"""Experiment tracking on the driver, as Ray Tune callbacks: TensorBoard and MLflow on request.

TensorBoard (``symgrid run SPEC --tensorboard``)
    ``DIR/tensorboard/<trial_id>/`` holds each trial's event file, flushed every epoch, so
    ``tensorboard --logdir DIR`` shows the learning curves while the grid runs. The callback takes
    the place of Ray's default TensorBoard logger (a subclass, so Ray adds no second one), which
    writes into the driver's staging folder and syncs it to ``DIR/ray`` only every 300 s.
    Writing needs only ``tensorboardX``, which ``ray[tune]`` installs.
MLflow (``symgrid run SPEC --mlflow [URI]``, the optional extra ``symgrid[tracking]``)
    One experiment per run, named ``<run name>-<UTC start time>``; one MLflow run per trial (its
    name is the trial id) with the trial's axes and flattened config as params (``config.<path>``),
    the epoch metrics (step = epoch), the final BER table (``ber_<Eb/N0>dB``, ``ber_map_...``,
    ``ber_ratio_map_...``), the summary (``ber_ratio_map``...) and its records as artifacts, and
    tags ``status``, ``node`` and ``device`` (``grid.mlflow_callback``). Without a URI the store
    is ``DIR/mlflow/mlflow.db``. ``DIR/mlflow_runs.jsonl`` maps trial ids to MLflow runs for the
    report (``analysis.links``).

Both callbacks take the trials' axes and configs from the expanded spec, keyed by trial id (the
Ray trial's name), never from Ray's ``trial.config``. A trial writes its records before its final
report, so they are in place (``DIR/trials/<trial_id>/``, or on ``--storage``) when it ends. A
tracking server that stops answering costs one warning line, never the grid.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from ray.tune.logger import TBXLoggerCallback
from symgrid.grid.run import RunError
from symgrid.grid.spec import Spec, TrialSpec
from symgrid.grid.tracked import EPOCH_METRICS, finite_numbers
from symgrid.trainables.messages import first_line

__all__ = [
    "HTTP_DEFAULTS",
    "TENSORBOARD",
    "TensorBoardCallback",
    "check_mlflow",
    "tracking_callbacks",
]

EXTRA = "symgrid[tracking]"  # pyproject.toml: mlflow and tensorboard
TENSORBOARD = "tensorboard"  # DIR/tensorboard/<trial_id>/events.out.tfevents.*
# DIR/mlflow/mlflow.db and DIR/mlflow/artifacts: SQLite, as MLflow 3 refuses plain-file stores
LOCAL_STORE = "mlflow"
# MLflow's default (7 retries with exponential backoff) stalls the driver for minutes per call
# when a server is down; a user's own MLFLOW_HTTP_REQUEST_* settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class TrackingError(RunError):
    """MLflow cannot be used for this run (one line, exit code 2, before Ray starts)."""


def check_mlflow(uri: str, verbose: bool = False) -> None:
    """Before any folder is made: a one-line :class:`TrackingError` naming the extra when MLflow
    is not installed, or naming the URI when its tracking store does not answer."""
    try:
        from mlflow import MlflowClient
    except ImportError as err:
        raise TrackingError(
            f"--mlflow needs the optional extra {EXTRA} ({err.msg}); "
            f"install it with: pip install -c constraints.txt '.[tracking]'"
        ) from None
    quiet_mlflow(verbose)
    if uri:  # "" is the local store, made inside the run folder once it is checked
        with store_errors(uri):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def tracking_callbacks(
    out: Path,
    spec: Spec,
    trials: list[TrialSpec],
    mlflow_uri: str | None,
    verbose: bool = False,
    tensorboard: bool = False,
) -> list:
    """The run's tracking callbacks; with ``mlflow_uri`` (``""``: the local store) the MLflow
    experiment is created here, so an unreachable server is an error before Ray starts.

    TensorBoard is asked for (``--tensorboard``): its per-epoch flushes cost the driver about a
    fifth of its control loop on grids of thousands of tiny trials (``grid.tuning``)."""
    axes = {t.trial_id: t.axes for t in trials}
    callbacks = [TensorBoardCallback(out, axes)] if tensorboard else []
    if mlflow_uri is not None:
        check_mlflow("", verbose)
        uri = mlflow_uri or local_store_uri(out)
        name = f"{spec.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
        open_experiment(uri, name, None if mlflow_uri else out / LOCAL_STORE / "artifacts")
        from symgrid.grid.mlflow_callback import MlflowCallback  # imports MLflow

        callbacks.append(MlflowCallback(out, uri, name))
    return callbacks


def local_store_uri(out: Path) -> str:
    (out / LOCAL_STORE).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / LOCAL_STORE / 'mlflow.db').resolve()}"


def quiet_mlflow(verbose: bool) -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not verbose:  # MLflow and alembic log their database set-up at INFO on stderr
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # and MLflow prints a "View run" line per finished trial; the report links them all
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def open_experiment(uri: str, name: str, artifacts: Path | None) -> str:
    """The id of experiment ``name`` at ``uri``, created when new; TrackingError if unreachable."""
    from mlflow import MlflowClient

    with store_errors(uri):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = artifacts.resolve().as_uri() if artifacts else None
        return client.create_experiment(name, artifact_location=location)


@contextlib.contextmanager
def store_errors(uri: str):
    """MLflow's, requests' and SQLAlchemy's errors as one-line TrackingErrors naming ``uri``."""
    try:
        yield
    except Exception as err:
        message = f"--mlflow {uri}: cannot use this tracking store ({first_line(err)})"
        raise TrackingError(message) from None


class TensorBoardCallback(TBXLoggerCallback):
    """One TensorBoard event folder per trial in ``DIR/tensorboard``, flushed every epoch.

    Scalars are named like the ``epochs.parquet`` columns (``lr``, ``train_loss``...) with the
    epoch as step; at the end the trial's axes and ``ber_ratio_map`` go to the HParams view.
    """

    def __init__(self, out: Path, axes: dict[str, dict]):
        super().__init__()
        self.root, self.axes = Path(out) / TENSORBOARD, axes

    def log_trial_start(self, trial):
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        self._trial_writer[trial] = self._summary_writer_cls(str(self.root / str(trial)))
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration, trial, result):
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer = self._trial_writer[trial]
        if "epoch" in result:
            for key, value in finite_numbers(result, EPOCH_METRICS).items():
                writer.add_scalar(key, value, global_step=int(result["epoch"]))
        self._trial_result[trial] = finite_numbers(result, ["ber_ratio_map"])
        writer.flush()  # live: TensorBoard reads what is on disk

    def log_trial_end(self, trial, failed=False):
        writer = self._trial_writer.pop(trial, None)
        metrics = self._trial_result.pop(trial, {})
        if writer is None:
            return
        axes = {
            k: v if isinstance(v, (int, float, str)) else str(v)
            for k, v in self.axes.get(str(trial), {}).items()
        }
        if axes and metrics:
            from tensorboardX.summary import hparams

            for summary in hparams(axes, metrics):  # experiment, session start, session end
                writer.file_writer.add_summary(summary)
        writer.close()
