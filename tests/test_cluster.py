"""Cluster files, and a real two-node Ray cluster with S3-compatible storage on this machine.

The shipped cluster launcher files are checked offline with Ray's own schema. Then one cluster
(``tests/raycluster.py``: a head without GPU and a worker with one logical GPU, on loopback) and
one S3 server (``tests/s3server.py``: moto's server mode) serve every check of this module: grids
submitted through the Ray Jobs API exactly as the README says (``ray job submit --working-dir
<repo> -- symgrid run SPEC --address auto ...``), a run refused for want of shared storage, and a
run on S3 whose driver is killed and resumed. Trials that must be somewhere at the same moment are
held there by hold files (``tests/gate.py``), never left to timing.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from gate import Gate, wait_for
from raycluster import BIN, JOB_ENDS, REPO, LocalCluster, free_ports, kill_pids, pids_with_marker
from s3server import CREDENTIALS, S3Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray,
    pytest.mark.cluster,
]

CLUSTER_FILES = ["cluster.yaml", "cluster-local.yaml"]
RAY_PORTS = {6379, 8265, 10001}  # GCS, dashboard / job API, client server

TINY = """
name: {name}
description: a tiny grid for the cluster test
base:
  train: {{ebno_db: [0, 10], symbols: {symbols}, val_symbols: 2048, batch_size: 4096, epochs: 2}}
  model: {{hidden: [8]}}
  eval: {{ebno_db: [4], min_errors: 20, max_bits: 2.0e+4, biasvar_symbols: 128}}
axes:
  seed: {seeds}
resources: {{cpu: {cpu}, gpu: {gpu}}}
max_failures: 0
"""


# ---------------------------------------------------------------------------------------------
# The cluster launcher files, offline


def load_cluster_file(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def validate_with_ray(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_cluster_file_passes_rays_schema(name):
    prepared = validate_with_ray(load_cluster_file(name))
    for node_type in prepared["available_node_types"].values():
        for value in node_type.get("resources", {}).values():
            assert isinstance(value, int), "node resources must be integers"


def test_the_schema_check_catches_fractional_resources():
    import jsonschema

    config = load_cluster_file("cluster.yaml")
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_with_ray(config)


def test_aws_cluster_shape_pins_and_security():
    config = load_cluster_file("cluster.yaml")
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert config["provider"]["type"] == "aws" and config["provider"]["region"]
    types = config["available_node_types"]
    head, worker = types[config["head_node_type"]], types["gpu_worker"]
    assert head["resources"].get("GPU", 0) == 0
    assert worker["resources"]["GPU"] == 1 and worker["node_config"]["InstanceType"] == "g5.xlarge"
    assert worker["min_workers"] == 0 and worker["max_workers"] == config["max_workers"] > 0
    assert config["idle_timeout_minutes"] > 0
    docker = config["docker"]
    for image in (docker["image"], docker["head_image"], docker["worker_image"]):
        assert image.startswith(f"rayproject/ray:{pins['ray']}-"), image
    setup = config["head_setup_commands"] + config["worker_setup_commands"]
    installs = [c for c in setup if "-e ~/symgrid" in c]
    assert len(installs) == 2 and all("-c ~/symgrid/constraints.txt" in c for c in installs)
    # No Ray port open to the internet: only the SSH and intra-cluster rules Ray adds itself.
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        opened = range(rule.get("FromPort", 0), rule.get("ToPort", 65535) + 1)
        assert not RAY_PORTS & set(opened), rule
    for name in CLUSTER_FILES:
        config = load_cluster_file(name)
        starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
        ray_starts = [c for c in starts if "ray start" in c]
        assert all("RAY_AUTH_MODE=token" in c for c in ray_starts), name
        assert "0.0.0.0" not in " ".join(starts), f"{name}: dashboard bound to every interface"
        assert "~/.ray/auth_token" in config["file_mounts"], name


def test_rayignore_keeps_heavy_and_private_folders_out_of_the_upload():
    patterns = (REPO / ".rayignore").read_text().splitlines()
    for needed in (".git/", ".venv*/", "results/", "*.egg-info/", "__pycache__/"):
        assert needed in patterns


# ---------------------------------------------------------------------------------------------
# A real two-node cluster on loopback, and an S3 server beside it


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(free_ports(1)[0], tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("ray CLI not installed next to this python")
    root = Path(tempfile.mkdtemp(prefix="sgc-", dir="/tmp"))  # short path for unix sockets
    local = LocalCluster(root, env=CREDENTIALS)  # every node can reach the S3 server
    try:
        local.start()
        yield local
    finally:
        local.stop()
        leftovers = pids_with_marker(local.marker)
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, f"processes left behind: {leftovers}"


def write_spec(tmp_path: Path, name: str, seeds: str, gpu: float, **shape) -> Path:
    spec = tmp_path / f"{name}.yaml"
    shape = {"symbols": 4096, "cpu": 1, **shape}
    spec.write_text(TINY.format(name=name, seeds=seeds, gpu=gpu, **shape))
    return spec


def run_command(spec: Path, out: Path, storage: str, *more: str) -> list[str]:
    """The job's command, as README gives it."""
    command = ["symgrid", "run", str(spec), "--address", "auto", "--out", str(out)]
    return [*command, "--storage", storage, "--no-report", *more]


