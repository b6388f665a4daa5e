"""Real runs on a real S3 server (moto, loopback) whose network is cut while the data survives
(a TCP proxy in front of it, ``tests/tcpproxy.py``). No finished result may be lost, no table
may be written from a partial read, and a storage error may never leave a terminal record.

Each run is ``symgrid run`` in a subprocess on an embedded 2-CPU Ray; trials are put at the point
a fault must hit by hold files (``tests/gate.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from gate import Gate, wait_for
from s3server import CREDENTIALS
from storagefixtures import proxied_uri
from symgrid.trainables.storage_io import RETRY_ENV
from test_faults import Processes

SPEC = """
name: {name}
description: a tiny grid for the storage fault tests
base:
  train: {{ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 1024, epochs: 2}}
  model: {{hidden: [8]}}
  eval: {{ebno_db: [4], min_errors: 20, max_bits: 2.0e+4, biasvar_symbols: 64}}
axes:
  seed: [0, 1]
resources: {{cpu: 1, gpu: 0}}
max_failures: {max_failures}
checkpoint: {{every_epochs: 1, min_interval_s: 0}}
"""
IDS = ["t0000", "t0001"]


def write_spec(tmp_path: Path, name: str, max_failures: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, max_failures=max_failures))
    return path


def server_records(s3_server, bucket: str) -> dict[str, dict]:
    """trial_id -> trial.json of every record on the server (read directly, not via the proxy)."""
    return {
        path.split("/")[-2]: json.loads(s3_server.read(path))
        for path in s3_server.files(bucket)
        if path.endswith("/records/" + path.split("/")[-2] + "/trial.json")
    }


def last_line(log: str) -> str:
    return log.strip().splitlines()[-1]


def test_storage_cut_during_the_final_copy_claims_nothing_and_resume_finishes(
    s3_server, bucket, proxy, tmp_path
):
    out, spec = tmp_path / "out", write_spec(tmp_path, "cutcopy")
    storage = proxied_uri(proxy, bucket, "runs")
    with Processes(tmp_path, {**CREDENTIALS, RETRY_ENV: "1"}) as procs:
        driver = procs.start("run", spec, "--out", out, "--storage", storage, "--no-report")
        done = lambda: len(server_records(s3_server, bucket)) == 2  # noqa: E731
        wait_for(done, "both records on the server", lambda: driver.poll() is None)
        proxy.cut()  # both trials are finished and safe there; the driver is about to copy them
        assert driver.wait(timeout=300) == 130
        log = Path(procs.popens[-1][1].name).read_text()
        assert "storage unreachable" in last_line(log) and f"symgrid resume {out}" in log, log
        assert "trials have results" not in log, log  # no claim from a partial read
        assert not list(out.glob("*.parquet")), "no tables from a partial read"
        proxy.restore()
        code, log = procs.run("resume", out, "--no-report")
        assert code == 0, log
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials.trial_id) == IDS and set(trials.status) == {"completed"}
    records = server_records(s3_server, bucket)
    for trial_id in IDS:  # resume ran nothing again: the local copy is the server's record
        local = json.loads((out / "trials" / trial_id / "trial.json").read_text())
        assert local == records[trial_id]


def test_an_outage_shorter_than_the_retries_costs_no_trial_retry(
    s3_server, bucket, proxy, tmp_path
):
    out, spec = tmp_path / "out", write_spec(tmp_path, "outage", max_failures=0)
    gate = Gate(tmp_path / "gate")
    gate.hold(1, "t0000")  # t0000 has reported epoch 1; epoch 2's checkpoint goes to the storage
    env = {**CREDENTIALS, **gate.env, RETRY_ENV: "60", "SYMGRID_STALL_S": "2"}
    storage = proxied_uri(proxy, bucket, "runs")
    with Processes(tmp_path, env) as procs:
        driver = procs.start("run", spec, "--out", out, "--storage", storage, "--no-report")
        gate.wait_held(1, ["t0000"], alive=lambda: driver.poll() is None)
        proxy.cut()
        gate.release()
        time.sleep(6)  # epoch 2's checkpoint upload and the records wait for the storage
        proxy.restore()
        assert driver.wait(timeout=300) == 0, Path(procs.popens[-1][1].name).read_text()
        log = Path(procs.popens[-1][1].name).read_text()
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials.trial_id) == IDS and set(trials.status) == {"completed"}
    epochs = pd.read_parquet(out / "epochs.parquet").groupby("trial_id").epoch.apply(list)
    assert epochs.to_dict() == {t: [1, 2] for t in IDS}  # no epoch twice, none lost
    assert "nothing has moved for" in log, log  # the stall was said, in a line of its own
    assert "Traceback" not in log, log


def test_a_storage_error_leaves_no_failed_record_and_resume_finishes(
    s3_server, bucket, proxy, tmp_path
):
    out, spec = tmp_path / "out", write_spec(tmp_path, "norecord", max_failures=1)
    gate = Gate(tmp_path / "gate")
    gate.hold(1, "t0001")
    env = {**CREDENTIALS, **gate.env, RETRY_ENV: "1"}
    storage = proxied_uri(proxy, bucket, "runs")
    with Processes(tmp_path, env) as procs:
        driver = procs.start(
            "run", spec, "--out", out, "--storage", storage, "--no-report", "--max-concurrent", "1"
        )
        running = lambda: driver.poll() is None  # noqa: E731
        gate.wait_held(1, ["t0001"], alive=running)
        # t0000 ended before t0001 started: its records are in the run folder already
        copied = out / "trials" / "t0000" / "trial.json"
        wait_for(copied.exists, "t0000's records copied into the run folder", running)
        assert json.loads(copied.read_text())["status"] == "completed"
        proxy.cut()
        gate.release()
        assert driver.wait(timeout=300) == 130
        log = Path(procs.popens[-1][1].name).read_text()
        proxy.restore()
        assert "t0001 retry 1: " in log and ", 1 retries" in log, log  # said, and counted
        assert "Traceback" not in log and f"symgrid resume {out}" in last_line(log), log
        assert "t0001" not in server_records(s3_server, bucket), "no terminal record"
        assert not list(out.glob("*.parquet"))
        code, log = procs.run("resume", out, "--no-report")
        assert code == 0, log
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials.trial_id) == IDS and set(trials.status) == {"completed"}
    # The storage loses the run: resume says so in one line, before Ray starts.
    plan = next(p for p in s3_server.files(bucket) if p.endswith("/plan.parquet"))
    s3_server.filesystem().delete_file(plan)
    code, log = run_again(tmp_path, out)
    assert code == 2 and "the storage lost this run" in log and log.count("\n") == 1, log


def run_again(tmp_path: Path, out: Path) -> tuple[int, str]:
    with Processes(tmp_path, dict(CREDENTIALS)) as procs:
        return procs.run("resume", out, "--no-report")
