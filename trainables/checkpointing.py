"""When a trial saves its training state: every K epochs, at most once per T seconds, and always
after its last epoch.

A checkpoint is what a restarted trial continues from (a crashed worker, a lost node, a resumed
run), and on shared storage it is an upload. ``lecture`` has 4,050 trials of 20 epochs: a
checkpoint every epoch is 81,000 uploads, most of them of trials that end seconds later.
"""

from __future__ import annotations

from dataclasses import dataclass

from symgrid.trainables.schema import bounded

__all__ = ["CheckpointPolicy"]


@dataclass(frozen=True)
class CheckpointPolicy:
    """The spec's ``checkpoint`` section.

    A restarted trial repeats at most about ``min_interval_s`` of training, and a trial shorter
    than that saves only its final state: one checkpoint per trial for grids of short trials.
    """

    every_epochs: int = bounded(1, ge=1)  # epochs between checkpoints, when the interval allows
    min_interval_s: float = bounded(60.0, ge=0)  # seconds; the training a restart may repeat

    def due(self, epoch: int, final: bool, since_last_s: float) -> bool:
        """Save after ``epoch`` (1-based)? ``final``: training ended (last epoch, early stop,
        divergence); ``since_last_s``: seconds since the last save or the trial's (re)start."""
        if final:
            return True
        return epoch % self.every_epochs == 0 and since_last_s >= self.min_interval_s
