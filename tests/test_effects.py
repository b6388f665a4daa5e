"""Main effects, interactions and confirmation on a real small grid, and against closed forms.

The grid has an axis that cannot matter (``bce`` and ``bce_logits`` are the same maths: the same
seed trains the same detector) and one that must (Adam at lr 3e-4 for 24 steps is far from
trained; at 0.02 it is much closer to MAP). Their verdicts are checked, and the same numbers are
recomputed independently with scipy from the trials table.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from runfolder import make_run_folder
from scipy import stats
from symgrid.analysis import effects
from symgrid.analysis.collect import load_run
from symgrid.analysis.derive import analyze
from symgrid.analysis.findings import axis_findings, interaction_sentence, ranking_sentence
from symgrid.analysis.report import write_report
from symgrid.grid.confirm import confirm_spec
from symgrid.grid.spec import expand, load_spec

from symgrid.api import confirm as api_confirm

SPEC = """\
name: effects
description: an axis that cannot matter (bce vs bce_logits) and one that must (learning rate)
base:
  train: {ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 512, epochs: 3}
  model: {hidden: [16]}
  optimizer: {name: adam, lr: 0.02}
  eval: {ebno_db: [0, 6], min_errors: 50, max_bits: 1.0e+5, biasvar_symbols: 256}
axes:
  loss: [bce, bce_logits]
  optimizer.lr: [0.0003, 0.02]
  seed: [0, 1, 2]
