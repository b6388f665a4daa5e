"""Ray Tune's knobs for grids of thousands of short trials, measured with benchmarks/scale.py.

A profile of the driver running 4,050 tiny trials (py-spy, README "Performance") showed where
Tune's control loop spent its time besides waiting for results: the TensorBoard logger flushing an
event file per result and per trial end (21 %), Tune's FIFO scheduler scanning every trial for the
next pending one on every decision (10 %, O(N) per decision), and the experiment-state snapshot
(12 %, Tune's "auto" period keeps it near 5 % of the loop's time by spacing snapshots out).
"""

from __future__ import annotations

import os

import ray
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import BasicVariantGenerator

__all__ = ["EndedFirstFIFO", "SharedIdsGrid", "TUNE_ENV", "TrialIds", "loggers", "set_tune_env"]

# Set unless the environment already sets them.
TUNE_ENV = {
    # Tune's default loggers write CSV, JSON and TensorBoard files per result on the driver; only
    # result.json is used (Tune's result grid, the fault tests), added back by `loggers()`.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Experiment-state snapshots: "auto" spaces them so that they take about 5 % of the time.
    "TUNE_GLOBAL_CHECKPOINT_S": "auto",
}
# Trials Tune creates ahead of the free slots. Tune's default, 200 (or 1.1 x the cluster's CPUs),
# serves an autoscaler that sizes the cluster from the queue; each pending trial is a placement
# group request and a possible fresh actor. A couple of trials per slot keeps every slot fed.
PENDING_PER_SLOT = 2
MIN_PENDING = 16  # and enough queued demand for an autoscaler to add a few nodes at once


def set_tune_env(cpu_per_trial: float) -> None:
    """Set Tune's environment knobs for this driver (after ``ray.init``: it reads the cluster)."""
    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)
    slots = int(ray.cluster_resources().get("CPU", 1) // max(cpu_per_trial, 1e-9))
    pending = max(MIN_PENDING, PENDING_PER_SLOT * slots)
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(pending))


def loggers() -> list:
    """The one Tune logger kept: each trial's result.json (one JSON line per report)."""
    return [JsonLoggerCallback()]


class EndedFirstFIFO(FIFOScheduler):
    """Tune's FIFO order without re-reading the ended trials on every decision.

    ``FIFOScheduler.choose_trial_to_run`` scans the trial list from its start for the first
    PENDING (then PAUSED) trial. Trials are created in order and an ended one (TERMINATED, ERROR)
    never runs again within a run, so the ended prefix of the list is skipped once and remembered.
    """

    def __init__(self):
        super().__init__()
        self.ended = 0  # trials[:ended] are all TERMINATED or ERROR

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = tune_controller.get_trials()
        final = (Trial.TERMINATED, Trial.ERROR)
        if self.ended > len(trials):  # a restored run rebuilt the list
            self.ended = 0
        while self.ended < len(trials) and trials[self.ended].status in final:
            self.ended += 1
        for wanted in (Trial.PENDING, Trial.PAUSED):
            for i in range(self.ended, len(trials)):
                if trials[i].status == wanted:
                    return trials[i]
        return None


class TrialIds(list):
    """The grid's trial ids, for ``tune.grid_search``: Tune deep-copies the whole param space once
    per variant (``_grid_search_generator``), which with N ids is O(N) per trial and O(N^2) per
    grid (4,050 ids: 3.8 s before the first trial; 50,000: minutes). The ids never change, so
    every copy shares this one list (:class:`SharedIdsGrid` puts it where Tune copies it)."""

    def __deepcopy__(self, memo) -> TrialIds:
        return self


class SharedIdsGrid(BasicVariantGenerator):
    """Tune's grid-search generator, with one list of trial ids shared by every variant.

    ``tune.run`` rebuilds the param space's lists as plain lists before the variants are
    generated (its placeholder pass), so a :class:`TrialIds` given in the param space arrives as
    a plain list and every variant's deep copy copies all N ids. This generator wraps the ids
    again where Tune copies them. It takes the concurrency limit itself (``max_concurrent``;
    Tune ignores ``max_concurrent_trials`` beside a search algorithm), and a restored run keeps
    the limit it was given, not the saved one, so ``symgrid resume --max-concurrent`` applies.
    """

    def add_configurations(self, experiments) -> None:
        for experiment in experiments if isinstance(experiments, list) else [experiments]:
            config = getattr(experiment, "spec", {}).get("config", {})
            trial = config.get("trial")
            if isinstance(trial, dict) and list(trial) == ["grid_search"]:
                trial["grid_search"] = TrialIds(trial["grid_search"])
        super().add_configurations(experiments)

    def set_state(self, state: dict) -> None:
        limit = self.max_concurrent
        super().set_state(state)
        self.max_concurrent = limit
