"""Monte Carlo BER statistics and the paired evaluation of a detector against bitwise MAP.

A detector and the MAP reference see the same samples, so their difference is judged with
McNemar's test on the discordant bits, which is far more sensitive than comparing two separately
estimated BERs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import beta, binomtest
from symgrid.trainables import map_reference, reference

__all__ = [
    "LOGIT_CLAMP",
    "PROB_EPS",
    "clopper_pearson",
    "evaluate_ber",
    "log_ratio_se",
    "mcnemar_pvalue",
    "rates",
    "ratio_to_map",
    "trial_ratio_to_map",
]

_CONFIDENCE = 0.95  # Clopper-Pearson level reported per Eb/N0 point
# Added to both error counts of a point before their ratio (the Haldane-Anscombe correction):
# a point where MAP made no errors still counts, and the ratio stays finite.
CONTINUITY = 0.5
# Sigmoid outputs (and hard decisions) are clamped to [PROB_EPS, 1 - PROB_EPS] before their
# cross-entropy: float32 still resolves 1 - 1e-6 (its spacing there is 6e-8), and one confidently
# wrong bit then costs ln(1e6) = 13.8 nats instead of infinity.
PROB_EPS = 1e-6
LOGIT_CLAMP = math.log((1 - PROB_EPS) / PROB_EPS)  # the same clamp on the logit scale: +-13.8
LN2 = math.log(2.0)


def clopper_pearson(errors, bits, confidence: float = _CONFIDENCE):
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion.

    Parameters
    ----------
    errors : int | array_like of int
        Observed bit errors.
    bits : int | array_like of int
        Bits observed, ``bits >= errors``; broadcast with ``errors``.
    confidence : float
        Two-sided confidence level in (0, 1).

    Output
    ------
    low, high : numpy.float64, broadcast shape of the inputs

    Note
    ----
    ``low = Beta^-1(alpha/2; e, n - e + 1)`` (0 when ``e = 0``) and
    ``high = Beta^-1(1 - alpha/2; e + 1, n - e)`` (1 when ``e = n``), ``alpha = 1 - confidence``.
    """
    e = np.asarray(errors, dtype=np.float64)
    n = np.asarray(bits, dtype=np.float64)
    alpha = 1.0 - confidence
    # Substitute valid shape parameters at the edges, then overwrite the edges with 0 and 1.
    low = beta.ppf(alpha / 2, np.maximum(e, 1.0), n - e + 1.0)
    high = beta.ppf(1.0 - alpha / 2, e + 1.0, np.maximum(n - e, 1.0))
    low = np.where(e == 0, 0.0, low)
    high = np.where(e == n, 1.0, high)
    return low[()], high[()]


def mcnemar_pvalue(n01: int, n10: int) -> float:
    """Exact two-sided McNemar test on the discordant counts of a paired comparison.

    Parameters
    ----------
    n01 : int
        Bits the detector got wrong and the reference right.
    n10 : int
        Bits the detector got right and the reference wrong.

    Output
    ------
    p : float
        ``binomtest(n01, n01 + n10, 0.5)`` p-value; 1.0 without discordant bits.
    """
    n01, n10 = int(n01), int(n10)
    if n01 + n10 == 0:
        return 1.0
    return float(binomtest(n01, n01 + n10, 0.5).pvalue)


def soft_logits(detected: torch.Tensor) -> torch.Tensor:
    """Bit logits of a detector's output: float logits as they are; hard bool decisions read as
    probabilities 0 and 1 clamped to ``PROB_EPS`` (logits ``+-LOGIT_CLAMP``)."""
    if detected.dtype == torch.bool:
        return torch.where(detected, LOGIT_CLAMP, -LOGIT_CLAMP)
    return detected.to(torch.float32)


