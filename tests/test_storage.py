"""Ray storage paths and the shared-storage rule (real cluster checks: tests/test_cluster.py)."""

from pathlib import Path

import pyarrow.fs as pafs
import pytest
from symgrid.grid.storage import unshared_storage
from symgrid.trainables.records import join_uri

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
