"""Detector heads and the explicit-generator dropout."""

import itertools

import torch
from symgrid.trainables.constellation import bit_labels
from symgrid.trainables.detector import Detector, GeneratorDropout, bit_logits


def test_symbol_head_marginalizes_the_softmax_per_bit():
    k = 4
    labels = bit_labels(k)
    logits = torch.randn(5, 2**k, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(logits, dim=-1)
    llr = bit_logits(logits, "symbol", labels)
    for n, j in itertools.product(range(5), range(k)):
        p1 = sum(probs[n, c] for c in range(2**k) if labels[c, j] == 1)
        expected = torch.log(p1) - torch.log(1 - p1)
        torch.testing.assert_close(llr[n, j], expected, rtol=1e-4, atol=1e-4)
    x = torch.randn(3, 4)
    assert bit_logits(x, "bit", labels) is x


def test_symbol_head_marginalization_holds_for_confident_outputs_and_every_order():
    """Logits 200 apart (probabilities far below float32's range), against float64 log-sum-exps
    over each bit's points, for every constellation size."""
    gen = torch.Generator().manual_seed(1)
    for k in (2, 4, 6, 8):
        labels = bit_labels(k)
        logits = torch.randn(64, 2**k, generator=gen) * 200
        exact = logits.double()
        ones = [torch.logsumexp(exact[:, labels[:, j] == 1], dim=-1) for j in range(k)]
        zeros = [torch.logsumexp(exact[:, labels[:, j] == 0], dim=-1) for j in range(k)]
        expected = torch.stack(ones, dim=1) - torch.stack(zeros, dim=1)
        got = bit_logits(logits, "symbol", labels)
        assert got.shape == (64, k) and torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-3)


def test_detector_shapes_and_dropout_layers():
    net = Detector(3, (16, 8), 4, "tanh", dropout=0.2, generator=torch.Generator())
    assert net(torch.randn(7, 3)).shape == (7, 4)
    assert sum(isinstance(m, GeneratorDropout) for m in net.modules()) == 2


def test_generator_dropout_is_reproducible_and_unbiased():
    x = torch.ones(200_000)
    drop = GeneratorDropout(0.25, torch.Generator().manual_seed(3))
    a = drop(x)
    drop.generator.manual_seed(3)
    torch.testing.assert_close(drop(x), a)
    assert abs(float((a == 0).float().mean()) - 0.25) < 0.005
    assert abs(float(a.mean()) - 1.0) < 0.01  # inverted dropout keeps the mean
    drop.eval()
    assert torch.equal(drop(x), x)
