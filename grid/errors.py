"""The one-line errors of a run (no Ray here: the CLI and the API catch them before Ray loads)."""

from __future__ import annotations

__all__ = ["RunError", "TablesError"]


class RunError(RuntimeError):
    """A run that cannot start (one line, shown to the user with exit code 2)."""


class TablesError(RuntimeError):
    """The trials ran but their tables could not be built (one line: how to rebuild them)."""
