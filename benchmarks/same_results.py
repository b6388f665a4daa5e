"""Reproducibility: do two runs of one spec hold the same results, trial for trial?

Compares ``trials.parquet``, ``epochs.parquet`` and ``ber.parquet`` of two run folders on every
column that is a result and that both runs recorded (timing, host and time-stamp columns are left
out; a column only one run has is named), matched by trial id, epoch and Eb/N0 point. Prints, per
table, "identical" or which columns differ in how many rows, and exits 1 when anything differs.
A seed fixes every random stream of a trial, and trials run with one torch thread each, so a spec
run twice on CPUs should give identical tables, whatever the load or the order the trials ran in.

    python benchmarks/same_results.py DIR1 DIR2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEYS = {"trials": ["trial_id"], "epochs": ["trial_id", "epoch"], "ber": ["trial_id", "ebno_db"]}
NOT_RESULTS = {"started_at", "finished_at", "wall_s", "symbols_per_s", "node_id", "hostname",
               "gpu_ids", "device"}  # fmt: skip


def differences(a: Path, b: Path, table: str) -> tuple[list[str], list[str]]:
    """What differs between the two runs' ``table`` in the columns both have (empty: identical),
    and the columns only one has (a run recorded by an older symgrid lacks the newer ones)."""
    x, y = (pd.read_parquet(folder / f"{table}.parquet") for folder in (a, b))
    only = [
        f"{c} only in {a if c in x.columns else b}" for c in sorted(set(x.columns) ^ set(y.columns))
    ]
    x, y = (f.sort_values(KEYS[table]).reset_index(drop=True) for f in (x, y))
    if not x[KEYS[table]].equals(y[KEYS[table]]):
        return [f"rows: {len(x)} against {len(y)}, or other trial ids"], only
    found = []
    shared = [c for c in x.columns if c in y.columns and c not in NOT_RESULTS]
    for column in shared:
        same = (x[column] == y[column]) | (x[column].isna() & y[column].isna())
        if not same.all():
            found.append(f"{column} in {int((~same).sum())} rows")
    return found, only


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", type=Path, nargs=2)
    args = p.parse_args()
    differ = False
    for table in KEYS:
        found, only = differences(*args.dirs, table)
        rows = len(pd.read_parquet(args.dirs[0] / f"{table}.parquet"))
        said = "identical" if not found else "; ".join(found)
        print(f"{table} ({rows:,} rows): {said}" + (f" ({'; '.join(only)})" if only else ""))
        differ |= bool(found)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
