"""The seed-level inference is calibrated: simulated grids with known effects (analysis.calibration)
through the arithmetic the report uses, and that arithmetic is what the report's tables hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from symgrid.analysis import calibration, effects

GRIDS = 4000  # per seed count: Monte Carlo standard error of a 5 % rate is 0.34 %
SLACK = 2.5 * np.sqrt(0.05 * 0.95 / GRIDS)  # the simulation's own noise, not the method's


@pytest.fixture(scope="module")
def table():
    return {(r["seeds"], r["method"]): r for r in calibration.calibration_table(GRIDS)}


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_intervals_cover_and_the_family_wise_error_rate_holds(table, seeds):
    row = table[(seeds, "seed-level (now)")]
    assert row["coverage"] >= 0.94  # each true contrast inside its interval
    assert row["simultaneous_coverage"] >= 0.95 - SLACK  # all of a grid's at once
    assert row["fwer_null"] <= 0.05 + SLACK  # any false positive in a null grid
    assert row["interaction_fwer_null"] <= 0.05 + SLACK


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_blocks_as_replicates_would_fail_the_same_check(table, seeds):
    """The replaced analysis (each block a replicate) on the same kind of grids: blocks sharing
    a seed share its axis x seed noise, so its intervals are too narrow."""
    row = table[(seeds, "blocks as replicates (before)")]
    assert row["coverage"] < 0.9 and row["fwer_null"] > 0.3


def test_power_grows_with_seeds(table):
    power = [table[(n, "seed-level (now)")]["power_true_effects"] for n in (2, 3, 5)]
    assert power == sorted(power) and power[-1] > 5 * power[0]


def test_the_report_tables_hold_the_simulated_arithmetic():
    """One simulated grid through effects.effects_table (what derive writes) gives the same
    contrasts, intervals and p-values as the vectorized simulation of that grid."""
    rng = np.random.default_rng(11)
    y = calibration.grids_y(rng, 1, 4, null=False)[0]  # [seeds, A, B, C]
    index = pd.MultiIndex.from_product([range(n) for n in y.shape], names=["seed", "A", "B", "C"])
    trials = pd.DataFrame({"ber_ratio_map": np.exp(y.ravel())}, index=index).reset_index()
    trials = trials.assign(status="completed", trial_id=[f"t{i}" for i in range(len(trials))])
    table = effects.effects_table(trials, ["A", "B", "C", "seed"]).set_index(["axis", "level"])
    tests, _ = calibration.main_effects(y[None])
    pairs = [("A", u, v) for u, v in calibration.all_pairs(3)] + [("B", 0, 1)]
    pairs += [("C", u, v) for u, v in calibration.all_pairs(3)]
    checked = 0
    for k, (axis, u, v) in enumerate(pairs):
        best = table.xs(axis)[table.xs(axis)["best"]].index[0]
        if str(u) != best:
            continue  # the table shows each level against the best one
        row = table.loc[(axis, str(v))]
        assert np.log1p(row["delta"]) == pytest.approx(tests["mean"][0, k], rel=1e-9)
        assert np.log1p(row["delta_ci_high"]) == pytest.approx(tests["high"][0, k], rel=1e-9)
        assert row["p_adj"] == pytest.approx(tests["p_adj"][0, k], rel=1e-9)
        assert row["seeds"] == 4
        checked += 1
    assert checked >= 2  # each axis's best is the first level here (its true effect is 0)
