"""Real grids on an embedded local Ray: tables, fractional GPUs, resume after an interrupt.

Concurrency is made certain, not hoped for: trials wait at hold files (``tests/gate.py``) until the
test has seen what it checks.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from gate import Gate, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray,
]

TINY = """
name: {name}
description: a tiny grid for the tests
base:
  train: {{ebno_db: [0, 10], symbols: {symbols}, val_symbols: 4096, batch_size: 1024,
          epochs: {epochs}}}
  model: {{hidden: [16]}}
  eval: {{ebno_db: [2, 8], min_errors: 50, max_bits: 1.0e+5, biasvar_symbols: 256}}
axes:
  scheduler: [none, step]
  seed: {seeds}
resources: {{cpu: {cpu}, gpu: {gpu}}}
max_failures: 1
"""


def write_spec(tmp_path, name="tiny", epochs=3, seeds="[0, 1]", cpu=1, gpu=0, symbols=8192) -> Path:
    path = tmp_path / f"{name}.yaml"
    text = TINY.format(name=name, epochs=epochs, seeds=seeds, cpu=cpu, gpu=gpu, symbols=symbols)
    path.write_text(text)
    return path


def symgrid(*args, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "symgrid", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)


def start_symgrid(*args, env: dict) -> subprocess.Popen:
    """A symgrid command in its own process group (so Ctrl-C can reach all of it)."""
    cmd = [sys.executable, "-m", "symgrid", *map(str, args)]
    return subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, **env}
    )


def trials_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "trials.parquet")


def test_a_grid_runs_on_embedded_ray_and_writes_every_table(tmp_path):
    out = tmp_path / "out"
    result = symgrid("run", write_spec(tmp_path), "--out", out, "--num-cpus", "2", "--no-report")
    assert result.returncode == 0, result.stderr
    trials = trials_of(out)
    assert sorted(trials.trial_id) == ["t0000", "t0001", "t0002", "t0003"]
    assert set(trials.status) == {"completed"}
    assert sorted(zip(trials.scheduler, trials.seed)) == [
        ("none", 0),
        ("none", 1),
        ("step", 0),
        ("step", 1),
    ]
    epochs = pd.read_parquet(out / "epochs.parquet")
    for _, group in epochs.groupby("trial_id"):
        assert list(group.epoch) == [1, 2, 3]  # each epoch once, no gaps
    ber = pd.read_parquet(out / "ber.parquet")
    assert len(ber) == 4 * 2 and (ber.ber_map > 0).all()
    assert json.loads(trials.config_json[0])["train"]["symbols"] == 8192
    assert (out / "spec.yaml").exists() and "trials: 4 completed, 0 diverged" in result.stderr
    assert json.loads((out / "run.json").read_text())["resources"] == {"cpu": 1, "gpu": 0}


def test_four_quarter_gpu_trials_share_one_logical_gpu_concurrently(tmp_path):
    out, gate = tmp_path / "out", Gate(tmp_path / "gate")
    spec = write_spec(tmp_path, "gpu", epochs=2, seeds="[0, 1]", cpu=0.5, gpu=0.25)
    ids = [f"t{i:04d}" for i in range(4)]
    gate.hold(1, *ids)  # each trial waits after its first epoch: they can only all be held at once
    args = [spec, "--out", out, "--num-cpus", "2", "--num-gpus", "1", "--no-report"]
    proc = start_symgrid("run", *args, env=gate.env)
    held = gate.wait_held(1, ids, alive=lambda: proc.poll() is None)
    assert len({h["pid"] for h in held.values()}) == 4, "four trial workers, one per trial"
    gate.release()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    trials = trials_of(out)
    assert len(trials) == 4 and set(trials.gpu_ids) == {"0"}
    started = pd.to_datetime(trials.started_at)
    finished = pd.to_datetime(trials.finished_at)
    assert started.max() < finished.min(), "all four trials were running at one moment"
    assert set(trials.device) == {"cuda" if torch.cuda.is_available() else "cpu"}  # GPU -> CUDA


def test_resume_after_sigint_runs_only_unfinished_trials(tmp_path):
    out, gate = tmp_path / "out", Gate(tmp_path / "gate")
    spec = write_spec(tmp_path, name="resume", epochs=4, seeds="[0, 1, 2]")
    late = [f"t{i:04d}" for i in range(2, 6)]
    gate.hold(1, *late)  # only t0000 and t0001 can finish before the interrupt
    proc = start_symgrid("run", spec, "--out", out, "--num-cpus", "2", env=gate.env)
    running = lambda: proc.poll() is None  # noqa: E731
    finished = lambda: len(list(out.glob("trials/*/trial.json"))) == 2  # noqa: E731
    wait_for(finished, "two finished trials", running)
    gate.wait_held(1, late, count=2, alive=running)  # both slots busy with a trial mid-run
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    proc.communicate(timeout=120)
    gate.release()
    records = {p.parent.name: p.read_text() for p in out.glob("trials/*/trial.json")}
    # A trial caught mid-epoch by Ctrl-C is recorded as failed, then run again on resume.
    before = {k: v for k, v in records.items() if json.loads(v)["status"] == "completed"}
    assert sorted(before) == ["t0000", "t0001"], "the interrupt landed mid-grid"
    result = symgrid("resume", out, "--no-report")
    assert result.returncode == 0, result.stderr
    trials = trials_of(out)
    assert sorted(trials.trial_id) == [f"t{i:04d}" for i in range(6)]
    assert set(trials.status) == {"completed"}
    for trial_id, text in before.items():  # finished before the interrupt: not run again
        assert (out / "trials" / trial_id / "trial.json").read_text() == text
    epochs = pd.read_parquet(out / "epochs.parquet")
    assert epochs.groupby("trial_id").epoch.apply(list).map(lambda e: e == [1, 2, 3, 4]).all()


@pytest.mark.parametrize("flag", ["--out"])
def test_an_unwritable_out_is_an_error_before_ray_starts(tmp_path, flag):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = symgrid("run", write_spec(tmp_path), flag, blocker / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--out" in result.stderr
    assert "Traceback" not in result.stderr


MANY = """
name: many
description: many tiny trials, most of which never start before the interrupt
base:
  train: {ebno_db: [0, 10], symbols: 1024, val_symbols: 1024, batch_size: 512, epochs: 1}
  model: {hidden: [8]}
  eval: {ebno_db: [4], min_errors: 10, max_bits: 2.0e+4, biasvar_symbols: 64}
