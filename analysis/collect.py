"""Trial record folders -> the run's tidy Parquet tables, and the one loader of a run folder.

Reads ``DIR/trials/<trial_id>/`` (written by ``trainables.records``) and ``DIR/run.json``; writes
``DIR/trials.parquet``, ``DIR/epochs.parquet`` and ``DIR/ber.parquet``. Never reads Ray's files.
This is the bottom of ``analysis/``: tables (here) -> statistics (``stats``, ``effects``,
``biasvar``, ``confirmation``, ``derive``) -> figures (``plots``, ``effect_plots``) -> pages
(``render``, ``report``). Nothing here imports a module above it.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from symgrid.trainables.messages import first_line
from symgrid.trainables.records import BER_COLUMNS, EPOCH_COLUMNS
from symgrid.trainables.storage_io import IO_THREADS, write_parquet

__all__ = [
    "ReportError",
    "Run",
    "TABLES",
    "Tables",
    "axis_columns",
    "build_tables",
    "json_or_empty",
    "load_run",
    "read_table",
    "stale",
    "table_metadata",
    "trials_frame",
]

SUMMARY_COLUMNS = [
    "epochs_run",
    "best_epoch",
    "stopped_early",
    "val_loss_best",
    "val_ber_best",
    "ber_ratio_map",  # geometric mean of the point ratios, exp(log_ratio_map)
    "log_ratio_map",
    "log_ratio_map_se",
    "rate_gap",
    "rate_gap_se",
    "points_no_map_errors",  # test points where MAP made no errors (see metrics.ratio_to_map)
    "started_at",
    "finished_at",
    "wall_s",
    "symbols_per_s",
    "device",
    "node_id",
    "hostname",
    "gpu_ids",
    "num_params",
    "network",  # the detector's class and arguments (mlp, or package.module:Class(width=32))
    "error",
]


@dataclass
class Tables:
    trials: pd.DataFrame
    epochs: pd.DataFrame
    ber: pd.DataFrame

    @property
    def finished_ids(self) -> set[str]:
        done = self.trials["status"].isin(["completed", "diverged"])
        return set(self.trials.loc[done, "trial_id"])


def read_trials(out: Path) -> list[dict]:
    """Every trial.json under DIR/trials, in trial_id order (read in parallel)."""
    paths = sorted((Path(out) / "trials").glob("*/trial.json"))
    return read_all(lambda p: json.loads(p.read_text()), paths)


def read_all(read, paths: list) -> list:
    """``[read(p) for p in paths]``, on ``IO_THREADS`` threads: thousands of small files are
    bound by file-system calls, which release the GIL."""
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(read, paths))


def trials_frame(records: list[dict]) -> pd.DataFrame:
    """One row per trial: id, status, one column per axis, seed, config_json, the summary."""
    rows = []
    for rec in records:
        row = {"trial_id": rec["trial_id"], "status": rec["status"], **rec.get("axes", {})}
        row["seed"] = rec.get("config", {}).get("seed")
        row["config_json"] = json.dumps(rec.get("config", {}), sort_keys=True)
        row.update({c: rec.get(c) for c in SUMMARY_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def read_parquets(out: Path, name: str, columns: list[str], read=None) -> pd.DataFrame:
    """One table from every trial folder's ``name`` file (``read`` may name a bad file).

    By default the files are read as Arrow tables and joined once (a column of nulls from a
    trial without rows takes the others' type): a pandas frame per file costs twice as long.
    """
    paths = sorted((Path(out) / "trials").glob(f"*/{name}"))
    if read is None:
        tables = [t for t in read_all(pq.read_table, paths) if t.num_rows]
        joined = pa.concat_tables(tables, promote_options="default") if tables else None
        return joined.to_pandas() if joined else pd.DataFrame(columns=columns)
    frames = [f for f in read_all(read, paths) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def table_metadata(out: Path) -> dict:
    """Provenance stored in every table: spec, versions, commit, time."""
    run = json.loads((Path(out) / "run.json").read_text()) if (out / "run.json").exists() else {}
    return {
        "spec_name": run.get("name"),
        "spec_hash": run.get("spec_hash"),
        "symgrid_version": metadata.version("symgrid"),
        "git_commit": git_commit(),
        "torch_version": metadata.version("torch"),
        "ray_version": metadata.version("ray"),
        "created_at": datetime.now(timezone.utc).isoformat(),
    }


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def build_tables(out: Path, read=None) -> Tables:
    """Collect every trial folder of a run into the three tables and write them.

    ``read`` reads one trial's Parquet file (:func:`read_table` names a damaged one); by default
    they are read as Arrow tables on threads (:func:`read_parquets`).
    """
    out = Path(out)
    tables = Tables(
        trials_frame(read_trials(out)),
        read_parquets(out, "epochs.parquet", EPOCH_COLUMNS, read),
        read_parquets(out, "ber.parquet", BER_COLUMNS, read),
    )
    meta = table_metadata(out)
    if tables.trials.empty:
        tables.trials = pd.DataFrame(columns=["trial_id", "status"])
    write_parquet(tables.trials, out / "trials.parquet", meta)
    write_parquet(tables.epochs, out / "epochs.parquet", meta)
    write_parquet(tables.ber, out / "ber.parquet", meta)
    return tables


class ReportError(RuntimeError):
    """A run folder the analysis cannot read (one line; exit code 2 from the CLI)."""


@dataclass
class Run:
    """A run folder as the analysis sees it: run.json, the spec text and the tables."""

    path: Path
    info: dict
    spec_text: str
    tables: Tables
    unfinished: list[str] = field(default_factory=list)  # trial folders without trial.json
    rebuilt: bool = False  # the tables were (re)built from the trial folders just now

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def trials(self) -> pd.DataFrame:
        return self.tables.trials

    @property
    def epochs(self) -> pd.DataFrame:
        return self.tables.epochs

    @property
    def ber(self) -> pd.DataFrame:
        return self.tables.ber

    @property
    def axes(self) -> list[str]:
        written = self.info.get("axes") or axis_columns(self.trials)
        return [a for a in written if a in self.trials]


def axis_columns(trials: pd.DataFrame) -> list[str]:
    """The axis columns of a trials table (everything that is not id, status, seed or summary)."""
    fixed = {"trial_id", "status", "seed", "config_json", *SUMMARY_COLUMNS}
    return [c for c in trials.columns if c not in fixed]


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file (empty with ``columns`` when absent), or a ReportError naming it."""
    if not path.exists():
        return pd.DataFrame(columns=columns or [])
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ReportError(f"{path}: unreadable Parquet file ({first_line(err)})") from err


def json_or_empty(path: Path) -> dict:
    """A JSON file of the run folder as a dict: {} when absent, a ReportError when unreadable."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: unreadable JSON ({first_line(err)})") from err


TABLES = ("trials", "epochs", "ber")


def stale(out: Path) -> bool:
    """Whether the tables must be rebuilt: one is missing, or a trial record is newer than them,
    or the trial folders hold other trials than ``trials.parquet``."""
    tables = [out / f"{name}.parquet" for name in TABLES]
    records = list((out / "trials").glob("*/trial.json"))
    if not records:
        return False  # nothing to build from: read whatever tables there are
    if not all(t.exists() for t in tables):
        return True
    built = min(t.stat().st_mtime_ns for t in tables)
    if any(r.stat().st_mtime_ns > built for r in records):
        return True
    recorded = set(read_table(out / "trials.parquet").get("trial_id", []))
    return recorded != {r.parent.name for r in records}


def load_run(path: Path) -> Run:
    """Read a run folder: its tables, rebuilt by :func:`build_tables` first when stale.

    Raises :class:`ReportError` (one line) for a folder that is not there, holds no trials, or
    has an unreadable table or JSON file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such run folder")
    info = json_or_empty(path / "run.json")
    rebuilt = stale(path)
    if rebuilt:  # an interrupted run, tables not built yet, one of them lost, or records changed
        for record in sorted((path / "trials").glob("*/trial.json")):
            json_or_empty(record)  # a damaged record is a one-line error, not a traceback
        tables = build_tables(path, read=read_table)
    else:
        tables = Tables(
            read_table(path / "trials.parquet"),
            read_table(path / "epochs.parquet", EPOCH_COLUMNS),
            read_table(path / "ber.parquet", BER_COLUMNS),
        )
    if tables.trials.empty:
        raise ReportError(f"{path}: no trials (no trials.parquet rows and no trials/*/trial.json)")
    spec = path / "spec.yaml"
    unfinished = sorted(
        p.name for p in (path / "trials").glob("*") if not (p / "trial.json").exists()
    )
    text = spec.read_text() if spec.exists() else ""
    return Run(path, info, text, tables, unfinished, rebuilt)