def run_grid_job(cluster, tmp_path: Path, name: str, seeds: str, gpu: float, **shape):
    spec, out = write_spec(tmp_path, name, seeds, gpu, **shape), tmp_path / "out"
    status, output = cluster.submit(*run_command(spec, out, str(tmp_path / "storage")))
    assert status == "SUCCEEDED", f"{status}\n{output[-6000:]}\n{cluster.logs()}"
    return pd.read_parquet(out / "trials.parquet"), output


def placement(trials: pd.DataFrame, nodes: dict[str, str]) -> dict[str, int]:
    names = {node_id: name for name, node_id in nodes.items()}
    return trials.node_id.map(names).value_counts().to_dict()


def check_every_trial_once(trials: pd.DataFrame, count: int) -> None:
    assert len(trials) == count and trials.trial_id.is_unique
    assert sorted(trials.trial_id) == [f"t{i:04d}" for i in range(count)]
    assert set(trials.status) == {"completed"}


def test_gpu_trials_submitted_as_a_job_run_on_the_gpu_node(cluster, tmp_path):
    nodes = cluster.node_ids()
    trials, output = run_grid_job(cluster, tmp_path, "gpu", "[0, 1, 2, 3]", gpu=0.25)
    check_every_trial_once(trials, 4)
    assert set(trials.node_id) == {nodes["worker"]}, output
    assert (trials.gpu_ids.str.len() > 0).all()
    assert set(trials.device) == {"cuda" if torch.cuda.is_available() else "cpu"}
    assert trials.hostname.notna().all()
    print("gpu grid trials per node:", placement(trials, nodes))


def test_cpu_trials_submitted_as_a_job_run_on_both_nodes_at_once(cluster, tmp_path):
    nodes = cluster.node_ids()
    gate = Gate(tmp_path / "gate")
    # cpu: 2 fills a node, so the two trials can be held at the same moment only on two nodes.
    gate.hold(1, "t0000", "t0001")
    spec, out = write_spec(tmp_path, "cpu", "[0, 1]", gpu=0, cpu=2), tmp_path / "out"
    job = cluster.start_job(*run_command(spec, out, str(tmp_path / "storage")), env=gate.env)
    running = lambda: cluster.job(job).get("status") not in JOB_ENDS  # noqa: E731
    held = gate.wait_held(1, ["t0000", "t0001"], alive=running)
    assert {h["node_id"] for h in held.values()} == set(nodes.values()), held
    gate.release()
    status, output = cluster.wait_job(job)
    assert status == "SUCCEEDED", f"{status}\n{output[-6000:]}\n{cluster.logs()}"
    trials = pd.read_parquet(out / "trials.parquet")
    check_every_trial_once(trials, 2)
    assert dict(zip(trials.trial_id, trials.node_id)) == {t: h["node_id"] for t, h in held.items()}
    assert (trials.gpu_ids.fillna("") == "").all()
    print("cpu grid trials per node:", placement(trials, nodes))


USER_NET = """
from torch import nn


class TwoLayer(nn.Module):
    def __init__(self, num_inputs, num_outputs, width=8):
        super().__init__()
        self.hidden, self.out = nn.Linear(num_inputs, width), nn.Linear(width, num_outputs)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())
"""


