"""Faults with real processes: a killed trial worker, a killed driver, diverging trials, damaged
run folders and output that cannot be written. No result may be lost or counted twice.

Every process a test starts carries a marker in its environment (Ray's raylet and workers inherit
it), so cleanup kills exactly those, by pid, even after the driver died and left them orphaned;
other Ray instances on the machine are never touched. Trials are put at the point a fault must hit
by hold files (``tests/gate.py``), not by polling and hoping.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from gate import WAIT_S, Gate, wait_for
from symgrid.grid.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray,
]

SPEC = """
name: {name}
description: a small grid for the fault tests
base:
  train: {{ebno_db: [0, 10], symbols: 32768, val_symbols: 4096, batch_size: 1024,
          epochs: {epochs}}}
  model: {{hidden: [16]}}
  optimizer: {{name: {optimizer}, lr: 0.01}}
  eval: {{ebno_db: [2, 8], min_errors: 50, max_bits: 1.0e+5, biasvar_symbols: 256}}
axes:
  {axis}: {values}
resources: {{cpu: 1, gpu: 0}}
max_failures: 2
checkpoint: {{every_epochs: 1, min_interval_s: 0}}  # a killed worker restarts mid-trial
"""


def write_spec(tmp_path, name, epochs, values, axis="seed", optimizer="adam") -> Path:
    path = tmp_path / f"{name}.yaml"
    text = SPEC.format(name=name, epochs=epochs, axis=axis, values=values, optimizer=optimizer)
    path.write_text(text)
    return path


class Processes:
    """Start symgrid commands with a marker; on exit kill every marked process that is left."""

    def __init__(self, tmp_path: Path, env: dict | None = None):
        self.tag, self.logs, self.popens = uuid.uuid4().hex, tmp_path, []
        self.env = env or {}

    def start(self, *args) -> subprocess.Popen:
        env = {**os.environ, **self.env, "SYMGRID_FAULT_TEST": self.tag}
        log = open(self.logs / f"log{len(self.popens)}.txt", "w")  # noqa: SIM115 - closed by exit
        cmd = [sys.executable, "-m", "symgrid", *map(str, args)]
        popen = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        self.popens.append((popen, log))
        return popen

    def run(self, *args) -> tuple[int, str]:
        """Run a command to its end: exit code and output."""
        popen = self.start(*args)
        code = popen.wait(timeout=WAIT_S)
        return code, Path(self.popens[-1][1].name).read_text()

    def marked(self, prefix: str = "") -> list[int]:
        """Pids whose environment holds this test's marker and whose cmdline starts with prefix."""
        found, marker = [], f"SYMGRID_FAULT_TEST={self.tag}".encode()
        for proc in Path("/proc").iterdir():
            try:
                if not proc.name.isdigit() or marker not in (proc / "environ").read_bytes():
                    continue
                if (proc / "cmdline").read_bytes().decode(errors="replace").startswith(prefix):
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return found

    def __enter__(self):
        return self

    def kill_marked(self) -> None:
        for _ in range(3):  # a dying raylet may start one more worker
            for pid in self.marked():
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def __exit__(self, *exc):
        self.kill_marked()
        for popen, log in self.popens:
            popen.wait(timeout=30)
            log.close()


def ray_rows(out: Path, trial_id: str) -> list[dict]:
    """What Ray recorded for a trial, one row per report, across every (re)start."""
    path = out / "ray" / trial_id / "result.json"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):  # a line Ray is still writing
            rows.append(json.loads(line))
    return rows


def epoch_reports(out: Path, trial_id: str) -> int:
    return sum(1 for row in ray_rows(out, trial_id) if not row.get("final"))


def completed(out: Path) -> dict[str, str]:
    """trial_id -> trial.json text of every trial recorded as completed."""
    found = {}
    for path in out.glob("trials/*/trial.json"):
        text = path.read_text()
        if text.strip() and json.loads(text)["status"] == "completed":
            found[path.parent.name] = text
    return found


