"""Every benchmark's --smoke mode runs, exits 0 and writes JSON whose figures are positive and
agree with each other (ratios recomputed from their parts, peaks above their parts)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.ray,
]

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def smoke(name: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == name and data["machine"]["cpus"] > 0
    return data


def positive(record: dict, keys: list[str]) -> None:
    for key in keys:
        assert record[key] > 0, (key, record)


def test_throughput(tmp_path):
    rows = smoke("throughput", tmp_path)["rows"]
    assert {r["loop"] for r in rows} >= {"notebook loop", "trial baseline", "trial mlp64x64"}
    for row in rows:
        positive(row, ["threads", "batch_symbols", "msym_per_s", "x_reference"])


def test_evaluation(tmp_path):
    data = smoke("evaluation", tmp_path)
    assert [r["num_bits_per_symbol"] for r in data["speed"]] == [4, 6]
    for row in data["speed"]:
        positive(row, ["bits", "mbit_per_s", "channel_map_only_mbit_per_s"])
    for row in data["budget"]:
        positive(row, ["bits", "errors", "seconds"])
        assert row["errors"] <= row["bits"]  # a bit error is one of the bits counted
    (trial,) = data["trial"]
    assert trial["cached_s"] < trial["cold_s"]  # MAP's side computed once per (seed, point)


@pytest.mark.parametrize("name", ["grid_efficiency", "memory"])
def test_grid_benchmarks(tmp_path, name):
    data = smoke(name, tmp_path)
    if name == "grid_efficiency":
        assert data["trials"] == data["trials_with_results"] == 2
        positive(data, ["wall_s", "sum_trial_wall_s", "efficiency", "overhead_per_trial_s"])
        positive(data, ["slots", "peak_tree_rss_mib"])
        busy = data["wall_s"] * data["slots"]  # recomputed from the parts it is defined by
        assert data["efficiency"] == pytest.approx(data["sum_trial_wall_s"] / busy)
        assert data["overhead_per_trial_s"] == pytest.approx(
            (busy - data["sum_trial_wall_s"]) / data["trials"]
        )
        assert data["efficiency"] <= 1.0  # trials cannot run longer than the slots were busy
    else:
        trial = data["trials"][0]
        positive(trial, ["after_imports_mib", "peak_rss_mib"])
        assert trial["peak_rss_mib"] >= trial["after_imports_mib"]  # the peak includes imports
        positive(data["grid"], ["wall_s", "peak_tree_rss_mib", "peak_worker_rss_mib"])


def test_gpu(tmp_path):
    data = smoke("gpu", tmp_path)
    if data["gpu_available"]:
        for row in data["rows"]:
            positive(row, ["alone_msym_per_s", "shared_aggregate_msym_per_s", "aggregate_speedup"])


def test_gpu_samples(tmp_path):
    data = smoke("gpu_samples", tmp_path)  # CPU against CPU here: the script's own check
    assert data["device"] == "cpu" and data["differences"] == []


def test_scale(tmp_path):
    data = smoke("scale", tmp_path)
    (run,) = data["runs"]
    assert run["exit_code"] == 0 and run["with_results"] == run["trials"] == 6, run
    keys = ["to_first_trial_s", "wall_s", "sum_trial_wall_s", "driver_peak_rss_mib"]
    positive(run, [*keys, "tables_s", "tables_peak_rss_mib", "trial_processes"])
    assert run["to_first_trial_s"] < run["wall_s"]
    assert data["expand"]["exit_code"] == 0 and data["expand"]["trials"] == 1350
    positive(data["expand"], ["expand_validate_s"])


def test_rates(tmp_path):
    data = smoke("rates", tmp_path)
    positive(data, ["train_param_us", "forward_param_us", "draw_us"])
    assert set(data["eval_us"]) == {"2", "4", "6", "8"}
    assert data["eval_us"]["8"] > data["eval_us"]["2"]  # the MAP reference sums over 2^k points


def test_estimate(tmp_path):
    rows = smoke("estimate", tmp_path)["rows"]
    assert rows[0]["case"] == "trial tiny" and len(rows) >= 2  # the trial, then scale.json's grids
    for row in rows:
        positive(row, ["measured_s", "estimate_s", "ratio"])
        assert row["ratio"] == pytest.approx(row["estimate_s"] / row["measured_s"])


def test_calibration(tmp_path):
    data = smoke("calibration", tmp_path)
    rows = {(r["seeds"], r["method"]): r for r in data["rows"]}
    assert {n for n, _ in rows} == {2, 3, 5}
    for n in (2, 3, 5):
        now, before = rows[(n, "seed-level (now)")], rows[(n, "blocks as replicates (before)")]
        assert now["coverage"] > before["coverage"] and now["fwer_null"] < before["fwer_null"]


def test_same_results_says_identical_and_names_what_differs(run_folder, tmp_path):
    script = [sys.executable, str(BENCHMARKS / "same_results.py")]
    copy = tmp_path / "copy"
    shutil.copytree(run_folder, copy)
    same = subprocess.run([*script, str(run_folder), str(copy)], capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.count("identical") == 3, same.stdout + same.stderr
    ber = pd.read_parquet(copy / "ber.parquet")
    ber.loc[0, "errors"] += 1  # one count in one row
    trials = pd.read_parquet(copy / "trials.parquet")
    trials["wall_s"] += 1.0  # timing is not a result
    ber.to_parquet(copy / "ber.parquet"), trials.to_parquet(copy / "trials.parquet")
    differ = subprocess.run([*script, str(run_folder), str(copy)], capture_output=True, text=True)
    assert differ.returncode == 1
    lines = differ.stdout.splitlines()
    assert lines[0].endswith(": identical") and lines[2].endswith("errors in 1 rows"), lines
