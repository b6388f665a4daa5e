"""Bias-variance decompositions of the trained detectors against the exact posterior.

Every trial predicts bit probabilities ``p_hat = P(b_j = 1 | y)`` on one shared evaluation set
(``trainables.shared_set``) and stores them with the samples and their exact posterior
``eta = trainables.reference.posterior(y, no, k)``, so replicates that differ only in their seed
(and hence in their finite training set) are compared sample by sample with eta as recorded;
nothing is redrawn here. Two decompositions per group and Eb/N0:

Squared error on bit probabilities, with the expectation over ``b | y`` taken analytically, over
``R`` replicates with mean prediction ``p_bar``::

    expected_loss = mean[eta (1 - p_hat)^2 + (1 - eta) p_hat^2]      (mean over replicates too)
                  = noise + bias2 + variance
    noise    = mean eta (1 - eta)
    variance = mean s^2,   s^2 = Var_r p_hat with ddof 1 (unbiased for the variance over D)
    bias2    = mean[(eta - p_bar)^2 - s^2 / R]

The plug-in terms are biased: ``E[(eta - p_bar)^2] = bias^2 + sigma^2 / R`` and the ddof-0
variance has ``E = (R - 1) / R sigma^2``; only their sum is unbiased. The estimators above are
unbiased term by term and still add up to ``expected_loss`` exactly. With ``R = 2`` they are
unbiased but noisy (``s^2 = (p_1 - p_2)^2 / 2`` has one degree of freedom per sample), and
``bias2`` can come out negative where the true bias is small next to ``sigma^2 / R``; it is
reported as estimated, not clipped (clipping would bias it). ``R = 1`` has no variance
estimate: such groups are left out (:data:`MIN_REPLICATES`).

0-1 loss after Domingos (2000), against the MAP decision ``y* = 1[eta > 0.5]`` and the main
prediction ``y_m`` = majority vote of the replicates' hard decisions ``1[p_hat > 0.5]``::

    loss01 = mean(c1 N + B + c2 V),  N = min(eta, 1 - eta),  B = 1[y_m != y*],
    V = P_D(y != y_m),  c1 = 2 P_D(y = y*) - 1,  c2 = +1 if y_m == y* else -1

A tied vote (even number of replicates, half of them deciding 1) is broken towards ``y*``: bias
is counted only where a strict majority of replicates disagrees with the MAP decision. These 0-1
terms are plug-in estimates for the ``R`` replicates at hand (no finite-R correction).
"""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from symgrid.analysis.collect import axis_columns  # tables -> statistics, one way

__all__ = [
    "bias_variance_table",
    "decompose_squared",
    "decompose_zero_one",
    "point_arrays",
    "read_predictions",
]

SQUARED = ["expected_loss", "noise", "bias2", "variance"]
ZERO_ONE = ["loss01", "noise01", "bias01", "var01", "net_var01"]
MIN_REPLICATES = 2  # a variance needs at least two training sets


