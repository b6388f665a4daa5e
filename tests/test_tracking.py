"""Experiment tracking against real components: an MLflow server, its SQLite store, TensorBoard.

A real ``mlflow server`` is started on loopback (a free port, its own SQLite backend and artifact
folder in a temp dir) and stopped by pid; one small grid runs against it with ``--mlflow URI``
and its runs, params, metrics, tags and artifacts are read back with ``MlflowClient``, its
TensorBoard event files with TensorBoard's own ``EventAccumulator``, its report's links checked.
The default local store is checked with the same callbacks driven in this process (no second
Ray). Without the extra installed (imports of mlflow and tensorboard made to fail in a
subprocess) what a run builds needs neither, and ``--mlflow`` is a one-line error naming it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from ray.tune.experiment import Trial
from symgrid.analysis.links import MLFLOW_RUNS
from symgrid.grid.cli import build_parser, main
from symgrid.grid.layout import start_run
from symgrid.grid.spec import expand, load_spec
from symgrid.grid.tracking import EPOCH_METRICS, HTTP_DEFAULTS, TENSORBOARD, tracking_callbacks
from symgrid.trainables.records import write_trial_dir
from symgrid.trainables.trial import run_trial
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = [pytest.mark.slow, pytest.mark.ray]

BIN = Path(sys.executable).parent  # the venv's bin: mlflow
START_TIMEOUT_S = 120  # measured 5.7 s at load average 3.3, 26 s at 17 (2 cores)
SPEC = """
name: {name}
description: a tiny grid for the tracking tests
base:
  train: {{ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 1024, epochs: {epochs}}}
  model: {{hidden: [8]}}
  eval: {{ebno_db: [2, 6], min_errors: 20, max_bits: 2.0e+4, biasvar_symbols: 128}}
axes:
  scheduler: {schedulers}
  seed: [0]
resources: {{cpu: 1, gpu: 0}}
max_failures: 0
"""
# Makes `import mlflow` and `import tensorboard` fail, as when the extra is not installed.
NO_EXTRA = """
import importlib.abc, sys
class NoExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "tensorboard"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoExtra())
"""


def write_spec(folder: Path, name: str, epochs: int, schedulers: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, epochs=epochs, schedulers=schedulers))
    return path


def symgrid(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "symgrid", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with its own store; its process group is killed at the end."""
    home, port = tmp_path_factory.mktemp("mlflow-server"), free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", str(home / "artifacts"), "--workers", "1"]
    # Without its job runner (7 huey consumer processes, GenAI jobs) the server starts faster
    # and leaves no store behind in /dev/shm.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    uri, started = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while not healthy(uri):
            assert proc.poll() is None, (home / "server.log").read_text()[-2000:]
            assert time.monotonic() - started < START_TIMEOUT_S, "mlflow server did not start"
            time.sleep(0.2)
        print(f"mlflow server up in {time.monotonic() - started:.1f} s")
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: this group only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server_run(server, tmp_path_factory):
    """One grid of two trials logged to the server, with its report: (run folder, client, runs)."""
    folder = tmp_path_factory.mktemp("tracked")
    spec = write_spec(folder, "tracked", epochs=2, schedulers="[none, step]")
    out = folder / "out"
    args = ("--num-cpus", "2", "--tensorboard", "--mlflow", server)
    result = symgrid("run", spec, "--out", out, *args)
    assert result.returncode == 0, result.stderr
    assert "View run" not in result.stdout + result.stderr  # no line per trial from MLflow
    client = MlflowClient(tracking_uri=server)
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("tracked-")]
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    return out, client, runs


