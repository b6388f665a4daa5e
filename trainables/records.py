"""A trial's records: the schema of its Parquet tables and JSON summary, and the store of a run's
trial folders.

One trial folder holds ``epochs.parquet``, ``ber.parquet``, ``predictions.parquet`` and
``trial.json`` (written last: its presence means the other files are complete). A
:class:`RecordStore` holds the trial folders of one run under a root that is a local folder or a
storage URI (``trainables.storage_io``), so the same code writes them from a trial worker and reads
them on the driver, in bulk and in parallel. A storage that does not answer raises
``StorageUnreachable``: it is never read as "no record".
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.fs as pafs
from symgrid.trainables.storage_io import (
    IO_THREADS,
    atomic,
    filesystem,
    list_files,
    read_bytes,
    write_json,
    write_parquet,
)

if TYPE_CHECKING:  # reading records must not load torch (trial.py does)
    from symgrid.trainables.trial import TrialOutcome

__all__ = [
    "BER_COLUMNS",
    "EPOCH_COLUMNS",
    "FINISHED",
    "RecordStore",
    "ber_frame",
    "epochs_frame",
    "predictions_frame",
    "write_trial_dir",
]

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


def write_trial_dir(
    outcome: TrialOutcome, trial_id: str, directory, identity: dict, fs=None
) -> None:
    """All of a finished trial's records; ``identity`` (axes, config, placement) joins
    trial.json."""
    where = Path(directory).as_posix() if fs is None else str(directory)
    write_parquet(epochs_frame(trial_id, outcome.epochs), f"{where}/epochs.parquet", fs=fs)
    write_parquet(ber_frame(trial_id, outcome.ber), f"{where}/ber.parquet", fs=fs)
    predictions = predictions_frame(trial_id, outcome.predictions)
    write_parquet(predictions, f"{where}/predictions.parquet", fs=fs)
    summary = {"trial_id": trial_id, **identity, **outcome.summary}
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

    def write_outcome(self, outcome: TrialOutcome, trial_id: str, identity: dict) -> None:
        """A finished trial's records (never over a finished record: resume must not rewrite)."""
        if self.status(trial_id) not in FINISHED:
            write_trial_dir(outcome, trial_id, self.folder(trial_id), identity, self.fs)

    def write_failed(self, trial_id: str, error: str, rows: list[dict], identity: dict) -> None:
        """A failed trial's record: the epochs it reported and a one-line error."""
        if self.status(trial_id) in FINISHED:
            return
        where = self.folder(trial_id)
        write_parquet(epochs_frame(trial_id, rows), f"{where}/epochs.parquet", fs=self.fs)
        record = {"trial_id": trial_id, "status": "failed", "error": error, **identity}
        write_json(record, f"{where}/trial.json", fs=self.fs)

    def status(self, trial_id: str) -> str | None:
        """The status in the trial's trial.json; None when there is none or it is unreadable."""
        record = self.read_json(f"{self.folder(trial_id)}/trial.json")
        return record.get("status") if isinstance(record, dict) else None

    def read_json(self, path: str) -> dict | None:
        """A record file; None when it does not exist or was half-written by a killed older
        version. A storage that does not answer raises ``StorageUnreachable``."""
        data = read_bytes(path, self.fs)
        try:
            return None if data is None else json.loads(data)
        except ValueError:
            return None

    def paths(self, name: str) -> list[str]:
        """Every ``<root>/<trial_id>/name`` that exists, in trial_id order (one listing)."""
        depth = self.path.count("/") + 2
        found = [i.path for i in list_files(self.path, self.fs) if i.base_name == name]
        return sorted(p for p in found if p.count("/") == depth)

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

    def copy_trial(self, trial_id: str, local: Path) -> bool:
        """Copy one trial folder into ``local/<trial_id>`` (trial.json last, each file whole).

        Returns whether the storage held a trial.json for it."""
        source = self.folder(trial_id)
        files = sorted(list_files(source, self.fs), key=lambda i: i.base_name == "trial.json")
        if not any(i.base_name == "trial.json" for i in files):
            return False
        for info in files:
            data = read_bytes(info.path, self.fs)
            if data is not None:  # deleted meanwhile: a rerun replaces its records
                target = Path(local) / trial_id / info.path[len(source) + 1 :]
                atomic(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
        return True

    def copy_to(self, local: Path) -> None:
        """Copy into the local folder ``local`` every trial folder that is not there finished
        already (the driver copies each trial as it ends); parallel transfers."""
        if isinstance(self.fs, pafs.LocalFileSystem) and Path(self.path) == Path(local).resolve():
            return
        here = RecordStore(local)
        done = here.finished() if Path(local).is_dir() else {}
        ids = [p.split("/")[-2] for p in self.paths("trial.json")]
        with ThreadPoolExecutor(IO_THREADS) as pool:
            list(pool.map(lambda t: self.copy_trial(t, local), [t for t in ids if t not in done]))
