"""The symgrid command: one-line errors with exit code 2 and nothing written; the trial command."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from symgrid.grid.cli import main
from symgrid.grid.fit import cannot_fit
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
    assert "`symgrid report DIR1 DIR2 ... --out REPORT_DIR`" in readme
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "several run folders need --out" in one_line_error(capsys)
