"""The Ray session around a run: ``ray.init`` when Ray is not up yet, and the process-wide knobs a
run sets (Tune's environment, its loggers' levels) put back when it ends."""

from __future__ import annotations

import logging
import os

import ray
from symgrid.grid.tuning import TUNE_ENV

__all__ = ["ray_session"]

QUIET_LOGGERS = ("ray.tune", "ray.train")  # without --verbose: their tracebacks stay in DIR/ray
# Environment a run sets for Tune (grid.tuning) and Ray's console; restored when the run ends.
SESSION_ENV = ("RAY_AIR_NEW_OUTPUT", *TUNE_ENV, "TUNE_MAX_PENDING_TRIALS_PG")


class ray_session:
    """``ray.init`` for the run and ``ray.shutdown`` after, unless Ray was already up.

    The process-wide knobs a run sets (Tune's environment, its loggers' levels) are put back on
    exit: symgrid is a library too, and a user's own Tuner later in the same process (a notebook)
    gets Tune's defaults."""

    def __init__(self, address, num_cpus, num_gpus, verbose):
        local = {"num_cpus": num_cpus, "num_gpus": num_gpus, "include_dashboard": False}
        self.kwargs = {"address": address} if address else local
        self.verbose, self.owned = verbose, False

    def __enter__(self):
        self.env = {k: os.environ.get(k) for k in SESSION_ENV}
        self.levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        if not self.verbose:
            # Tune's new console output prints a config box and a TensorBoard hint even at
            # verbose=0; its legacy reporter (Ray's documented switch) prints nothing.
            os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
            # A trial's error is one line from Progress; Tune logs its whole traceback at ERROR.
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        if not ray.is_initialized():
            quiet = {} if self.verbose else {"logging_level": "ERROR", "log_to_driver": False}
            ray.init(**quiet, **self.kwargs)
            self.owned = True
        return self

    def __exit__(self, *exc):
        if self.owned:
            ray.shutdown()
        for key, value in self.env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
