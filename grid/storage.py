"""Where a run's Ray storage lives, and whether every node of a cluster can reach it.

Ray Tune keeps its experiment state and the trials' checkpoints in ``storage``: a local folder, a
folder mounted at the same path on every node (NFS), or a URI that ``pyarrow.fs`` understands,
e.g. ``s3://bucket/prefix`` or, for an S3-compatible server such as MinIO,
``s3://bucket/prefix?endpoint_override=http://host:9000``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def experiment_uri(storage: str, name: str) -> str:
    """The experiment ``name`` inside ``storage``, with a URI's query kept at the end.

    ``s3://b/p?endpoint_override=http://h:9000`` and ``run`` give
    ``s3://b/p/run?endpoint_override=http://h:9000``: the form ``Tuner.restore`` reads back.
    """
    parts = urlsplit(storage)
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return f"{storage.rstrip('/')}/{name}"
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))


def unshared_storage(address: str | None, storage: str | None, alive_nodes: int) -> str | None:
    """Why a run cannot start with this storage on this cluster, or None when it can.

    Without ``--storage`` the run's Ray storage is its ``--out`` folder on the driver's machine,
    which the other nodes of a cluster cannot see: their trials' checkpoints would land on their
    own disks and be lost. An explicit ``--storage`` is taken as shared (``s3://``, ``gs://``, or
    a path the user has mounted on every node); a one-node cluster needs none.
    """
    if address is None or storage is not None or alive_nodes <= 1:
        return None
    return (
        f"--address {address}: the cluster has {alive_nodes} nodes and no --storage was given; "
        "the other nodes cannot write to this machine's disk: pass --storage "
        "s3://BUCKET/PATH (or gs://, or a folder mounted at the same path on every node)"
    )
