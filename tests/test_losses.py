"""Each loss against its formula written out by hand."""

import pytest
import torch
from symgrid.trainables.losses import LOSSES, head, make_loss
from symgrid.trainables.schema import Named, parse_named

K = 4


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, K, generator=g)
    bits = torch.randint(0, 2, (64, K), generator=g).float()
    sym = torch.randint(0, 2**K, (64,), generator=g)
    sym_logits = torch.randn(64, 2**K, generator=g)
    return logits, bits, sym, sym_logits


def loss(name, **params):
    return make_loss(parse_named({"name": name, **params}, LOSSES, "loss"), K)


def test_bit_losses_match_their_formulas(data):
    logits, bits, sym, _ = data
    p = torch.sigmoid(logits)
    bce = -(bits * p.log() + (1 - bits) * (1 - p).log()).mean()
    torch.testing.assert_close(loss("bce")(logits, bits, sym), bce)
    torch.testing.assert_close(loss("bce_logits")(logits, bits, sym), bce)
    torch.testing.assert_close(loss("mse")(logits, bits, sym), ((p - bits) ** 2).mean())
    torch.testing.assert_close(loss("l1")(logits, bits, sym), (p - bits).abs().mean())
    d = (p - bits).abs()
    smooth = torch.where(d < 0.5, 0.5 * d**2 / 0.5, d - 0.25).mean()
    torch.testing.assert_close(loss("smooth_l1", beta=0.5)(logits, bits, sym), smooth)


def test_pos_weight_weights_the_one_bits(data):
    logits, bits, sym, _ = data
    p = torch.sigmoid(logits)
    weighted = -(3.0 * bits * p.log() + (1 - bits) * (1 - p).log()).mean()
    torch.testing.assert_close(loss("bce_logits", pos_weight=3.0)(logits, bits, sym), weighted)


def test_symbol_losses_classify_symbols(data):
    _, bits, sym, sym_logits = data
    log_p = torch.log_softmax(sym_logits, dim=-1)
    nll = -log_p[torch.arange(64), sym].mean()
    torch.testing.assert_close(loss("cross_entropy")(sym_logits, bits, sym), nll)
    torch.testing.assert_close(loss("nll")(sym_logits, bits, sym), nll)
    assert head(Named("nll")) == "symbol" and head(Named("mse")) == "bit"


def test_label_smoothing(data):
    logits, bits, sym, sym_logits = data
    eps = 0.1
    named = Named("bce_logits", parse_named("bce_logits", LOSSES, "loss").params)
    p = torch.sigmoid(logits)
    t = bits * (1 - eps / 2) + (1 - bits) * eps / 2  # (1 - eps) one_hot + eps uniform(2)
    expected = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    torch.testing.assert_close(make_loss(named, K, eps)(logits, bits, sym), expected)
    log_p = torch.log_softmax(sym_logits, dim=-1)
    target = torch.full((64, 2**K), eps / 2**K)
    target[torch.arange(64), sym] += 1 - eps
    ce = -(target * log_p).sum(-1).mean()
    smoothed = make_loss(Named("cross_entropy"), K, eps)(sym_logits, bits, sym)
    torch.testing.assert_close(smoothed, ce)


@pytest.mark.parametrize("name", ["bce", "bce_logits"])
def test_bit_head_smoothing_is_torchs_label_smoothing_on_two_classes(data, name):
    """One bit is a two-class problem: the bit head with epsilon equals CrossEntropyLoss with
    label_smoothing=epsilon on the logits [0, z] (so epsilon means the same on both heads)."""
    logits, bits, sym, _ = data
    eps = 0.2
    bit_loss = make_loss(parse_named(name, LOSSES, "loss"), 1, eps)
    z, b = logits[:, :1], bits[:, :1]  # [n, 1]
    two_class = torch.cat([torch.zeros_like(z), z], dim=1)  # [n, 2]: P(b = 1) = sigmoid(z)
    expected = torch.nn.CrossEntropyLoss(label_smoothing=eps)(two_class, b[:, 0].long())
    torch.testing.assert_close(bit_loss(z, b, sym), expected)
