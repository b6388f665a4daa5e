"""Trial record folders -> the run's tidy Parquet tables.

Reads ``DIR/trials/<trial_id>/`` (written by ``trainables.records``) and ``DIR/run.json``; writes
``DIR/trials.parquet``, ``DIR/epochs.parquet``, ``DIR/ber.parquet`` and
``DIR/bias_variance.parquet`` (``analysis.biasvar``). Never reads Ray's files.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import biasvar  # module import: biasvar reads SUMMARY_COLUMNS from here
from trainables.records import BER_COLUMNS, EPOCH_COLUMNS, IO_THREADS, write_parquet

SUMMARY_COLUMNS = [
    "epochs_run",
    "best_epoch",
    "stopped_early",
    "val_loss_best",
    "val_ber_best",
    "ber_ratio_map",
    "started_at",
    "finished_at",
    "wall_s",
    "symbols_per_s",
    "device",
    "node_id",
    "hostname",
    "gpu_ids",
    "num_params",
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


def build_tables(out: Path) -> Tables:
    """Collect every trial folder of a run into the three tables and write them."""
    out = Path(out)
    tables = Tables(
        trials_frame(read_trials(out)),
        read_parquets(out, "epochs.parquet", EPOCH_COLUMNS),
        read_parquets(out, "ber.parquet", BER_COLUMNS),
    )
    meta = table_metadata(out)
    if tables.trials.empty:
        tables.trials = pd.DataFrame(columns=["trial_id", "status"])
    write_parquet(tables.trials, out / "trials.parquet", meta)
    write_parquet(tables.epochs, out / "epochs.parquet", meta)
    write_parquet(tables.ber, out / "ber.parquet", meta)
    # After trials.parquet: the table reads it and only the replicated trials' predictions.
    write_parquet(biasvar.bias_variance_table(out), out / "bias_variance.parquet", meta)
    return tables
