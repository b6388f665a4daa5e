"""A trial's records: Parquet tables and a JSON summary, on local disk or shared storage.

One trial folder holds ``epochs.parquet``, ``ber.parquet``, ``predictions.parquet`` and
``trial.json`` (written last: its presence means the other files are complete). A
:class:`RecordStore` holds the trial folders of one run under a root that is a local folder or a
URI that ``pyarrow.fs`` understands (``s3://bucket/prefix?endpoint_override=http://host:9000``), so
the same code writes them from a trial worker and reads them on the driver, in bulk and in
parallel. Each file is written atomically: a local file through a temp file and a rename, an
object-store object by one upload (objects appear whole).
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from symgrid.trainables.trial import TrialOutcome

EPOCH_COLUMNS = [
    "trial_id",
    "epoch",
    "lr",
    "train_loss",
    "val_loss",  # the training objective (label smoothing included); early stopping uses it
    "val_loss_plain",  # the same loss without label smoothing: comparable across settings
    "train_ber",
    "val_ber",
]
BER_COLUMNS = [
    "trial_id",
    "ebno_db",
    "bits",
    "errors",
    "ber",
    "ci_low",
    "ci_high",
    "errors_map",
    "ber_map",
    "ber_ratio_map",  # (errors + 0.5) / (errors_map + 0.5), see metrics.ratio_to_map
    "log_ratio_map",  # its natural log
    "log_ratio_map_se",  # its standard error from the discordant bits, metrics.log_ratio_se
    "n01",  # detector wrong, MAP right
    "n10",  # detector right, MAP wrong
    "mcnemar_p",
    "ber_theory_nearest",
    "ber_theory_map",
    "rate",  # bit-metric decoding rate of the detector, bits/symbol (metrics.rates)
    "rate_map",  # the same for the exact MAP posterior: the bitwise mutual information
    "rate_gap",  # rate_map - rate on the same samples, >= 0 in expectation
    "rate_gap_se",  # its paired standard error
]
FINISHED = ("completed", "diverged")  # final outcomes; a "failed" record is replaced by a rerun
# Reads and uploads wait on the disk or the network, not the CPU (pyarrow releases the GIL):
# 16 threads keep an object store busy; on a local disk more threads gain nothing.
IO_THREADS = 16


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


def put(path: str | Path, data: bytes, fs: pafs.FileSystem | None = None) -> None:
    """Write ``data`` to ``path`` whole: temp file and rename locally, one upload elsewhere."""
    if fs is None or isinstance(fs, pafs.LocalFileSystem):
        atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))
        return
    try:
        stream = fs.open_output_stream(str(path))
    except FileNotFoundError:  # a file system with real folders; object stores have none
        fs.create_dir(str(path).rsplit("/", 1)[0], recursive=True)
        stream = fs.open_output_stream(str(path))
    with stream:
        stream.write(data)


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


def epochs_frame(trial_id: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": trial_id, **r} for r in rows], columns=EPOCH_COLUMNS)


def ber_frame(trial_id: str, points: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": trial_id, **p} for p in points], columns=BER_COLUMNS)


def predictions_frame(trial_id: str, predictions: dict) -> pd.DataFrame:
    """Bit probabilities on the shared evaluation set: one row per (ebno_db, symbol).

    Columns: trial_id, ebno_db, symbol, y_re, y_im, no, p0..p{k-1} (the detector's
    P(b_j = 1 | y)), eta0..eta{k-1} (the exact posterior of that sample).
    """
    frames = []
    for ebno_db, pred in predictions.items():  # shared_set.Predictions, p and eta [n, k]
        k = pred.p.shape[1]
        columns = {"y_re": pred.y.real, "y_im": pred.y.imag, "no": pred.no}
        columns |= {f"p{j}": pred.p[:, j] for j in range(k)}
        columns |= {f"eta{j}": pred.eta[:, j] for j in range(k)}
        frame = pd.DataFrame(columns)
        frame.insert(0, "symbol", range(len(frame)))
        frame.insert(0, "ebno_db", ebno_db)
        frames.append(frame)
    columns = ["trial_id", "ebno_db", "symbol"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns[1:])
    df.insert(0, "trial_id", trial_id)
    return df


def write_trial_dir(outcome: TrialOutcome, trial_id: str, directory, extra: dict, fs=None) -> None:
    """All of a finished trial's records; ``extra`` (axes, config, placement) joins trial.json."""
    where = Path(directory).as_posix() if fs is None else str(directory)
    write_parquet(epochs_frame(trial_id, outcome.epochs), f"{where}/epochs.parquet", fs=fs)
    write_parquet(ber_frame(trial_id, outcome.ber), f"{where}/ber.parquet", fs=fs)
    predictions = predictions_frame(trial_id, outcome.predictions)
    write_parquet(predictions, f"{where}/predictions.parquet", fs=fs)
    summary = {"trial_id": trial_id, **extra, **outcome.summary}
    write_json(summary, f"{where}/trial.json", fs=fs)


