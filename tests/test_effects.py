"""Main effects, interactions and confirmation on a real small grid, and against closed forms.

The grid has an axis that cannot matter (``bce`` and ``bce_logits`` are the same maths: the same
seed trains the same detector) and one that must (Adam at lr 3e-4 for 24 steps is far from
trained; at 0.02 it is much closer to MAP). Their verdicts are checked, and the same numbers are
recomputed independently with scipy from the trials table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from runfolder import make_run_folder
from scipy import stats
from symgrid.analysis import effects
from symgrid.analysis.collect import load_run
from symgrid.analysis.derive import analyze
from symgrid.analysis.findings import axis_findings
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
    need = {"axis", "level", "trials", "ratio", "ci_low", "ci_high", "delta", "delta_ci_low"}
    need |= {"delta_ci_high", "p_adj", "significant"}
    assert need <= set(table.columns)
    assert set(table["axis"]) == {"loss", "optimizer.lr"}  # the seed is a block, not a factor
    assert (table["trials"] == 6).all()


@pytest.mark.slow
def test_the_axis_that_cannot_matter_is_not_significant(grid_run, table):
    loss = table[table["axis"] == "loss"].set_index("level")
    assert not loss["significant"].any()
    trials = pd.read_parquet(grid_run / "trials.parquet")
    # Same maths, same seed: the very same detector, so every paired difference is 0.
    pairs = trials.pivot_table(
        index=["optimizer.lr", "seed"], columns="loss", values="ber_ratio_map"
    )
    np.testing.assert_allclose(pairs["bce"], pairs["bce_logits"], rtol=1e-3)
    other = loss[~loss["best"]].iloc[0]
    assert abs(other["delta"]) < 1e-3 and other["p_adj"] > 0.5


@pytest.mark.slow
def test_the_axis_that_matters_is_significant_in_the_right_direction(grid_run, table):
    lr = table[table["axis"] == "optimizer.lr"].set_index("level")
    assert lr.loc["0.02", "best"] and not lr.loc["0.0003", "best"]
    bad = lr.loc["0.0003"]
    assert bad["significant"] and bad["delta"] > 0.5 and bad["delta_ci_low"] > 0
    # Independently: paired t-test of log ratios matched on (loss, seed), Holm over the family.
    trials = pd.read_parquet(grid_run / "trials.parquet")
    wide = trials.pivot_table(
        index=["loss", "seed"], columns="optimizer.lr", values="ber_ratio_map"
    )
    test = stats.ttest_rel(np.log(wide[0.0003]), np.log(wide[0.02]))
    assert bad["p"] == pytest.approx(test.pvalue, rel=1e-9)
    d = np.log(wide[0.0003]) - np.log(wide[0.02])
    assert bad["delta"] == pytest.approx(np.expm1(d.mean()), rel=1e-9)
    low, high = test.confidence_interval(0.95)
    assert (bad["delta_ci_low"], bad["delta_ci_high"]) == pytest.approx(
        (np.expm1(low), np.expm1(high)), rel=1e-9
    )
    finite = table["p"].dropna().sort_values()  # Holm: m * p for the smallest p
    assert table["p_adj"].min() == pytest.approx(min(1, len(finite) * finite.iloc[0]))


@pytest.mark.slow
def test_findings_say_which_level_is_best_and_what_is_indistinguishable(grid_run):
    run = load_run(grid_run)
    result = analyze(run, write=False)
    sentences = dict(axis_findings(result.effects, result.interactions, result.conditional_best))
    assert sentences["optimizer.lr"].startswith("optimizer.lr: 0.02 is best")
    assert "0.0003 is " in sentences["optimizer.lr"] and "% worse" in sentences["optimizer.lr"]
    assert sentences["loss"].startswith("loss: no level is distinguishable from the best")


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
    best = table.loc[table["confirmed_ratio"].idxmin(), "setting"]
    assert "optimizer.lr=0.02" in best
    held = best == table.iloc[0]["setting"]
    assert result.verdict["held"] == held and result.verdict["best"] == best
    page = write_report([confirmed]).read_text()
    said = "The screening winner held" if held else "The screening winner did not hold"
    assert "Confirmation on fresh seeds" in page and said in page


def test_interaction_f_matches_a_hand_computed_nested_model_comparison():
    rng = np.random.default_rng(7)
    rows = [
        {"a": a, "b": b, "seed": s, "status": "completed"}
        for a in ("x", "y", "z")
        for b in ("p", "q")
        for s in range(4)
    ]
    frame = pd.DataFrame(rows)
    crossed = (frame["a"] == "z") & (frame["b"] == "q")  # the effect of a depends on b
    y = 0.02 * rng.standard_normal(len(frame)) + np.where(crossed, 0.3, 0.0)
    frame["ber_ratio_map"] = np.exp(1.0 + y)
    result = effects.interactions_table(frame, ["a", "b", "seed"]).iloc[0]
    # Residual sums of squares of the additive and the interaction model, by least squares.
    dummies = lambda cols: pd.get_dummies(frame[cols].astype(str), drop_first=True)  # noqa: E731
    additive = pd.concat([dummies(["a", "b", "seed"])], axis=1)
    cells = pd.get_dummies(frame["a"] + frame["b"], drop_first=True)
    full = pd.concat([additive, cells], axis=1)

    def rss(x: pd.DataFrame) -> tuple[float, int]:
        x = np.column_stack([np.ones(len(frame)), x.to_numpy(float)])
        coef, *_ = np.linalg.lstsq(x, np.log(frame["ber_ratio_map"]), rcond=None)
        resid = np.log(frame["ber_ratio_map"]) - x @ coef
        return float(resid @ resid), len(frame) - np.linalg.matrix_rank(x)

    (rss0, df0), (rss1, df1) = rss(additive), rss(full)
    f = ((rss0 - rss1) / (df0 - df1)) / (rss1 / df1)
    assert result["F"] == pytest.approx(f, rel=1e-6)
    assert result["df_num"] == df0 - df1 == 2 and result["df_den"] == df1
    assert result["p"] == pytest.approx(stats.f.sf(f, df0 - df1, df1), rel=1e-6)
    assert result["significant"]


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
    from symgrid.grid import run as grid_run_module
    from symgrid.grid.cli import main

    seen = {}

    def fake_run_grid(spec, trials, out, **kwargs):
        seen.update(spec=spec, trials=trials, out=out, **kwargs)
        return 0

    monkeypatch.setattr(grid_run_module, "run_grid", fake_run_grid)
    assert main(["confirm", str(grid_run), "--top", "2", "--seeds", "3", "--no-report"]) == 0
    assert seen["out"] == grid_run.parent / f"{grid_run.name}-confirm"
    assert seen["extra"]["parent"] == str(grid_run.resolve())
    assert seen["spec"].name == "effects-confirm" and len(seen["trials"]) == 6
    assert {t.axes["seed"] for t in seen["trials"]} == {3, 4, 5}


@pytest.mark.slow
def test_the_api_confirm_hands_run_grid_the_chosen_settings_only(grid_run, monkeypatch, tmp_path):
    """``symgrid.confirm``: the top settings on fresh seeds, no other combination of their
    values (the narrowed axes cross into more), linked to the parent."""
    import symgrid.grid.run as grid_run_module

    seen = {}

    def fake_run_grid(spec, trials, out, **kwargs):
        seen.update(spec=spec, trials=trials, out=out, **kwargs)
        return 0

    monkeypatch.setattr(grid_run_module, "run_grid", fake_run_grid)
    result = api_confirm(grid_run, top=2, seeds=2, out=tmp_path / "c", report=False)
    assert result.code == 0 and seen["out"] == tmp_path / "c"
    settings = seen["extra"]["confirm"]["settings"]
    chosen = {tuple(str(s[a]) for a in settings[0]) for s in settings}
    got = [tuple(str(t.axes[a]) for a in settings[0]) for t in seen["trials"]]
    assert set(got) == chosen and len(got) == 2 * 2
    assert [t.trial_id for t in seen["trials"]] == ["t0000", "t0001", "t0002", "t0003"]