def assert_every_trial_once(out: Path, count: int, epochs: int, status="completed"):
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(trials.trial_id) == [f"t{i:04d}" for i in range(count)]  # each exactly once
    assert set(trials.status) == {status}
    rows = pd.read_parquet(out / "epochs.parquet").groupby("trial_id").epoch.apply(list)
    assert all(e == list(range(1, epochs + 1)) for e in rows), rows  # no duplicates, no gaps
    assert len(pd.read_parquet(out / "ber.parquet")) == 2 * count  # two test points each


def test_a_killed_trial_worker_restarts_from_its_checkpoint(tmp_path):
    out, spec = tmp_path / "out", write_spec(tmp_path, "killworker", 5, "[0, 1, 2]")
    gate = Gate(tmp_path / "gate")
    gate.hold(3, "t0000")  # t0000 waits after reporting (and checkpointing) epoch 3 of 5
    with Processes(tmp_path, gate.env) as procs:
        driver = procs.start("run", spec, "--out", out, "--num-cpus", "2", "--no-report")
        held = gate.wait_held(3, ["t0000"], alive=lambda: driver.poll() is None)
        pid = held["t0000"]["pid"]
        assert pid in procs.marked(), "the pid is a live Ray worker of this run"
        os.kill(pid, signal.SIGKILL)
        gate.release()
        assert driver.wait(timeout=WAIT_S) == 0
    assert_every_trial_once(out, 3, 5)
    # Ray restarted the trial (iterations counted from 1 again) right after its epoch-3 checkpoint.
    rows = ray_rows(out, "t0000")
    restarts = [r["epoch"] for r in rows[1:] if r["iterations_since_restore"] == 1]
    assert restarts == [4], [(r.get("epoch"), r["pid"]) for r in rows]
    assert {r["pid"] for r in rows if not r.get("final") and r["epoch"] <= 3} == {pid}


def test_resume_after_the_driver_is_killed_runs_only_unfinished_trials(tmp_path):
    out, spec = tmp_path / "out", write_spec(tmp_path, "killdriver", 3, "[0, 1, 2, 3, 4, 5]")
    gate = Gate(tmp_path / "gate")
    late = [f"t{i:04d}" for i in range(2, 6)]
    gate.hold(1, *late)  # only t0000 and t0001 can finish before the kill
    with Processes(tmp_path, gate.env) as procs:
        driver = procs.start("run", spec, "--out", out, "--num-cpus", "2", "--no-report")
        running = lambda: driver.poll() is None  # noqa: E731
        wait_for(lambda: len(completed(out)) == 2, "two finished trials", running)
        gate.wait_held(1, late, count=2, alive=running)  # both slots busy mid-trial
        os.kill(driver.pid, signal.SIGKILL)  # no chance to save Ray's state or the tables
        driver.wait(timeout=30)
        before = completed(out)
        reports = {t: epoch_reports(out, t) for t in before}
        assert sorted(before) == ["t0000", "t0001"], "the kill landed mid-grid"
        assert not (out / "trials.parquet").exists()
        procs.kill_marked()  # whatever the driver's embedded Ray left behind
        gate.release()
        code, log = procs.run("resume", out, "--no-report")
        assert code == 0, log
    assert_every_trial_once(out, 6, 3)
    for trial_id, text in before.items():  # finished before the kill: neither trained nor rewritten
        assert (out / "trials" / trial_id / "trial.json").read_text() == text
        assert epoch_reports(out, trial_id) == reports[trial_id]


def test_diverging_trials_are_results_and_the_report_lists_them(tmp_path):
    out = tmp_path / "out"
    # sgd at lr 1e6 with bce_logits: the first epoch's loss is NaN (1e3 only oscillates here)
    spec = write_spec(tmp_path, "diverge", 3, "[0.05, 1.0e+6]", "optimizer.lr", "sgd")
    with Processes(tmp_path) as procs:
        code, log = procs.run("run", spec, "--out", out, "--num-cpus", "2")
    assert code == 0, log
    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    assert dict(trials.status) == {"t0000": "completed", "t0001": "diverged"}
    summary = (out / "report" / "summary.md").read_text()
    assert "diverged" in summary and "t0001" in summary