def _count_point(detect, k, ebno_db, budget, seed, device, chunks):
    """Paired counts and cross-entropy sums at one Eb/N0 point (see :func:`_point_row`).

    The point's ``budget`` symbols come from its own stream, keyed by (seed, Eb/N0), in chunks of
    a fixed size sequence, and MAP's side of them comes from :func:`map_reference.map_side`
    (cached per worker): two detectors tested with one seed see the same samples here, chunk for
    chunk, whatever they did elsewhere.
    """
    sizes = tuple(map_reference.chunk_sizes(budget, *chunks))
    side = map_reference.map_side(seed, ebno_db, k, sizes, device)
    c = dict.fromkeys(["bits", "errors", "errors_map", "n01", "n10"], 0)
    c.update(dict.fromkeys(["bce", "bce_map", "d", "d2"], 0.0))  # sums over symbols, nats
    batches = map_reference.point_chunks(seed, ebno_db, k, list(sizes), device)
    for batch, packed, bce_map in zip(batches, side.wrong, side.bce, strict=True):
        truth = batch.bits.bool()  # [n, k]
        logits = soft_logits(detect(batch)).to(truth.device)  # [n, k]
        wrong = (logits > 0) != truth
        wrong_map = map_reference.unpack(packed.to(truth.device), k)  # [n, k]
        bce = map_reference.bit_cross_entropy(logits, truth).cpu()  # [n], float64
        d = bce - bce_map  # [n]: per-symbol gap in nats
        c["bits"] += truth.numel()
        c["errors"] += int(wrong.sum())
        c["errors_map"] += int(wrong_map.sum())
        c["n01"] += int((wrong & ~wrong_map).sum())
        c["n10"] += int((~wrong & wrong_map).sum())
        c["bce"] += float(bce.sum())
        c["bce_map"] += float(bce_map.sum())
        c["d"], c["d2"] = c["d"] + float(d.sum()), c["d2"] + float(d.square().sum())
    return c


def rates(k: int, c: dict) -> dict:
    """Bit-metric decoding rates of the detector and of MAP, their gap and its standard error.

    Output
    ------
    dict with ``rate``, ``rate_map``, ``rate_gap``, ``rate_gap_se`` in bits per symbol (NaN
    without symbols).

    Note
    ----
    ``R = k - sum_j BCE_j / ln 2`` with ``BCE_j`` the mean over symbols of bit j's binary
    cross-entropy (nats) under the detector's probabilities. For the exact posterior it is the
    bitwise mutual information, the largest ``R`` any demapper achieves (in expectation), so
    ``rate_gap = rate_map - rate >= 0`` in expectation. Per symbol ``d_i`` is the detector's
    summed BCE minus MAP's on the same sample, so ``rate_gap = mean(d) / ln 2`` and its paired
    standard error is ``sd(d) / sqrt(n) / ln 2`` (``sd`` with ``n - 1``). ``R`` can be negative
    for a detector confidently wrong (hard decisions read as clamped probabilities).
    """
    n = c["bits"] // k
    if n == 0:
        return dict.fromkeys(["rate", "rate_map", "rate_gap", "rate_gap_se"], float("nan"))
    mean_d = c["d"] / n
    var_d = max(c["d2"] - n * mean_d**2, 0.0) / (n - 1) if n > 1 else float("nan")
    return {
        "rate": k - c["bce"] / n / LN2,
        "rate_map": k - c["bce_map"] / n / LN2,
        "rate_gap": mean_d / LN2,
        "rate_gap_se": math.sqrt(var_d / n) / LN2,
    }


def _point_row(ebno_db: float, k: int, c: dict) -> dict:
    """Result row of one Eb/N0 point from its paired counts."""
    bits, errors, errors_map = c["bits"], c["errors"], c["errors_map"]
    n01, n10 = c["n01"], c["n10"]
    low, high = clopper_pearson(errors, bits) if bits else (0.0, 1.0)
    return {
        "ebno_db": float(ebno_db),
        "bits": bits,
        "errors": errors,
        "ber": errors / bits if bits else float("nan"),
        "ci_low": float(low),
        "ci_high": float(high),
        "errors_map": errors_map,
        "ber_map": errors_map / bits if bits else float("nan"),
        "ber_ratio_map": float(ratio_to_map(errors, errors_map)),
        "log_ratio_map": float(np.log(ratio_to_map(errors, errors_map))),
        "log_ratio_map_se": float(log_ratio_se(errors, errors_map, n01, n10)),
        "n01": n01,
        "n10": n10,
        "mcnemar_p": mcnemar_pvalue(n01, n10),
        "ber_theory_nearest": float(reference.ber_nearest(ebno_db, k)),
        "ber_theory_map": float(reference.ber_map(ebno_db, k)),
        **rates(k, c),
    }


