"""The report's figures (seaborn on matplotlib's Agg backend), one function per figure.

Every function takes the run's tables and an output PNG path and returns that path, or ``None``
when the data cannot support the figure (no such axis, a single value, no replicates...): the
report leaves a figure out rather than draw an empty or misleading one.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402
from symgrid.analysis.effects import ordered  # noqa: E402
from symgrid.analysis.merit import DEFAULT, merit  # noqa: E402
from symgrid.analysis.stats import completed  # noqa: E402

__all__ = [
    "EBNO_LABEL",
    "ber_vs_ebno",
    "bias_variance_figure",
    "compare_runs",
    "gap_heatmap",
    "generalization_gap",
    "lr_schedules",
    "overfitting_curves",
    "panels",
    "save",
    "scientific_axes",
]

NUISANCE = ("seed", "optimizer.lr")  # tuned away: scientific axes are the others
EBNO_LABEL = "Eb/N0 (dB)"
RATIO_LABEL = "BER / BER of bitwise MAP"
DPI = 110
COLUMNS = 4  # panels per row before wrapping


def scientific_axes(axes: list[str]) -> list[str]:
    return [a for a in axes if a not in NUISANCE]


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def panels(count: int, width: float = 3.6, height: float = 3.0, **kw):
    cols = min(count, COLUMNS)
    rows = -(-count // cols)
    fig, axs = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
    for ax in axs.flat[count:]:
        ax.set_visible(False)
    return fig, list(axs.flat[:count])


def ber_vs_ebno(trials: pd.DataFrame, ber: pd.DataFrame, axis: str, path: Path) -> Path | None:
    """BER vs Eb/N0, one panel per value of ``axis``: the best trial (lowest mean BER ratio to
    MAP) over everything else, 95 % Clopper-Pearson bars, bitwise MAP and Cho-Yoon curves."""
    done = completed(trials)
    if axis not in done or ber.empty or done[axis].nunique() < 2:
        return None
    sns.set_theme(style="whitegrid", context="notebook")
    values = ordered(done[axis])
    fig, axs = panels(len(values), sharex=True, sharey=True)
    theory = ber.groupby("ebno_db")[["ber_theory_map", "ber_theory_nearest"]].first().sort_index()
    for ax, value in zip(axs, values, strict=True):
        mine = done[done[axis] == value]
        best = mine.loc[mine["ber_ratio_map"].idxmin()]
        ber_panel(ax, ber[ber["trial_id"] == best["trial_id"]], theory)
        ratio = best["ber_ratio_map"]
        title = f"{axis} = {value}\n{best['trial_id']}: ratio {ratio:.3f} (best of {len(mine)})"
        ax.set_title(title, fontsize=9)
    axs[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"BER against the optimal detector, by {axis}", y=1.06)
    return save(fig, path)


def ber_panel(ax, points: pd.DataFrame, theory: pd.DataFrame) -> None:
    """One trial's BER points (zero-error points left out) over the two reference curves."""
    points = points[points["errors"] > 0].sort_values("ebno_db")
    nearest = theory["ber_theory_nearest"]
    ax.plot(theory.index, nearest, "--", color="0.6", lw=2.4, label="nearest symbol (Cho-Yoon)")
    ax.plot(theory.index, theory["ber_theory_map"], "k-", lw=1.0, label="bitwise MAP (exact)")
    err = [points["ber"] - points["ci_low"], points["ci_high"] - points["ber"]]
    ax.errorbar(
        points["ebno_db"],
        points["ber"],
        yerr=err,
        fmt="o-",
        ms=4,
        capsize=3,
        color="C3",
        label="best trial, 95 % CI",
    )
    ax.set_yscale("log")
    ax.set(xlabel=EBNO_LABEL, ylabel="BER")


