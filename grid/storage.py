"""Whether every node of a cluster can reach a run's storage, and whether the storage answers.

Ray Tune keeps its experiment state and the trials' checkpoints in the run's storage, and the
trials write their records there (``trainables.records.RecordStore``): a local folder, a folder
mounted at the same path on every node (NFS), or a URI that ``pyarrow.fs`` understands, e.g.
``s3://bucket/prefix`` or, for an S3-compatible server such as MinIO,
``s3://bucket/prefix?endpoint_override=http://host:9000``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs
from symgrid.trainables.messages import last_line
from symgrid.trainables.storage_io import filesystem

__all__ = ["probe_storage", "quick", "unshared_storage"]


def unshared_storage(address: str | None, storage: str | None, alive_nodes: int) -> str | None:
    """Why a run cannot start with this storage on this cluster, or None when it can.

    Without ``--storage`` the run's storage is its ``--out`` folder on the driver's machine, which
    the other nodes of a cluster cannot see: their trials' records and checkpoints would land on
    their own disks and be lost. An explicit ``--storage`` is taken as shared (``s3://``,
    ``gs://``, or a path the user has mounted on every node); a one-node cluster needs none.
    """
    if address is None or storage is not None or alive_nodes <= 1:
        return None
    return (
        f"--address {address}: the cluster has {alive_nodes} nodes and no --storage was given; "
        "the other nodes cannot write to this machine's disk: pass --storage "
        "s3://BUCKET/PATH (or gs://, or a folder mounted at the same path on every node)"
    )


PROBE_TIMEOUT_S = 5.0  # per request: a storage that answers at all answers a HEAD in well under 1 s
PROBE_FILE = ".symgrid-probe"  # written and deleted under the --storage prefix


def probe_storage(storage: str) -> str | None:
    """Why ``--storage`` cannot hold a run, in one line, or None when it can.

    Before anything is written and before Ray starts: the bucket exists, and a small object can be
    written and deleted under the prefix, each call with short timeouts and no retries (a missing
    bucket, a refused port, a wrong key or a server that never answers: one line in seconds).
    A local path: its nearest existing folder must be writable.
    """
    try:
        fs, path = filesystem(storage)
    except (OSError, ValueError) as err:
        return f"--storage {storage}: not a storage pyarrow can open ({last_line(err)})"
    if isinstance(fs, pafs.LocalFileSystem):
        parent = next(p for p in (Path(path), *Path(path).parents) if p.exists())
        ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        return None if ok else f"--storage {storage}: cannot write in {parent}"
    fs, bucket = quick(fs), path.split("/")[0]
    probe = f"{path.rstrip('/')}/{PROBE_FILE}-{uuid.uuid4().hex[:8]}"
    try:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            return f"--storage {storage}: bucket {bucket!r} does not exist"
        with fs.open_output_stream(probe) as stream:
            stream.write(b"symgrid")
        fs.delete_file(probe)
    except OSError as err:
        return f"--storage {storage}: cannot use it ({last_line(err)})"
    return None


def quick(fs: pafs.FileSystem) -> pafs.FileSystem:
    """``fs`` with short timeouts and a single attempt per call (an S3 filesystem; others as is)."""
    if not isinstance(fs, pafs.S3FileSystem):
        return fs
    options = fs.__reduce__()[1][0]  # the options pyarrow parsed from the URI
    kept = {k: v for k, v in options.items() if v not in ("", None) and k != "proxy_options"}
    if options["proxy_options"].get("host"):
        kept["proxy_options"] = options["proxy_options"]
    kept |= {"connect_timeout": PROBE_TIMEOUT_S, "request_timeout": PROBE_TIMEOUT_S}
    return pafs.S3FileSystem(**kept, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
