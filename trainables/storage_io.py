"""Files on a local disk or on shared storage (``pyarrow.fs``): whole-file writes, reads that tell
"not found" from "unreachable", and bounded retries for a storage that comes back.

A leaf module (pyarrow only): the trials write through it, the driver copies and reads through it,
and reading a run's tables never loads torch or Ray.

A root is a local folder or a URI that ``pyarrow.fs`` understands
(``s3://bucket/prefix?endpoint_override=http://host:9000``). Only "not found" means "no such
file"; any other error of a remote storage (refused, timed out, denied) is
:class:`StorageUnreachable`, which callers retry (:func:`retrying`) and never read as absence.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from symgrid.trainables.messages import last_line

__all__ = [
    "IO_THREADS",
    "StorageUnreachable",
    "atomic",
    "filesystem",
    "join_uri",
    "list_files",
    "parquet_bytes",
    "put",
    "read_bytes",
    "retry_budget_s",
    "retrying",
    "write_json",
    "write_parquet",
]

# Reads and uploads wait on the disk or the network, not the CPU (pyarrow releases the GIL):
# 16 threads keep an object store busy; on a local disk more threads gain nothing.
IO_THREADS = 16
# A storage call that fails for want of the storage is tried again after these pauses (about a
# minute in all: a server restart or a short network cut) before the caller sees the error.
RETRY_DELAYS_S = (1, 2, 4, 8, 15, 15, 15)
RETRY_ENV = "SYMGRID_STORAGE_RETRY_S"  # a shorter (or longer) total, in seconds: tests, operators


class StorageUnreachable(Exception):
    """A remote storage that did not answer as a storage should: refused, timed out, denied.

    Not an ``OSError``: no handler written for missing local files can mistake it for absence.
    """

    def __init__(self, path: str, cause: BaseException | str):
        self.path, self.cause = path, last_line(cause)
        super().__init__(f"{path}: {self.cause}")


def filesystem(root: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it of a local folder or a storage URI."""
    root = str(root)
    if "://" not in root:
        return pafs.LocalFileSystem(), Path(root).resolve().as_posix()
    return pafs.FileSystem.from_uri(root)


def join_uri(root: str | Path, *parts: str) -> str:
    """``root/part/...``, keeping a URI's query (``?endpoint_override=...``) at the end."""
    base, sep, query = str(root).partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def is_local(fs: pafs.FileSystem | None) -> bool:
    return fs is None or isinstance(fs, pafs.LocalFileSystem)


def unreachable(fs: pafs.FileSystem | None, path: str, err: OSError) -> Exception:
    """What an ``OSError`` of ``fs`` means: a local one stays itself, a remote one is
    :class:`StorageUnreachable` (the caller has already taken "not found" apart)."""
    return err if is_local(fs) else StorageUnreachable(str(path), err)


def read_bytes(path: str, fs: pafs.FileSystem) -> bytes | None:
    """The file's content; None only when it does not exist."""
    try:
        with fs.open_input_stream(str(path)) as stream:
            return stream.readall()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise unreachable(fs, path, err) from err


def list_files(root: str, fs: pafs.FileSystem) -> list[pafs.FileInfo]:
    """Every file under ``root`` (recursively); [] when ``root`` does not exist."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as err:
        raise unreachable(fs, root, err) from err
    return [i for i in infos if i.type == pafs.FileType.File]


def put(path: str | Path, data: bytes, fs: pafs.FileSystem | None = None) -> None:
    """Write ``data`` to ``path`` whole: temp file and rename locally, one upload elsewhere."""
    if is_local(fs):
        atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))
        return
    try:
        try:
            stream = fs.open_output_stream(str(path))
        except FileNotFoundError:  # a file system with real folders; object stores have none
            fs.create_dir(str(path).rsplit("/", 1)[0], recursive=True)
            stream = fs.open_output_stream(str(path))
        with stream:
            stream.write(data)
    except OSError as err:
        raise unreachable(fs, str(path), err) from err


def atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parquet_bytes(df: pd.DataFrame, metadata: dict | None = None) -> bytes:
    """``df`` as a Parquet file, with ``metadata`` as JSON under the schema key ``symgrid``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = {**(table.schema.metadata or {}), b"symgrid": json.dumps(metadata).encode()}
        table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_parquet(df: pd.DataFrame, path, metadata: dict | None = None, fs=None) -> None:
    """Write ``df`` to ``path`` atomically, with JSON metadata (see :func:`parquet_bytes`)."""
    put(path, parquet_bytes(df, metadata), fs)


def write_json(data: dict, path, fs=None) -> None:
    put(path, json.dumps(data, indent=1, default=str).encode(), fs)


def retry_budget_s() -> float:
    """Seconds of pauses a storage call may spend waiting for the storage to come back."""
    return float(os.environ.get(RETRY_ENV, sum(RETRY_DELAYS_S)))


def retrying(call, *args, **kwargs):
    """``call(*args, **kwargs)``, tried again while the storage is unreachable, with growing
    pauses (``RETRY_DELAYS_S``, at most :func:`retry_budget_s` in all); then the last error.
    Each pause is one line on stderr (a trial's stderr reaches its log, not the screen)."""
    budget = retry_budget_s()
    for delay in [*RETRY_DELAYS_S, None]:
        try:
            return call(*args, **kwargs)
        except StorageUnreachable as err:
            if delay is None or budget <= 0:
                raise
            pause = min(delay, budget)
            budget -= pause
            print(f"symgrid: storage unreachable, retry in {pause:g} s: {err}", file=sys.stderr)
            time.sleep(pause)
