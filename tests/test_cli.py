"""The symgrid command: one-line errors with exit code 2 and nothing written; the trial command."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from symgrid.grid import outdir
from symgrid.grid.cli import build_parser, main
from symgrid.grid.fit import cannot_fit
from symgrid.grid.progress import Progress
from symgrid.trainables.records import BER_COLUMNS, EPOCH_COLUMNS

BAD_SPECS = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))


def expected_fragment(path: Path) -> str:
    return path.read_text().splitlines()[0].removeprefix("# expect: ")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symgrid: error: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_run_rejects_a_bad_spec_before_anything_is_written(path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert expected_fragment(path) in one_line_error(capsys)
    assert not out.exists()


def test_validate_and_presets_describe_the_shipped_grids(capsys):
    assert main(["validate", "quick"]) == 0
    text = capsys.readouterr().out
    assert "trials: " in text and "scheduler" in text
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    for name in ("quick", "notebook", "lecture", "bias_variance", "overfitting"):
        assert name in listed


def test_unknown_preset_suggests_the_near_miss(capsys):
    assert main(["validate", "quik"]) == 2
    assert "did you mean 'quick'" in one_line_error(capsys)


def test_bad_arguments_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "quick", "--num-cpus", "two"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--num-cpus" in err


# Two trials: sgd at lr 1e6 diverges in its first epoch (NaN loss, trainables.trial), 0.05 learns.
DIVERGE = """
name: div
description: a tiny grid with one diverging trial
base:
  train: {ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 512, epochs: 2}
  model: {hidden: [8]}
  optimizer: {name: sgd, lr: 0.01}
  eval: {ebno_db: [4], min_errors: 20, max_bits: 2.0e4, biasvar_symbols: 64}
axes:
  optimizer.lr: [0.05, 1.0e+6]
