"""The one live progress line of ``symgrid run``: trials done/total, running, failed, and an ETA.

Kept by counting Tune's trial events, so each step of Tune's control loop costs O(1) however many
trials the grid has (listing every trial's state on every step is O(N) per step).
"""

from __future__ import annotations

import sys
import time

from ray import tune

REFRESH_S = 1.0  # a terminal line is redrawn at most once a second


class Progress(tune.Callback):
    """Trials done/total, running, failed and an ETA on one line (Ray's table when verbose)."""

    def __init__(self, name: str, total: int, verbose: bool):
        self.name, self.total, self.verbose = name, total, verbose
        self.started, self.shown, self.drawn = time.monotonic(), None, 0.0
        self.done = self.failed = self.counted_at_start = None
        self.running: set[str] = set()

    def on_step_end(self, iteration, trials, **info):
        if self.verbose:
            return
        if self.done is None:  # once: what a resumed run had finished before
            self.done = sum(t.status == "TERMINATED" for t in trials)
            self.failed = sum(t.status == "ERROR" for t in trials)
            self.counted_at_start = self.done
        counts = (self.done, len(self.running), self.failed)
        tty = sys.stderr.isatty()
        if counts == self.shown or (tty and time.monotonic() - self.drawn < REFRESH_S):
            return  # a log file gets a line per change; a terminal a redraw per second
        self.shown, self.drawn = counts, time.monotonic()
        print(self.line(*counts).ljust(80), end="\r" if tty else "\n", file=sys.stderr, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done = (self.done or 0) + 1

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed = (self.failed or 0) + 1

    def line(self, done: int, running: int, failed: int) -> str:
        elapsed = time.monotonic() - self.started
        text = f"[{self.name}] {done}/{self.total} done, {running} running, {failed} failed"
        text += f", {mmss(elapsed)} elapsed"
        finished_here = done - (self.counted_at_start or 0)
        if finished_here > 0:
            text += f", ETA {mmss(elapsed / finished_here * (self.total - done - failed))}"
        return text

    def on_experiment_end(self, trials, **info):
        if not self.verbose and sys.stderr.isatty():
            print(file=sys.stderr)


def mmss(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
