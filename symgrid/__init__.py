"""symgrid: Ray-distributed experiment grids for learned QAM demappers, measured against the
optimal (bitwise MAP) detector.

The repository's folders are the package's parts (``pyproject.toml`` maps them):
``symgrid.trainables`` (one trial), ``symgrid.grid`` (what to run), ``symgrid.analysis`` (what it
means). Nothing is installed under a top-level ``grid``, ``trainables`` or ``analysis``.
"""
