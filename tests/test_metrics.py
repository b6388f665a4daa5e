"""Tests for trainables.metrics: intervals, McNemar and the paired BER evaluation."""

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from trainables.metrics import clopper_pearson, evaluate_ber, mcnemar_pvalue
from trainables.reference import map_bits

KEYS = {
    "ebno_db", "bits", "errors", "ber", "ci_low", "ci_high", "errors_map", "ber_map",
    "n01", "n10", "mcnemar_p", "ber_theory_nearest", "ber_theory_map",
}  # fmt: skip


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (3, 50), (117, 1000), (1, 1_000_000)])
def test_clopper_pearson_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(0.95, method="exact")
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(expected.low, rel=1e-6, abs=1e-15)
    assert high == pytest.approx(expected.high, rel=1e-6, abs=1e-15)


def test_clopper_pearson_vectorized():
    low, high = clopper_pearson(np.array([0, 5, 20]), np.array([20, 20, 20]))
    assert low.shape == high.shape == (3,)
    assert low[0] == 0.0 and high[2] == 1.0 and (low < high).all()


def test_mcnemar():
    assert mcnemar_pvalue(0, 0) == 1.0
    assert mcnemar_pvalue(40, 40) == pytest.approx(1.0)
    assert mcnemar_pvalue(100, 5) < 1e-20
    assert mcnemar_pvalue(5, 100) == pytest.approx(mcnemar_pvalue(100, 5))


def _map_detector(k):
    return lambda batch: map_bits(batch.y, batch.no, k)


def test_evaluate_ber_map_detector_is_concordant():
    rows = evaluate_ber(_map_detector(4), 4, [-2.0, 6.0], 200, 200_000, torch.Generator())
    assert len(rows) == 2
    for row in rows:
        assert set(row) == KEYS
        assert row["errors"] == row["errors_map"] and row["n01"] == row["n10"] == 0
        assert row["mcnemar_p"] == 1.0
        assert row["ci_low"] <= row["ber"] <= row["ci_high"]
        assert row["ber_theory_map"] <= row["ber_theory_nearest"]


def test_evaluate_ber_always_wrong_on_bit_zero():
    def detect(batch):
        bits = map_bits(batch.y, batch.no, 4)
        bits[:, 0] = ~batch.bits[:, 0].bool()  # [n]
        return bits

    (row,) = evaluate_ber(detect, 4, [10.0], 1000, 100_000, torch.Generator().manual_seed(1))
    assert row["errors"] >= row["bits"] / 4
    assert row["n01"] > 0 and row["mcnemar_p"] < 1e-12


def test_stopping_rule():
    gen = torch.Generator().manual_seed(2)
    # Low SNR: min_errors is reached within the first chunk.
    (row,) = evaluate_ber(_map_detector(4), 4, [-5.0], 100, 10**6, gen, chunk_symbols=1000)
    assert row["errors"] >= 100 and row["bits"] == 4000
    # High SNR, no errors: the bit budget is used exactly, trimmed to whole symbols.
    (row,) = evaluate_ber(_map_detector(4), 4, [30.0], 10, 50_003, gen, chunk_symbols=1000)
    assert row["bits"] == 50_000 and row["errors"] == 0 and row["ci_low"] == 0.0
    # Chunks double (1000, 2000, 4000 symbols): stops after the chunk that reaches min_errors.
    (row,) = evaluate_ber(_map_detector(2), 2, [4.0], 300, 10**6, gen, chunk_symbols=1000)
    assert row["errors"] >= 300 and row["bits"] <= 10**6
    assert row["bits"] in {2 * s for s in (1000, 3000, 7000, 15000, 31000, 63000, 127000)}
