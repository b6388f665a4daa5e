"""A spec's identity: the resolved YAML written to ``DIR/spec.yaml`` and the hash run.json keeps.

Both are functions of the parsed spec's fields (its expanded trials and source text aside), so a
field added to :class:`~grid.spec.Spec` enters both without a change here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

import yaml
from symgrid.trainables.config import config_to_dict
from symgrid.trainables.config import parse_trial_config as parse_trial
from symgrid.trainables.schema import to_plain

if TYPE_CHECKING:
    from symgrid.grid.spec import Spec

__all__ = ["resolved_yaml", "spec_hash"]

# Sections whose cross-field checks look at which keys were written, not only at their values.
PRESENCE_SENSITIVE = ("model", "optimizer")
NOT_IDENTITY = ("source", "trials")  # the text as written, and what the fields expand to


def plain(spec: Spec) -> dict:
    """The spec as data, its base resolved, except a model or optimizer section whose name an
    axis varies: a resolved default could clash with the other name (sgd's momentum with adam)."""
    base = config_to_dict(parse_trial(spec.base))
    for section in PRESENCE_SENSITIVE:
        if section in spec.axes or f"{section}.name" in spec.axes:
            base[section] = dict(spec.base.get(section) or {})
    fields = [f.name for f in dataclasses.fields(spec) if f.name not in NOT_IDENTITY]
    return {**{k: to_plain(getattr(spec, k)) for k in fields}, "base": base}


def spec_hash(spec: Spec) -> str:
    """First 12 hex digits of the sha256 of the canonical JSON of the parsed spec; the base enters
    resolved, so a spec and its :func:`resolved_yaml` hash the same."""
    data = {**plain(spec), "axes": list(spec.axes.items())}  # axis order orders the trials
    del data["metric"]  # the analysis's choice, not the trials': same trials, same hash
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolved_yaml(spec: Spec) -> str:
    """The spec with its base defaults written out, for ``DIR/spec.yaml``; loads to the same
    trials."""
    header = f"# {spec.name}: base resolved by symgrid; spec_hash {spec_hash(spec)}\n"
    body = yaml.safe_dump(plain(spec), default_flow_style=None, sort_keys=False, width=100)
    return header + body
