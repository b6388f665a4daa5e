"""Cluster files and a real two-node Ray cluster on this machine.

The shipped cluster launcher files are checked offline with Ray's own schema. Then a head node
(no GPU) and a worker node (one logical GPU) are started with ``ray start`` on loopback, in a
private temp dir, HOME and free ports, with token authentication on, and small grids are submitted
through the Ray Jobs API exactly as the README says (``ray job submit --working-dir <repo> --
symgrid run SPEC --address auto ...``). Every process the cluster started is found by an
environment marker and killed by pid at the end, so Ray instances of other tests or people on this
machine are never touched.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_FILES = ["cluster.yaml", "cluster-local.yaml"]
RAY_PORTS = {6379, 8265, 10001}  # GCS, dashboard / job API, client server
BIN = Path(sys.executable).parent  # the venv's bin: ray, symgrid
MARKER = "SYMGRID_TEST_CLUSTER"  # env var set on every process of the test cluster
START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 240

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
# A real two-node cluster on loopback


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (bound to port 0 together)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def node_port_args(ports: list[int], workers: int = 24) -> list[str]:
    """Explicit ports for everything a node binds, so nothing clashes with other Ray instances."""
    names = [
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    ]
    args = [f"{name}={ports.pop()}" for name in names]
    args.append("--worker-port-list=" + ",".join(str(ports.pop()) for _ in range(workers)))
    return args


def pids_with_marker(marker: str) -> list[int]:
    """Processes whose environment carries our marker: the nodes and everything they spawned."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class LocalCluster:
    """A head (2 CPUs, no GPU) and a worker (2 CPUs, 1 logical GPU), each ``ray start --block``."""

    def __init__(self, root: Path):
        self.root = root
        self.marker = secrets.token_hex(8)
        self.procs: list[subprocess.Popen] = []
        home = root / "home"
        home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update(
            {
                MARKER: self.marker,
                "HOME": str(home),  # ~/.ray/auth_token of this cluster only
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(16),
                "RAY_USAGE_STATS_ENABLED": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        ports = free_ports(80)
        self.gcs_port, self.dashboard_port, self.client_port = ports[:3]
        self.ports = ports[3:]

    @property
    def job_address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_node(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        cmd = [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args]
        # Each node its own temp dir, as on two machines: nodes sharing one would share the
        # unpacked working dir, and the worker's runtime-env agent deletes it when its trials end
        # (under the head's driver, whose current directory it is). Short: Ray puts sockets there.
        cmd += [f"--temp-dir={self.root / name}", "--node-ip-address=127.0.0.1"]
        cmd += node_port_args(self.ports)
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)

    def start(self) -> None:
        self.start_node(
            "head",
            [
                "--head",
                f"--port={self.gcs_port}",
                f"--dashboard-port={self.dashboard_port}",
                "--dashboard-host=127.0.0.1",
                f"--ray-client-server-port={self.client_port}",
                "--num-cpus=2",
                "--num-gpus=0",
            ],
        )
        self.wait_for(lambda: self.jobs_api_up(), "the head's job API")
        self.start_node(
            "worker",
            [f"--address=127.0.0.1:{self.gcs_port}", "--num-cpus=2", "--num-gpus=1"],
        )
        self.wait_for(lambda: len(self.alive_nodes()) == 2, "two alive nodes")

    def wait_for(self, ready, what: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a ray node exited early: {self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"no {what} after {timeout} s: {self.logs()}")

    def api(self, path: str) -> dict | None:
        """GET the dashboard's JSON API with the cluster's token; None while it is not up."""
        import urllib.request

        token = {"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"}
        request = urllib.request.Request(f"{self.job_address}{path}", headers=token)
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return json.loads(reply.read())
        except (OSError, ValueError):
            return None

    def jobs_api_up(self) -> bool:
        return self.api("/api/version") is not None

    def ray(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "ray"), *args]
        return subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )

    def alive_nodes(self) -> list[dict]:
        result = self.ray("list", "nodes", "--address", self.job_address, "--format", "json")
        if result.returncode != 0:
            return []
        try:
            nodes = json.loads(result.stdout)
        except json.JSONDecodeError:
            return []
        return [n for n in nodes if n.get("state") == "ALIVE"]

    def node_ids(self) -> dict[str, str]:
        """{"head": node_id, "worker": node_id}"""
        nodes = self.alive_nodes()
        return {("head" if n.get("is_head_node") else "worker"): n["node_id"] for n in nodes}

    def submit(self, *entrypoint: str, timeout: float = JOB_TIMEOUT_S) -> tuple[str, str]:
        """``ray job submit`` the way README says; returns (final job status, its output)."""
        job_id = f"symgrid-test-{secrets.token_hex(4)}"
        result = self.ray(
            "job",
            "submit",
            "--address",
            self.job_address,
            "--submission-id",
            job_id,
            "--working-dir",
            str(REPO),
            "--",
            *entrypoint,
            timeout=timeout,
        )
        job = self.api(f"/api/jobs/{job_id}") or {}
        return str(job.get("status")), result.stdout + result.stderr

    def logs(self) -> str:
        """Tails of both nodes' output, their raylets' logs and Ray's record of process exits."""
        paths = sorted(self.root.glob("*.log"))
        for pattern in ("*/session_latest/logs/raylet.out", "*/session_latest/logs/*exit*"):
            paths += sorted(self.root.glob(pattern))
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in paths)

    def stop(self) -> None:
        """SIGTERM the nodes (they stop their children), then SIGKILL anything left, by pid."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_pids([proc.pid], signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
            time.sleep(0.2)
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Workers, agents and the job's driver may sit in other sessions: find them by marker.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            leftovers = pids_with_marker(self.marker)
            if not leftovers:
                break
            kill_pids(leftovers, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and pids_with_marker(self.marker):
                time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("ray CLI not installed next to this python")
    root = Path(tempfile.mkdtemp(prefix="sgc-", dir="/tmp"))  # short path for unix sockets
    local = LocalCluster(root)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        leftovers = pids_with_marker(local.marker)
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, f"processes left behind: {leftovers}"


def run_grid_job(cluster, tmp_path: Path, name: str, seeds: str, gpu: float, **shape):
    spec = tmp_path / f"{name}.yaml"
    shape = {"symbols": 4096, "cpu": 1, **shape}
    spec.write_text(TINY.format(name=name, seeds=seeds, gpu=gpu, **shape))
    out, storage = tmp_path / "out", tmp_path / "storage"
    entrypoint = ["symgrid", "run", str(spec), "--address", "auto"]
    entrypoint += ["--out", str(out), "--storage", str(storage), "--no-report"]
    status, output = cluster.submit(*entrypoint)
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


def test_cpu_trials_submitted_as_a_job_spread_over_both_nodes(cluster, tmp_path):
    nodes = cluster.node_ids()
    # cpu: 2 fills a node, so each node runs one trial at a time. Six trials of several seconds
    # each keep the head busy longer than the worker's trial actor takes to start; with tiny
    # trials the head's reused actor (reuse_actors=True) could finish them all first.
    trials, output = run_grid_job(
        cluster, tmp_path, "cpu", "[0, 1, 2, 3, 4, 5]", gpu=0, cpu=2, symbols=4194304
    )
    check_every_trial_once(trials, 6)
    assert set(trials.node_id) <= set(nodes.values())
    assert trials.node_id.nunique() == 2, trials[["trial_id", "node_id"]]
    assert (trials.gpu_ids.fillna("") == "").all()
    print("cpu grid trials per node:", placement(trials, nodes))