axes:
  seed: [%s]
resources: {cpu: 1, gpu: 0}
max_failures: 0
"""


def finished_records(out: Path) -> dict[str, str]:
    found = {}
    for path in out.glob("trials/*/trial.json"):
        text = path.read_text()
        if json.loads(text)["status"] in ("completed", "diverged"):
            found[path.parent.name] = text
    return found


def test_ctrl_c_with_many_never_started_trials_is_one_line_and_resumes(tmp_path):
    count = 60
    spec, out = tmp_path / "many.yaml", tmp_path / "out"
    spec.write_text(MANY % ", ".join(map(str, range(count))))
    gate, late = Gate(tmp_path / "gate"), [f"t{i:04d}" for i in range(2, count)]
    gate.hold(1, *late)  # only t0000 and t0001 can finish before the interrupt
    proc = start_symgrid("run", spec, "--out", out, "--num-cpus", "2", env=gate.env)
    running = lambda: proc.poll() is None  # noqa: E731
    wait_for(lambda: len(finished_records(out)) == 2, "two finished trials", running)
    gate.wait_held(1, late, count=2, alive=running)  # both slots busy with a trial mid-run
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    gate.release()
    before = finished_records(out)
    assert "Traceback" not in err and proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert f"/{count} trials have results" in last and f"symgrid resume {out}" in last, err
    assert sorted(before) == ["t0000", "t0001"], "the interrupt landed with 58 trials to go"
    assert not (out / "report").exists()  # the report waits for the resumed run
    result = symgrid("resume", out, "--no-report")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = trials_of(out)
    assert sorted(trials.trial_id) == [f"t{i:04d}" for i in range(count)]  # each exactly once
    assert set(trials.status) == {"completed"}
    for trial_id, text in before.items():  # finished before the interrupt: never rewritten
        assert (out / "trials" / trial_id / "trial.json").read_text() == text
