"""Ray storage paths, the shared-storage rule (real cluster checks: tests/test_cluster.py), and a
real S3 server on loopback that goes away: unreachable is never empty, a storage call waits for it
to come back, a bad ``--storage`` is one line before Ray starts."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pyarrow.fs as pafs
import pytest
import ray
from raycluster import free_ports
from runfolder import make_run_folder
from s3server import CREDENTIALS, AuthS3Server
from storagefixtures import proxied_uri
from symgrid.grid.cli import main
from symgrid.grid.storage import quick, unshared_storage
from symgrid.trainables.records import RecordStore
from symgrid.trainables.storage_io import RETRY_ENV, StorageUnreachable, join_uri, retrying

TINY_SPEC = """
name: probe
description: never runs (the storage is refused first)
base:
  train: {symbols: 1024, val_symbols: 1024, batch_size: 512, epochs: 1}
axes:
  seed: [0, 1]
resources: {cpu: 1, gpu: 0}
"""
S3 = "s3://bucket/runs?endpoint_override=http://127.0.0.1:9000&region=us-east-1"


@pytest.mark.parametrize(
    "storage, joined",
    [
        ("/mnt/nfs/runs", "/mnt/nfs/runs/quick-1"),
        ("/mnt/nfs/runs/", "/mnt/nfs/runs/quick-1"),
        ("relative/dir", "relative/dir/quick-1"),
        ("s3://bucket", "s3://bucket/quick-1"),
        ("gs://bucket/a/b/", "gs://bucket/a/b/quick-1"),
        (S3, "s3://bucket/runs/quick-1?endpoint_override=http://127.0.0.1:9000&region=us-east-1"),
    ],
)
def test_join_uri_appends_the_name_to_the_path_not_the_query(storage, joined):
    assert join_uri(storage, "quick-1") == joined


def test_pyarrow_reads_the_joined_uri_as_the_same_server_one_folder_down():
    base_fs, base_path = pafs.FileSystem.from_uri(S3)
    fs, path = pafs.FileSystem.from_uri(join_uri(S3, "quick-1"))
    assert path == f"{base_path}/quick-1" == "bucket/runs/quick-1"
    assert fs.equals(base_fs)  # same endpoint, region and options
    assert not fs.equals(pafs.FileSystem.from_uri("s3://bucket/runs?region=us-east-1")[0])


@pytest.mark.parametrize(
    "address, storage, nodes",
    [
        (None, None, 1),  # embedded local Ray
        ("auto", None, 1),  # a one-node cluster: its disk is the driver's
        ("auto", "s3://bucket/runs", 3),
        ("auto", "/mnt/nfs/runs", 2),  # an explicit path is taken as mounted on every node
    ],
)
def test_runs_that_every_node_can_store_are_allowed(address, storage, nodes):
    assert unshared_storage(address, storage, nodes) is None


def test_a_multi_node_cluster_without_storage_is_refused_in_one_line():
    message = unshared_storage("ray://head:10001", None, 2)
    assert "\n" not in message
    assert "--address ray://head:10001" in message and "2 nodes" in message
    assert "--storage" in message and "s3://" in message


def test_the_readme_quotes_the_refusal_as_the_code_words_it():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"symgrid: error: {unshared_storage('auto', None, 2)}\n" in readme


# --- a real S3 server on loopback (moto), reached through a proxy that can cut the network ---


def test_an_unreachable_storage_is_not_an_empty_one(proxy, bucket, monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "0")
    store = RecordStore(proxied_uri(proxy, bucket, "run/records"))
    store.fs = quick(store.fs)  # one attempt per call: pyarrow's own retries take 6 s a call
    assert store.status("t0000") is None and store.statuses() == {}  # reachable, nothing there
    store.write_failed("t0000", "RuntimeError: boom", [], {})
    assert store.statuses() == {"t0000": "failed"}
    proxy.cut()
    for call in (store.statuses, lambda: store.status("t0000"), lambda: store.paths("x")):
        with pytest.raises(StorageUnreachable, match=f"{bucket}/run/records"):
            call()
    with pytest.raises(StorageUnreachable):  # its "never over a finished record" check cannot pass
        store.write_failed("t0001", "RuntimeError: boom", [], {})
    with pytest.raises(StorageUnreachable):
        retrying(store.status, "t0000")  # no retries left: the error, not None


def test_a_storage_call_waits_for_the_storage_to_come_back(proxy, bucket, monkeypatch):
    monkeypatch.setenv(RETRY_ENV, "20")
    store = RecordStore(proxied_uri(proxy, bucket, "run/records"))
    store.write_failed("t0000", "RuntimeError: boom", [], {})
    proxy.cut()
    threading.Timer(1.5, proxy.restore).start()
    started = time.monotonic()
    assert retrying(store.status, "t0000") == "failed"
    assert time.monotonic() - started >= 1.5


def never_answering_port():
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def bad_storage(case: str, s3_server, bucket, stack) -> str:
    if case == "missing bucket":
        return s3_server.uri("no-such-bucket", "runs")
    if case == "refused port":
        return f"s3://{bucket}/runs?endpoint_override=http://127.0.0.1:{free_ports(1)[0]}"
    if case == "never answers":
        port = stack.enter_context(never_answering_port()).getsockname()[1]
        return f"s3://{bucket}/runs?endpoint_override=http://127.0.0.1:{port}"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, cause",
    [
        ("missing bucket", "bucket 'no-such-bucket' does not exist"),
        ("refused port", "cannot use it (When getting information for bucket"),
        ("never answers", "Timeout was reached"),
    ],
)
def test_a_bad_storage_is_one_line_before_ray_with_nothing_written(
    case, cause, s3_server, bucket, tmp_path, capsys
):
    spec, out = tmp_path / "spec.yaml", tmp_path / "out"
    spec.write_text(TINY_SPEC)
    with contextlib.ExitStack() as stack:
        storage = bad_storage(case, s3_server, bucket, stack)
        started = time.monotonic()
        code = main(["run", str(spec), "--out", str(out), "--storage", storage, "--no-report"])
        took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"symgrid: error: --storage {storage}: ") and cause in err, err
    assert took < 20, f"{took:.1f} s"
    assert not out.exists() and not ray.is_initialized()  # nothing written, Ray never started
    assert s3_server.files(bucket) == {}  # the probe's object is deleted or never written


def test_a_wrong_secret_is_refused_in_one_line(tmp_path, capsys):
    spec, out = tmp_path / "spec.yaml", tmp_path / "out"
    spec.write_text(TINY_SPEC)
    with AuthS3Server(free_ports(1)[0], tmp_path / "moto.log") as server:
        storage = server.uri("symgrid-auth", "runs")
        started = time.monotonic()
        with mock.patch.dict(os.environ, {**CREDENTIALS, **server.wrong_secret}):
            code = main(["run", str(spec), "--out", str(out), "--storage", storage])
        took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"--storage {storage}: cannot use it (" in err and "ACCESS_DENIED" in err, err
    assert took < 20, f"{took:.1f} s"
    assert not out.exists() and not ray.is_initialized()


READ_TABLES = """
import sys
from symgrid.analysis.collect import build_tables
from symgrid.trainables.records import RecordStore
tables = build_tables(sys.argv[1])
statuses = RecordStore(sys.argv[1] + "/trials").statuses()
assert len(tables.trials) == len(statuses) == 2, (len(tables.trials), len(statuses))
assert "torch" not in sys.modules and "ray" not in sys.modules, "reading tables loaded torch"
print("ok")
"""


def test_reading_a_runs_tables_loads_neither_torch_nor_ray(tmp_path):
    run = make_run_folder(tmp_path / "run", limit=2)
    result = subprocess.run(
        [sys.executable, "-c", READ_TABLES, str(run)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