resources: {cpu: 1, gpu: 0}
"""

TRIAL = """
train: {ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 512, epochs: 2}
model: {hidden: [8]}
eval: {ebno_db: [4], min_errors: 20, max_bits: 2.0e4, biasvar_symbols: 64}
"""


def test_trial_runs_one_config_and_writes_its_tables(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text(TRIAL)
    assert main(["trial", str(config), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "val_ber" in printed and "ber_map" in printed
    epochs = pd.read_parquet(tmp_path / "out" / "epochs.parquet")
    assert list(epochs.columns) == EPOCH_COLUMNS and list(epochs.epoch) == [1, 2]
    ber = pd.read_parquet(tmp_path / "out" / "ber.parquet")
    assert list(ber.columns) == BER_COLUMNS and len(ber) == 1


def test_trial_rejects_a_bad_config_before_writing(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text(TRIAL.replace("epochs: 2", "epoch: 2"))
    assert main(["trial", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "train.epoch: unknown key" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_report_on_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    one_line_error(capsys)


@pytest.mark.slow
def test_the_module_entry_point_and_console_script_agree():
    for cmd in ([sys.executable, "-m", "symgrid", "presets"], ["symgrid", "presets"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "quick" in result.stdout


def test_confirm_of_a_folder_that_is_not_a_run_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "notarun").mkdir()
    assert main(["confirm", str(tmp_path / "notarun"), "--top", "2", "--seeds", "2"]) == 2
    assert "not a symgrid run folder (no spec.yaml)" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notarun"]


@pytest.mark.parametrize("option", ["--top", "--seeds"])
def test_confirm_counts_must_be_positive(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["confirm", str(tmp_path), option, "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and "not an integer ≥ 1" in err


# --- issue 19: Ray options, impossible resources, iteration -------------------------------------


@pytest.mark.parametrize(
    "option, value, allowed",
    [
        ("--num-cpus", "0", "not an integer ≥ 1"),
        ("--num-cpus", "-1", "not an integer ≥ 1"),
        ("--num-gpus", "-1", "not an integer ≥ 0"),
        ("--max-concurrent", "0", "not an integer ≥ 1"),
        ("--address", "localhost", "not auto, ray://HOST:PORT or HOST:PORT"),
    ],
)
@pytest.mark.parametrize("command", ["run", "resume"])
def test_ray_options_are_checked_by_the_parser(command, option, value, allowed, tmp_path, capsys):
    out = tmp_path / "out"
    target = ["quick", "--out", str(out)] if command == "run" else [str(out)]
    started = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main([command, *target, option, value])
    assert info.value.code == 2 and time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and value in err and allowed in err, err
    assert not out.exists()


def test_a_trial_bigger_than_the_machine_is_refused_before_ray_starts(tmp_path, capsys):
    spec = tmp_path / "big.yaml"
    spec.write_text(DIVERGE.replace("cpu: 1", "cpu: 64"))
    out = tmp_path / "out"
    started = time.monotonic()
    assert main(["run", str(spec), "--out", str(out)]) == 2
    assert time.monotonic() - started < 30  # the spec's validation only: Ray never starts
    err = one_line_error(capsys)
    assert "resources.cpu: a trial asks 64 CPU" in err and f"has {os.cpu_count()}" in err
    assert not out.exists()
    assert main(["run", str(spec), "--num-cpus", "2", "--out", str(out)]) == 2
    assert "the embedded Ray has 2" in one_line_error(capsys) and not out.exists()


def test_a_gpu_trial_without_a_gpu_is_refused_before_ray_starts(tmp_path, capsys):
    spec = tmp_path / "gpu.yaml"
    spec.write_text(DIVERGE.replace("gpu: 0", "gpu: 1"))
    assert main(["run", str(spec), "--num-gpus", "0", "--out", str(tmp_path / "out")]) == 2
    assert "resources.gpu: a trial asks 1 GPU, the embedded Ray has 0" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_trial_fits_a_node_or_a_node_type_the_autoscaler_may_add():
    two_cpu, gpu_node = {"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}
    assert cannot_fit({"cpu": 1, "gpu": 0}, [two_cpu], [], "c", "h") is None
    assert cannot_fit({"cpu": 1, "gpu": 1}, [two_cpu], [gpu_node], "c", "h") is None  # autoscaler
    where = "the cluster at auto"
    refusal = cannot_fit({"cpu": 1, "gpu": 0.25}, [two_cpu, two_cpu], [], where, "h")
    assert refusal.startswith("resources.gpu: a trial asks 0.25 GPU, the cluster at auto has 0")
    # each resource exists, but never both on one node: a trial is placed on one node
    refusal = cannot_fit({"cpu": 2, "gpu": 1}, [two_cpu, gpu_node], [], "the cluster", "h")
    assert refusal.startswith("resources: a trial asks") and "no node of the cluster" in refusal


def test_trial_refuses_a_folder_with_a_result_and_overwrite_replaces_it(tmp_path, capsys):
    config, out = tmp_path / "trial.yaml", tmp_path / "out"
    config.write_text(TRIAL)
    assert main(["trial", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "trial.json").read_text())
    shown = re.search(r"ber_ratio_map: (\S+) ", printed).group(1)
    assert shown == f"{record['ber_ratio_map']:.3f}" and len(repr(record["ber_ratio_map"])) > 8
    before = (out / "trial.json").read_text()
    assert main(["trial", str(config), "--out", str(out)]) == 2
    assert "holds a result already (trial.json); use --overwrite" in one_line_error(capsys)
    assert (out / "trial.json").read_text() == before
    (out / "notes.txt").write_text("from the old trial")
    assert main(["trial", str(config), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and (out / "trial.json").exists()


def test_report_of_several_runs_needs_out_as_the_readme_says(tmp_path, capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "`symgrid report DIR1 DIR2 ... --out REPORT_DIR [--metric NAME]`" in readme
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "several run folders need --out" in one_line_error(capsys)


# --- a real run on an embedded Ray, its stderr as a log file sees it (not a terminal) ---------


def symgrid(*args, timeout=300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "symgrid", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory):
    """A finished two-trial run in which one trial diverged: (folder, spec file, stderr)."""
    root = tmp_path_factory.mktemp("div")
    spec, out = root / "div.yaml", root / "div"
    spec.write_text(DIVERGE)
    result = symgrid("run", spec, "--out", out, "--num-cpus", "2")
    assert result.returncode == 0, result.stderr
    return out, spec, result.stderr


def test_a_run_ends_with_its_answer_and_counts_diverged_trials(diverged_run):
    out, _, err = diverged_run
    lines = err.splitlines()
    assert lines[0] == "starting Ray (2 CPUs, GPUs as detected)…"
    assert "\r" not in err and "\x1b" not in err  # a log file: plain lines only
    assert any(
        line.startswith("[div] 2/2 done (1 diverged), 0 running, 0 failed") for line in lines
    )
    best = pd.read_parquet(out / "ranking.parquet").iloc[0]
    assert lines[-4:] == [
        "[div] trials: 1 completed, 1 diverged, 0 failed",
        "[div] best setting: optimizer.lr=0.05",
        f"[div]   BER ratio to MAP {best.score:.4f}, 95 % interval {best.ci_low:.4f} to "
        f"{best.ci_high:.4f} ({best.interval}; 1 = optimal)",
        f"[div] report: {out / 'report' / 'index.html'}",
    ]
    assert (out / "report" / "index.html").exists()


def test_a_folder_holding_a_run_is_refused_and_overwrite_is_offered(diverged_run, capsys):
    out, spec, _ = diverged_run
    assert main(["run", str(spec), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "holds a run already" in err and "--overwrite" in err and "symgrid resume" in err


def test_resume_of_a_complete_run_says_so_and_names_a_changed_spec(diverged_run, capsys):
    out, spec, _ = diverged_run
    original = spec.read_text()
    spec.write_text(original.replace("epochs: 2", "epochs: 3"))
    try:
        assert main(["resume", str(out)]) == 0
    finally:
        spec.write_text(original)
    note, done = capsys.readouterr().err.splitlines()
    assert note.startswith(f"symgrid: note: {spec} changed since this run started")
    assert "stored spec" in note
    assert done.startswith(f"symgrid: {out}: already complete (2/2 trials have results)")


def copy_run(out: Path, to: Path) -> Path:
    """A copy of a run folder whose run.json points at the copy's own files."""
    shutil.copytree(out, to)
    text = (to / "run.json").read_text().replace(str(out), str(to))
    (to / "run.json").write_text(text)
    return to


