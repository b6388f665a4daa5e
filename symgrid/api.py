"""The Python API: what the ``symgrid`` command does, as functions that return results.

Every function raises :class:`SymgridError` for bad input or a run that cannot start: one line,
the text ``symgrid`` prints after ``symgrid: error:``. Runs print the same progress as the CLI
(stderr). Ray and torch load when a run starts, not on ``import symgrid``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from symgrid.errors import SymgridError, one_line
from symgrid.folder import Run, load
from symgrid.grid.errors import EXIT_INTERRUPTED

__all__ = ["Run", "SymgridError", "Validation", "confirm", "load", "resume", "run", "validate"]

RAY_OPTIONS = ("address", "num_cpus", "num_gpus", "max_concurrent")  # resume may change these


def load_any_spec(spec: str | Path | Mapping, yes: bool = False):
    """A path, a preset name or a dict (handed whole to the spec loader) as a parsed Spec."""
    from symgrid.grid.spec import load_spec, parse_spec

    with one_line():
        if isinstance(spec, Mapping):
            return parse_spec(spec, allow_large=yes)
        return load_spec(str(spec), allow_large=yes)


@dataclass(frozen=True)
class Validation:
    """What ``symgrid validate`` prints, as values: ``str()`` of it is that text."""

    name: str
    trials: int  # after exclusions
    cost: dict  # grid.describe.estimate: epochs, train_symbols, core-hours, wall_s, slots
    text: str

    def __str__(self) -> str:
        return self.text


def validate(spec: str | Path | Mapping, *, yes: bool = False, slots: int | None = None):
    """Check a spec without running it: its trial count and cost estimate (:class:`Validation`).

    ``yes`` allows more than 10,000 trials; ``slots``: trials at once for the wall time."""
    from symgrid.grid.describe import describe, estimate

    parsed = load_any_spec(spec, yes)
    cost = estimate(parsed, parsed.trials, slots)
    return Validation(parsed.name, parsed.trial_count, cost, describe(parsed, slots))


def run(
    spec: str | Path | Mapping,
    *,
    out: str | Path | None = None,
    yes: bool = False,
    address: str | None = None,
    storage: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    max_concurrent: int | None = None,
    report: bool = True,
    verbose: bool = False,
    tensorboard: bool = False,
    mlflow: str | None = None,
    overwrite: bool = False,
    command: str = "symgrid.run",
    started: float | None = None,
) -> Run:
    """Run a grid on Ray (``symgrid run``): a spec file, a preset name or a spec dict.

    Keyword arguments are the CLI's options (``out`` defaults to ``results/<name>``; ``mlflow``:
    a tracking URI, ``""`` for ``DIR/mlflow``, None for no MLflow; ``overwrite`` removes a run
    already in ``out`` completely first). Returns the :class:`Run`; ``Run.code`` is the CLI's exit
    code (0; 1 when a trial failed; 130 when interrupted) and ``Run.result`` its answer (counts,
    best setting, score and interval, report path). ``started``: ``time.monotonic()`` when the
    caller started (the progress line's clock; default now).
    """
    started = time.monotonic() if started is None else started
    parsed = load_any_spec(spec, yes)
    folder = Path(out) if out is not None else Path("results") / parsed.name
    options = dict(address=address, storage=storage, num_cpus=num_cpus, num_gpus=num_gpus)
    options.update(max_concurrent=max_concurrent, verbose=verbose, command=command)
    options.update(overwrite=overwrite, started=started)
    if not isinstance(spec, Mapping):  # which file it came from: resume says when it changed
        from symgrid.grid.outdir import source_file

        options["run_facts"] = source_file(str(spec))
    code = launch(parsed, parsed.trials, folder, options, tensorboard, mlflow)
    return finished(folder, code, report)


def confirm(
    path: str | Path,
    *,
    top: int = 3,
    seeds: int = 5,
    out: str | Path | None = None,
    address: str | None = None,
    storage: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    max_concurrent: int | None = None,
    report: bool = True,
    verbose: bool = False,
    tensorboard: bool = False,
    mlflow: str | None = None,
    overwrite: bool = False,
    command: str = "symgrid.confirm",
    started: float | None = None,
) -> Run:
    """Re-run the ``top`` best settings of a run on ``seeds`` fresh seeds (``symgrid confirm``),
    as a run linked to its parent (default folder ``DIR-confirm``); the rest as for :func:`run`."""
    from symgrid.grid.confirm import confirm_spec
    from symgrid.trainables.network import load_classes

    started = time.monotonic() if started is None else started
    path = Path(path)
    with one_line():
        load_classes(path)  # network classes the run was given as objects
        spec, trials, link = confirm_spec(path, top, seeds)
    folder = Path(out) if out is not None else path.parent / f"{path.name}-confirm"
    options = dict(address=address, storage=storage, num_cpus=num_cpus, num_gpus=num_gpus)
    options.update(max_concurrent=max_concurrent, verbose=verbose, command=command, run_facts=link)
    options.update(overwrite=overwrite, started=started)
    code = launch(spec, trials, folder, options, tensorboard, mlflow)
    return finished(folder, code, report)


def launch(spec, trials, out: Path, options: dict, tensorboard: bool, mlflow: str | None) -> int:
    """Run the trials on Ray (``run`` and ``confirm``); the run's exit code.

    What can be refused without Ray (the folder, the resources asked against the machine) is
    refused before Ray starts, then the first line says Ray is starting (it takes seconds)."""
    from symgrid.grid import fit

    verbose = options.get("verbose", False)
    with one_line():
        if mlflow is not None:
            from symgrid.grid.tracking import check_mlflow  # imports Ray: only when asked for

            check_mlflow(mlflow, verbose)  # the extra and the server, before any folder
        ray_args = {k: options.get(k) for k in RAY_OPTIONS}
        refusal = fit.refusal(spec, len(trials), out.resolve(), options["overwrite"], ray_args)
        if not refusal and options.get("storage"):
            from symgrid.grid.storage import probe_storage  # pyarrow only: no Ray yet

            refusal = probe_storage(options["storage"])
        if refusal:
            raise SymgridError(refusal)
        starting(ray_args)
        from symgrid.grid.run import run_grid  # Ray is imported only now
        from symgrid.grid.tracking import tracking_callbacks

        return run_grid(
            spec,
            list(trials),
            out,
            tracking=lambda o: tracking_callbacks(o, spec, trials, mlflow, verbose, tensorboard),
            **options,
        )


def resume(
    path: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    max_concurrent: int | None = None,
    report: bool = True,
    verbose: bool = False,
    started: float | None = None,
) -> Run:
    """Continue an interrupted run (``symgrid resume``): finished trials are not run again.

    The Ray options may change how the run goes on (they replace the ones in run.json), never
    what it runs: the trials come from its plan. A complete run is said to be so and returned."""
    from symgrid.grid import fit
    from symgrid.grid.outdir import already_complete, note_changed_spec, run_json

    started = time.monotonic() if started is None else started
    path = Path(path)
    info = run_json(path)
    if info is None:
        raise SymgridError(f"{path}: not a symgrid run folder (no run.json)")
    note_changed_spec(path, info)
    from symgrid.grid.run import finished_before  # probes the storage: one line if it is gone

    done = None  # a damaged run.json: resume_grid says what is wrong with it
    if {"records", "plan", "trials"} <= info.keys():
        with one_line():
            done = finished_before(path.resolve(), info)
        if already_complete(path, info, len(done)):
            return Run(path, 0)
    given = dict(address=address, num_cpus=num_cpus, num_gpus=num_gpus)
    given.update(max_concurrent=max_concurrent)
    cluster = {**dict.fromkeys(RAY_OPTIONS), **(info.get("ray") or {})}
    cluster.update({k: v for k, v in given.items() if v is not None})
    refusal = fit.before_start(info.get("resources", {"cpu": 0, "gpu": 0}), cluster)
    if refusal:
        raise SymgridError(refusal)
    starting(cluster)
    from symgrid.grid.resume import resume_grid

    with one_line():
        code = resume_grid(path, given, verbose=verbose, started=started, finished=done)
    return finished(path, code, report)


def starting(ray_args: dict) -> None:
    """The first line, printed before Ray is imported (which takes seconds)."""
    if ray_args.get("address"):
        print(f"joining the Ray cluster at {ray_args['address']}…", file=sys.stderr, flush=True)
        return
    cpus = ray_args["num_cpus"] if ray_args.get("num_cpus") is not None else os.cpu_count()
    gpus = ray_args.get("num_gpus")
    gpus = f"{gpus} GPUs" if gpus is not None else "GPUs as detected"
    print(f"starting Ray ({cpus} CPUs, {gpus})…", file=sys.stderr, flush=True)


def finished(out: Path, code: int, report: bool) -> Run:
    """The run after Ray: its report (unless interrupted or not wanted) and its answer, printed
    as closing lines (``grid.result``). A report or table problem is one line on stderr saying
    how to rebuild them, and code 1, never a lost run."""
    if code == EXIT_INTERRUPTED:  # the answer comes when resume() finishes the run
        return Run(out, code)
    from symgrid.grid.result import conclude

    answer, code = conclude(out, code, not report)
    if answer is not None:
        name = Path(out).name
        print("\n".join(f"[{name}] {line}" for line in answer.lines()), file=sys.stderr)
    return Run(out, code, answer)
