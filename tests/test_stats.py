"""The report's intervals, tests and corrections against scipy and hand-worked examples.

Each case has a verdict that must come out one way: "significant" where the data say so, "not
significant" where they do not (including the two-seed case, whose t-test has one degree of
freedom).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp
from symgrid.analysis import compare, confirmation, effects, inference, stats
from symgrid.analysis.findings import confirmation_sentence, ranking_sentence


def test_holm_matches_a_hand_worked_example():
    # p sorted: 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = .02 .03 .06 .04,
    # made monotone (running maximum): .02 .03 .06 .06.
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert list(stats.holm(p) < stats.ALPHA) == [True, False, False, True]
    adjusted = stats.holm([0.2, np.nan, 0.01])  # NaN (no test) stays out of the family
    assert np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


@pytest.mark.slow
def test_holm_matches_statsmodels_on_random_families():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 40):
        p = rng.uniform(0, 0.2, m) ** 2  # many small values: ties of the running maximum
        p[rng.integers(m)] = p.min()  # and a tie of the p-values themselves
        expected = multipletests(p, alpha=stats.ALPHA, method="holm")[1]
        np.testing.assert_allclose(stats.holm(p), expected, rtol=1e-12)


def test_mean_interval_matches_a_hand_worked_t_interval_and_scipy():
    # mean 3, s = sqrt(2.5), sem = sqrt(0.5), t(0.975, 4) = 2.776445 -> 3 ± 1.963243
    mean, low, high = stats.mean_interval(np.array([1.0, 2, 3, 4, 5]))
    assert mean == 3 and (low, high) == pytest.approx((1.036757, 4.963243), abs=1e-6)
    x = np.random.default_rng(1).normal(1.0, 0.1, 7)
    ci = sp.ttest_1samp(x, 0).confidence_interval(0.95)
    assert stats.mean_interval(x)[1:] == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert np.isnan(stats.mean_interval(np.array([2.0]))[1])  # one value: no interval


def test_paired_matches_scipy_and_separates_the_two_verdicts():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 0.05, 8)
    shifted = a + 0.1 + rng.normal(0, 0.01, 8)  # a clear, consistent shift: significant
    noisy = a + rng.normal(0, 0.05, 8)  # no shift: not significant
    for b in (shifted, noisy):
        mean, low, high, p = stats.paired(b - a)
        test = sp.ttest_rel(b, a)
        assert p == pytest.approx(test.pvalue, rel=1e-12)
        assert (low, high) == pytest.approx(tuple(test.confidence_interval(0.95)), rel=1e-12)
    assert stats.paired(shifted - a)[3] < 1e-6
    assert stats.paired(noisy - a)[3] > 0.05
    assert stats.paired(np.zeros(4))[3] == 1.0  # identical outcomes: no evidence at all


def test_mcnemar_verdict_applies_holm_across_the_points():
    points = pd.DataFrame(
        {
            "mcnemar_p": [0.001, 0.02, 0.6],  # Holm: .003, .04, .6 -> two rejected
            "n01": [40, 30, 5],  # detector wrong, MAP right
            "n10": [10, 12, 6],
        }
    )
    assert stats.mcnemar_verdict(points) == "worse at 2/3 points"
    points["mcnemar_p"] = [0.02, 0.03, 0.6]  # Holm: .06, .06, .6 -> none rejected
    assert stats.mcnemar_verdict(points) == "not distinguishable at 3/3 points"


def synthetic_trials(shift: float, seeds: int, noise: float, seed: int = 0) -> pd.DataFrame:
    """Settings A and B of one axis; B's ratio is A's times exp(shift), with per-seed noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.05, 0.05, seeds)  # the seed's own luck, shared by both settings
    rows = []
    for s in range(seeds):
        for level, effect in (("A", 0.0), ("B", shift)):
            y = base[s] + effect + rng.normal(0, noise)
            rows.append({"trial_id": f"{level}{s}", "status": "completed", "x": level, "seed": s})
            rows[-1]["ber_ratio_map"] = float(np.exp(y))
    return pd.DataFrame(rows)