def decompose_squared(eta: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Squared-error decomposition of replicate predictions against the exact posterior.

    Input
    -----
    eta : [n, k], float, exact P(b_j = 1 | y)
    p : [replicates, n, k], float, each replicate's predicted P(b_j = 1 | y); R >= 2 replicates

    Output
    ------
    ``expected_loss``, ``noise``, ``bias2``, ``variance`` (module docstring): unbiased
    estimators, ``expected_loss = noise + bias2 + variance``.
    """
    eta, p = np.asarray(eta, np.float64), np.asarray(p, np.float64)
    replicates = p.shape[0]
    if replicates < MIN_REPLICATES:
        raise ValueError(f"p: got {replicates} replicate(s); the variance needs at least 2")
    p_bar = p.mean(axis=0)  # [n, k]
    s2 = p.var(axis=0, ddof=1)  # [n, k], unbiased variance over training sets
    loss = eta * (1 - p) ** 2 + (1 - eta) * p**2  # [replicates, n, k]: E_b|y (b - p)^2
    return {
        "expected_loss": float(loss.mean()),
        "noise": float((eta * (1 - eta)).mean()),
        "bias2": float(((eta - p_bar) ** 2 - s2 / replicates).mean()),
        "variance": float(s2.mean()),
    }


def decompose_zero_one(eta: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Domingos (2000) 0-1 loss decomposition against the MAP decision (inputs as above)."""
    eta, p = np.asarray(eta, np.float64), np.asarray(p, np.float64)
    y_star = eta > 0.5  # [n, k]
    hard = p > 0.5  # [replicates, n, k]
    ones = hard.mean(axis=0)  # [n, k]: fraction of replicates deciding 1
    y_main = np.where(ones == 0.5, y_star, ones > 0.5)  # ties go to the MAP decision
    noise = np.minimum(eta, 1 - eta)
    bias = (y_main != y_star).astype(np.float64)
    var = (hard != y_main).mean(axis=0)
    c1 = 2 * (hard == y_star).mean(axis=0) - 1
    c2 = np.where(bias > 0, -1.0, 1.0)
    loss = np.where(hard, 1 - eta, eta)  # [replicates, n, k]: P(b != decision | y)
    return {
        "loss01": float(loss.mean()),
        "noise01": float(noise.mean()),
        "bias01": float(bias.mean()),
        "var01": float(var.mean()),
        "net_var01": float((c2 * var).mean()),
        "identity01": float((c1 * noise + bias + c2 * var).mean()),
    }


def replicate_groups(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed trials with a ``group`` column: the config without its seed, as JSON."""
    done = trials[trials["status"] == "completed"].copy()
    configs = [json.loads(c) for c in done["config_json"]]
    for cfg in configs:
        cfg.pop("seed", None)
    done["group"] = [json.dumps(c, sort_keys=True) for c in configs]
    done["train.symbols"] = [c.get("train", {}).get("symbols") for c in configs]
    done["num_bits_per_symbol"] = [
        c.get("modulation", {}).get("num_bits_per_symbol", 4) for c in configs
    ]
    sizes = done.groupby("group")["trial_id"].transform("size")
    return done[sizes >= MIN_REPLICATES]


def read_predictions(out: Path, trial_ids) -> pd.DataFrame:
    """The ``predictions.parquet`` of the given trials, concatenated (missing files skipped)."""
    paths = [Path(out) / "trials" / t / "predictions.parquet" for t in trial_ids]
    tables = [pq.read_table(p) for p in paths if p.exists()]
    tables = [t for t in tables if t.num_rows]  # a diverged trial has none (columns untyped)
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()


def point_arrays(point: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """eta [n, k] and p [replicates, n, k] of one group at one Eb/N0, from the stored columns.

    None (with a warning) unless every replicate recorded the same samples, N0 and posterior:
    replicates are compared sample by sample, and eta must belong to the samples predicted on.
    """
    point = point.sort_values(["trial_id", "symbol"])
    counts = point.groupby("trial_id").size()
    if len(counts) < MIN_REPLICATES or counts.nunique() != 1:
        return None  # a replicate is missing this point
    n, replicates = int(counts.iloc[0]), len(counts)
    eta_cols, p_cols = [f"eta{j}" for j in range(k)], [f"p{j}" for j in range(k)]
    if not set(eta_cols + ["y_re", "y_im", "no"]) <= set(point):
        warnings.warn("predictions lack samples and posterior (older run); skipped", stacklevel=2)
        return None
    shared = point[["y_re", "y_im", "no", *eta_cols]].to_numpy(np.float64)
    shared = shared.reshape(replicates, n, -1)  # [replicates, n, 3 + k]
    if not (shared == shared[:1]).all():
        ebno = point["ebno_db"].iloc[0]
        warnings.warn(f"ebno_db {ebno}: replicates saw different samples; skipped", stacklevel=2)
        return None
    p = point[p_cols].to_numpy(np.float64).reshape(replicates, n, k)
    return shared[0, :, 3:], p


def group_rows(members: pd.DataFrame, predictions: pd.DataFrame, keys: list[str]) -> list[dict]:
    """One row per Eb/N0 point that every replicate of the group predicted."""
    first, rows = members.iloc[0], []
    k = int(first["num_bits_per_symbol"])
    mine = predictions[predictions["trial_id"].isin(members["trial_id"])]
    for ebno_db, point in mine.groupby("ebno_db"):
        arrays = point_arrays(point, k)
        if arrays is None:
            continue
        eta, p = arrays  # [n, k], [replicates, n, k]
        row = {key: first[key] for key in keys}
        row.update(ebno_db=float(ebno_db), replicates=p.shape[0], symbols=p.shape[1])
        row.update(decompose_squared(eta, p))
        row.update(decompose_zero_one(eta, p))
        rows.append(row)
    return rows


def bias_variance_table(
    source: Path | str | pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    folder: Path | None = None,
) -> pd.DataFrame:
    """Both decompositions for every group of ≥ 2 completed trials that differ only in seed.

    Parameters
    ----------
    source : a run folder DIR (reads ``trials.parquet`` and each trial's predictions), or a
        trials table (as ``analysis.collect.trials_frame``) with ``predictions`` or ``folder``
    predictions : the trials' ``predictions.parquet`` rows, concatenated
    folder : the run folder whose trials' predictions are read, a window of groups at a time

    Output
    ------
    One row per group and eval Eb/N0: the non-seed axis values, ``num_params``,
    ``train.symbols``, ``ebno_db``, ``replicates``, ``symbols``, :data:`SQUARED` and
    :data:`ZERO_ONE` columns.
    """
    if isinstance(source, pd.DataFrame):
        if predictions is None and folder is None:
            raise ValueError("bias_variance_table(trials_frame) needs predictions or a folder")
        trials = source
    else:
        folder = Path(source)
        trials = pd.read_parquet(folder / "trials.parquet")
    keys = list(dict.fromkeys([*axis_columns(trials), "num_params", "train.symbols"]))
    columns = [*keys, "ebno_db", "replicates", "symbols", *SQUARED, *ZERO_ONE]
    if trials.empty or "config_json" not in trials:
        return pd.DataFrame(columns=columns)
    grouped = replicate_groups(trials)
    groups = [members for _, members in grouped.groupby("group", sort=False)]
    if predictions is None:  # a run folder: one window of groups' predictions in memory at once
        read = lambda members: read_predictions(folder, members["trial_id"])  # noqa: E731
        pairs = zip(groups, windowed(read, groups), strict=True)
    else:
        pairs = ((m, predictions) for m in groups)
    rows = [r for members, preds in pairs if len(preds) for r in group_rows(members, preds, keys)]
    return pd.DataFrame(rows, columns=columns)


def windowed(read, items: list, window: int = 32):
    """``read(item)`` for each item in order, up to ``window`` reads ahead on threads: the
    files of the next groups load while one group is computed, and memory stays bounded."""
    with ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(read, item) for item in items[:window]]
        for i in range(len(items)):
            result = pending[i].result()
            pending[i] = None  # drop the reference: a group's predictions are freed when done
            if i + window < len(items):
                pending.append(pool.submit(read, items[i + window]))
            yield result
