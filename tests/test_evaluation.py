"""Detector-independent test budgets, the log-ratio's standard error, the achievable-rate gap and
the per-worker cache of MAP's side of a test point."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import logsumexp
from symgrid.trainables import map_reference
from symgrid.trainables.channel import ebno_db_to_no
from symgrid.trainables.config import parse_trial_config
from symgrid.trainables.constellation import bit_labels, pam
from symgrid.trainables.losses import LOSSES
from symgrid.trainables.metrics import PROB_EPS, evaluate_ber, log_ratio_se
from symgrid.trainables.reference import ber_map, exact_llr, map_bits
from symgrid.trainables.trial import Trainer


def _map(batch):
    return map_bits(batch.y, batch.no, 4)


def _nearly_right(batch):
    bits = map_bits(batch.y, batch.no, 4)
    bits[:, 0] ^= batch.y.real.abs() < 0.05  # slightly worse than MAP
    return bits


def _coin_flip():
    gen = torch.Generator().manual_seed(7)
    return lambda batch: torch.rand(batch.bits.shape, generator=gen) < 0.5


def test_budgets_do_not_depend_on_the_detector():
    """MAP, a nearly-right and a coin-flip detector, one seed: the same bits and MAP errors at
    every point, and the bits are the formula's (the old rule stopped the coin flip at once)."""
    points, min_errors, max_bits = [0.0, 8.0, 12.0], 50, 10**6
    runs = [evaluate_ber(d, 4, points, min_errors, max_bits, seed=3) for d in
            (_map, _nearly_right, _coin_flip())]  # fmt: skip
    for i, e in enumerate(points):
        expected = min(math.ceil(min_errors / (4 * float(ber_map(e, 4)))), max_bits // 4)
        assert {run[i]["bits"] for run in runs} == {4 * expected}
        assert len({run[i]["errors_map"] for run in runs}) == 1
    assert runs[2][2]["errors"] > 100 * runs[0][2]["errors_map"] > 0  # the detectors differ
    assert runs[1][1]["errors"] > runs[0][1]["errors"]


@pytest.mark.parametrize("p11, p01, p10", [(8e-4, 5e-4, 2e-4), (5e-5, 5e-5, 2e-5)])
def test_log_ratio_se_matches_a_monte_carlo_of_paired_counts(p11, p01, p10):
    """Paired bits (both wrong, detector only, MAP only, both right) drawn as multinomials: the
    spread of the continuity-corrected log ratio over replicates is the delta-method se."""
    rng = np.random.default_rng(11)
    n, reps = 200_000, 20_000
    cells = rng.multinomial(n, [p11, p01, p10, 1 - p11 - p01 - p10], size=reps)  # [reps, 4]
    e, e_map = cells[:, 0] + cells[:, 1], cells[:, 0] + cells[:, 2]
    log_ratio = np.log((e + 0.5) / (e_map + 0.5))
    se = log_ratio_se(e, e_map, cells[:, 1], cells[:, 2])
    assert np.median(se) == pytest.approx(log_ratio.std(ddof=1), rel=0.15)


def _axis_bit_bce(x, a, bit, ones, zeros, no):
    """-log P(bit | x) times the density of x given amplitude a (1-D, noise variance no / 2)."""
    llr = logsumexp(-((x - ones) ** 2) / no) - logsumexp(-((x - zeros) ** 2) / no)
    pdf = math.exp(-((x - a) ** 2) / no) / math.sqrt(math.pi * no)
    return np.logaddexp(0.0, (-1.0 if bit else 1.0) * llr) * pdf


def _bitwise_mutual_information(ebno_db: float, k: int) -> float:
    """sum_j I(b_j; y) by quadrature over each PAM axis (the two axes are alike)."""
    amplitudes, labels = pam(k)
    no = float(ebno_db_to_no(ebno_db, k))
    width = 12 * math.sqrt(no / 2)
    total = 0.0
    for j in range(labels.shape[1]):
        ones, zeros = amplitudes[labels[:, j] == 1], amplitudes[labels[:, j] == 0]
        for a, bit in zip(amplitudes, labels[:, j], strict=True):
            inner = list(amplitudes[np.abs(amplitudes - a) < width])  # kinks of the LLR
            args = (a, bit, ones, zeros, no)
            total += quad(_axis_bit_bce, a - width, a + width, args, points=inner, limit=200)[0]
    return 2 * (labels.shape[1] - total / len(amplitudes) / math.log(2))


@pytest.mark.parametrize("ebno_db", [0.0, 6.0])
def test_map_rate_is_the_bitwise_mutual_information(ebno_db):
    (row,) = evaluate_ber(_map, 4, [ebno_db], 20_000, 2_000_000, seed=4)
    assert row["rate_map"] == pytest.approx(_bitwise_mutual_information(ebno_db, 4), abs=0.015)


def test_rate_gap_of_the_exact_posterior_is_zero_and_of_a_coin_flip_rate_is_zero():
    exact = lambda batch: exact_llr(batch.y, batch.no, 4)  # noqa: E731
    (row,) = evaluate_ber(exact, 4, [4.0], 500, 10**6, seed=1)
    assert row["rate_gap"] == 0.0 and row["rate_gap_se"] == 0.0 and row["rate"] == row["rate_map"]
    half = lambda batch: torch.zeros(batch.bits.shape)  # noqa: E731  logit 0: p = 0.5
    (row,) = evaluate_ber(half, 4, [4.0], 500, 10**6, seed=1)
    assert row["rate"] == pytest.approx(0.0, abs=1e-9)
    assert row["rate_gap"] == pytest.approx(row["rate_map"]) and row["rate_gap_se"] > 0
    near = evaluate_ber(_nearly_right, 4, [4.0], 500, 10**6, seed=1)[0]  # hard: clamped
    assert near["rate"] < near["rate_map"] and math.isfinite(near["rate"])


TINY = {"train": {"ebno_db": [0, 10], "symbols": 2048, "val_symbols": 512, "batch_size": 256,
                  "epochs": 1}, "model": {"hidden": [16]}}  # fmt: skip


def _independent_rate(trainer: Trainer, name: str, ebno_db: float, symbols: int) -> float:
    """The trial's rate at one point from its model's raw outputs, in float64 numpy."""
    (batch,) = map_reference.point_chunks(0, ebno_db, 4, [symbols], "cpu")
    trainer.model.eval()
    with torch.no_grad():
        out = trainer.model(trainer.inputs(batch)).double().numpy()
    truth = batch.bits.numpy() == 1  # [n, 4]
    if name in {"cross_entropy", "nll"}:
        p_sym = np.exp(out - logsumexp(out, axis=1, keepdims=True))  # [n, 16]
        p1 = p_sym @ bit_labels(4).numpy().astype(float)  # [n, 4]
    else:
        p1 = 1 / (1 + np.exp(-out))
        if name != "bce_logits":
            p1 = np.clip(p1, PROB_EPS, 1 - PROB_EPS)
    nats = -np.where(truth, np.log(p1), np.log1p(-p1)).sum(axis=1)
    return 4 - nats.mean() / math.log(2)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_head_has_a_soft_output_whose_rate_is_recomputed_independently(loss):
    trainer = Trainer(parse_trial_config({**TINY, "loss": loss}))
    trainer.step()
    (row,) = evaluate_ber(trainer.soft_bits, 4, [0.0], 1000, 10**6, seed=0)
    symbols = row["bits"] // 4
    assert symbols < 16384  # one chunk, so the independent draw sees the same samples
    assert row["rate"] == pytest.approx(_independent_rate(trainer, loss, 0.0, symbols), abs=2e-4)
    assert row["rate_gap"] > -4 * row["rate_gap_se"]
    (batch,) = map_reference.point_chunks(0, 0.0, 4, [symbols], "cpu")
    assert torch.equal(trainer.soft_bits(batch) > 0, trainer.detect(batch))


def test_the_cache_gives_the_uncached_results_and_stays_bounded(monkeypatch):
    map_reference.clear_cache()
    sizes = tuple(map_reference.chunk_sizes(40_000, 16384, 1 << 20))
    cold = map_reference.compute_map_side(5, 6.0, 4, sizes, "cpu")
    cached = map_reference.map_side(5, 6.0, 4, sizes, "cpu")
    again = map_reference.map_side(5, 6.0, 4, sizes, "cpu")
    assert again is cached  # the second call is a hit
    for a, b in zip(cold.wrong + cold.bce, cached.wrong + cached.bce, strict=True):
        assert torch.equal(a, b)
    first = evaluate_ber(_nearly_right, 4, [6.0], 10**9, 160_000, seed=5)
    map_reference.clear_cache()
    assert first == evaluate_ber(_nearly_right, 4, [6.0], 10**9, 160_000, seed=5)
    # Bounded: room for two of these entries, so a third evicts the least recently used.
    monkeypatch.setattr(map_reference, "CACHE_BYTES", int(2.5 * cold.nbytes))
    map_reference.clear_cache()
    for seed in (1, 2, 3):
        map_reference.map_side(seed, 6.0, 4, sizes, "cpu")
        assert map_reference.cache_bytes() <= map_reference.CACHE_BYTES
    assert [key[0] for key in map_reference._cache] == [2, 3]
    monkeypatch.setattr(map_reference, "CACHE_BYTES", cold.nbytes - 1)  # too big to keep
    map_reference.clear_cache()
    map_reference.map_side(1, 6.0, 4, sizes, "cpu")
    assert map_reference.cache_bytes() == 0
