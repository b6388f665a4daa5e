"""A user's network and any torch optimizer (issue 17): every bad case is one line naming
``model`` or ``optimizer``, exit 2, nothing written; a grid over a network in a folder outside the
repository runs on the embedded Ray (a keyword argument as an axis, rmsprop), its tables, report,
cost estimate and ``confirm`` name and count the real module; a trial with a user network resumes
exactly from a checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from symgrid.grid.cli import main
from symgrid.grid.cost import num_params, trial_seconds
from symgrid.grid.spec import expand, parse_spec
from symgrid.trainables.config import config_to_dict, parse_trial_config
from symgrid.trainables.trial import Trainer

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

USERNET = '''
import torch
from torch import nn


class TwoLayer(nn.Module):
    """2 -> width -> outputs, tanh."""

    def __init__(self, num_inputs, num_outputs, width=8, dropout=0.0):
        super().__init__()
        layers = [nn.Linear(num_inputs, width), nn.Tanh(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(width, num_outputs))

    def forward(self, x):
        return self.net(x)


class NoDropout(nn.Module):
    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        self.out = nn.Linear(num_inputs, num_outputs)

    def forward(self, x):
        return self.out(x)


class Needs(NoDropout):
    def __init__(self, num_inputs, num_outputs, depth):
        super().__init__(num_inputs, num_outputs)


class InitFails(NoDropout):
    def __init__(self, num_inputs, num_outputs):
        raise ValueError("width too large")


class ForwardFails(NoDropout):
    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class WrongShape(NoDropout):
    def forward(self, x):
        return torch.zeros(len(x), 5)


class NotAModule:
    pass


thing = 3
'''

TINY = {
    "train": {
        "ebno_db": [0, 10],
        "symbols": 4096,
        "val_symbols": 2048,
        "batch_size": 1024,
        "epochs": 2,
    },
    "eval": {"ebno_db": [4], "min_errors": 20, "max_bits": 20000, "biasvar_symbols": 128},
}


@pytest.fixture
def user_folder(tmp_path, monkeypatch) -> Path:
    """A folder outside the repository holding the user's module, importable in-process."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "usernet.py").write_text(USERNET)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("symgrid: error: ") and "Traceback" not in err
    return err


BAD = [
    ({"model": {"name": "nosuchmodule:Net"}}, "base.model.name: module 'nosuchmodule' not found"),
    ({"model": {"name": "usernet:Missing"}}, "base.model.name: module 'usernet' has no 'Missing'"),
    ({"model": {"name": "usernet:NotAModule"}}, "not a torch.nn.Module class"),
    ({"model": {"name": "usernet:thing"}}, "is a int, not a torch.nn.Module class"),
    ({"model": {"name": "usernet"}}, "allowed: mlp, baseline, or package.module:ClassName"),
    (
        {"model": {"name": "usernet:TwoLayer", "widht": 8}},
        "base.model.widht: not an argument of usernet:TwoLayer; allowed: width, dropout",
    ),
    ({"model": {"name": "usernet:Needs"}}, "base.model: usernet:Needs needs depth"),
    (
        {"model": {"name": "usernet:InitFails"}},
        "base.model: usernet:InitFails(...) raised ValueError: width too large",
    ),
    (
        {"model": {"name": "usernet:ForwardFails"}},
        "base.model: usernet:ForwardFails.forward raised RuntimeError: mat1 and mat2",
    ),
    (
        {"model": {"name": "usernet:WrongShape"}},
        "base.model: usernet:WrongShape maps [4, 2] to [4, 5]; the loss's head needs [4, 4]",
    ),
    (
        {"model": {"name": "usernet:WrongShape"}, "loss": "cross_entropy"},
        "maps [4, 2] to [4, 5]; the loss's head needs [4, 16]",
    ),
    (
        {"model": {"name": "usernet:NoDropout"}, "regularization": "dropout"},
        "base.regularization: dropout 0.1 would do nothing: usernet:NoDropout takes no 'dropout'",
    ),
    (
        {"model": {"name": "usernet:TwoLayer", "num_inputs": 3}},
        "base.model.num_inputs: set by symgrid",
    ),
    ({"optimizer": {"name": "rmsprob"}}, "base.optimizer.name: unknown optimizer 'rmsprob'"),
    ({"optimizer": {"name": "lbfgs"}}, "base.optimizer.name: 'lbfgs' needs a closure"),
    (
        {"optimizer": {"name": "rmsprop", "alpah": 0.9}},
        "base.optimizer.alpah: not an argument of torch.optim.RMSprop; allowed:",
    ),
    (
        {"optimizer": {"name": "adam", "betas": [0.9, 1.5]}},
        "base.optimizer: torch.optim.Adam refused {'betas': (0.9, 1.5)}: Invalid beta",
    ),
    ({"optimizer": {"name": "adam", "amsgrad": 1}}, "base.optimizer.amsgrad: expected true or"),
    ({"optimizer": {"name": "sgd", "weight_decay": 0.1}}, "set it with regularization: l2"),
    (
        {"optimizer": {"name": "rprop"}, "regularization": "l2"},
        "base.regularization: l2 works through the optimizer's weight_decay, which",
    ),
]


