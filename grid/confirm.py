"""``symgrid confirm DIR --top K --seeds S``: the K best settings of a run, on S fresh seeds.

A grid search picks its winner by sorting noisy estimates, so the winner's screening estimate is
optimistic (winner's curse) and two seeds rarely separate the top settings. The confirmation run
re-measures the top K settings on S seeds the parent never used: fresh training data, test
samples and initial weights. It is an ordinary run folder whose ``run.json`` names its parent and
the chosen settings, and whose ``spec.yaml`` is the parent's spec with the axes narrowed to the
values those settings use and the fresh seeds; the trials are the chosen settings alone (its plan).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from symgrid.analysis.collect import ReportError, load_run
from symgrid.analysis.merit import metric_of
from symgrid.analysis.stats import ranking, setting_keys
from symgrid.grid.source import SpecError
from symgrid.grid.spec import Spec, TrialSpec, axis_options, load_spec, parse_spec

__all__ = ["confirm_spec"]


def top_settings(parent: Path, top: int) -> tuple[list[dict], list]:
    """The ``top`` best settings of the parent run (axis -> display value) and its seeds."""
    try:
        run = load_run(parent)
    except ReportError as err:
        raise SpecError(str(parent), str(err)) from None
    ranked = ranking(run.trials, run.ber, run.axes, metric_of(run.spec_text))  # the spec's merit
    if ranked.empty:
        raise SpecError(str(parent), "no completed trials to confirm")
    keys = [k for k in setting_keys(run.axes) if k in ranked]
    plain = lambda v: v.item() if hasattr(v, "item") else v  # noqa: E731  (numpy -> JSON)
    chosen = [{k: plain(row[k]) for k in keys} for _, row in ranked.head(top).iterrows()]
    return chosen, sorted(int(s) for s in run.trials["seed"].dropna().unique())


def narrowed_axes(spec: Spec, chosen: list[dict]) -> dict[str, list[tuple]]:
    """Each non-seed axis with only the values the chosen settings use: ``(raw, display)``."""
    options, axes = axis_options(spec.axes), {}
    for axis in chosen[0]:
        shown = {str(c[axis]) for c in chosen}
        axes[axis] = [(raw, disp) for raw, disp in options[axis] if str(disp) in shown]
    return axes


def select(trials: tuple[TrialSpec, ...], chosen: list[dict]) -> list[TrialSpec]:
    """The trials whose setting (display values of the chosen axes) is one of ``chosen``, in
    expansion order, numbered ``t0000``... again."""
    wanted = {tuple(str(c[a]) for a in chosen[0]) for c in chosen}
    kept = [t for t in trials if tuple(str(t.axes[a]) for a in chosen[0]) in wanted]
    return [dataclasses.replace(t, trial_id=f"t{i:04d}") for i, t in enumerate(kept)]


def confirm_spec(parent: Path, top: int, seeds: int) -> tuple[Spec, list[TrialSpec], dict]:
    """The confirmation spec, its trials and what ``run.json`` records about the parent.

    Output
    ------
    spec : the parent's spec, its axes narrowed to the values the ``top`` settings use, its seed
        axis ``seeds`` fresh seeds (its crossing can hold combinations no chosen setting is)
    trials : the chosen settings on every fresh seed (``top x seeds``, fewer if the parent had
        fewer settings); the plan and ``run.json``'s ``confirm.settings`` record them
    link : ``{"parent": ..., "confirm": {"top", "seeds", "settings"}}`` for ``run.json``
    """
    parent = Path(parent).resolve()
    if not (parent / "spec.yaml").exists():
        raise SpecError(str(parent), "not a symgrid run folder (no spec.yaml)")
    spec = load_spec(str(parent / "spec.yaml"), allow_large=True)
    chosen, used = top_settings(parent, top)
    fresh = list(range(max(used, default=-1) + 1, max(used, default=-1) + 1 + seeds))
    axes = narrowed_axes(spec, chosen)
    plain = yaml.safe_load((parent / "spec.yaml").read_text())
    plain.update(
        name=f"{spec.name}-confirm",
        description=f"the {len(chosen)} best settings of {parent} on {seeds} fresh seeds",
        axes={**{a: [raw for raw, _ in vals] for a, vals in axes.items()}, "seed": fresh},
    )  # the parent's exclude rules stay: they keep out the combinations no trial can run
    text = yaml.safe_dump(plain, sort_keys=False, default_flow_style=None, width=100)
    new = parse_spec(plain, source=text, allow_large=True)
    link = {"parent": str(parent), "confirm": {"top": top, "seeds": fresh, "settings": chosen}}
    return new, select(new.trials, chosen), link
