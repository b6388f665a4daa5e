"""``symgrid confirm DIR --top K --seeds S``: the K best settings of a run, on S fresh seeds.

A grid search picks its winner by sorting noisy estimates, so the winner's screening estimate is
optimistic (winner's curse) and two seeds rarely separate the top settings. The confirmation run
re-measures the top K settings on S seeds the parent never used: fresh training data, test
samples and initial weights. It is an ordinary run folder whose ``run.json`` names its parent,
and whose ``spec.yaml`` reproduces it (the parent's spec with the axes narrowed to the chosen
values, the fresh seeds, and exclude rules that drop every other combination).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml
from symgrid.analysis.collect import ReportError, load_run
from symgrid.analysis.merit import metric_of
from symgrid.analysis.stats import ranking, setting_keys
from symgrid.grid.source import SpecError
from symgrid.grid.spec import Spec, TrialSpec, axis_options, expand, load_spec, parse_spec

NAMED_AXES = ("loss", "scheduler", "regularization")  # a bare name there matches any parameters
MAX_EXCLUDE_RULES = 10_000  # top settings that differ in many axes cross into too many rules


def exact(axis: str, raw: object) -> object:
    """An exclude value that matches only this option (a bare name matches any parameters)."""
    if axis in NAMED_AXES and isinstance(raw, str) and raw != "none":
        return {"name": raw}
    return raw


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
    options, axes = axis_options(spec), {}
    for axis in chosen[0]:
        shown = {str(c[axis]) for c in chosen}
        axes[axis] = [(raw, disp) for raw, disp in options[axis] if str(disp) in shown]
    return axes


def exclude_rules(axes: dict[str, list[tuple]], wanted: set[tuple], top: int) -> list[dict]:
    """Rules that drop every crossed combination of ``axes`` whose display values are not
    ``wanted``."""
    combos = list(itertools.product(*axes.values()))
    if len(combos) - len(wanted) > MAX_EXCLUDE_RULES:
        raise SpecError("--top", f"{top} settings differ in too many axes to confirm together")
    return [
        {a: exact(a, raw) for a, (raw, _) in zip(axes, combo)}
        for combo in combos
        if tuple(str(disp) for _, disp in combo) not in wanted
    ]


def confirm_spec(parent: Path, top: int, seeds: int) -> tuple[Spec, list[TrialSpec], dict]:
    """The confirmation spec, its trials and what ``run.json`` records about the parent.

    Output
    ------
    spec : the parent's spec narrowed to the ``top`` settings on ``seeds`` fresh seeds
    trials : its expanded trials (``top x seeds``, fewer if the parent had fewer settings)
    link : ``{"parent": ..., "confirm": {"top", "seeds", "settings"}}`` for ``run.json``
    """
    parent = Path(parent).resolve()
    if not (parent / "spec.yaml").exists():
        raise SpecError(str(parent), "not a symgrid run folder (no spec.yaml)")
    spec = load_spec(str(parent / "spec.yaml"), allow_large=True)
    chosen, used = top_settings(parent, top)
    fresh = list(range(max(used, default=-1) + 1, max(used, default=-1) + 1 + seeds))
    axes = narrowed_axes(spec, chosen)
    wanted = {tuple(str(c[a]) for a in axes) for c in chosen}
    exclude = exclude_rules(axes, wanted, top)
    plain = yaml.safe_load((parent / "spec.yaml").read_text())
    plain.update(
        name=f"{spec.name}-confirm",
        description=f"the {len(chosen)} best settings of {parent} on {seeds} fresh seeds",
        axes={**{a: [raw for raw, _ in vals] for a, vals in axes.items()}, "seed": fresh},
        exclude=exclude,
    )
    text = yaml.safe_dump(plain, sort_keys=False, default_flow_style=None, width=100)
    new = parse_spec(plain, source=text, allow_large=True)
    trials = expand(new)
    got = {tuple(str(t.axes[a]) for a in axes) for t in trials}
    assert got == wanted and len(trials) == len(wanted) * seeds, (got, wanted)
    link = {"parent": str(parent), "confirm": {"top": top, "seeds": fresh, "settings": chosen}}
    return new, trials, link
