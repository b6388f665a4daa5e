"""Hold trials at a known point of a real run, with no timing race.

The Ray adapter's test hook (``trainables.tune_adapter.hold_at_gate``): when ``SYMGRID_TEST_GATE``
names a folder, a trial that has just reported epoch ``e`` waits while ``<trial_id>.<e>.hold``
exists there, after writing ``<trial_id>.<e>.held`` (its worker's pid and node id). A test creates
the hold files before starting the run, waits until the trials it expects are held (so they are all
mid-run at one moment), acts (kills, interrupts, looks), and deletes the hold files to let them go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from symgrid.trainables.tune_adapter import GATE_ENV

POLL_S = 0.05
WAIT_S = 300  # a 2-core machine shared with other Ray runs: a Ray start alone can take 30 s


class Gate:
    """A folder of hold files for the trials of one run."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        """The environment variable that points the run's trials at this gate."""
        return {GATE_ENV: str(self.folder)}

    def hold(self, epoch: int, *trial_ids: str) -> None:
        for trial_id in trial_ids:
            (self.folder / f"{trial_id}.{epoch}.hold").touch()

    def release(self) -> None:
        """Let every held or future-held trial go on."""
        for path in self.folder.glob("*.hold"):
            path.unlink(missing_ok=True)

    def held(self, epoch: int) -> dict[str, dict]:
        """trial_id -> {"pid", "node_id"} of the trials that reached their hold at ``epoch``."""
        return {
            path.name.split(".")[0]: json.loads(path.read_text())
            for path in self.folder.glob(f"*.{epoch}.held")
        }

    def wait_held(
        self,
        epoch: int,
        trial_ids: list[str],
        count: int | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> dict[str, dict]:
        """Wait until ``count`` (default: all) of ``trial_ids`` are held at ``epoch`` together;
        fail if the run ends first. Returns the held ones."""
        need = len(trial_ids) if count is None else count

        def ready():
            held = {k: v for k, v in self.held(epoch).items() if k in trial_ids}
            return held if len(held) >= need else None

        return wait_for(ready, f"{need} of {trial_ids} held after epoch {epoch}", alive)


def wait_for(predicate, what, alive: Callable[[], bool] = lambda: True, timeout: float = WAIT_S):
    """Poll ``predicate`` until it is truthy; fail when ``alive()`` turns false or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if not alive():
            pytest.fail(f"the run ended before {what}")
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
