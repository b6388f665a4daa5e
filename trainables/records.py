"""A trial's records on disk: Parquet tables and a JSON summary, each written atomically.

One trial folder holds ``epochs.parquet``, ``ber.parquet``, ``predictions.parquet`` and
``trial.json`` (written last: its presence means the other files are complete).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trainables.trial import TrialOutcome

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
    "n01",  # detector wrong, MAP right
    "n10",  # detector right, MAP wrong
    "mcnemar_p",
    "ber_theory_nearest",
    "ber_theory_map",
]


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict | None = None) -> None:
    """Write ``df`` to ``path`` atomically (temp file, then rename), with JSON metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = {**(table.schema.metadata or {}), b"symgrid": json.dumps(metadata).encode()}
        table = table.replace_schema_metadata(meta)
    atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_json(data: dict, path: Path) -> None:
    atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, default=str)))


def atomic(path: Path, write) -> None:
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


def write_trial_dir(outcome: TrialOutcome, trial_id: str, directory: Path, extra: dict) -> None:
    """All of a finished trial's records; ``extra`` (axes, config, placement) joins trial.json."""
    directory = Path(directory)
    write_parquet(epochs_frame(trial_id, outcome.epochs), directory / "epochs.parquet")
    write_parquet(ber_frame(trial_id, outcome.ber), directory / "ber.parquet")
    write_parquet(
        predictions_frame(trial_id, outcome.predictions), directory / "predictions.parquet"
    )
    write_json({"trial_id": trial_id, **extra, **outcome.summary}, directory / "trial.json")
