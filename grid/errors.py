"""The one-line errors of a run (no Ray here: the CLI and the API catch them before Ray loads)."""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_IO", "RunError", "TablesError"]

EXIT_BAD_INPUT = 2  # bad input: one line naming the field, nothing written
EXIT_IO = 1  # a file that could not be read or written (or a trial that failed)
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C: a run stopped before every trial ended


class RunError(RuntimeError):
    """A run that cannot start (one line, shown to the user with exit code 2)."""


class TablesError(RuntimeError):
    """The trials ran but their tables could not be built (one line: how to rebuild them)."""
