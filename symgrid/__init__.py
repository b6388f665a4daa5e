"""symgrid: Ray-distributed experiment grids for learned QAM demappers, measured against the
optimal (bitwise MAP) detector.

The Python API (``symgrid.api``; README "Python API")::

    import symgrid
    run = symgrid.run("quick", out="results/quick", num_cpus=2)   # or a spec dict
    run.effects                       # pandas DataFrames: trials, epochs, ber, effects, ...
    symgrid.load("results/quick").report()
    tune.Tuner(symgrid.trainable, param_space={...})   # any Ray Tune searcher and scheduler

The repository's folders are the package's parts (``pyproject.toml`` maps them):
``symgrid.trainables`` (one trial), ``symgrid.grid`` (what to run), ``symgrid.analysis`` (what it
means). Nothing is installed under a top-level ``grid``, ``trainables`` or ``analysis``.
"""

from symgrid.api import (
    Run,
    SymgridError,
    Validation,
    confirm,
    load,
    resume,
    run,
    validate,
)

__all__ = [
    "Run",
    "SymgridError",
    "Validation",
    "confirm",
    "load",
    "resume",
    "run",
    "trainable",
    "validate",
]


def __getattr__(name: str):
    if name == "trainable":  # imports Ray and torch: only when asked for
        from symgrid.trainables.tune_adapter import search_trainable

        return search_trainable
    raise AttributeError(f"module 'symgrid' has no attribute {name!r}")