@pytest.mark.parametrize("base, fragment", BAD, ids=[b[1][:40] for b in BAD])
def test_a_bad_network_or_optimizer_is_one_line_and_nothing_is_written(
    base, fragment, user_folder, tmp_path, capsys
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "bad", "base": {**TINY, **base}}))
    out = tmp_path / "out"
    assert fragment in one_line_error(["run", str(spec), "--out", str(out)], capsys)
    assert not out.exists()
    assert fragment in one_line_error(["validate", str(spec)], capsys)


def test_a_bad_axis_value_of_a_network_argument_names_the_trial(user_folder, tmp_path, capsys):
    raw = {
        "name": "bad",
        "base": {**TINY, "model": {"name": "usernet:TwoLayer"}},
        "axes": {"model.width": [4, -1]},
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    err = one_line_error(["run", str(spec), "--out", str(tmp_path / "out")], capsys)
    assert "trial (model.width=-1): model: usernet:TwoLayer(...) raised RuntimeError" in err
    assert not (tmp_path / "out").exists()


def test_configs_round_trip_and_the_cost_counts_the_real_module(user_folder):
    raw = {
        **TINY,
        "model": {"name": "usernet:TwoLayer", "width": 5},
        "optimizer": {"name": "nadam", "lr": 0.003, "betas": [0.8, 0.99]},
        "loss": "nll",
    }
    cfg = parse_trial_config(raw)
    plain = config_to_dict(cfg)
    assert plain["model"] == {
        "name": "usernet:TwoLayer",
        "dropout": 0.0,
        "noise_input": False,
        "width": 5,
    }
    assert plain["optimizer"] == {"name": "nadam", "lr": 0.003, "betas": [0.8, 0.99]}
    assert parse_trial_config(json.loads(json.dumps(plain))) == cfg
    trainer = Trainer(cfg)
    assert isinstance(trainer.optimizer, torch.optim.NAdam)
    assert trainer.optimizer.defaults["betas"] == (0.8, 0.99)
    # 2 -> 5 -> 16 (a symbol head): (2 * 5 + 5) + (5 * 16 + 16)
    assert num_params(plain) == sum(p.numel() for p in trainer.model.parameters()) == 111


def test_l2_decays_only_the_weights_with_any_optimizer(user_folder):
    raw = {
        **TINY,
        "model": {"name": "usernet:TwoLayer"},
        "optimizer": {"name": "adagrad"},
        "regularization": {"name": "l2", "weight": 0.01},
    }
    groups = Trainer(parse_trial_config(raw)).optimizer.param_groups
    decay = {p.ndim: g["weight_decay"] for g in groups for p in g["params"]}
    assert decay == {2: 0.02, 1: 0.0}  # weight_decay = 2 x weight on matrices, none on biases


def test_a_spec_axis_of_networks_labels_each_with_its_arguments(user_folder):
    raw = {
        "name": "nets",
        "base": TINY,
        "axes": {
            "model": [{"name": "mlp", "hidden": [8]}, {"name": "usernet:TwoLayer", "width": 8}],
            "optimizer.name": ["adam", "rmsprop"],
        },
    }
    trials = expand(parse_spec(raw))
    assert [t.axes["model"] for t in trials] == [
        "mlp(hidden=[8])",
        "mlp(hidden=[8])",
        "usernet:TwoLayer(width=8)",
        "usernet:TwoLayer(width=8)",
    ]
    assert trials[3].config["optimizer"] == {"name": "rmsprop", "lr": 0.01}


def test_a_class_object_in_a_dict_spec_is_registered_by_name(user_folder):
    import usernet

    raw = {"name": "obj", "base": {**TINY, "model": {"name": usernet.TwoLayer, "width": 3}}}
    (trial,) = expand(parse_spec(raw))
    assert trial.config["model"]["name"] == "usernet:TwoLayer"


def test_a_user_network_resumes_exactly_from_a_checkpoint(user_folder, tmp_path):
    """Dropout inside the user's network draws from torch's global RNG: the checkpoint carries
    it, so 1 epoch + save + load + 1 epoch equals 2 epochs straight, bit for bit."""
    raw = {
        **TINY,
        "model": {"name": "usernet:TwoLayer", "width": 16},
        "optimizer": {"name": "rmsprop", "lr": 0.01, "momentum": 0.5},
        "regularization": {"name": "dropout", "p": 0.3},
    }
    cfg = parse_trial_config(raw)
    straight = Trainer(cfg)
    straight.step(), straight.step()
    first = Trainer(cfg)
    first.step()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    torch.rand(100)  # anything else drawing from torch's RNG meanwhile
    resumed = Trainer(cfg)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    resumed.step()
    assert resumed.rows == straight.rows
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)