def test_a_user_network_shipped_with_working_dir_trains_on_the_worker_node(cluster, tmp_path):
    """The README's way for a user's own network: ``--working-dir`` the folder with the module and
    the spec (outside the repository); gpu 0.25 puts every trial on the worker node, which never
    saw the folder but through Ray."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "usernet.py").write_text(USER_NET)
    spec = TINY.format(name="usernet", seeds="[0]", gpu=0.25, symbols=4096, cpu=1)
    spec = yaml.safe_load(spec)
    spec["base"]["model"] = {"name": "usernet:TwoLayer"}
    spec["base"]["optimizer"] = {"name": "rmsprop", "lr": 0.01}
    spec["axes"]["model.width"] = [4, 8]
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    command = run_command(Path("spec.yaml"), out, str(tmp_path / "storage"))
    status, output = cluster.submit(*command, working_dir=folder)
    assert status == "SUCCEEDED", f"{status}\n{output[-6000:]}\n{cluster.logs()}"
    trials = pd.read_parquet(out / "trials.parquet").sort_values("trial_id")
    check_every_trial_once(trials, 2)
    assert set(trials.node_id) == {cluster.node_ids()["worker"]}
    assert list(trials.network) == ["usernet:TwoLayer(width=4)", "usernet:TwoLayer(width=8)"]
    assert list(trials.num_params) == [7 * 4 + 4, 7 * 8 + 4]  # (2w + w) + (4w + 4)


def test_a_multi_node_cluster_without_storage_is_refused_before_anything_runs(cluster, tmp_path):
    assert len(cluster.alive_nodes()) == 2
    spec, out = write_spec(tmp_path, "nostorage", "[0]", gpu=0), tmp_path / "out"
    address = f"127.0.0.1:{cluster.gcs_port}"  # a driver on the head, as a job's would be
    cmd = [str(BIN / "symgrid"), "run", str(spec), "--address", address, "--out", str(out)]
    result = subprocess.run(
        cmd, env=cluster.env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    joining, err = result.stderr.split("\n", 1)  # the progress line, then the one-line error
    assert joining == f"joining the Ray cluster at {address}…"
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"--address {address}: the cluster has 2 nodes and no --storage" in err, err
    assert not out.exists() or not any(out.iterdir()), "nothing written"


def symgrid_drivers(cluster, spec: Path) -> list[int]:
    """Pids of the job's driver (and its shell): our cluster's processes running ``spec``."""
    found = []
    for pid in pids_with_marker(cluster.marker):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "symgrid" in argv and str(spec) in argv:
            found.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def s3_records(s3, bucket: str) -> dict[str, str]:
    """trial_id -> trial.json text of every trial record in the bucket (each must be there once)."""
    paths = [p for p in s3.files(bucket) if "/records/" in p and p.endswith("/trial.json")]
    ids = [p.split("/")[-2] for p in paths]
    assert len(ids) == len(set(ids)), sorted(paths)
    return {trial_id: s3.read(p).decode() for trial_id, p in zip(ids, paths)}


def completed(records: dict[str, str]) -> dict[str, str]:
    return {t: text for t, text in records.items() if json.loads(text)["status"] == "completed"}


def test_a_grid_on_s3_storage_resumes_after_its_driver_is_killed(cluster, s3, tmp_path):
    bucket = f"symgrid-{secrets.token_hex(4)}"
    s3.create_bucket(bucket)
    gate, late = Gate(tmp_path / "gate"), ["t0002", "t0003"]
    gate.hold(1, *late)  # t0000 and t0001 finish; t0002 and t0003 are mid-run at the kill
    spec, out = write_spec(tmp_path, "s3", "[0, 1, 2, 3]", gpu=0), tmp_path / "out"
    job = cluster.start_job(*run_command(spec, out, s3.uri(bucket, "runs")), env=gate.env)
    running = lambda: cluster.job(job).get("status") not in JOB_ENDS  # noqa: E731
    two = lambda: completed(s3_records(s3, bucket)).keys() == {"t0000", "t0001"}  # noqa: E731
    wait_for(two, "two trials' records on S3", running)
    held = gate.wait_held(1, late, alive=running)
    before = completed(s3_records(s3, bucket))

    kill_pids(symgrid_drivers(cluster, spec), signal.SIGKILL)
    status, output = cluster.wait_job(job)
    assert status == "FAILED", output[-3000:]
    wait_for(lambda: not any(alive(h["pid"]) for h in held.values()), "held trials to end")
    gate.release()
    assert not (out / "trials.parquet").exists()

    status, output = cluster.submit("symgrid", "resume", str(out), "--no-report")
    assert status == "SUCCEEDED", f"{status}\n{output[-6000:]}\n{cluster.logs()}"
    records = s3_records(s3, bucket)
    assert completed(records).keys() == {"t0000", "t0001", "t0002", "t0003"}
    for trial_id, text in before.items():  # finished before the kill: not run again
        assert records[trial_id] == text
        assert (out / "trials" / trial_id / "trial.json").read_text() == text  # copied once
    trials = pd.read_parquet(out / "trials.parquet")
    check_every_trial_once(trials, 4)
    epochs = pd.read_parquet(out / "epochs.parquet").groupby("trial_id").epoch.apply(list)
    assert epochs.to_dict() == {t: [1, 2] for t in trials.trial_id}  # no epoch twice, none lost
    assert len(pd.read_parquet(out / "ber.parquet")) == 4  # one Eb/N0 point per trial
    # Ray's experiment state is on the S3 server too, and nothing of Ray's is on the local disk.
    info = json.loads((out / "run.json").read_text())
    assert info["experiment_path"].startswith(f"s3://{bucket}/runs/s3-")
    assert any("/experiment_state-" in p for p in s3.files(bucket)) and not (out / "ray").exists()

    report = subprocess.run(
        [str(BIN / "symgrid"), "report", str(out)], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr
    assert "4 recorded of 4 planned" in (out / "report" / "summary.md").read_text()
