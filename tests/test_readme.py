"""README.md's examples are checked, so the documentation cannot rot."""

import re
from pathlib import Path

from symgrid.grid.source import load_yaml
from symgrid.grid.spec import expand, parse_spec
from symgrid.trainables.config import parse_trial_config

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_the_readme_spec_example_is_a_valid_grid():
    block = re.search(r"```yaml\n(name: my-study.*?)```", README, re.S).group(1)
    trials = expand(parse_spec(load_yaml(block), source=block))
    assert len(trials) == 3 * 3 * 3 * 2 * 2


def test_the_readme_defaults_table_matches_the_code():
    defaults = parse_trial_config({})
    section = README.split("## The trial config", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", section, re.M)
    checked = 0
    for key, written in rows:
        raw = load_yaml(written.strip())
        for part in reversed(key.split(".")):
            raw = {part: raw}
        assert parse_trial_config(raw) == defaults, key  # writing the default changes nothing
        checked += 1
    assert checked >= 20


def test_the_quick_start_has_exactly_two_commands_and_ci_runs_the_same_tests():
    start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line for line in start.splitlines() if line.startswith(("python3", "(command"))]
    assert len(commands) == 2 and "symgrid run quick" in commands[0]
    assert commands[1].endswith("python -m pytest")
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "\npython -m pytest\n" in ci and 'pip install -q -c constraints.txt -e ".[dev]"' in ci


def test_the_readme_own_network_example_is_a_valid_grid(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples"))
    block = re.search(r"```yaml\n(name: own-net.*?)```", README, re.S).group(1)
    trials = expand(parse_spec(load_yaml(block), source=block))
    assert len(trials) == 3 * 2
    assert trials[-1].config["model"] == {
        "name": "nets.resmlp:ResMLP",
        "dropout": 0.0,
        "noise_input": False,
        "depth": 1,
        "width": 64,
    }


def python_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    section = README[README.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_api_spec_validates():
    block = python_block("## Python API")
    names: dict = {}
    exec(block[: block.index("print(symgrid.validate(spec))")], names)  # imports and the dict
    import symgrid

    checked = symgrid.validate(names["spec"])
    assert checked.trials == 2 * 2 and checked.cost["epochs"] == 4 * 20


def test_the_readme_tune_example_builds_its_tuner():
    """Up to ``tuner.fit()`` (tests/test_tune_search.py runs a smaller one on Ray)."""
    from ray import tune

    block = python_block("### Any Ray Tune searcher")
    names: dict = {}
    exec(block[: block.index("best = tuner.fit()")], names)
    assert isinstance(names["tuner"], tune.Tuner)
    assert names["base"]["train"]["epochs"] == 20  # as the scheduler's max_t
