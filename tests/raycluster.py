"""A real two-node Ray cluster on loopback, for the cluster tests.

A head node (no GPU) and a worker node (one logical GPU) are started with ``ray start`` on
127.0.0.1, each in a private temp dir, with a private HOME, free ports and token authentication on.
Grids are submitted through the Ray Jobs API as the README says. Every process the cluster started
carries an environment marker, so ``stop`` kills exactly those, by pid: Ray instances of other
tests or people on this machine are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: ray, symgrid
MARKER = "SYMGRID_TEST_CLUSTER"  # env var set on every process of the test cluster
START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 240
JOB_ENDS = ("SUCCEEDED", "FAILED", "STOPPED")


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

    def __init__(self, root: Path, env: dict[str, str] | None = None):
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
                **(env or {}),  # e.g. storage credentials that every node needs
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

    def submit(
        self,
        *entrypoint: str,
        env: dict | None = None,
        timeout: float = JOB_TIMEOUT_S,
        working_dir: Path = REPO,
    ) -> tuple[str, str]:
        """``ray job submit`` the way README says, and wait: (final job status, its output)."""
        return self.wait_job(self.start_job(*entrypoint, env=env, working_dir=working_dir), timeout)

    def start_job(self, *entrypoint: str, env: dict | None = None, working_dir: Path = REPO) -> str:
        """``ray job submit --no-wait`` with ``env`` in the job's runtime env; the job id."""
        job_id = f"symgrid-test-{secrets.token_hex(4)}"
        args = ["--address", self.job_address, "--submission-id", job_id, "--no-wait"]
        args += ["--working-dir", str(working_dir)]
        if env:
            args += ["--runtime-env-json", json.dumps({"env_vars": env})]
        result = self.ray("job", "submit", *args, "--", *entrypoint)
        assert result.returncode == 0, result.stdout + result.stderr
        return job_id

    def job(self, job_id: str) -> dict:
        return self.api(f"/api/jobs/{job_id}") or {}

    def wait_job(self, job_id: str, timeout: float = JOB_TIMEOUT_S) -> tuple[str, str]:
        """Wait for a job to end: (SUCCEEDED | FAILED | STOPPED, its output and Ray's message)."""
        deadline = time.monotonic() + timeout
        while self.job(job_id).get("status") not in JOB_ENDS and time.monotonic() < deadline:
            time.sleep(0.5)
        job = self.job(job_id)
        logs = (self.api(f"/api/jobs/{job_id}/logs") or {}).get("logs", "")
        return str(job.get("status")), f"{logs}\n{job.get('message')}"

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
