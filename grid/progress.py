"""The one live progress line of ``symgrid run``: trials done/total, running, failed, and an ETA.

Kept by counting Tune's trial events, so each step of Tune's control loop costs O(1) however many
trials the grid has (listing every trial's state on every step is O(N) per step).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ray import tune

REFRESH_S = 1.0  # a terminal line is redrawn at most once a second
# No trial started, reported, ended or retried for this long: say so (a stalled storage is retried
# for about a minute before a trial gives up). SYMGRID_STALL_S sets another period (tests).
STALL_S = float(os.environ.get("SYMGRID_STALL_S", 60))


class Progress(tune.Callback):
    """Trials done/total, running, failed and an ETA on one line (Ray's table when verbose)."""

    def __init__(self, name: str, total: int, verbose: bool):
        self.name, self.total, self.verbose = name, total, verbose
        self.started, self.shown, self.drawn = time.monotonic(), None, 0.0
        self.done = self.failed = self.counted_at_start = None
        self.running: set[str] = set()
        self.retries, self.moved, self.stall_said = 0, time.monotonic(), 0.0

    def setup(self, **info):
        # This process's clock: a resumed run restores this callback from the last run's state.
        self.started = self.moved = time.monotonic()

    def on_step_end(self, iteration, trials, **info):
        if self.verbose:
            return
        if self.done is None:  # once: what a resumed run had finished before
            self.done = sum(t.status == "TERMINATED" for t in trials)
            self.failed = sum(t.status == "ERROR" for t in trials)
            self.counted_at_start = self.done
        self.say_if_stalled()
        counts = (self.done, len(self.running), self.failed, self.retries)
        tty = sys.stderr.isatty()
        if counts == self.shown or (tty and time.monotonic() - self.drawn < REFRESH_S):
            return  # a log file gets a line per change; a terminal a redraw per second
        self.shown, self.drawn = counts, time.monotonic()
        print(self.line(*counts).ljust(80), end="\r" if tty else "\n", file=sys.stderr, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.moved = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.moved = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done = (self.done or 0) + 1

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.retries, self.moved = self.retries + 1, time.monotonic()
        if not self.verbose:
            error = last_error_line(trial.error_file)
            what = f"{trial.config.get('trial', trial.trial_id)} retry {trial.num_failures}"
            self.say(f"[{self.name}] {what}: {error}")

    def say_if_stalled(self) -> None:
        """One line when nothing has moved for STALL_S (then again every STALL_S)."""
        now = time.monotonic()
        if now - self.moved < STALL_S or now - self.stall_said < STALL_S:
            return
        self.stall_said = now
        self.say(
            f"[{self.name}] nothing has moved for {mmss(now - self.moved)}: "
            f"{len(self.running)} trials running, waiting on them (or on the storage)"
        )

    def say(self, text: str) -> None:
        """A line of its own (the live progress line is drawn again after it)."""
        end = "\n" if not sys.stderr.isatty() else " " * 8 + "\n"
        print(text, end=end, file=sys.stderr, flush=True)
        self.shown = None

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed = (self.failed or 0) + 1

    def line(self, done: int, running: int, failed: int, retries: int = 0) -> str:
        elapsed = time.monotonic() - self.started
        text = f"[{self.name}] {done}/{self.total} done, {running} running, {failed} failed"
        text += f", {retries} retries" if retries else ""
        text += f", {mmss(elapsed)} elapsed"
        finished_here = done - (self.counted_at_start or 0)
        if finished_here > 0:
            text += f", ETA {mmss(elapsed / finished_here * (self.total - done - failed))}"
        return text

    def on_experiment_end(self, trials, **info):
        if not self.verbose and sys.stderr.isatty():
            print(file=sys.stderr)


def last_error_line(error_file: str | None) -> str:
    """The last line of the error Tune wrote for a trial (its file holds every failure)."""
    try:
        lines = Path(error_file).read_text().strip().splitlines() if error_file else []
    except OSError:
        lines = []
    return lines[-1][:300] if lines else "error"


def mmss(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
