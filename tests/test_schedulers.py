"""Each scheduler's learning rates against the closed form of its schedule."""

import math

import pytest
import torch
from symgrid.trainables.schedulers import SCHEDULERS, Schedule
from symgrid.trainables.schema import parse_named

LR, EPOCHS, BATCHES = 0.1, 12, 5


def lrs_per_epoch(value, val_losses=None):
    """The lr in force at the start of each epoch."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    schedule = Schedule(parse_named(value, SCHEDULERS, "scheduler"), opt, EPOCHS, BATCHES)
    seen = []
    for epoch in range(EPOCHS):
        seen.append(opt.param_groups[0]["lr"])
        for _ in range(BATCHES):
            opt.step()
            schedule.after_batch()
        schedule.after_epoch(val_losses[epoch] if val_losses else 1.0)
    return seen


def close(actual, expected):
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_none_keeps_the_rate():
    close(lrs_per_epoch("none"), [LR] * EPOCHS)


def test_step():
    close(lrs_per_epoch("step"), [LR * 0.5 ** (e // 5) for e in range(EPOCHS)])


def test_lambda_linear_is_the_lectures_formula():
    f = 0.1
    close(
        lrs_per_epoch("lambda_linear"),
        [LR * (f + (1 - e / EPOCHS) * (1 - f)) for e in range(EPOCHS)],
    )


def test_constant_and_linear_are_the_lectures_examples():
    close(lrs_per_epoch("constant"), [LR * (0.5 if e < 4 else 1.0) for e in range(EPOCHS)])
    linear = [LR * (0.5 + (0.8 - 0.5) * min(e, 10) / 10) for e in range(EPOCHS)]
    close(lrs_per_epoch("linear"), linear)


def test_exponential_and_multiplicative():
    close(lrs_per_epoch("exponential"), [LR * 0.9**e for e in range(EPOCHS)])
    close(
        lrs_per_epoch({"name": "multiplicative", "factor": 0.8}),
        [LR * 0.8**e for e in range(EPOCHS)],
    )


def test_cosine():
    expected = [LR * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(EPOCHS)]
    close(lrs_per_epoch("cosine"), expected)


def test_one_cycle_steps_per_batch_and_peaks_at_max_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    named = parse_named({"name": "one_cycle", "max_lr": 1.0}, SCHEDULERS, "scheduler")
    schedule = Schedule(named, opt, EPOCHS, BATCHES)
    seen = []
    for _ in range(EPOCHS * BATCHES):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_batch()
    peak = seen.index(max(seen))
    assert max(seen) == pytest.approx(1.0)
    assert peak == round(0.3 * EPOCHS * BATCHES) - 1
    assert seen[0] == pytest.approx(1.0 / 25)  # torch's div_factor


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_cycle_changes_only_the_learning_rate(optimizer):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]([param], lr=LR)
    before = {k: v for k, v in opt.param_groups[0].items() if k in ("momentum", "betas")}
    schedule = Schedule(parse_named("one_cycle", SCHEDULERS, "scheduler"), opt, EPOCHS, BATCHES)
    for _ in range(EPOCHS * BATCHES // 2):
        opt.step()
        schedule.after_batch()
        assert {k: opt.param_groups[0][k] for k in before} == before  # momentum / beta1 fixed


def test_one_cycle_cycles_momentum_when_asked():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR, momentum=0.9)
    named = parse_named({"name": "one_cycle", "cycle_momentum": True}, SCHEDULERS, "scheduler")
    Schedule(named, opt, EPOCHS, BATCHES)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)  # torch's max_momentum


def test_plateau_reduces_after_patience():
    losses = [1.0, 0.9] + [0.9] * 10
    seen = lrs_per_epoch("plateau", losses)
    assert seen[:5] == pytest.approx([LR] * 5)
    assert seen[5] == pytest.approx(LR * 0.5)  # 3 epochs without improvement > patience 2


def test_state_dict_round_trips():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    named = parse_named("step", SCHEDULERS, "scheduler")
    schedule = Schedule(named, opt, EPOCHS, BATCHES)
    for _ in range(7):
        opt.step()
        schedule.after_epoch(1.0)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    opt2.load_state_dict(opt.state_dict())
    again = Schedule(named, opt2, EPOCHS, BATCHES)
    again.load_state_dict(schedule.state_dict())
    for s, o in ((schedule, opt), (again, opt2)):
        for _ in range(5):
            o.step()
            s.after_epoch(1.0)
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"] == pytest.approx(LR * 0.25)