# --- damaged run folders: a one-line error, or a partial report that names what is missing ---


def damaged(run_folder, tmp_path, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(run_folder, run, ignore=shutil.ignore_patterns("report"))
    damage(run)
    return run


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_tables(run: Path) -> None:  # an interrupted run: only the trial folders
    for name in ("trials", "epochs", "ber", "bias_variance"):
        (run / f"{name}.parquet").unlink()


UNREADABLE = {
    "truncated_trial_parquet": (
        lambda run: (drop_tables(run), truncate(run / "trials/t0002/ber.parquet")),
        "t0002/ber.parquet: unreadable Parquet file",
    ),
    "truncated_trial_json": (
        lambda run: truncate(run / "trials/t0002/trial.json"),
        "t0002/trial.json: unreadable JSON",
    ),
    "truncated_epochs_table": (
        lambda run: truncate(run / "epochs.parquet"),
        "epochs.parquet: unreadable Parquet file",
    ),
    "truncated_run_json": (lambda run: truncate(run / "run.json"), "run.json: unreadable JSON"),
    "empty_run": (lambda run: shutil.rmtree(run) or run.mkdir(), "no trials"),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_report_on_an_unreadable_run_is_one_line(case, run_folder, tmp_path, capsys):
    damage, fragment = UNREADABLE[case]
    run = damaged(run_folder, tmp_path, damage)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert not (run / "report").exists()


def report_of(run: Path, capsys) -> str:
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    return (run / "report" / "summary.md").read_text()


def test_report_on_a_run_missing_a_trial_folder_says_so(run_folder, tmp_path, capsys):
    run = damaged(run_folder, tmp_path, lambda run: shutil.rmtree(run / "trials" / "t0004"))
    summary = report_of(run, capsys)
    assert "1 of 16 planned trials have no records" in summary
    assert "15 recorded of 16 planned" in summary


def test_report_rebuilds_a_lost_table_and_names_trials_without_points(
    run_folder,
    tmp_path,
    capsys,
):
    def damage(run):
        (run / "ber.parquet").unlink()
        (run / "trials" / "t0001" / "ber.parquet").unlink()

    summary = report_of(damaged(run_folder, tmp_path, damage), capsys)
    assert "completed but without BER points, left out: t0001" in summary
    assert "16 recorded of 16 planned" in summary  # rebuilt from the trial folders


# --- output that cannot be written: a clear error before any trial starts ---


def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def mounts(tmp_path):
    made = []
    yield lambda name, options: made.append(tmp_path / name) or mount_tmpfs(made[-1], options)
    for path in made:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.parametrize(
    "where, options, fragment",
    [
        ("proc", None, "cannot write there"),
        ("readonly", "ro,size=1m", "cannot write there (Read-only file system)"),
        ("full", "size=1m", "MiB free; 2 trials need about"),
    ],
)
def test_run_into_an_unwritable_or_full_folder_fails_before_ray(
    where, options, fragment, tmp_path, mounts, capsys
):
    spec = write_spec(tmp_path, "nowhere", 2, "[0, 1]")
    if options is None:
        out = Path("/proc/symgrid-fault-test/out")
    else:
        mounts(where, options)
        out = tmp_path / where / "out"
    started = time.monotonic()
    assert main(["run", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert time.monotonic() - started < 30, "refused before starting Ray"
    assert not (out / "run.json").exists()


def test_trial_checks_its_out_before_training(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("train: {symbols: 1024, val_symbols: 1024, batch_size: 512, epochs: 1}\n")
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    for out in (blocker / "out", Path("/proc/symgrid-fault-test")):
        assert main(["trial", str(config), "--out", str(out)]) == 2
        err = capsys.readouterr()
        assert err.err.count("\n") == 1 and "--out" in err.err and not err.out  # nothing trained