def log_ratio_se(errors, errors_map, n01, n10):
    """Standard error of ``log`` :func:`ratio_to_map` from the paired counts of one point.

    Output
    ------
    se : numpy.float64, broadcast shape of the inputs
        ``sqrt((n01 + n10) / (E * Em))`` with ``E = errors + 0.5``, ``Em = errors_map + 0.5``.

    Note
    ----
    Each bit falls in one cell: both wrong (``n11``), only the detector wrong (``n01``), only MAP
    wrong (``n10``), both right. With rare errors the cell counts are nearly independent Poisson
    counts, so ``Var E = E``, ``Var Em = Em``, ``Cov(E, Em) = Var n11 = n11`` (``E = n11 + n01``,
    ``Em = n11 + n10``). The delta method on ``log E - log Em`` gives
    ``Var = Var E / E^2 + Var Em / Em^2 - 2 Cov / (E Em) = 1/E + 1/Em - 2 n11 / (E Em)
    = (E + Em - 2 n11) / (E Em) = (n01 + n10) / (E Em)``: only the discordant bits carry
    sampling noise; concordant errors cancel. The continuity-corrected counts stand in for
    ``E`` and ``Em`` (as in the ratio), so a point without MAP errors keeps a finite variance.
    """
    e = np.asarray(errors, dtype=np.float64) + CONTINUITY
    e_map = np.asarray(errors_map, dtype=np.float64) + CONTINUITY
    discordant = np.asarray(n01, dtype=np.float64) + np.asarray(n10, dtype=np.float64)
    return np.sqrt(discordant / (e * e_map))[()]


def ratio_to_map(errors, errors_map):
    """A detector's BER relative to bitwise MAP on the same bits, continuity-corrected.

    Parameters
    ----------
    errors, errors_map : int | array_like of int
        Bit errors of the detector and of MAP on the same samples (so the same number of bits).

    Output
    ------
    ratio : numpy.float64, broadcast shape of the inputs
        ``(errors + 0.5) / (errors_map + 0.5)``.

    Note
    ----
    With the same bits on both sides ``ber / ber_map = errors / errors_map``; adding 0.5 to both
    counts (Haldane-Anscombe) keeps a point where MAP made no errors: a detector with errors
    there scores ``2 errors + 1``, one without errors scores 1. Where both counts are large the
    correction is negligible (200 errors: < 0.25 %); it pulls ratios of small counts toward 1.
    """
    e = np.asarray(errors, dtype=np.float64)
    e_map = np.asarray(errors_map, dtype=np.float64)
    return ((e + CONTINUITY) / (e_map + CONTINUITY))[()]


