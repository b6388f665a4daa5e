"""Hostile and malformed input: one line naming the field, exit code 2, no traceback, nothing
written. The corpus is tests/bad_specs/ (for ``run``) and tests/bad_trials/ (for ``trial``); each
file's first line is ``# expect: <fragment of the error>``. A few go through a real subprocess.

Also the safety rules: checkpoints load with ``weights_only=True`` and YAML only safely.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from symgrid.grid import source
from symgrid.grid.cli import main

TESTS = Path(__file__).parent
BAD_SPECS = sorted((TESTS / "bad_specs").glob("*.yaml"))
BAD_TRIALS = sorted((TESTS / "bad_trials").glob("*.yaml"))
REPO = TESTS.parent


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()  # some files are not UTF-8 after it
    return first.removeprefix("# expect: ")


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("symgrid: error: "), err
    assert "Traceback" not in err
    return err


def test_the_corpus_is_large_enough():
    assert len(BAD_SPECS) + len(BAD_TRIALS) >= 30 and len(BAD_TRIALS) >= 10
    for path in BAD_SPECS + BAD_TRIALS:
        assert path.read_bytes().startswith(b"# expect: "), path


@pytest.mark.parametrize("path", BAD_TRIALS, ids=[p.stem for p in BAD_TRIALS])
def test_trial_rejects_a_bad_config_before_anything_is_written(path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["trial", str(path), "--out", str(out)]) == 2
    assert expected(path) in one_line(capsys.readouterr().err)
    assert not out.exists()


def symgrid(*args, cwd=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "symgrid", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    "command, path",
    [
        ("trial", TESTS / "bad_trials" / "python_tag.yaml"),
        ("trial", TESTS / "bad_trials" / "billion_laughs.yaml"),
        ("trial", TESTS / "bad_trials" / "huge_lr.yaml"),
        ("trial", TESTS / "bad_trials" / "binary_bytes.yaml"),
        ("run", TESTS / "bad_specs" / "python_tag.yaml"),
        ("run", TESTS / "bad_specs" / "nan_lr.yaml"),
    ],
    ids=lambda x: x if isinstance(x, str) else x.stem,
)
@pytest.mark.slow
def test_bad_input_through_a_real_process(command, path, tmp_path):
    out = tmp_path / "out"
    result = symgrid(command, path, "--out", out)
    assert result.returncode == 2
    assert expected(path) in one_line(result.stderr)
    assert result.stdout == "" and not out.exists()


@pytest.mark.slow
def test_a_huge_grid_with_yes_is_refused_before_expanding(tmp_path):
    spec = TESTS / "bad_specs" / "too_many_trials.yaml"  # 100,000,000 crossed trials
    started = time.monotonic()
    result = symgrid("run", spec, "--yes", "--out", tmp_path / "out")
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert "axes: 100,000,000 trials (100 x 100 x 100 x 100) is more than 50,000" in one_line(
        result.stderr
    )
    assert not (tmp_path / "out").exists()


def os_error_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """Arguments that point at things that are not readable files or run folders."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "run.json").write_text('{"name": "x"')  # truncated
    (folder / "spec.yaml").write_text("name: x\n")
    file = tmp_path / "file.yaml"
    file.write_text("name: x\n")
    return [
        (["run", str(tmp_path)], "is not a file"),
        (["validate", str(tmp_path)], "is not a file"),
        (["trial", str(tmp_path), "--out", str(tmp_path / "o")], "is a directory"),
        (["trial", "/proc/self/mem", "--out", str(tmp_path / "o")], "cannot read"),
        (["run", "/proc/self/mem"], "cannot read"),
        (["resume", str(file)], "not a symgrid run folder"),
        (["resume", str(folder)], "run.json: unreadable"),
        (["report", str(file)], "no such run folder"),
    ]


def test_unreadable_input_is_one_line_never_a_traceback(tmp_path, capsys):
    for argv, fragment in os_error_cases(tmp_path):
        assert main(argv) == 2, argv
        assert fragment in one_line(capsys.readouterr().err), argv
    assert not (tmp_path / "o").exists()


# --- safety: what the code loads, checked in the source itself ---

SOURCES = [
    p
    for folder in ("trainables", "grid", "analysis", "tests", "benchmarks")
    for p in sorted((REPO / folder).rglob("*.py"))
]


def calls(pattern: str) -> list[tuple[Path, str]]:
    """(file, call text) of every match; a call may span lines, so match on the whole file."""
    found = []
    for path in SOURCES:
        if path == Path(__file__):
            continue
        for match in re.finditer(pattern, path.read_text(), re.S):
            found.append((path.relative_to(REPO), " ".join(match.group(0).split())))
    return found


def test_every_torch_load_is_weights_only():
    loads = calls(r"torch\.load\((?:[^()]|\([^()]*\))*\)")
    assert loads, "no torch.load found: the pattern is broken"
    unsafe = [(p, c) for p, c in loads if "weights_only=True" not in c]
    assert not unsafe, unsafe


def test_yaml_is_only_loaded_safely():
    loads = calls(r"yaml\.(?:load|load_all|unsafe_load|full_load)\((?:[^()]|\([^()]*\))*\)")
    unsafe = [(p, c) for p, c in loads if not re.search(r"Loader=(_Loader|yaml\.SafeLoader)", c)]
    assert not unsafe, unsafe
    assert issubclass(source._Loader, yaml.SafeLoader)  # the one custom loader is a safe one
    assert not calls(r"\bpickle\.loads?\(")