SPEC = """
name: usernet
description: a user network from a folder outside the repository
base:
  train: {ebno_db: [0, 10], symbols: 4096, val_symbols: 2048, batch_size: 1024, epochs: 2}
  model: {name: "usernet:TwoLayer"}
  optimizer: {name: rmsprop, lr: 0.01, alpha: 0.95}
  eval: {ebno_db: [4], min_errors: 20, max_bits: 2.0e+4, biasvar_symbols: 128}
axes:
  model.width: [4, 8]
max_failures: 0
"""


def symgrid(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the folder is the cwd
    cmd = [str(BIN / "symgrid"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_grid_over_a_user_network_runs_on_the_embedded_ray(user_folder, tmp_path):
    (user_folder / "spec.yaml").write_text(SPEC)
    out = tmp_path / "run"
    done = symgrid("run", "spec.yaml", "--out", str(out), "--num-cpus", "2", cwd=user_folder)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet").sort_values("trial_id")
    assert list(trials["status"]) == ["completed"] * 2
    assert list(trials["network"]) == ["usernet:TwoLayer(width=4)", "usernet:TwoLayer(width=8)"]
    # 2 -> w -> 4 bits: (2w + w) + (4w + 4) parameters, counted on the trained module
    assert list(trials["num_params"]) == [7 * 4 + 4, 7 * 8 + 4]
    config = json.loads(trials["config_json"].iloc[0])
    assert config["optimizer"] == {"name": "rmsprop", "lr": 0.01, "alpha": 0.95}
    summary = (out / "report" / "summary.md").read_text()
    assert "| model.width=8 | usernet:TwoLayer(width=8) |" in summary
    assert "networks: usernet:TwoLayer(width=4), usernet:TwoLayer(width=8)" in summary
    confirm = symgrid(
        "confirm",
        str(out),
        "--top",
        "1",
        "--seeds",
        "1",
        "--no-report",
        "--num-cpus",
        "2",
        cwd=user_folder,
    )
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    confirmed = pd.read_parquet(tmp_path / "run-confirm" / "trials.parquet")
    assert list(confirmed["status"]) == ["completed"]
    assert confirmed["network"].iloc[0].startswith("usernet:TwoLayer(width=")


def test_the_cost_model_sees_the_real_modules_size(user_folder):
    """TwoLayer(width=w) has the shape of mlp(hidden=[w]): the same modelled seconds, and
    different ones at another width (the cost once re-derived the MLP's size from model.hidden)."""
    user = lambda w: config_to_dict(  # noqa: E731
        parse_trial_config({**TINY, "model": {"name": "usernet:TwoLayer", "width": w}})
    )
    mlp = config_to_dict(parse_trial_config({**TINY, "model": {"hidden": [300]}}))
    assert trial_seconds(user(300)) == trial_seconds(mlp)
    assert trial_seconds(user(600))["train"] > trial_seconds(mlp)["train"]


def test_examples_network_builds_with_every_head():
    sys.path.insert(0, str(REPO / "examples"))
    try:
        for loss, outputs in (("bce", 4), ("cross_entropy", 16)):
            raw = {
                **TINY,
                "model": {"name": "nets.resmlp:ResMLP", "width": 8, "depth": 1},
                "loss": loss,
            }
            model = Trainer(parse_trial_config(raw)).model
            assert model(torch.zeros(3, 2)).shape == (3, outputs)
    finally:
        sys.path.remove(str(REPO / "examples"))


def test_mlflow_params_name_the_network_and_its_arguments(user_folder):
    from symgrid.grid.mlflow_callback import params

    raw = {
        "name": "p",
        "base": {
            **TINY,
            "model": {"name": "usernet:TwoLayer"},
            "optimizer": {"name": "nadam", "betas": [0.8, 0.99]},
        },
        "axes": {"model.width": [6]},
    }
    (trial,) = expand(parse_spec(raw))
    logged = {p.key: p.value for p in params(trial.axes, trial.config)}
    assert logged["model.width"] == "6" and logged["config.model.width"] == "6"
    assert logged["config.model.name"] == "usernet:TwoLayer"
    assert logged["config.optimizer.betas"] == "[0.8, 0.99]"


def test_an_optimizer_setting_is_checked_once_per_process_and_a_bad_one_every_time(monkeypatch):
    from symgrid.trainables import optimizers
    from symgrid.trainables.schema import ConfigError

    calls, real = [], optimizers.check_once
    optimizers._remembered.cache_clear()
    monkeypatch.setattr(optimizers, "check_once", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):  # a grid repeats one setting in every trial
        optimizers.check("rmsprop", 0.01, {"alpha": 0.95}, True)
    assert len(calls) == 1
    for _ in range(2):  # a refused setting is never remembered
        with pytest.raises(ConfigError, match="centered: expected true or false"):
            optimizers.check("rmsprop", 0.01, {"alpha": 0.95, "centered": 1}, True)
    optimizers.check("rmsprop", 0.01, {"alpha": 0.95, "centered": True}, True)
    with pytest.raises(ConfigError, match="expected true or false"):  # 1 == True as a key
        optimizers.check("rmsprop", 0.01, {"alpha": 0.95, "centered": 1}, True)
    assert len(calls) == 5
