"""The live progress of ``symgrid run``: trials done (diverged among them), running, failed,
retries, ETA.

Kept by counting Tune's trial events, so each step of Tune's control loop costs O(1) however many
trials the grid has (listing every trial's state on every step is O(N) per step). A terminal gets
one line redrawn in place; a log file (stderr not a TTY) gets plain lines, at most one every
:data:`LOG_EVERY_S` and one at least every :data:`LOG_QUIET_S` while nothing changes, and no
escape or carriage-return characters. A retry gets a line of its own with its error's last line,
and so does a run where nothing has moved for :data:`STALL_S`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ray import tune
from symgrid.trainables.messages import clock

__all__ = ["Progress"]

REFRESH_S = 1.0  # a terminal line is redrawn at most once a second
LOG_EVERY_S = 10.0  # a log file gets at most one line per 10 s (a 4,050-trial grid: ~hundreds)
LOG_QUIET_S = 60.0  # and one a minute while nothing changes, so a stalled run shows its clock
WAITING_NOTE_S = 10.0  # no trial running for this long: say how many wait for resources
# No trial started, reported, ended or retried for this long: say so (a stalled storage is retried
# for about a minute before a trial gives up). SYMGRID_STALL_S sets another period (tests).
STALL_S = float(os.environ.get("SYMGRID_STALL_S", 60))


class Progress(tune.Callback):
    """Trials done/total (diverged), running, failed, retries and an ETA (Ray's table when
    verbose).

    ``started``: ``time.monotonic()`` when the command started, so the clock counts Ray's start
    too; default now.
    """

    def __init__(self, name: str, total: int, verbose: bool, started: float | None = None):
        self.name, self.total, self.verbose = name, total, verbose
        self.started = time.monotonic() if started is None else started
        self.shown, self.drawn, self.idle_since = None, 0.0, time.monotonic()
        self.done = self.diverged = self.failed = self.counted_at_start = None
        self.running: set[str] = set()
        self.retries, self.moved, self.stall_said = 0, time.monotonic(), 0.0

    def setup(self, **info):
        # This process's clock: a resumed run restores this callback from the last run's state.
        self.moved = self.idle_since = time.monotonic()

    def on_step_end(self, iteration, trials, **info):
        if self.verbose:
            return
        if self.done is None:  # once: what a resumed run had finished before
            ended = [t for t in trials if t.status == "TERMINATED"]
            self.done = len(ended)
            self.diverged = sum(diverged(t) for t in ended)
            self.failed = sum(t.status == "ERROR" for t in trials)
            self.counted_at_start = self.done
        self.say_if_stalled()
        self.show(final=False)

    def show(self, final: bool) -> None:
        counts = (self.done or 0, self.diverged or 0, len(self.running), self.failed or 0)
        counts += (self.retries,)
        since = time.monotonic() - self.drawn
        if sys.stderr.isatty():
            if final or since >= REFRESH_S:
                end = "\n" if final else "\r"
                print(self.line(*counts).ljust(80), end=end, file=sys.stderr, flush=True)
                self.drawn = time.monotonic()
            return
        changed = counts != self.shown
        if final and changed or since >= (LOG_EVERY_S if changed else LOG_QUIET_S):
            print(self.line(*counts), file=sys.stderr, flush=True)
            self.shown, self.drawn = counts, time.monotonic()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.moved = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.moved = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended(trial)
        self.done = (self.done or 0) + 1
        self.diverged = (self.diverged or 0) + diverged(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.ended(trial)
        self.retries += 1
        if not self.verbose:
            error = last_error_line(trial.error_file)
            what = f"{trial.config.get('trial', trial.trial_id)} retry {trial.num_failures}"
            self.say(f"[{self.name}] {what}: {error}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended(trial)
        self.failed = (self.failed or 0) + 1

    def ended(self, trial) -> None:
        self.running.discard(trial.trial_id)
        self.moved = time.monotonic()
        if not self.running:
            self.idle_since = time.monotonic()

    def say_if_stalled(self) -> None:
        """One line when nothing has moved for STALL_S (then again every STALL_S)."""
        now = time.monotonic()
        if now - self.moved < STALL_S or now - self.stall_said < STALL_S:
            return
        self.stall_said = now
        self.say(
            f"[{self.name}] nothing has moved for {clock(now - self.moved)}: "
            f"{len(self.running)} trials running, waiting on them (or on the storage)"
        )

    def say(self, text: str) -> None:
        """A line of its own (the live progress line is drawn again after it)."""
        end = "\n" if not sys.stderr.isatty() else " " * 8 + "\n"
        print(text, end=end, file=sys.stderr, flush=True)
        self.shown, self.drawn = None, 0.0

    def line(self, done: int, diverged: int, running: int, failed: int, retries: int = 0) -> str:
        elapsed = time.monotonic() - self.started
        text = f"[{self.name}] {done}/{self.total} done"
        text += f" ({diverged} diverged)" if diverged else ""
        text += f", {running} running, {failed} failed"
        text += f", {retries} retries" if retries else ""
        text += f", {clock(elapsed)} elapsed"
        waiting = self.total - done - failed - running
        idle = time.monotonic() - self.idle_since
        if running == 0 and waiting > 0 and idle >= WAITING_NOTE_S:
            text += f", {waiting} waiting {clock(idle)} for resources (`ray status` says which)"
        finished_here = done - (self.counted_at_start or 0)
        if finished_here > 0 and done + failed < self.total:
            text += f", ETA {clock(elapsed / finished_here * (self.total - done - failed))}"
        return text

    def on_experiment_end(self, trials, **info):
        if not self.verbose:
            self.show(final=True)


def diverged(trial) -> bool:
    """Whether an ended trial's final report says it diverged (``trainables.tune_adapter``)."""
    return (trial.last_result or {}).get("status") == "diverged"


def last_error_line(error_file: str | None) -> str:
    """The last line of the error Tune wrote for a trial (its file holds every failure)."""
    try:
        lines = Path(error_file).read_text().strip().splitlines() if error_file else []
    except OSError:
        lines = []
    return lines[-1][:300] if lines else "error"