def flat(config: dict, prefix: str = "config") -> dict[str, str]:
    """The config flattened to MLflow params, written independently of grid.mlflow_callback."""
    items = {}
    for key, value in config.items():
        if isinstance(value, dict):
            items.update(flat(value, f"{prefix}.{key}"))
        else:
            items[f"{prefix}.{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return items


def test_every_trial_is_an_mlflow_run_with_its_axes_config_and_tags(server_run):
    out, client, runs = server_run
    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    assert sorted(runs) == sorted(trials.index) == ["t0000", "t0001"]
    for trial_id, run in runs.items():
        trial = trials.loc[trial_id]
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["scheduler"] == trial.scheduler and params["seed"] == str(trial.seed)
        expected = flat(json.loads(trial.config_json))
        assert {k: v for k, v in params.items() if k.startswith("config.")} == expected
        assert params["config.train.symbols"] == "4096"
        tags = run.data.tags
        assert tags["status"] == "completed" == trial.status
        assert tags["node"] == trial.hostname and tags["device"] == trial.device == "cpu"
        assert tags["node_id"] == trial.node_id and tags["trial_id"] == trial_id


def test_epoch_metrics_are_the_recorded_epochs(server_run):
    out, client, runs = server_run
    epochs = pd.read_parquet(out / "epochs.parquet")
    for trial_id, run in runs.items():
        rows = epochs[epochs.trial_id == trial_id].sort_values("epoch")
        for key in EPOCH_METRICS:
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            assert [m.step for m in history] == list(rows.epoch) == [1, 2]
            assert [m.value for m in history] == pytest.approx(list(rows[key]), rel=1e-12)


def test_final_ber_table_and_ratio_to_map_are_metrics_and_artifacts(server_run, tmp_path):
    out, client, runs = server_run
    ber = pd.read_parquet(out / "ber.parquet")
    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    for trial_id, run in runs.items():
        metrics = run.data.metrics
        assert metrics["ber_ratio_map"] == pytest.approx(trials.loc[trial_id, "ber_ratio_map"])
        points = ber[ber.trial_id == trial_id]
        assert list(points.ebno_db) == [2.0, 6.0]
        for p in points.itertuples():
            assert metrics[f"ber_{p.ebno_db:g}dB"] == pytest.approx(p.ber)
            assert metrics[f"ber_map_{p.ebno_db:g}dB"] == pytest.approx(p.ber_map)
            ratio = (p.errors + 0.5) / (p.errors_map + 0.5)  # continuity-corrected, README
            assert metrics[f"ber_ratio_map_{p.ebno_db:g}dB"] == pytest.approx(ratio)
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"ber.csv", "ber.parquet", "epochs.parquet", "trial.json"} <= names
        csv = client.download_artifacts(run.info.run_id, "ber.csv", str(tmp_path))
        pd.testing.assert_frame_equal(pd.read_csv(csv), points.reset_index(drop=True))


def test_tensorboard_event_files_hold_every_epoch(server_run):
    out, _, runs = server_run
    epochs = pd.read_parquet(out / "epochs.parquet")
    assert sorted(p.name for p in (out / TENSORBOARD).iterdir()) == sorted(runs)
    for trial_id in runs:
        events = EventAccumulator(str(out / TENSORBOARD / trial_id))
        events.Reload()
        assert set(EPOCH_METRICS) <= set(events.Tags()["scalars"])
        rows = epochs[epochs.trial_id == trial_id].sort_values("epoch")
        for key in EPOCH_METRICS:
            scalars = events.Scalars(key)
            assert [s.step for s in scalars] == list(rows.epoch)
            assert [s.value for s in scalars] == pytest.approx(list(rows[key]), rel=1e-6)  # f32


def test_the_report_links_each_trial_to_its_mlflow_run(server_run):
    out, client, runs = server_run
    page = (out / "report" / "index.html").read_text()
    summary = (out / "report" / "summary.md").read_text()
    uri = client.tracking_uri
    for run in runs.values():
        url = f"{uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        assert f'href="{url}"' in page and f"({url})" in summary
    lines = [json.loads(line) for line in (out / MLFLOW_RUNS).read_text().splitlines()]
    assert {(e["trial_id"], e["run_id"]) for e in lines} == {
        (name, run.info.run_id) for name, run in runs.items()
    }


