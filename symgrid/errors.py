"""The API's one exception: every error of the project as one line, with the CLI's exit code."""

from __future__ import annotations

import contextlib

from symgrid.grid.errors import EXIT_BAD_INPUT, EXIT_IO

__all__ = ["SymgridError", "one_line"]


class SymgridError(Exception):
    """Bad input, or a run that cannot start or be read: ``str(err)`` is one line.

    ``code`` is the CLI's exit code for it: 2 for bad input, 1 for a file that could not be read
    or written."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def one_line():
    """The project's errors as :class:`SymgridError` (the cause kept as ``__cause__``)."""
    from symgrid.analysis.collect import ReportError
    from symgrid.grid.errors import RunError, TablesError
    from symgrid.trainables.schema import ConfigError

    try:
        yield
    except (ConfigError, RunError, ReportError) as err:  # SpecError is a ConfigError
        raise SymgridError(str(err)) from err
    except TablesError as err:  # the trials ran; `symgrid report DIR` rebuilds the tables
        raise SymgridError(str(err), EXIT_IO) from err
    except OSError as err:  # a file we could not read or write
        where = f"{err.filename}: " if err.filename else ""
        raise SymgridError(f"{where}{err.strerror or err}", EXIT_IO) from err
