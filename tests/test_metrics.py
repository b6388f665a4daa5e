"""Tests for trainables.metrics: intervals, McNemar and the paired BER evaluation."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from symgrid.trainables.channel import point_key, seeded_generator, transmit
from symgrid.trainables.metrics import (
    clopper_pearson,
    evaluate_ber,
    mcnemar_pvalue,
    ratio_to_map,
    trial_ratio_to_map,
)
from symgrid.trainables.reference import ber_map, map_bits

KEYS = {
    "ebno_db", "bits", "errors", "ber", "ci_low", "ci_high", "errors_map", "ber_map",
    "ber_ratio_map", "log_ratio_map", "log_ratio_map_se", "n01", "n10", "mcnemar_p",
    "ber_theory_nearest", "ber_theory_map", "rate", "rate_map", "rate_gap", "rate_gap_se",
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
    rows = evaluate_ber(_map_detector(4), 4, [-2.0, 6.0], 200, 200_000, seed=0)
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

    (row,) = evaluate_ber(detect, 4, [10.0], 1000, 100_000, seed=1)
    assert row["errors"] >= row["bits"] / 4
    assert row["n01"] > 0 and row["mcnemar_p"] < 1e-12


def test_budget_rule():
    seed = 2
    # Low SNR: MAP's expected errors reach min_errors within a few symbols; no chunk rounding.
    (row,) = evaluate_ber(_map_detector(4), 4, [-5.0], 100, 10**6, seed, chunk_symbols=1000)
    expected = math.ceil(100 / (4 * float(ber_map(-5.0, 4))))
    assert row["bits"] == 4 * expected and expected < 1000
    # High SNR: the cap, trimmed to whole symbols.
    (row,) = evaluate_ber(_map_detector(4), 4, [30.0], 10, 50_003, seed, chunk_symbols=1000)
    assert row["bits"] == 50_000 and row["errors"] == 0 and row["ci_low"] == 0.0
    # Across several doubling chunks (1000, 2000, 4000, ... symbols), the last one trimmed.
    (row,) = evaluate_ber(_map_detector(2), 2, [4.0], 300, 10**6, seed, chunk_symbols=1000)
    assert row["bits"] == 2 * math.ceil(300 / (2 * float(ber_map(4.0, 2)))) > 2 * 7000


def _map_wrong_near_the_axis(batch):
    bits = map_bits(batch.y, batch.no, 4)
    bits[:, 0] ^= batch.y.real.abs() < 0.05  # a detector slightly worse than MAP
    return bits


@pytest.mark.slow
def test_each_point_has_its_own_stream_whatever_came_before():
    """Common random numbers: the same seed gives the same samples at a point, whichever
    detector is tested and whichever points it was tested at before."""
    never = 10**9  # min_errors never reached: every point runs to max_bits
    runs = [
        (_map_detector(4), [-4.0, 6.0]),  # many errors at -4 dB before 6 dB
        (_map_wrong_near_the_axis, [6.0]),
        (lambda b: torch.zeros_like(b.bits, dtype=torch.bool), [12.0, 6.0, 0.0]),
    ]
    at_6 = []
    for detect, points in runs:
        rows = {r["ebno_db"]: r for r in evaluate_ber(detect, 4, points, never, 120_000, seed=5)}
        at_6.append(rows[6.0])
    assert {r["bits"] for r in at_6} == {120_000}
    assert len({r["errors_map"] for r in at_6}) == 1 and at_6[0]["errors_map"] > 1000
    assert len({r["errors"] for r in at_6}) == 3  # three different detectors on them
    (other,) = evaluate_ber(_map_detector(4), 4, [6.0], never, 120_000, seed=6)
    assert other["errors_map"] != at_6[0]["errors_map"]  # another seed, other samples


def test_point_streams_are_keyed_by_the_exact_value():
    assert point_key(6.0) == point_key(6) == point_key(np.float32(6.0))
    assert point_key(-0.0) == point_key(0.0)
    assert point_key(6.0) != point_key(6.000000001) and point_key(1.0) != point_key(-1.0)
    draw = lambda e: transmit(64, 4, e, seeded_generator(3, "test", point_key(e))).y  # noqa: E731
    assert torch.equal(draw(6.0), draw(6.0)) and not torch.equal(draw(6.0), draw(6.000000001))


def test_ratio_to_map_is_continuity_corrected():
    assert ratio_to_map(200, 100) == pytest.approx(200.5 / 100.5)
    assert ratio_to_map(0, 0) == 1.0  # both perfect: as good as MAP
    assert ratio_to_map(7, 0) == 15.0  # MAP perfect, detector not: counted, not dropped
    np.testing.assert_allclose(ratio_to_map([1, 2], [3, 4]), [1.5 / 3.5, 2.5 / 4.5])


def test_trial_ratio_is_the_geometric_mean_of_every_point():
    points = [
        {"errors": 400, "errors_map": 400, "log_ratio_map_se": 0.03},
        {"errors": 30, "errors_map": 0, "log_ratio_map_se": 0.4},
    ]
    for p in points:
        p.update(rate_gap=0.01, rate_gap_se=0.002)
    got = trial_ratio_to_map(points)
    assert got["ber_ratio_map"] == pytest.approx(math.sqrt(1 * 61))  # not the mean, 31
    assert got["log_ratio_map"] == pytest.approx(math.log(61) / 2)
    assert got["log_ratio_map_se"] == pytest.approx(math.sqrt(0.03**2 + 0.4**2) / 2)
    assert got["rate_gap"] == pytest.approx(0.01)
    assert got["rate_gap_se"] == pytest.approx(math.sqrt(2 * 0.002**2) / 2)
    assert got["points_no_map_errors"] == 1
    assert trial_ratio_to_map([])["ber_ratio_map"] is None
