"""Whole trials: learning, divergence, identical resume, the paired evaluation."""

import io

import pytest
import torch

from trainables.config import parse_trial_config
from trainables.trial import Trainer, run_trial

SMALL = {
    "train": {
        "ebno_db": [0, 10],
        "symbols": 8192,
        "val_symbols": 4096,
        "batch_size": 512,
        "epochs": 4,
    },
    "model": {"hidden": [32]},
    "eval": {"ebno_db": [2, 8], "min_errors": 100, "max_bits": 200_000, "biasvar_symbols": 256},
}


def test_a_short_run_learns_and_beats_chance():
    rows = []
    out = run_trial(SMALL, lambda row, trainer: rows.append(row))
    assert out.status == "completed" and [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_ber"] < 0.25  # chance is 0.5
    for point in out.ber:
        assert point["bits"] <= 200_000
        assert point["errors"] >= 100 or point["bits"] == 200_000
        assert point["ci_low"] <= point["ber"] <= point["ci_high"]
        assert point["ber"] >= point["ber_map"] * 0.8  # MAP is the limit, up to MC noise
    assert set(out.predictions) == {2.0, 8.0}
    assert out.predictions[2.0].shape == (256, 4)
    assert out.summary["epochs_run"] == 4 and out.summary["num_params"] == 2 * 32 + 32 + 32 * 4 + 4


def test_divergence_is_a_result_not_an_exception():
    cfg = {**SMALL, "optimizer": {"name": "sgd", "lr": 1e3}}
    rows = []
    out = run_trial(cfg, lambda row, trainer: rows.append(row))
    assert out.status == out.summary["status"] == "diverged" and out.ber == []
    assert len(rows) == out.summary["epochs_run"] < 4  # stopped at the first bad epoch


@pytest.mark.parametrize(
    "extra",
    [
        {
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
            "scheduler": "step",
            "regularization": ["dropout", "l1", "early_stopping"],
            "train": {**SMALL["train"], "fresh_each_epoch": True, "epochs": 5},
        },
        {"loss": "cross_entropy", "scheduler": "one_cycle", "regularization": "label_smoothing"},
        {"scheduler": "plateau", "model": {"hidden": [16], "noise_input": True}},
    ],
)
def test_resume_from_a_checkpoint_gives_identical_weights(extra):
    cfg = {**SMALL, **extra}
    whole = Trainer(parse_trial_config(cfg))
    while not whole.done:
        whole.step()
    part = Trainer(parse_trial_config(cfg))
    part.step()
    part.step()
    buffer = io.BytesIO()
    torch.save(part.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(parse_trial_config(cfg))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    while not resumed.done:
        resumed.step()
    assert resumed.rows == whole.rows
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
