"""The figure of merit the analysis ranks by: the BER ratio to MAP or the achievable-rate gap.

A spec's top-level ``metric`` (``grid.spec``; ``symgrid report --metric`` overrides it) names it:

- ``ber_ratio_map`` (default: the lecture's question is BER): analysed on the log scale, as each
  trial's ``log_ratio_map`` (mean over Eb/N0 points of the log of the continuity-corrected point
  ratio to bitwise MAP on the same samples). Levels are shown as ``exp(mean)`` (a geometric-mean
  ratio, 1 = optimal) and differences as relative changes ``exp(d) - 1``.
- ``rate_gap``: the exact MAP posterior's bit-metric decoding rate minus the detector's, in
  bits/symbol (mean over points; 0 = optimal), analysed and shown on its own linear scale.

Lower is better for both. Runs recorded before trials stored ``log_ratio_map`` get it as
``log(ber_ratio_map)`` (the arithmetic mean of point ratios then: close, not equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

__all__ = ["DEFAULT", "METRICS", "Merit", "merit", "metric_of", "point_scores", "scores"]

DEFAULT = "ber_ratio_map"  # the lecture's figure of merit; rate_gap is for coded systems


@dataclass(frozen=True)
class Merit:
    """How one figure of merit is analysed and written."""

    name: str  # the spec's value and the trials column ranked
    column: str  # the column analysed (the response ``y``)
    label: str  # how a level's score reads in sentences and figure axes
    log: bool  # analysed as a log; shown as exp(mean), differences as exp(d) - 1
    optimal: float  # the score of the optimal detector, on the shown scale
    digits: int  # decimals of a shown score

    def show(self, y):
        """A mean of ``y`` on the shown scale (a geometric-mean ratio, or bits/symbol)."""
        return np.exp(y) if self.log else y

    def change(self, d):
        """A difference of ``y`` on the shown scale (relative change, or bits/symbol)."""
        return np.expm1(d) if self.log else d

    def diff_text(self, d: float, signed: bool = False) -> str:
        """A shown difference as text: ``3.2 %`` or ``0.0041 bits/symbol``."""
        if pd.isna(d):
            return ""
        sign = ("+" if d >= 0 else "−") if signed else ""
        return f"{sign}{100 * abs(d):.1f} %" if self.log else f"{sign}{abs(d):.4f} bits/symbol"


METRICS = {
    "ber_ratio_map": Merit("ber_ratio_map", "log_ratio_map", "BER ratio to MAP", True, 1.0, 4),
    "rate_gap": Merit("rate_gap", "rate_gap", "rate gap to MAP (bits/symbol)", False, 0.0, 4),
}


def merit(name: str | None) -> Merit:
    """The :class:`Merit` called ``name`` (None: the default)."""
    return METRICS[name or DEFAULT]


def metric_of(spec_text: str) -> str:
    """The ``metric`` key of a run's spec.yaml text (the default when absent or unreadable)."""
    try:
        raw = yaml.safe_load(spec_text) if spec_text else None
    except yaml.YAMLError:
        return DEFAULT
    value = raw.get("metric") if isinstance(raw, dict) else None
    return value if value in METRICS else DEFAULT


def column_or_derived(frame: pd.DataFrame, m: Merit, derived) -> pd.Series:
    """``frame[m.column]`` where recorded, else ``derived()`` (older runs); NaN where neither."""
    recorded = pd.to_numeric(frame[m.column], errors="coerce") if m.column in frame else None
    if recorded is None or recorded.isna().all():
        return derived() if m.log else pd.Series(np.nan, index=frame.index)
    return recorded


def scores(trials: pd.DataFrame, m: Merit) -> pd.Series:
    """Each trial's response ``y`` (``log_ratio_map`` or ``rate_gap``), NaN where unknown."""

    def derived() -> pd.Series:
        ratio = pd.to_numeric(trials.get("ber_ratio_map"), errors="coerce")
        return np.log(ratio.where(ratio > 0))

    return column_or_derived(trials, m, derived).astype(float)


def point_scores(ber: pd.DataFrame, m: Merit) -> pd.Series:
    """Each (trial, Eb/N0) row's response: the point's log ratio to MAP or its rate gap."""
    from symgrid.trainables.metrics import ratio_to_map  # the continuity correction, once

    def derived() -> pd.Series:
        return pd.Series(np.log(ratio_to_map(ber["errors"], ber["errors_map"])), index=ber.index)

    return column_or_derived(ber, m, derived).astype(float)
