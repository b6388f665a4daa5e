"""What a spec costs and how ``symgrid validate`` shows it: work totals, measured-rate estimates,
and the text."""

from __future__ import annotations

import math
import os
import textwrap
from typing import TYPE_CHECKING

from symgrid.grid.cost import grid_cost
from symgrid.grid.display import axis_options, flow
from symgrid.trainables.messages import clock

if TYPE_CHECKING:
    from symgrid.grid.expand import TrialSpec
    from symgrid.grid.spec import Spec

__all__ = ["describe", "estimate"]


def estimate(spec: Spec, trials: list[TrialSpec], slots: int | None = None) -> dict:
    """Upper bounds on the work of ``trials`` (early stopping ends some sooner).

    Output
    ------
    dict: ``trials``; ``epochs`` (summed); ``train_symbols`` (sum of epochs x train.symbols);
    ``eval_points`` (Eb/N0 points, summed); from measured rates (``grid.cost``):
    ``train_core_h``, ``eval_core_h``, and ``wall_s`` with ``slots`` trials at once (default:
    this machine's cores over the CPUs a trial asks for).
    """
    train = [t.config["train"] for t in trials]
    slots = slots or max(1, int((os.cpu_count() or 1) // spec.resources.cpu))
    return {
        "trials": len(trials),
        "epochs": sum(t["epochs"] for t in train),
        "train_symbols": sum(t["epochs"] * t["symbols"] for t in train),
        "eval_points": sum(len(t.config["eval"]["ebno_db"]) for t in trials),
        **grid_cost([t.config for t in trials], slots),
    }


def describe(spec: Spec, slots: int | None = None) -> str:
    """The text ``symgrid validate`` prints: axes, trial count, resources and cost."""
    trials, total = spec.trials, math.prod(len(values) for values in spec.axes.values())
    cost = estimate(spec, trials, slots)
    lines = textwrap.wrap(f"{spec.name}: {spec.description}", 100, subsequent_indent="  ")
    lines.append("axes (crossed in this order):" if spec.axes else "axes: none (the base alone)")
    for axis, options in axis_options(spec.axes).items():
        lines.append(f"  {axis:<24} {', '.join(str(shown) for _, shown in options)}")
    lines += [f"exclude {flow(rule)}" for rule in spec.exclude]
    lines += [
        f"trials: {len(trials):,} ({total:,} crossed, {total - len(trials):,} excluded)",
        f"resources per trial: cpu {spec.resources.cpu:g}, gpu {spec.resources.gpu}; "
        f"max_failures {spec.max_failures}",
        f"work: {cost['epochs']:,} epochs, {cost['train_symbols']:.3g} training symbols, "
        f"{cost['eval_points']:,} BER points",
        f"cost: ~{cost['train_core_h']:.2g} core-hours training + {cost['eval_core_h']:.2g} "
        f"evaluation; ~{clock(cost['wall_s'])} wall with {cost['slots']} trials at once "
        "(rates measured on a 2-core CPU machine: grid/rates.json)",
    ]
    return "\n".join(lines)
