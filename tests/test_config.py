"""Trial config: defaults, round trips and one-line errors that name the field."""

import math

import pytest
from symgrid.trainables.config import config_to_dict, hidden_widths, parse_trial_config
from symgrid.trainables.schema import ConfigError, Named


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_trial_config(raw)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_defaults_match_the_documented_shape():
    cfg = parse_trial_config({})
    assert cfg.modulation.num_bits_per_symbol == 4
    assert cfg.train.ebno_db == (-20.0, 20.0)
    assert cfg.train.symbols == 262144 and cfg.train.epochs == 20
    assert cfg.model.hidden == (64, 64)
    assert cfg.loss.name == "bce_logits" and cfg.loss.params.pos_weight is None
    assert cfg.scheduler == Named("none")
    assert cfg.regularization == () and cfg.eval.max_bits == 20_000_000


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"model": {"name": "baseline"}, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
        {"loss": {"name": "smooth_l1", "beta": 0.5}, "scheduler": {"name": "step", "gamma": 0.1}},
        {"regularization": ["l2", {"name": "dropout", "p": 0.2}, "early_stopping"]},
        {"loss": "cross_entropy", "regularization": "label_smoothing", "train": {"ebno_db": 3}},
    ],
)
def test_resolved_config_round_trips(raw):
    cfg = parse_trial_config(raw)
    assert parse_trial_config(config_to_dict(cfg)) == cfg


def test_options_take_their_parameters():
    cfg = parse_trial_config(
        {"scheduler": {"name": "step", "step_size": 2}, "regularization": {"name": "l1"}}
    )
    assert cfg.scheduler.params.step_size == 2 and cfg.scheduler.params.gamma == 0.5
    assert [s.name for s in cfg.regularization] == ["l1"]
    assert hidden_widths(parse_trial_config({"model": {"name": "baseline"}})) == (32,)


def test_yaml_float_counts_are_accepted():
    assert parse_trial_config({"eval": {"max_bits": 2.0e7}}).eval.max_bits == 20_000_000


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"trian": {}}, "trian: unknown key; allowed:"),
        ({"train": {"epoch": 3}}, "did you mean 'epochs'"),
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer, got 'ten'"),
        ({"train": {"epochs": True}}, "train.epochs: expected an integer"),
        ({"train": {"epochs": 0}}, "train.epochs: 0 is out of range"),
        ({"optimizer": {"lr": math.nan}}, "optimizer.lr: expected a finite number"),
        ({"loss": "bce_logit"}, "loss: unknown name 'bce_logit'"),
        ({"loss": {"name": "smooth_l1", "beta": -1}}, "loss.beta: -1"),
        ({"scheduler": {"gamma": 0.5}}, "scheduler: a mapping needs a 'name' key"),
        ({"regularization": ["l2", "l2"]}, "'l2' is listed twice"),
        ({"loss": "mse", "regularization": "label_smoothing"}, "does nothing with loss 'mse'"),
        ({"train": {"ebno_db": [10, 0]}}, "train.ebno_db: reversed range"),
        ({"modulation": {"num_bits_per_symbol": 5}}, "num_bits_per_symbol: 5; allowed: 2, 4, 6, 8"),
        ({"model": {"dropout": 0.1}, "regularization": "dropout"}, "set dropout in one place"),
        ({"model": {"name": "baseline", "hidden": [8]}}, "model.hidden: baseline"),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, "momentum: not an argument of torch"),
        ({"model": {"hidden": []}}, "model.hidden: must not be empty"),
        ({"train": {"batch_size": 10, "symbols": 5}}, "train.batch_size: larger than"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(raw, fragment):
    assert fragment in error_of(raw)
