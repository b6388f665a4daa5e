"""The Python API (``symgrid.run``, ``load``, ``validate``, ``resume``) on real small runs, and the
one installed namespace (no top-level ``grid``, ``analysis``, ``trainables``)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from symgrid.grid.cli import main

import symgrid

pytestmark = pytest.mark.ray

TINY = {
    "name": "api-tiny",
    "description": "a tiny grid for the API tests",
    "base": {
        "train": {"symbols": 4096, "val_symbols": 2048, "batch_size": 1024, "epochs": 2},
        "model": {"hidden": [8]},
        "eval": {"ebno_db": [2, 8], "min_errors": 50, "max_bits": 1.0e5, "biasvar_symbols": 256},
    },
    "axes": {"scheduler": ["none", "step"], "seed": [0, 1]},
    "resources": {"cpu": 1, "gpu": 0},
}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> symgrid.Run:
    """A dict spec run through the API on an embedded local Ray, report included."""
    out = tmp_path_factory.mktemp("api") / "out"
    return symgrid.run(TINY, out=out, num_cpus=2)


@pytest.mark.slow
def test_run_of_a_dict_spec_returns_every_trial(api_run):
    assert api_run.code == 0
    trials = api_run.trials
    assert sorted(trials.trial_id) == ["t0000", "t0001", "t0002", "t0003"]
    assert set(trials.status) == {"completed"}
    assert sorted(zip(trials.scheduler, trials.seed)) == [
        ("none", 0),
        ("none", 1),
        ("step", 0),
        ("step", 1),
    ]
    assert (api_run.path / "report" / "index.html").exists()  # report=True by default
    assert list(api_run.epochs.groupby("trial_id").epoch.max()) == [2, 2, 2, 2]


@pytest.mark.slow
def test_load_exposes_the_tables_the_spec_and_run_json(api_run):
    run = symgrid.load(api_run.path)
    pd.testing.assert_frame_equal(run.effects, pd.read_parquet(run.path / "effects.parquet"))
    pd.testing.assert_frame_equal(
        run.interactions, pd.read_parquet(run.path / "interactions.parquet")
    )
    biasvar = run.bias_variance  # two settings (2 seeds each) at two Eb/N0 points
    pd.testing.assert_frame_equal(biasvar, pd.read_parquet(run.path / "bias_variance.parquet"))
    assert {"bias2", "variance"} <= set(biasvar.columns) and len(biasvar) == 2 * 2
    assert len(run.ber) == 4 * 2 and (run.ber.ber_map > 0).all()
    assert run.info["trials"] == 4 and run.info["name"] == "api-tiny"
    assert run.spec.name == "api-tiny" and run.spec.trial_count == 4
    assert set(run.effects["axis"]) == {"scheduler"}  # the seed is a nuisance axis
    page = run._repr_html_()
    assert "api-tiny" in page and "4 completed" in page
    assert run.findings()[0] in page.replace("&#x27;", "'")


@pytest.mark.slow
def test_load_of_an_interrupted_run_computes_the_statistics(api_run, tmp_path):
    """An interrupted run has trial records but no tables yet: load rebuilds and computes them."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(api_run.path, copy)
    for name in ("trials", "epochs", "ber", "effects", "interactions", "bias_variance"):
        (copy / f"{name}.parquet").unlink()
    shutil.rmtree(copy / "trials" / "t0003")
    run = symgrid.load(copy)
    assert sorted(run.trials.trial_id) == ["t0000", "t0001", "t0002"]
    assert not (copy / "effects.parquet").exists() and set(run.effects["axis"]) == {"scheduler"}


def test_validate_returns_the_trial_count_and_cost():
    checked = symgrid.validate(TINY, slots=2)
    assert checked.trials == 4 and checked.cost["epochs"] == 4 * 2
    assert checked.cost["train_symbols"] == 4 * 2 * 4096 and checked.cost["slots"] == 2
    assert str(checked).splitlines()[0].startswith("api-tiny:")


def test_an_error_is_one_symgrid_error_with_the_cli_line(tmp_path, capsys):
    bad = {**TINY, "axes": {"scheduler": ["none", "stepp"]}}
    with pytest.raises(symgrid.SymgridError) as caught:
        symgrid.run(bad, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"symgrid: error: {caught.value}" and "\n" not in str(caught.value)
    assert str(caught.value).startswith("axes.scheduler[1]")


def test_resume_and_load_of_a_folder_that_is_not_a_run_raise(tmp_path):
    with pytest.raises(symgrid.SymgridError, match="not a symgrid run folder"):
        symgrid.resume(tmp_path)
    with pytest.raises(symgrid.SymgridError, match="no such run folder"):
        symgrid.load(tmp_path / "missing")


def user_project(root: Path) -> Path:
    """A user's project folder with its own ``analysis`` and ``grid`` packages."""
    for name in ("analysis", "grid"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f'OWNER = "user {name}"\n')
    (root / "spec.yaml").write_text(
        yaml.safe_dump({**TINY, "name": "shadow", "axes": {"seed": [0, 1]}})
    )
    return root


@pytest.mark.slow
def test_a_users_own_grid_and_analysis_folders_neither_shadow_nor_are_shadowed(tmp_path):
    """CLI and Ray workers run from a folder with its own ``grid``/``analysis`` packages."""
    project = user_project(tmp_path / "project")
    cmd = [sys.executable, "-m", "symgrid", "run", "spec.yaml", "--out", "out"]
    result = subprocess.run(
        [*cmd, "--num-cpus", "2", "--no-report"], cwd=project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert set(pd.read_parquet(project / "out" / "trials.parquet").status) == {"completed"}
    probe = "import analysis, grid, symgrid.analysis; print(analysis.OWNER, grid.OWNER)"
    mine = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True
    )
    assert mine.stdout.split() == ["user", "analysis", "user", "grid"], mine.stderr


def test_no_top_level_grid_analysis_or_trainables_is_installed(tmp_path):
    probe = (
        "import importlib.util, json; "
        "print(json.dumps({n: importlib.util.find_spec(n) is None "
        "for n in ('grid', 'analysis', 'trainables', 'symgrid')}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    absent = json.loads(found.stdout)
    assert absent == {"grid": True, "analysis": True, "trainables": True, "symgrid": False}
    assert importlib.util.find_spec("symgrid.grid.spec") is not None
