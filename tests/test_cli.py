"""The symgrid command: one-line errors with exit code 2 and nothing written; the trial command."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from symgrid.grid.cli import main
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
