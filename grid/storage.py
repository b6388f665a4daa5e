"""Whether every node of a cluster can reach a run's storage.

Ray Tune keeps its experiment state and the trials' checkpoints in the run's storage, and the
trials write their records there (``trainables.records.RecordStore``): a local folder, a folder
mounted at the same path on every node (NFS), or a URI that ``pyarrow.fs`` understands, e.g.
``s3://bucket/prefix`` or, for an S3-compatible server such as MinIO,
``s3://bucket/prefix?endpoint_override=http://host:9000``.
"""

from __future__ import annotations


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
