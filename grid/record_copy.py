"""Each trial's records copied from the shared storage into ``DIR/trials/`` as the trial ends.

With ``--storage`` the trials write their records to the storage; a storage that loses its data
(a server without persistence, a deleted bucket) would take every finished trial with it if the
records reached the run folder only at the end. :class:`CopyRecords` is a Tune callback on the
driver: when a trial ends it hands the copy of that trial's folder (a few small files) to a thread
pool, so Tune's control loop only pays for queueing it. A copy that fails is left to the end of
the run (``RecordStore.copy_to`` copies whatever is not there yet) and to ``symgrid resume``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ray import tune
from symgrid.trainables.records import RecordStore
from symgrid.trainables.storage_io import StorageUnreachable

__all__ = ["CopyRecords", "copy_records"]

OFF_ENV = "SYMGRID_COPY_RECORDS"  # "0" turns the copy off (benchmarks/scale.py measures its cost)
COPY_THREADS = 4  # a trial's folder is 4 small files; a few copies at once keep up with 2 ends/s


class CopyRecords(tune.Callback):
    """Copy each ended trial's folder from ``store`` into ``local`` in the background.

    ``driver_s`` is the time Tune's loop spent in this callback, ``copy_s`` the copy threads'.
    """

    def __init__(self, store: RecordStore, local: Path):
        self.store, self.local = store, Path(local)
        self.pool: ThreadPoolExecutor | None = None  # started with the first copy
        self.failed: list[tuple[str, str]] = []
        self.copied, self.driver_s, self.copy_s = 0, 0.0, 0.0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.submit(trial.config["trial"])

    def on_trial_error(self, iteration, trials, trial, **info):
        self.submit(trial.config["trial"])

    def submit(self, trial_id: str) -> None:
        start = time.perf_counter()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="copy-records")
        self.pool.submit(self.copy, trial_id)
        self.driver_s += time.perf_counter() - start

    def copy(self, trial_id: str) -> None:
        start = time.perf_counter()
        try:
            if self.store.copy_trial(trial_id, self.local):
                self.copied += 1
        except (StorageUnreachable, OSError) as err:  # no retry here: the run's end copies it
            self.failed.append((trial_id, str(err)))
        finally:
            self.copy_s += time.perf_counter() - start

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self) -> None:
        """Wait for the copies in flight (before the end of the run copies the rest)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment
        return {**self.__dict__, "pool": None}


def copy_records(records: str, out: Path) -> list[CopyRecords]:
    """The callback for a run whose records are not written into ``out/trials`` directly."""
    if records == str(out / "trials") or os.environ.get(OFF_ENV) == "0":
        return []  # the trials write into DIR/trials themselves
    return [CopyRecords(RecordStore(records), out / "trials")]