def test_resume_goes_on_with_other_ray_options(diverged_run, tmp_path, capsys):
    out, _, _ = diverged_run
    run = copy_run(out, tmp_path / "run")
    kept = (run / "trials" / "t0001" / "trial.json").read_text()
    shutil.rmtree(run / "trials" / "t0000")  # as if stopped before t0000 ended and Ray saved
    shutil.rmtree(run / "ray")
    info = json.loads((run / "run.json").read_text())
    info["ray"]["num_cpus"] = 0  # a run started with options that can never run a trial
    (run / "run.json").write_text(json.dumps(info))
    assert main(["resume", str(run)]) == 2
    assert "resources.cpu: a trial asks 1 CPU, the embedded Ray has 0" in one_line_error(capsys)
    result = symgrid("resume", run, "--num-cpus", "2", "--max-concurrent", "1", "--no-report")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "run.json").read_text())["ray"]["num_cpus"] == 2
    assert json.loads((run / "run.json").read_text())["ray"]["max_concurrent"] == 1
    trials = pd.read_parquet(run / "trials.parquet").set_index("trial_id")
    assert dict(trials.status) == {"t0000": "completed", "t0001": "diverged"}
    assert (run / "trials" / "t0001" / "trial.json").read_text() == kept  # not run again
    assert "[run] trials: 1 completed, 1 diverged, 0 failed" in result.stderr


def test_a_run_in_which_no_trial_started_may_be_replaced(diverged_run, tmp_path):
    out, _, _ = diverged_run
    assert outdir.refusal(out, overwrite=False).endswith(
        "--overwrite (removes that run) or a new --out"
    )
    assert outdir.refusal(out, overwrite=True) is None
    run = copy_run(out, tmp_path / "run")
    shutil.rmtree(run / "trials")
    assert outdir.refusal(run, overwrite=False)  # Ray's trial folders show that trials started
    for trial in (run / "ray").glob("t0*"):
        shutil.rmtree(trial)
        trial.mkdir()  # as Tune leaves a trial that waited for resources and never started
    assert outdir.refusal(run, overwrite=False) is None
    outdir.remove_run(run)
    assert not run.exists() and out.exists()


def test_the_readme_commands_table_and_the_parser_agree():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `symgrid (\w+)([^|]*)", section, re.M)
    subparsers = build_parser()._subparsers._group_actions[0].choices
    for command, usage in rows:
        options = set(subparsers[command]._option_string_actions)
        written = set(re.findall(r"--[a-z-]+", usage.split("`")[0]))
        assert written <= options, (command, written - options)
        if "and run's Ray" not in usage:  # confirm's row refers to run's options
            assert options - {"-h", "--help"} <= written, (command, options - written)
    assert {c for c, _ in rows} == set(subparsers)


def test_progress_counts_diverged_trials_and_says_how_long_trials_wait(capsys):
    progress = Progress("grid", 5, verbose=False, started=time.monotonic() - 75)
    progress.done, progress.diverged, progress.failed = 2, 1, 1
    progress.idle_since = time.monotonic() - 20  # no trial running for 20 s
    line = progress.line(2, 1, 0, 1)
    assert line.startswith("[grid] 2/5 done (1 diverged), 0 running, 1 failed, 1m15s elapsed")
    assert "2 waiting 20s for resources" in line
    assert "waiting" not in progress.line(2, 1, 1, 1)  # a trial runs: nothing waits for long
    for _ in range(100):  # a log file: one line, not one per control-loop step
        progress.show(final=False)
    progress.show(final=True)  # the final counts once more only when they changed
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and "\r" not in printed and "  \n" not in printed