def setting_scores(trials: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Mean BER ratio to MAP per setting (all non-seed axes), averaged over seeds."""
    keys = [a for a in axes if a != "seed"]
    done = completed(trials)
    if not keys or done.empty:
        return pd.DataFrame(columns=[*keys, "ber_ratio_map"])
    return done.groupby(keys, dropna=False)["ber_ratio_map"].mean().reset_index()


def gap_heatmap(
    trials: pd.DataFrame,
    rows: str,
    cols: str,
    path: Path,
    interaction: dict | None = None,
    metric: str = DEFAULT,
) -> Path | None:
    """Heatmap of the figure of merit (a geometric-mean BER ratio to MAP, or the mean rate gap),
    ``rows`` x ``cols``, averaged over the other axes and seeds; ``interaction`` (a row of
    ``effects.interactions_table``) titles it with the seed-level F-test of the interaction."""
    m = merit(metric)
    done = completed(trials, metric)
    if rows not in done or cols not in done or rows == cols:
        return None
    if done[rows].nunique() * done[cols].nunique() < 2:
        return None
    grid = m.show(done.groupby([rows, cols])["y"].mean()).unstack(cols)
    grid = grid.reindex(index=ordered(done[rows]), columns=ordered(done[cols]))
    sns.set_theme(style="white", context="notebook")
    fig, ax = plt.subplots(figsize=(1.4 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 1.8))
    sns.heatmap(
        grid,
        annot=True,
        fmt=".3f",
        cmap="rocket_r",
        ax=ax,
        cbar_kws={"label": f"{m.label} ({m.optimal:g} = optimal)"},
    )
    test = ""
    if interaction is not None and np.isfinite(interaction["F"]):
        word = "significant" if interaction["significant"] else "not significant"
        test = (
            f"\ninteraction {word}: F = {interaction['F']:.2f}, p_adj = {interaction['p_adj']:.2g}"
        )
    ax.set_title(
        f"Gap to optimal: {rows} x {cols}\n(geometric mean over other axes and seeds){test}"
    )
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    return save(fig, path)


FACET_BY_SIZE = "train.symbols"  # overfitting depends first on how small the training set is


def overfitting_curves(trials, epochs, axis: str | None, path: Path) -> Path | None:
    """Train vs validation loss and BER per epoch for each value of ``axis``.

    The validation loss is ``val_loss_plain`` (without label smoothing), the one quantity every
    setting shares; the training loss is each trial's objective. Lines are means over the trials
    of each value (seeds and other axes; band: 95 % CI), one column per training-set size when
    that is an axis: picking the best trial per value would show the trial that overfits least.
    """
    done = completed(trials)
    label = done[axis].astype(str) if axis in done else pd.Series("all trials", done.index)
    facet = FACET_BY_SIZE if done.get(FACET_BY_SIZE, pd.Series()).nunique() in (2, 3, 4) else None
    keep = done[["trial_id", *([facet] if facet else [])]].assign(_value=label)
    curves = epochs.merge(keep, on="trial_id")
    if curves.empty or curves["epoch"].nunique() < 2:
        return None
    ids = ["_value", "epoch", *([facet] if facet else [])]
    val_loss = "val_loss_plain" if "val_loss_plain" in curves else "val_loss"  # older runs
    long = curves.melt(ids, ["train_loss", val_loss, "train_ber", "val_ber"])
    long["split"] = np.where(long["variable"].str.startswith("train"), "train", "validation")
    long["metric"] = np.where(long["variable"].str.endswith("loss"), "loss", "BER")
    sns.set_theme(style="whitegrid", context="notebook")
    grid = sns.relplot(
        data=long,
        x="epoch",
        y="value",
        hue="_value",
        hue_order=ordered(long["_value"]),
        style="split",
        row="metric",
        col=facet,
        kind="line",
        marker="o" if long["epoch"].nunique() <= 15 else None,
        height=2.8,
        aspect=1.6 if facet else 2.0,
        facet_kws={"sharey": "row"},
    )
    grid.set_titles(f"{{row_name}} per epoch{f', {facet} = {{col_name}}' if facet else ''}")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, text in zip(grid.axes[:, 0], ["loss (without penalty)", "BER"], strict=True):
        ax.set_ylabel(text)
    grid.legend.texts[0].set_text(axis or "setting")  # hue title: the axis, not "_value"
    title = "Overfitting: training vs validation (mean over seeds, band: 95 % CI)"
    grid.figure.suptitle(title, y=1.02)
    return save(grid.figure, path)


def generalization_gap(trials, epochs, axis: str | None, path: Path) -> Path | None:
    """Validation - training loss at the best and last epoch, and where training stopped."""
    done = trials[trials["status"] == "completed"]
    rows = epochs.merge(
        done[["trial_id", "best_epoch", "epochs_run", "stopped_early"]], on="trial_id"
    )
    if rows.empty:
        return None
    rows = rows.assign(gap=rows["val_loss"] - rows["train_loss"])
    label = done[axis].astype(str) if axis in done else pd.Series("all trials", done.index)
    labels = dict(zip(done["trial_id"], label, strict=True))
    at_best = rows[rows["epoch"] == rows["best_epoch"]].assign(at="best epoch")
    at_last = rows[rows["epoch"] == rows["epochs_run"]].assign(at="last epoch")
    gaps = pd.concat([at_best, at_last]).assign(setting=lambda f: f["trial_id"].map(labels))
    stops = done.assign(setting=done["trial_id"].map(labels), planned=planned_epochs(done))
    stops["stopped"] = np.where(
        stops["stopped_early"].fillna(False).astype(bool), "early stop", "ran all epochs"
    )
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    order = ordered(gaps["setting"])
    sns.barplot(
        data=gaps, x="setting", y="gap", hue="at", order=order, ax=left, errorbar=("ci", 95)
    )
    left.axhline(0, color="k", lw=0.8)
    left.set(xlabel=axis or "", ylabel="val loss - train loss", title="Generalization gap")
    sns.stripplot(
        data=stops,
        x="setting",
        y="epochs_run",
        hue="stopped",
        order=order,
        ax=right,
        dodge=False,
        jitter=0.15,
        size=6,
        hue_order=["ran all epochs", "early stop"],
    )
    right.set(xlabel=axis or "", ylabel="epochs run", title="Where training stopped")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylim(0, max(stops["planned"].max(), stops["epochs_run"].max()) + 1)
    for ax in (left, right):
        ax.tick_params(axis="x", rotation=20)
    return save(fig, path)


def planned_epochs(trials: pd.DataFrame) -> pd.Series:
    return trials["config_json"].map(lambda c: json.loads(c).get("train", {}).get("epochs", 0))


def bias_variance_figure(table: pd.DataFrame, x: str, path: Path) -> Path | None:
    """Noise, bias² and variance against ``x`` (num_params or train.symbols), per Eb/N0."""
    if table.empty or x not in table or table[x].nunique() < 2:
        return None
    parts = ["noise", "bias2", "variance", "expected_loss"]
    mean = table.groupby(["ebno_db", x])[parts].mean().reset_index()
    long = mean.melt(["ebno_db", x], parts, var_name="term", value_name="squared error")
    long["term"] = (
        long["term"].map({"bias2": "bias²", "expected_loss": "expected loss"}).fillna(long["term"])
    )
    sns.set_theme(style="whitegrid", context="notebook")
    grid = sns.relplot(
        data=long,
        x=x,
        y="squared error",
        hue="term",
        col="ebno_db",
        kind="line",
        marker="o",
        col_wrap=min(COLUMNS, long["ebno_db"].nunique()),
        height=3,
        aspect=1.2,
        hue_order=["noise", "bias²", "variance", "expected loss"],
    )
    grid.set(xscale="log", yscale="log")
    ticks = sorted(mean[x].unique())
    for ax in grid.axes.flat:  # label the measured capacities, not powers of ten
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    grid.set_titles("Eb/N0 = {col_name} dB")
    xlabel = {"num_params": "model parameters", "train.symbols": "training symbols"}.get(x, x)
    grid.set_axis_labels(xlabel, "squared error on P(b=1|y)")
    groups = table.groupby(x).size().max() // table["ebno_db"].nunique()
    grid.figure.suptitle(
        f"Bias-variance vs {xlabel} (mean over {groups} setting(s) per point)", y=1.03
    )
    return save(grid.figure, path)


def lr_schedules(trials: pd.DataFrame, epochs: pd.DataFrame, path: Path) -> Path | None:
    """The learning rate each trial applied per epoch (mean over the epoch's batches)."""
    hue = "scheduler" if "scheduler" in trials else None
    rows = epochs.merge(trials[["trial_id", *([hue] if hue else [])]], on="trial_id")
    rows = rows[rows["lr"].notna() & (rows["lr"] > 0)]
    if rows.empty or rows["epoch"].nunique() < 2:
        return None
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.lineplot(
        data=rows,
        x="epoch",
        y="lr",
        hue=hue,
        units="trial_id",
        estimator=None,
        marker="o",
        ax=ax,
        alpha=0.8,
    )
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="learning rate (epoch mean)", title="Learning rate as applied")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save(fig, path)


def compare_runs(runs: dict[str, tuple[pd.DataFrame, list[str]]], path: Path) -> Path | None:
    """Change in mean BER ratio to MAP per setting of the shared axes, each run vs the first."""
    if len(runs) < 2:
        return None
    names = list(runs)
    shared = [a for a in runs[names[0]][1] if all(a in axes for _, axes in runs.values())]
    keys = [a for a in shared if a != "seed"]
    if not keys:
        return None
    scores = {
        n: setting_scores(t, keys).set_index(keys)["ber_ratio_map"] for n, (t, _) in runs.items()
    }
    base = scores[names[0]]
    deltas = [(scores[n] - base).dropna().rename(n) for n in names[1:]]
    table = pd.concat(deltas, axis=1).dropna(how="all")
    if table.empty:
        return None
    table.index = [", ".join(map(str, i if isinstance(i, tuple) else (i,))) for i in table.index]
    long = table.reset_index(names="setting").melt("setting", var_name="run", value_name="delta")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(table) * (len(names) - 1) + 1.8))
    sns.barplot(data=long, y="setting", x="delta", hue="run", ax=ax, orient="h")
    ax.axvline(0, color="k", lw=0.8)
    ax.set(
        xlabel=f"Δ ({RATIO_LABEL}) vs {names[0]}; < 0: better",
        ylabel=", ".join(keys),
        title="Runs compared over their shared axes",
    )
    return save(fig, path)