"""
AXES = ["loss", "optimizer.lr", "seed"]


def grid_of(spec) -> list[tuple[str, dict, dict]]:
    return [(t.trial_id, t.axes, t.config) for t in expand(spec)]


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """The grid above, trained without Ray into a run folder with a real spec.yaml."""
    out = tmp_path_factory.mktemp("effects")
    (out / "spec.yaml").write_text(SPEC)
    spec = load_spec(str(out / "spec.yaml"))
    make_run_folder(out, grid=grid_of(spec), axes=AXES)
    (out / "spec.yaml").write_text(SPEC)  # make_run_folder writes its own placeholder spec
    return out


@pytest.fixture(scope="module")
def table(grid_run):
    return pd.read_parquet(grid_run / "effects.parquet")


@pytest.mark.slow
def test_effects_parquet_has_the_issue_columns(table):
    need = {"axis", "level", "trials", "score", "ci_low", "ci_high", "delta", "delta_ci_low"}
    need |= {"delta_ci_high", "p_adj", "significant", "seeds", "identical_to", "metric"}
    assert need <= set(table.columns)
    assert set(table["axis"]) == {"loss", "optimizer.lr"}  # the seed is a block, not a factor
    assert (table["trials"] == 6).all()


@pytest.mark.slow
def test_the_axis_that_cannot_matter_is_identical_not_tested(grid_run, table):
    loss = table[table["axis"] == "loss"].set_index("level")
    assert not loss["significant"].any()
    trials = pd.read_parquet(grid_run / "trials.parquet")
    # Same maths, same seed: the very same detector, so the trials are identical one for one.
    pairs = trials.pivot_table(
        index=["optimizer.lr", "seed"], columns="loss", values="ber_ratio_map"
    )
    np.testing.assert_array_equal(pairs["bce"], pairs["bce_logits"])
    assert loss.loc["bce_logits", "identical_to"] == "bce" and loss.loc["bce", "best"]
    assert np.isnan(loss.loc["bce_logits", "p_adj"])  # reported as identical, never tested
    lr = table[table["axis"] == "optimizer.lr"]
    assert lr["p_adj"].dropna().iloc[0] == pytest.approx(lr["p"].dropna().iloc[0])  # family: 1
    run = load_run(grid_run)
    result = analyze(run, write=False)
    sentence = dict(axis_findings(result.effects, result.interactions, result.conditional_best))
    assert "bce_logits is identical to bce trial for trial (not tested)" in sentence["loss"]
    # The best two settings are bce and bce_logits at lr 0.02: the same model, not a ranking.
    assert result.best["identical"]
    best = ranking_sentence(result.best, result.ranking)
    assert "gave identical results seed for seed (the same model)" in best


@pytest.mark.slow
def test_the_axis_that_matters_is_significant_in_the_right_direction(grid_run, table):
    lr = table[table["axis"] == "optimizer.lr"].set_index("level")
    assert lr.loc["0.02", "best"] and not lr.loc["0.0003", "best"]
    bad = lr.loc["0.0003"]
    assert bad["significant"] and bad["delta"] > 0.5 and bad["delta_ci_low"] > 0
    # Independently: per seed, the mean over the loss blocks of the log-ratio difference; a
    # t-test over the 3 seeds (2 df). The family is this one pair (loss's levels are identical).
    trials = pd.read_parquet(grid_run / "trials.parquet")
    wide = trials.pivot_table(
        index=["seed", "loss"], columns="optimizer.lr", values="ber_ratio_map"
    )
    d = (np.log(wide[0.0003]) - np.log(wide[0.02])).groupby(level="seed").mean()
    test = stats.ttest_1samp(d, 0.0)
    assert bad["p"] == pytest.approx(test.pvalue, rel=1e-9) and bad["seeds"] == 3
    assert bad["delta"] == pytest.approx(np.expm1(d.mean()), rel=1e-9)
    low, high = test.confidence_interval(0.95)
    assert (bad["delta_ci_low"], bad["delta_ci_high"]) == pytest.approx(
        (np.expm1(low), np.expm1(high)), rel=1e-9
    )


@pytest.mark.slow
def test_findings_say_which_level_is_best_and_what_is_indistinguishable(grid_run):
    run = load_run(grid_run)
    result = analyze(run, write=False)
    sentences = dict(axis_findings(result.effects, result.interactions, result.conditional_best))
    assert sentences["optimizer.lr"].startswith("optimizer.lr: 0.02 is best")
    assert "0.0003 is " in sentences["optimizer.lr"] and "% worse" in sentences["optimizer.lr"]
    assert sentences["loss"].startswith("loss: no level is distinguishable from the best")
    assert "Bonferroni 95 %" in sentences["optimizer.lr"]


@pytest.mark.slow
def test_confirmation_spec_narrows_to_the_top_settings_on_fresh_seeds(grid_run):
    spec, trials, link = confirm_spec(grid_run, top=3, seeds=2)
    assert link["parent"] == str(grid_run.resolve())
    assert link["confirm"]["seeds"] == [3, 4]  # the parent used 0, 1, 2
    settings = {(t.axes["loss"], t.axes["optimizer.lr"]) for t in trials}
    assert len(settings) == 3 and len(trials) == 6
    assert {t.axes["seed"] for t in trials} == {3, 4}
    assert ("bce", 0.02) in settings and ("bce_logits", 0.02) in settings


@pytest.fixture(scope="module")
def confirmed(grid_run, tmp_path_factory):
    """The confirmation run of the top 3 settings on 3 fresh seeds (trained without Ray)."""
    spec, trials, link = confirm_spec(grid_run, top=3, seeds=3)
    out = tmp_path_factory.mktemp("confirm")
    make_run_folder(out, grid=[(t.trial_id, t.axes, t.config) for t in trials], axes=AXES)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, **link}))
    return out


@pytest.mark.slow
def test_the_confirmation_run_says_whether_the_winner_held(confirmed):
    result = analyze(load_run(confirmed), write=False)
    table = result.confirmation
    assert list(table["screening_rank"]) == [1, 2, 3]
    assert (table["confirmed_seeds"] == 3).all()
    # The third setting is the bad learning rate: much worse than the winner on fresh seeds.
    third = table.iloc[2]
    assert "optimizer.lr=0.0003" in third["setting"]
    assert third["delta_vs_winner"] > 0.5 and third["significant"]
    # The top two (bce and bce_logits at lr 0.02) are the same maths: on fresh seeds either may
    # come first, so the verdict must say whether the screening winner has the lowest ratio.
    best = table.loc[table["confirmed_score"].idxmin(), "setting"]
    assert "optimizer.lr=0.02" in best
    held = best == table.iloc[0]["setting"]
    assert result.verdict["held"] == held and result.verdict["best"] == best
    page = write_report([confirmed]).read_text()
    said = "The screening winner held" if held else "The screening winner did not hold"
    assert "Confirmation on fresh seeds" in page and said in page


def test_interaction_is_tested_on_per_seed_cell_means():
    """The F-test uses the seed as the replicate: the cells are averaged over the other axis
    within each seed first, so the error has (I-1)(J-1)(seeds-1) df, not one per trial."""
    rng = np.random.default_rng(7)
    rows = [
        {"a": a, "b": b, "c": c, "seed": s, "status": "completed"}
        for a in ("x", "y", "z")
        for b in ("p", "q")
        for c in range(3)
        for s in range(4)
    ]
    frame = pd.DataFrame(rows)
    crossed = (frame["a"] == "z") & (frame["b"] == "q")  # the effect of a depends on b
    y = 0.02 * rng.standard_normal(len(frame)) + np.where(crossed, 0.3, 0.0)
    frame["ber_ratio_map"] = np.exp(1.0 + y)
    table = effects.interactions_table(frame, ["a", "b", "c", "seed"]).set_index(
        ["axis_a", "axis_b"]
    )
    result = table.loc[("a", "b")]
    cells = frame.assign(y=y).groupby(["seed", "a", "b"])["y"].mean().to_numpy().reshape(4, 3, 2)
    r = cells - cells.mean(2, keepdims=True) - cells.mean(1, keepdims=True)
    r += cells.mean((1, 2), keepdims=True)
    f = (4 * (r.mean(0) ** 2).sum() / 2) / (((r - r.mean(0)) ** 2).sum() / 6)
    assert result["F"] == pytest.approx(f, rel=1e-9)
    assert result["df_num"] == 2 and result["df_den"] == 6 and result["seeds"] == 4
    assert result["p"] == pytest.approx(stats.f.sf(f, 2, 6), rel=1e-9)
    assert result["significant"] and not table.loc[("a", "c"), "significant"]


def test_no_interaction_when_the_effects_add():
    rng = np.random.default_rng(3)
    rows = [{"a": a, "b": b, "seed": s} for a in range(3) for b in range(2) for s in range(4)]
    frame = pd.DataFrame(rows).assign(status="completed")
    y = 0.1 * frame["a"] + 0.05 * frame["b"] + 0.02 * rng.standard_normal(len(frame))
    frame["ber_ratio_map"] = np.exp(y)
    table = effects.interactions_table(frame, ["a", "b", "seed"])
    assert not table["significant"].any()
    main = effects.effects_table(frame, ["a", "b", "seed"])
    assert main.set_index(["axis", "level"]).loc[("a", "2"), "significant"]


@pytest.mark.slow
def test_confirm_command_runs_the_narrowed_trials_linked_to_the_parent(grid_run, monkeypatch):
    """The CLI hands run_grid the top settings on fresh seeds and the parent link (Ray itself
    is exercised by tests/test_run.py; the README's confirm run is the end-to-end check)."""
    from symgrid.grid import result as grid_result_module
    from symgrid.grid import run as grid_run_module
    from symgrid.grid.cli import main

    seen = {}

    def fake_run_grid(spec, trials, out, **kwargs):
        seen.update(spec=spec, trials=trials, out=out, **kwargs)
        return 0

    monkeypatch.setattr(grid_run_module, "run_grid", fake_run_grid)
    monkeypatch.setattr(grid_result_module, "conclude", lambda out, code, skip: (None, code))
    assert main(["confirm", str(grid_run), "--top", "2", "--seeds", "3", "--no-report"]) == 0
    assert seen["out"] == grid_run.parent / f"{grid_run.name}-confirm"
    assert seen["run_facts"]["parent"] == str(grid_run.resolve())
    assert seen["spec"].name == "effects-confirm" and len(seen["trials"]) == 6
    assert {t.axes["seed"] for t in seen["trials"]} == {3, 4, 5}


def crossed_grid(effect_by_r: dict, seeds: int = 5, noise: float = 0.005) -> pd.DataFrame:
    """Axis a (a0, a1) x r (r0, r1, r2) x seed: a1's log-ratio effect at each level of r."""
    rng = np.random.default_rng(2)
    rows = []
    for s in range(seeds):
        luck = 0.05 * rng.standard_normal()  # the seed's own, shared by its settings
        for r, effect in effect_by_r.items():
            for a in ("a0", "a1"):
                y = luck + (effect if a == "a1" else 0.0) + noise * rng.standard_normal()
                rows.append({"a": a, "r": r, "seed": s, "status": "completed", "y": y})
    return pd.DataFrame(rows).assign(ber_ratio_map=lambda f: np.exp(f["y"]))


def sentences(trials: pd.DataFrame, axes: list[str]) -> dict:
    main = effects.effects_table(trials, axes)
    inter = effects.interactions_table(trials, axes)
    cond = effects.conditional_best(trials, inter, main, axes)
    return dict(axis_findings(main, inter, cond))


def test_a_crossing_interaction_leads_the_axis_sentence():
    """a1 is 4 % worse at r0 and r1 and 5 % better at r2: the main effect (about +1 %) hides
    it, so the sentence opens with the conditional effects, each with its test."""
    trials = crossed_grid({"r0": 0.04, "r1": 0.04, "r2": -0.05})
    text = sentences(trials, ["a", "r", "seed"])["a"]
    assert text.startswith("a acts in opposite directions by r: given r = r0, a1 is 4.")
    assert re.search(r"given r = r2, a1 is [45]\.\d % better than a0 \(−", text)
    assert "Averaged over the other axes" in text
    assert "the best level depends on r (tested)" in text


def test_the_best_level_depends_only_when_a_test_says_so():
    """An interaction that changes margins (a1 10 % worse at r0, 2 % at r1 and r2) must not be
    read as "the best level depends on r"."""
    trials = crossed_grid({"r0": 0.10, "r1": 0.02, "r2": 0.02})
    text = sentences(trials, ["a", "r", "seed"])["a"]
    assert "Interaction with r (significant)" in text
    assert "changes margins, not the best level" in text and "depends on r" not in text


def test_not_distinguishable_says_how_large_a_difference_the_data_allow():
    trials = crossed_grid({"r0": 0.0, "r1": 0.0, "r2": 0.0}, noise=0.02)
    table = effects.effects_table(trials, ["a", "r", "seed"])
    other = table[(table["axis"] == "a") & ~table["best"]].iloc[0]
    far = max(abs(other["delta_ci_low"]), abs(other["delta_ci_high"]))
    text = sentences(trials, ["a", "r", "seed"])["a"]
    assert "not distinguishable" in text and f"the data still allow up to {100 * far:.1f} %" in text


def test_too_few_seeds_is_said_plainly():
    trials = crossed_grid({"r0": 0.2, "r1": 0.2, "r2": 0.2}, seeds=2)
    text = sentences(trials, ["a", "r", "seed"])["a"]
    assert text.startswith("a: too few seeds to separate settings (2 seeds")
    assert "%" not in text  # no interval printed as a finding


def test_a_pair_that_cannot_be_tested_is_named_with_the_reason():
    trials = crossed_grid({"r0": 0.01, "r1": 0.0, "r2": 0.0})
    trials = trials[~((trials["a"] == "a1") & (trials["r"] == "r2"))]  # not crossed
    inter = effects.interactions_table(trials, ["a", "r", "seed"])
    text = interaction_sentence(inter)
    assert "not tested: a × r (levels not crossed: no completed trial has a=a1 with r=r2)" in text


def test_the_rate_gap_is_analysed_on_its_own_scale():
    trials = crossed_grid({"r0": 0.0, "r1": 0.0, "r2": 0.0}).assign(
        rate_gap=lambda f: 0.01 + 0.002 * (f["a"] == "a1") + 0.0001 * f["y"]
    )
    table = effects.effects_table(trials, ["a", "r", "seed"], "rate_gap").set_index("level")
    d = trials.pivot_table(index=["seed", "r"], columns="a", values="rate_gap")
    d = (d["a1"] - d["a0"]).groupby(level="seed").mean()
    assert table.loc["a1", "delta"] == pytest.approx(d.mean(), rel=1e-9)  # bits, not exp(d) - 1
    assert table.loc["a0", "score"] == pytest.approx(
        trials[trials["a"] == "a0"].groupby("seed")["rate_gap"].mean().mean(), rel=1e-9
    )
    assert (table["metric"] == "rate_gap").all()
    assert "bits/symbol" in effects_sentence_for(trials, "a")


def effects_sentence_for(trials: pd.DataFrame, axis: str) -> str:
    main = effects.effects_table(trials, ["a", "r", "seed"], "rate_gap")
    inter = effects.interactions_table(trials, ["a", "r", "seed"], "rate_gap")
    cond = effects.conditional_best(trials, inter, main, ["a", "r", "seed"], "rate_gap")
    return dict(axis_findings(main, inter, cond))[axis]


@pytest.mark.slow
def test_the_api_confirm_hands_run_grid_the_chosen_settings_only(grid_run, monkeypatch, tmp_path):
    """``symgrid.confirm``: the top settings on fresh seeds, no other combination of their
    values (the narrowed axes cross into more), linked to the parent."""
    import symgrid.grid.result as grid_result_module
    import symgrid.grid.run as grid_run_module

    seen = {}

    def fake_run_grid(spec, trials, out, **kwargs):
        seen.update(spec=spec, trials=trials, out=out, **kwargs)
        return 0

    monkeypatch.setattr(grid_run_module, "run_grid", fake_run_grid)
    monkeypatch.setattr(grid_result_module, "conclude", lambda out, code, skip: (None, code))
    result = api_confirm(grid_run, top=2, seeds=2, out=tmp_path / "c", report=False)
    assert result.code == 0 and seen["out"] == tmp_path / "c"
    settings = seen["run_facts"]["confirm"]["settings"]
    chosen = {tuple(str(s[a]) for a in settings[0]) for s in settings}
    got = [tuple(str(t.axes[a]) for a in settings[0]) for t in seen["trials"]]
    assert set(got) == chosen and len(got) == 2 * 2
    assert [t.trial_id for t in seen["trials"]] == ["t0000", "t0001", "t0002", "t0003"]


def test_no_level_is_reported_better_than_the_best_when_exclusions_unbalance_the_grid():
    """a2 exists only at r0 (as label smoothing only with some losses). Over the blocks where
    every level completed (r0 alone) a0 looks best, yet a1 is 12.5 % better than a0 over the
    blocks both share: the best level is the one the paired contrasts rank first."""
    rng = np.random.default_rng(4)
    effect = {("r0", "a0"): 0.0, ("r0", "a1"): 0.05, ("r0", "a2"): 0.1}
    effect |= {("r1", "a0"): 0.3, ("r1", "a1"): 0.0}
    rows = [
        {"a": a, "r": r, "seed": s, "status": "completed", "y": y + 0.002 * rng.standard_normal()}
        for s in range(5)
        for (r, a), y in effect.items()
    ]
    trials = pd.DataFrame(rows).assign(ber_ratio_map=lambda f: np.exp(f["y"]))
    table = effects.effects_table(trials, ["a", "r", "seed"]).set_index(["axis", "level"])
    assert table.loc[("a", "a1"), "best"]
    others = table.loc["a"].drop(index="a1")
    assert (others["delta"] > 0).all(), others  # none better than the best
