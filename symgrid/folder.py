"""A run folder in Python: :func:`load` and :class:`Run` (its tables, spec, report, findings)."""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import TYPE_CHECKING

from symgrid.errors import one_line

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Run", "load"]


def load(path: str | Path) -> Run:
    """A finished or interrupted run folder (its tables are rebuilt when records are newer)."""
    result = Run(path)
    result.trials  # noqa: B018  (a folder that is not a run is an error here, not later)
    return result


class Run:
    """A run folder: its tables as pandas DataFrames, its spec and ``run.json``, its report.

    Tables: ``trials`` (one row per trial: axes, status, summary figures), ``epochs``, ``ber``
    (per Eb/N0 point, with the MAP detector's BER), and the statistics ``effects``,
    ``interactions``, ``bias_variance`` (read from the folder when current, else computed).
    ``code``: the exit code of the run or resume that returned it (None from :func:`load`).
    """

    def __init__(self, path: str | Path, code: int | None = None, result=None):
        self.path, self.code = Path(path).resolve(), code
        self.result = result  # grid.result.RunResult: counts, best setting, score, report

    def __repr__(self) -> str:
        return f"symgrid.Run({str(self.path)!r}, trials={len(self.trials)})"

    @functools.cached_property
    def folder(self):
        """The run as the analysis reads it (``analysis.collect.Run``)."""
        from symgrid.analysis.collect import load_run

        with one_line():
            return load_run(self.path)

    @property
    def info(self) -> dict:
        """``run.json``: name, spec hash, command, trial count, where things are, times."""
        return self.folder.info

    @property
    def name(self) -> str:
        return self.folder.name

    @functools.cached_property
    def spec(self):
        """The run's resolved spec (``DIR/spec.yaml``) as a ``grid.spec.Spec``."""
        from symgrid.grid.spec import load_spec

        with one_line():
            return load_spec(str(self.path / "spec.yaml"), allow_large=True)

    @property
    def trials(self) -> pd.DataFrame:
        return self.folder.trials

    @property
    def epochs(self) -> pd.DataFrame:
        return self.folder.epochs

    @property
    def ber(self) -> pd.DataFrame:
        return self.folder.ber

    @property
    def effects(self) -> pd.DataFrame:
        return self.derived("effects")

    @property
    def interactions(self) -> pd.DataFrame:
        return self.derived("interactions")

    @property
    def bias_variance(self) -> pd.DataFrame:
        return self.derived("bias_variance")

    def derived(self, name: str) -> pd.DataFrame:
        """A statistics table (``analysis.derive.statistics`` reads it, or computes it once)."""
        return getattr(self.statistics, {"bias_variance": "biasvar"}.get(name, name))

    @functools.cached_property
    def statistics(self):
        """``analysis.derive.Statistics``: ranking, effects, interactions, bias-variance."""
        from symgrid.analysis.derive import statistics

        with one_line():
            return statistics(self.folder)

    def report(self, out: str | Path | None = None) -> Path:
        """Write the HTML report (default ``DIR/report``); its path."""
        from symgrid.analysis.report import write_report

        with one_line():
            return write_report([self.path], Path(out) if out is not None else None)

    def findings(self) -> list[str]:
        """The report's findings as sentences: the best setting, each axis, interactions."""
        from symgrid.analysis import findings

        s = self.statistics
        lines = [findings.ranking_sentence(s.best, s.ranking, not s.parent)]
        if s.parent:
            lines.append(findings.confirmation_sentence(s.verdict, s.parent))
        lines += [
            line
            for _, line in findings.axis_findings(s.effects, s.interactions, s.conditional_best)
        ]
        return [*lines, findings.interaction_sentence(s.interactions)]

    def _repr_html_(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.trials["status"].value_counts().items())
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.findings() if line)
        head = f"<b>{html.escape(self.name)}</b> ({html.escape(str(self.path))}): {counts}"
        return f"<div>{head}<ul>{items}</ul></div>"