def no_points(trials: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(columns=["trial_id", "ebno_db", "ber", "ber_map", "mcnemar_p"])


def test_ranking_interval_is_a_t_interval_over_seeds():
    trials = synthetic_trials(0.1, seeds=5, noise=0.01)
    table = stats.ranking(trials, no_points(trials), ["x", "seed"])
    top = table.iloc[0]
    logs = np.log(trials.loc[trials["x"] == "A", "ber_ratio_map"])  # the log scale, shown as exp
    low, high = np.exp(sp.t.interval(0.95, 4, logs.mean(), sp.sem(logs)))
    assert top["setting"] == "x=A" and top["interval"] == "t over 5 seeds"
    assert top["score"] == pytest.approx(np.exp(logs.mean()), rel=1e-12)  # geometric mean
    assert (top["ci_low"], top["ci_high"]) == pytest.approx((low, high), rel=1e-12)


def test_best_vs_runner_up_is_paired_by_seed():
    trials = synthetic_trials(0.1, seeds=5, noise=0.01)
    table = stats.ranking(trials, no_points(trials), ["x", "seed"])
    result = stats.best_vs_runner_up(trials, table, ["x", "seed"])
    a = np.log(trials[trials["x"] == "A"].sort_values("seed")["ber_ratio_map"].to_numpy())
    b = np.log(trials[trials["x"] == "B"].sort_values("seed")["ber_ratio_map"].to_numpy())
    assert result["p"] == pytest.approx(sp.ttest_rel(b, a).pvalue, rel=1e-12)
    assert result["delta"] == pytest.approx(np.expm1((b - a).mean()), rel=1e-12)
    assert result["significant"] and result["seeds"] == 5
    assert "significantly better than the runner-up" in ranking_sentence(result, table)


def test_two_seeds_cannot_separate_a_small_lead():
    # A 1 % lead with 1 % seed-to-seed noise: one degree of freedom cannot establish it.
    trials = synthetic_trials(0.01, seeds=2, noise=0.01, seed=4)
    table = stats.ranking(trials, no_points(trials), ["x", "seed"])
    result = stats.best_vs_runner_up(trials, table, ["x", "seed"])
    assert not result["significant"] and result["seeds"] == 2
    text = ranking_sentence(result, table)
    assert "too few seeds to separate settings (2 seeds" in text
    assert "selected as the lowest of 2 settings" in text and "optimistic" in text
    assert "symgrid confirm" in text  # the winner's curse is named, with the way out


def test_effects_delta_and_verdicts_on_a_synthetic_factorial():
    rng = np.random.default_rng(5)
    rows = []
    for a in ("a0", "a1", "a2"):
        for b in ("b0", "b1"):
            for s in range(4):
                y = {"a0": 0.0, "a1": 0.05, "a2": 0.0}[a] + 0.01 * rng.standard_normal()
                rows.append({"a": a, "b": b, "seed": s, "status": "completed", "y": y})
    trials = pd.DataFrame(rows).assign(ber_ratio_map=lambda f: np.exp(f["y"]))
    table = effects.effects_table(trials, ["a", "b", "seed"]).set_index(["axis", "level"])
    best = table.xs("a")[table.xs("a")["best"]].index[0]
    assert best in ("a0", "a2")
    other_null = "a2" if best == "a0" else "a0"
    assert table.loc[("a", "a1"), "significant"]  # 5 % worse: must be found
    assert not table.loc[("a", other_null), "significant"]  # no effect: must not be
    assert not table.loc[("b", "b1" if table.loc[("b", "b0"), "best"] else "b0"), "significant"]
    # The a1 row by hand: per seed, the mean over its 2 blocks (b) of the difference; a t-test
    # over the 4 seeds (3 df); Bonferroni over the family: 3 pairs of a, 1 of b.
    wide = trials.pivot_table(index=["seed", "b"], columns="a", values="y")
    d = (wide["a1"] - wide[best]).groupby(level="seed").mean()
    row = table.loc[("a", "a1")]
    assert row["delta"] == pytest.approx(np.expm1(d.mean()), rel=1e-12)
    assert row["p"] == pytest.approx(sp.ttest_1samp(d, 0).pvalue, rel=1e-12)
    assert row["p_adj"] == pytest.approx(min(1, 4 * row["p"]), rel=1e-12)
    low, high = sp.ttest_1samp(d, 0).confidence_interval(1 - 0.05 / 4)  # simultaneous interval
    assert (row["delta_ci_low"], row["delta_ci_high"]) == pytest.approx(
        (np.expm1(low), np.expm1(high)), rel=1e-9
    )
    assert row["seeds"] == 4


def test_seed_intervals_agree_with_their_tests():
    """Bonferroni: significant exactly when the interval excludes 0, for any family size."""
    rng = np.random.default_rng(3)
    d = rng.normal(0.02, 0.02, (2000, 4))  # 2000 contrasts over 4 seeds
    for m in (1, 7, 40):
        tests = inference.seed_intervals(d, m)
        excludes = (tests["low"] > 0) | (tests["high"] < 0)
        np.testing.assert_array_equal(excludes, tests["p_adj"] < inference.ALPHA)
        ci = sp.ttest_1samp(d[0], 0).confidence_interval(1 - 0.05 / m)
        assert (tests["low"][0], tests["high"][0]) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_interaction_f_is_the_blocked_anova_with_seed_as_block():
    """Against statsmodels: the a:b F with the a:b:seed mean square as its error (the model
    with seed, seed x a, seed x b and a x b; its residual is a x b x seed)."""
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(8)
    cells = rng.normal(0, 0.05, (4, 3, 2))  # [seeds, a, b]
    cells[:, 2, 1] += 0.08  # the effect of a depends on b
    test = inference.interaction_f(cells)
    frame = pd.DataFrame(
        [(s, a, b, cells[s, a, b]) for s in range(4) for a in range(3) for b in range(2)],
        columns=["s", "a", "b", "y"],
    ).astype({"s": str, "a": str, "b": str})
    fit = ols("y ~ C(s) * C(a) + C(s) * C(b) + C(a):C(b)", data=frame).fit()
    table = anova_lm(fit, typ=2)
    assert test["F"] == pytest.approx(table.loc["C(a):C(b)", "F"], rel=1e-8)
    assert test["df_num"] == 2 and test["df_den"] == fit.df_resid == 6
    assert test["p"] == pytest.approx(table.loc["C(a):C(b)", "PR(>F)"], rel=1e-8)


def confirm_fixture(winner_shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A screening ranking of settings A, B and a confirmation where B is shifted."""
    screening = pd.DataFrame(
        {
            "rank": [1, 2],
            "setting": ["x=A", "x=B"],
            "seeds": [2, 2],
            "score": [1.01, 1.02],
            "ci_low": [0.9, 0.9],
            "ci_high": [1.1, 1.1],
        }
    )
    trials = synthetic_trials(winner_shift, seeds=5, noise=0.01, seed=9)
    return screening, trials


def test_confirmation_says_the_winner_held():
    screening, trials = confirm_fixture(0.1)  # B is 10 % worse on the fresh seeds
    table = confirmation.confirmation_table(screening, trials, no_points(trials), ["x", "seed"])
    verdict = confirmation.verdict(table)
    assert verdict["held"] and verdict["worse"] == ["x=B"]
    assert table.loc[1, "p_adj"] == pytest.approx(
        sp.ttest_rel(
            np.log(trials[trials["x"] == "B"]["ber_ratio_map"].to_numpy()),
            np.log(trials[trials["x"] == "A"]["ber_ratio_map"].to_numpy()),
        ).pvalue
    )
    assert confirmation_sentence(verdict, "DIR").startswith("The screening winner held")


def test_confirmation_says_the_winner_did_not_hold():
    screening, trials = confirm_fixture(-0.1)  # B is 10 % better on the fresh seeds
    table = confirmation.confirmation_table(screening, trials, no_points(trials), ["x", "seed"])
    verdict = confirmation.verdict(table)
    assert not verdict["held"] and verdict["best"] == "x=B" and verdict["beaten_by"] == ["x=B"]
    text = confirmation_sentence(verdict, "DIR")
    assert text.startswith("The screening winner did not hold") and "significantly" in text


def test_runs_side_by_side_keep_shared_rows_in_the_first_runs_order():
    first = pd.DataFrame(
        {
            "setting": ["s2", "s1", "only-here"],
            "score": [1.0, 1.1, 1.2],
            "ci_low": [0.9, 1.0, np.nan],
            "ci_high": [1.1, 1.2, np.nan],
        }
    )
    second = first.iloc[[1, 0]].assign(score=[1.05, 1.15])
    table = compare.settings_across({"A": first, "B": second})
    assert list(table["setting"]) == ["s2", "s1"]  # best first; a setting of one run left out
    assert list(table.columns) == ["setting", "A", "B"]
    assert table.iloc[0]["A"] == "1.0000 (0.9000-1.1000)"
    assert table.iloc[0]["B"] == "1.1500 (0.9000-1.1000)"


def test_not_distinguishable_from_map_says_how_far_off_the_data_allow():
    trials = synthetic_trials(0.1, seeds=5, noise=0.01)
    points = trials[["trial_id"]].assign(ebno_db=0.0, mcnemar_p=0.5, n01=10, n10=10)
    table = stats.ranking(trials, points, ["x", "seed"])
    top = table.iloc[0]
    assert top[stats.VERDICT] == (
        f"not distinguishable at 5/5 points; the data allow up to {top['ci_high']:.4f}"
    )


def test_a_best_setting_below_map_is_never_called_better_than_optimal():
    trials = synthetic_trials(0.1, seeds=5, noise=0.01).assign(
        ber_ratio_map=lambda f: f["ber_ratio_map"] * 0.9  # A's geometric mean is below 1
    )
    table = stats.ranking(trials, no_points(trials), ["x", "seed"])
    assert table.iloc[0]["score"] < 1
    text = ranking_sentence(stats.best_vs_runner_up(trials, table, ["x", "seed"]), table)
    assert (
        "not a detector better than bitwise MAP" in text and "selected as the lowest of 2" in text
    )
