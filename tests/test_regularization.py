"""Penalties on weights only, weight decay as the lecture's update, early stopping."""

import pytest
import torch
from symgrid.trainables import regularization as reg
from symgrid.trainables.config import parse_trial_config
from torch import nn


def model():
    torch.manual_seed(0)  # test-only: a fixed small net
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def knobs(value):
    return reg.knobs(parse_trial_config({"regularization": value}).regularization)


def test_plan_folds_settings():
    plan = knobs(["l2", {"name": "l1", "weight": 0.01}, "dropout", "early_stopping"])
    assert plan.weight_decay == 1e-4 and plan.l1 == 0.01 and plan.dropout == 0.1  # 2 x 5e-5
    assert plan.early_stopping.patience == 3
    net = knobs({"name": "elastic_net", "weight": 0.1, "beta": 2.0})
    assert net.l1 == 0.1 and net.l2 == pytest.approx(0.2)


def test_penalty_counts_weights_not_biases():
    m = model()
    w = [m[0].weight, m[2].weight]
    plan = reg.Knobs(l1=0.3, l2=0.7)
    expected = sum(0.3 * x.abs().sum() + 0.7 * x.square().sum() for x in w)
    torch.testing.assert_close(reg.penalty(m, plan), expected)
    assert reg.penalty(m, reg.Knobs()) == 0.0


def test_weight_decay_shrinks_weights_by_one_minus_lr_a():
    m = model()
    before = [p.detach().clone() for p in m.parameters()]
    opt = torch.optim.SGD(reg.param_groups(m, weight_decay=0.5), lr=0.1)
    (0 * sum(p.sum() for p in m.parameters())).backward()  # zero data gradient
    opt.step()
    for p, old in zip(m.parameters(), before):
        factor = 1 - 0.1 * 0.5 if p.ndim >= 2 else 1.0
        torch.testing.assert_close(p.detach(), old * factor)


def test_early_stopper_waits_patience_and_restores_best():
    m = model()
    stopper = reg.EarlyStopper(reg.EarlyStopping(patience=2, min_delta=0.01))
    assert not stopper.update(1, 1.0, m)
    best = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m[0].weight.add_(1.0)
    assert not stopper.update(2, 0.995, m)  # within min_delta: no improvement
    assert stopper.update(3, 2.0, m)
    stopper.restore(m)
    assert stopper.best_epoch == 1
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, best[k])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_l2_and_elastic_net_weights_mean_the_same_loss_term(optimizer):
    """l2 weight a and elastic_net weight a, beta 1 (its l1 part removed) both add a * sum w^2
    to the loss: one optimizer step equals a step on the loss with that term written out."""
    a, lr = 0.3, 0.1
    data_loss = lambda m: m(torch.ones(4, 2)).square().mean()  # noqa: E731
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]

    def step(settings, explicit: bool):
        m = model()
        plan = knobs(settings)
        opt = cls(reg.param_groups(m, plan.weight_decay), lr=lr)
        loss = data_loss(m) + reg.penalty(m, reg.Knobs(l2=plan.l2))  # elastic_net's w^2 term
        if explicit:
            loss = loss + a * sum(w.square().sum() for w in reg.weights(m))
        loss.backward()
        opt.step()
        return [p.detach() for p in m.parameters()]

    by_hand = step("none", explicit=True)
    l2 = step({"name": "l2", "weight": a}, explicit=False)
    elastic = step({"name": "elastic_net", "weight": a, "beta": 1.0}, explicit=False)
    for x, y, z in zip(by_hand, l2, elastic):
        torch.testing.assert_close(y, x)
        torch.testing.assert_close(z, x)
