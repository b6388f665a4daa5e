"""Whole trials: learning, divergence, identical resume, the paired evaluation."""

import io

import numpy as np
import pytest
import torch
from ray import tune
from symgrid.trainables import tune_adapter
from symgrid.trainables.config import parse_trial_config
from symgrid.trainables.losses import make_loss
from symgrid.trainables.map_reference import budget_symbols
from symgrid.trainables.reference import posterior
from symgrid.trainables.shared_set import shared_eval_set
from symgrid.trainables.trial import Trainer, run_trial
from torch.overrides import TorchFunctionMode

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


@pytest.mark.slow
def test_a_short_run_learns_and_beats_chance():
    rows = []
    out = run_trial(SMALL, lambda row, trainer: rows.append(row))
    assert out.status == "completed" and [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_ber"] < 0.25  # chance is 0.5
    for point in out.ber:
        assert point["bits"] == 4 * budget_symbols(point["ebno_db"], 4, 100, 200_000) <= 200_000
        assert point["ci_low"] <= point["ber"] <= point["ci_high"]
        assert point["ber"] >= point["ber_map"] * 0.8  # MAP is the limit, up to MC noise
    assert set(out.predictions) == {2.0, 8.0}
    assert out.predictions[2.0].p.shape == out.predictions[2.0].eta.shape == (256, 4)
    assert out.summary["epochs_run"] == 4 and out.summary["num_params"] == 2 * 32 + 32 + 32 * 4 + 4


def test_divergence_is_a_result_not_an_exception():
    cfg = {**SMALL, "optimizer": {"name": "sgd", "lr": 1e3}}
    rows = []
    out = run_trial(cfg, lambda row, trainer: rows.append(row))
    assert out.status == out.summary["status"] == "diverged" and out.ber == []
    assert len(rows) == out.summary["epochs_run"] < 4  # stopped at the first bad epoch


@pytest.mark.parametrize(
    "override",
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
@pytest.mark.slow
def test_resume_from_a_checkpoint_gives_identical_weights(override):
    cfg = {**SMALL, **override}
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


# Every torch function that draws random numbers (factories and in-place fills).
RANDOM_OPS = {
    "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial",
    "rand_like", "randn_like", "randint_like", "uniform_", "normal_", "bernoulli_",
    "random_", "exponential_", "cauchy_", "log_normal_", "geometric_",
}  # fmt: skip


class RandomDraws(TorchFunctionMode):
    """Records (op, generator device or None, output device) of every random draw."""

    def __init__(self):
        super().__init__()
        self.draws = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if getattr(func, "__name__", "") in RANDOM_OPS:
            gen = kwargs.get("generator")
            self.draws.append((func.__name__, gen and gen.device.type, out.device.type))
        return out


def check_cpu_draws(draws):
    assert draws and all(out == "cpu" for _, _, out in draws), draws
    assert all(gen in ("cpu", None) for _, gen, _ in draws)
    # Only nn.Linear's own init draws without a generator: inside a fork of the global CPU RNG
    # seeded from the trial's "init" stream (Trainer._build_model).
    assert {op for op, gen, _ in draws if gen is None} <= {"uniform_"}


EVERY_STREAM = {
    **SMALL,
    "train": {**SMALL["train"], "epochs": 2},
    "regularization": "dropout",  # the dropout stream too
    "eval": {**SMALL["eval"], "max_bits": 40_000},
}


@pytest.mark.slow
def test_every_random_stream_is_drawn_on_the_cpu():
    with RandomDraws() as spy:
        out = run_trial(EVERY_STREAM)
    check_cpu_draws(spy.draws)
    assert {"randint", "randn", "rand", "randperm"} <= {op for op, _, _ in spy.draws}
    assert out.summary["device"] == "cpu"


@pytest.mark.parametrize("fresh", [False, True])
def test_samples_do_not_depend_on_the_device(fresh):
    """On a device other than the CPU ("meta" stands in for CUDA here) every stream is still a
    CPU generator and every draw happens on the CPU; the data only moves to the device."""
    cfg = parse_trial_config(
        {**EVERY_STREAM, "train": {**SMALL["train"], "fresh_each_epoch": fresh}}
    )
    with RandomDraws() as spy:
        trainer = Trainer(cfg, "meta")
        trainer.model.train()
        trainer.model(trainer.val_x[:8])  # dropout masks
        block = trainer._fresh(64) if fresh else trainer._shuffled(torch.arange(64))
    check_cpu_draws(spy.draws)
    assert {g.device.type for g in trainer.generators().values()} == {"cpu"}
    assert trainer.val_set.y.device.type == block[0].device.type == "meta"
    on_cpu = Trainer(cfg, "cpu")
    assert torch.equal(on_cpu.train_gen.get_state(), Trainer(cfg, "cpu").train_gen.get_state())
    for name, gen in trainer.generators().items():  # the same draws on both devices so far
        if name != "dropout" and not (fresh and name == "train"):
            assert torch.equal(gen.get_state(), on_cpu.generators()[name].get_state()), name


@pytest.mark.slow
def test_stored_posterior_belongs_to_the_stored_samples():
    out = run_trial({**EVERY_STREAM, "regularization": "none"})
    for e, pred in out.predictions.items():
        shared = shared_eval_set(4, e, 256)
        assert np.array_equal(pred.y, shared.y.numpy()) and np.array_equal(pred.no, shared.no)
        eta = posterior(torch.from_numpy(pred.y), torch.from_numpy(pred.no), 4).numpy()
        assert np.array_equal(pred.eta, eta)
    assert not np.allclose(out.predictions[2.0].eta, out.predictions[8.0].eta, atol=0.1)


@pytest.mark.slow
def test_trials_with_one_seed_share_the_samples_of_every_common_point():
    """Different detectors and different test points, the same seed: the same MAP error counts
    at the common point, which runs to max_bits in both."""
    never = {"min_errors": 10**9, "max_bits": 200_000}
    first = run_trial({**SMALL, "eval": {**SMALL["eval"], **never, "ebno_db": [0, 6]}})
    other = {**SMALL, "model": {"hidden": [8]}, "loss": "mse"}
    second = run_trial({**other, "eval": {**SMALL["eval"], **never, "ebno_db": [6]}})
    a, b = first.ber[1], second.ber[0]
    assert a["ebno_db"] == b["ebno_db"] == 6.0 and a["bits"] == b["bits"] == 200_000
    assert a["errors_map"] == b["errors_map"] and a["errors"] != b["errors"]


KNOWN_GOOD = {
    "train": {
        "ebno_db": [-4, 12],
        "symbols": 262144,
        "fresh_each_epoch": True,
        "val_symbols": 8192,
        "batch_size": 4096,
        "epochs": 6,
    },
    "model": {"hidden": [64], "noise_input": True},
    "scheduler": "cosine",
    "eval": {"ebno_db": [0, 4, 8], "min_errors": 2000, "max_bits": 4_000_000, "biasvar_symbols": 8},
}


@pytest.mark.slow
def test_a_known_good_trial_is_within_five_percent_of_map():
    """A short trial that reaches the limit (measured 1.009-1.012 over seeds 0-2); with about
    2000 MAP errors a point (its budget) its paired ratio has a standard error of about 0.3 %."""
    out = run_trial(KNOWN_GOOD)
    assert all(abs(p["errors_map"] - 2000) < 5 * 2000**0.5 for p in out.ber)  # Poisson, 5 sd
    assert 0.98 <= out.summary["ber_ratio_map"] <= 1.05
    assert out.summary["ber_ratio_map"] == pytest.approx(np.exp(out.summary["log_ratio_map"]))
    assert 0 < out.summary["log_ratio_map_se"] < 0.01
    assert out.summary["rate_gap"] > -3 * out.summary["rate_gap_se"]
    assert out.summary["points_no_map_errors"] == 0


@pytest.mark.slow
def test_val_loss_plain_is_the_loss_without_label_smoothing():
    cfg = parse_trial_config({**SMALL, "regularization": "label_smoothing"})
    trainer = Trainer(cfg)
    row = trainer.step()
    with torch.no_grad():
        trainer.model.eval()
        out = trainer.model(trainer.val_x)
        bits, symbols = trainer.val_set.bits, trainer.val_set.symbol_index
        plain = float(make_loss(cfg.loss, 4)(out, bits, symbols))
        smoothed = float(make_loss(cfg.loss, 4, 0.1)(out, bits, symbols))
    assert row["val_loss_plain"] == pytest.approx(plain, rel=1e-5)
    assert row["val_loss"] == pytest.approx(smoothed, rel=1e-5) and smoothed > plain
    assert trainer.stopper.best_loss == row["val_loss"]  # early stopping follows the objective
    plain_row = Trainer(parse_trial_config(SMALL)).step()
    assert plain_row["val_loss_plain"] == plain_row["val_loss"]


def test_a_state_written_on_cuda_loads_on_a_cpu_node(tmp_path, monkeypatch):
    """A checkpoint whose tensors are tagged cuda:0 (as torch.save writes them on a GPU node)."""
    trainer = Trainer(parse_trial_config(SMALL))
    trainer.step()
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(trainer.state_dict(), tmp_path / tune_adapter.STATE_FILE)
    checkpoint = tune.Checkpoint.from_directory(tmp_path)
    monkeypatch.setattr(tune_adapter.tune, "get_checkpoint", lambda: checkpoint)
    state = tune_adapter.load_state()
    resumed = Trainer(parse_trial_config(SMALL))
    resumed.load_state_dict(state)
    assert resumed.rows == trainer.rows
    assert torch.equal(resumed.model.net[0].weight, trainer.model.net[0].weight)