def test_without_a_uri_the_store_is_inside_the_run_folder(tmp_path, monkeypatch):
    """The callbacks of ``--mlflow`` without a URI, driven in this process the way Tune drives them
    (the grid run above covers Tune itself), with Ray's own Trial and a real trial's records."""
    for key in (*HTTP_DEFAULTS, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.delenv(key, raising=False)  # restored afterwards: the callbacks set them
    assert build_parser().parse_args(["run", "quick", "--mlflow"]).mlflow == ""  # no URI
    out = tmp_path / "out"
    spec = load_spec(str(write_spec(tmp_path, "local", epochs=2, schedulers="[none]")))
    (planned,) = expand(spec)
    out.mkdir()
    start_run(out, spec, [planned], None, {}, "test")  # run.json and the plan, as run_grid does
    callbacks = tracking_callbacks(out, spec, [planned], "", tensorboard=True)
    trial = Trial("trainable", config={}, trial_name_creator=lambda t: planned.trial_id, stub=True)
    for callback in callbacks:
        callback.setup()
        callback.on_trial_start(0, [trial], trial)

    def on_epoch(row, trainer):
        for callback in callbacks:
            callback.on_trial_result(row["epoch"], [trial], trial, {**row, "hostname": "here"})

    outcome = run_trial(planned.config, on_epoch)
    identity = {"axes": planned.axes, "config": planned.config, "hostname": "here", "device": "cpu"}
    write_trial_dir(outcome, planned.trial_id, out / "trials" / planned.trial_id, identity)
    for callback in callbacks:
        callback.on_trial_complete(2, [trial], trial)

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("local-")]
    assert experiment.artifact_location == (out / "mlflow" / "artifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "t0000" and run.info.status == "FINISHED"
    assert run.data.tags["status"] == "completed" and run.data.tags["node"] == "here"
    assert run.data.metrics["ber_ratio_map"] == pytest.approx(outcome.summary["ber_ratio_map"])
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted((m.step, m.value) for m in history) == [
        (r["epoch"], pytest.approx(r["val_loss"])) for r in outcome.epochs
    ]
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "ber.csv").exists() and out / "mlflow" in artifacts.parents
    events = EventAccumulator(str(out / TENSORBOARD / "t0000"))
    events.Reload()
    assert [s.step for s in events.Scalars("val_loss")] == [1, 2]


def test_a_tracking_server_that_does_not_answer_is_one_line_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    # In this process: the check comes before Ray starts, so no Ray is needed to see it.
    for key, value in {**HTTP_DEFAULTS, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(key, value)  # no retries: a dead server fails at once
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    spec = write_spec(tmp_path, "unreachable", epochs=1, schedulers="[none]")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--mlflow", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--mlflow {uri}: cannot use" in err
    assert not (tmp_path / "out").exists()


# Without the extra: `--mlflow` is refused in one line, and what a run without it builds and
# imports (CLI, Ray side, tracking callbacks, report) needs neither MLflow nor TensorBoard.
PROBE = """
from pathlib import Path
from symgrid.grid.cli import build_parser, main
from symgrid.grid.spec import expand, load_spec
from symgrid.grid.spec import expand, load_spec
from symgrid.grid.tracking import TensorBoardCallback, tracking_callbacks
from symgrid.analysis import report as analysis_report
from symgrid.grid import run as grid_run
spec_path, folder = sys.argv[1], Path(sys.argv[2])
code = main(["run", spec_path, "--out", str(folder / "refused"), "--mlflow"])
spec = load_spec(spec_path)
assert tracking_callbacks(folder / "plain", spec, expand(spec), None) == []  # nothing asked
made = tracking_callbacks(folder / "plain", spec, expand(spec), None, tensorboard=True)
assert [type(c) for c in made] == [TensorBoardCallback], made
assert not {"mlflow", "tensorboard"} & set(sys.modules), "an extra module was imported"
sys.exit(code)
"""


def test_without_the_extra_a_run_needs_neither_and_mlflow_names_the_extra(tmp_path):
    spec = write_spec(tmp_path, "plain", epochs=1, schedulers="[none]")
    code = "import sys\n" + NO_EXTRA + PROBE
    result = subprocess.run(
        [sys.executable, "-c", code, str(spec), str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "symgrid[tracking]" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "refused").exists()