class RecordStore:
    """The trial folders ``<root>/<trial_id>/`` of one run, local or on shared storage.

    Parameters
    ----------
    root : a local folder (``DIR/trials``) or a URI (``s3://bucket/prefix/records?...``)
    """

    def __init__(self, root: str | Path):
        self.root = str(root)
        self.fs, self.path = filesystem(root)

    def folder(self, trial_id: str) -> str:
        return f"{self.path}/{trial_id}"

    def write_outcome(self, outcome: TrialOutcome, trial_id: str, extra: dict) -> None:
        """A finished trial's records (never over a finished record: resume must not rewrite)."""
        if self.status(trial_id) not in FINISHED:
            write_trial_dir(outcome, trial_id, self.folder(trial_id), extra, self.fs)

    def write_failed(self, trial_id: str, error: str, rows: list[dict], extra: dict) -> None:
        """A failed trial's record: the epochs it reported and a one-line error."""
        if self.status(trial_id) in FINISHED:
            return
        where = self.folder(trial_id)
        write_parquet(epochs_frame(trial_id, rows), f"{where}/epochs.parquet", fs=self.fs)
        record = {"trial_id": trial_id, "status": "failed", "error": error, **extra}
        write_json(record, f"{where}/trial.json", fs=self.fs)

    def status(self, trial_id: str) -> str | None:
        """The status in the trial's trial.json; None when there is none or it is unreadable."""
        record = self.read_json(f"{self.folder(trial_id)}/trial.json")
        return record.get("status") if isinstance(record, dict) else None

    def read_json(self, path: str) -> dict | None:
        try:
            with self.fs.open_input_stream(path) as stream:
                return json.loads(stream.readall())
        except (OSError, ValueError):  # missing, or half-written by a killed older version
            return None

    def paths(self, name: str) -> list[str]:
        """Every ``<root>/<trial_id>/name`` that exists, in trial_id order (one listing)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
        except (OSError, FileNotFoundError):
            return []
        found = [i.path for i in infos if i.type == pafs.FileType.File and i.base_name == name]
        return sorted(p for p in found if p.count("/") == self.path.count("/") + 2)

    def statuses(self) -> dict[str, str]:
        """trial_id -> status of every readable trial.json, read in parallel."""
        paths = self.paths("trial.json")
        with ThreadPoolExecutor(IO_THREADS) as pool:
            records = list(pool.map(self.read_json, paths))
        return {
            p.split("/")[-2]: r["status"]
            for p, r in zip(paths, records, strict=True)
            if isinstance(r, dict) and "status" in r
        }

    def finished(self) -> dict[str, str]:
        """trial_id -> status of every trial whose record says it finished."""
        return {t: s for t, s in self.statuses().items() if s in FINISHED}

    def copy_to(self, local: Path) -> None:
        """Copy every trial folder into the local folder ``local`` (parallel transfers)."""
        if isinstance(self.fs, pafs.LocalFileSystem) and Path(self.path) == Path(local).resolve():
            return
        if not self.paths("trial.json"):
            return
        Path(local).mkdir(parents=True, exist_ok=True)
        pafs.copy_files(
            self.path,
            Path(local).resolve().as_posix(),
            source_filesystem=self.fs,
            destination_filesystem=pafs.LocalFileSystem(),
            use_threads=True,
        )