def trial_ratio_to_map(points: list[dict]) -> dict:
    """A trial's figures of merit over its Eb/N0 points.

    Input
    -----
    points : rows of :func:`evaluate_ber`

    Output
    ------
    dict with
    ber_ratio_map : float | None
        Geometric mean over **all** points of :func:`ratio_to_map`, ``exp(log_ratio_map)``
        (none dropped); None without points.
    log_ratio_map, log_ratio_map_se : float | None
        Mean of the points' log ratios, equal weights on the log scale (with budgets set by
        MAP's expected errors each point has about the same relative precision), and its standard
        error ``sqrt(sum of the points' variances) / n_points`` (the points are independent
        samples; :func:`log_ratio_se`).
    rate_gap, rate_gap_se : float | None
        Mean over points of the achievable-rate gap (bits/symbol) and its standard error, the
        same way.
    points_no_map_errors : int
        Points where MAP made no errors (their ratio rests on the continuity correction).
    """
    keys = ["ber_ratio_map", "log_ratio_map", "log_ratio_map_se", "rate_gap", "rate_gap_se"]
    if not points:
        return {**dict.fromkeys(keys), "points_no_map_errors": 0}
    n = len(points)
    logs = np.log(ratio_to_map([p["errors"] for p in points], [p["errors_map"] for p in points]))
    log_se = np.array([p["log_ratio_map_se"] for p in points])
    gap, gap_se = np.array([[p["rate_gap"], p["rate_gap_se"]] for p in points]).T
    return {
        "ber_ratio_map": float(np.exp(logs.mean())),
        "log_ratio_map": float(logs.mean()),
        "log_ratio_map_se": float(np.sqrt(np.square(log_se).sum()) / n),
        "rate_gap": float(gap.mean()),
        "rate_gap_se": float(np.sqrt(np.square(gap_se).sum()) / n),
        "points_no_map_errors": int(sum(p["errors_map"] == 0 for p in points)),
    }


def evaluate_ber(
    detect,
    num_bits_per_symbol: int,
    ebno_db_points,
    min_errors: int,
    max_bits: int,
    seed: int,
    device=None,
    chunk_symbols: int = 16384,
    max_chunk_symbols: int = 1 << 20,
) -> list[dict]:
    """Monte Carlo BER and achievable rate of a detector, paired with bitwise MAP on its samples.

    Parameters
    ----------
    detect : callable
        ``detect(batch: channel.Batch) -> [n, k]``: bit logits ``log P(b=1)/P(b=0)`` (float; the
        hard decision is ``logit > 0``), or hard bit decisions (bool, read as probabilities 0/1
        clamped to ``PROB_EPS`` for the rate).
    num_bits_per_symbol : int
        Bits per symbol ``k``.
    ebno_db_points : iterable of float
        Eb/N0 values in dB; each point uses a fixed Eb/N0.
    min_errors : int
        Expected bitwise-MAP errors that set each point's budget: the point tests
        ``map_reference.budget_symbols`` symbols, ``ceil(min_errors / (k BER_MAP))``, whatever
        the detector does (no stopping on its errors).
    max_bits : int
        Cap on each point's budget in bits; never exceeded.
    seed : int
        The trial's seed. Point ``e`` draws from ``seeded_generator(seed, "test",
        point_key(e))`` (:mod:`trainables.channel`): common random numbers across trials, so
        trials with one seed get the same ``bits`` and ``errors_map`` at every point.
    device : torch.device | str | None
        Device the samples are moved to (they are drawn on the CPU).
    chunk_symbols, max_chunk_symbols : int
        First chunk size in symbols; it doubles each chunk up to ``max_chunk_symbols``.

    Output
    ------
    rows : list of dict, one per point, with keys ``ebno_db, bits, errors, ber, ci_low, ci_high,
        errors_map, ber_map, ber_ratio_map, log_ratio_map, log_ratio_map_se, n01, n10,
        mcnemar_p, ber_theory_nearest, ber_theory_map, rate, rate_map, rate_gap, rate_gap_se``;
        ``ber_ratio_map`` is :func:`ratio_to_map`, ``log_ratio_map`` its log and
        ``log_ratio_map_se`` :func:`log_ratio_se`; the rates are :func:`rates`.
        ``n01``: detector wrong and MAP right; ``n10``: detector right and MAP wrong; ``ci_*`` is
        the 95 % Clopper-Pearson interval of ``ber``.
    """
    k, chunks = num_bits_per_symbol, (int(chunk_symbols), int(max_chunk_symbols))
    rows = []
    with torch.no_grad():
        for ebno in ebno_db_points:
            budget = map_reference.budget_symbols(float(ebno), k, min_errors, max_bits)
            counts = _count_point(detect, k, float(ebno), budget, seed, device, chunks)
            rows.append(_point_row(float(ebno), k, counts))
    return rows
