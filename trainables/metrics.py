"""Monte Carlo BER statistics and the paired evaluation of a detector against bitwise MAP.

A detector and the MAP reference see the same samples, so their difference is judged with
McNemar's test on the discordant bits, which is far more sensitive than comparing two separately
estimated BERs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import beta, binomtest
from symgrid.trainables import reference
from symgrid.trainables.channel import point_key, seeded_generator, transmit
from symgrid.trainables.constellation import qam

_CONFIDENCE = 0.95  # Clopper-Pearson level reported per Eb/N0 point
# Samples x points per exact-LLR slice: bounds its memory (256-QAM too), and slices that fit in
# cache run 2-3x faster than 2**24 (benchmarks/evaluation.py).
_MAP_ELEMENTS = 1 << 20
# Added to both error counts of a point before their ratio (the Haldane-Anscombe correction):
# a point where MAP made no errors still counts, and the ratio stays finite.
CONTINUITY = 0.5
TEST_STREAM = "test"  # the test samples of Eb/N0 point e come from (seed, "test", point_key(e))


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


def _map_bits_sliced(y: torch.Tensor, no: torch.Tensor, num_bits_per_symbol: int):
    """:func:`reference.map_bits` over row slices so its ``[n, 2**k]`` work stays bounded."""
    rows = max(1, _MAP_ELEMENTS // 2**num_bits_per_symbol)
    parts = [
        reference.map_bits(y[s : s + rows], no[s : s + rows], num_bits_per_symbol)
        for s in range(0, y.shape[0], rows)
    ]
    return torch.cat(parts)  # [n, k]


def _count_point(detect, k, ebno_db, min_errors, max_bits, seed, device, chunks):
    """Paired error counts at one Eb/N0 point: ``(bits, errors, errors_map, n01, n10)``.

    The point's samples come from its own stream, keyed by (seed, Eb/N0), in chunks of a fixed
    size sequence: two detectors tested with one seed see the same samples at this point, chunk
    for chunk, whichever points they tested before and however many errors they made there.
    """
    chunk, max_chunk = chunks
    generator = seeded_generator(seed, TEST_STREAM, point_key(ebno_db))
    points = qam(k)
    bits = errors = errors_map = n01 = n10 = 0
    while errors < min_errors and bits + k <= max_bits:
        n = min(chunk, (max_bits - bits) // k)  # trim so the bit budget is never exceeded
        batch = transmit(n, k, float(ebno_db), generator, device, constellation=points)
        truth = batch.bits.bool()  # [n, k]
        wrong = detect(batch).to(truth.device).bool() != truth  # [n, k]
        wrong_map = _map_bits_sliced(batch.y, batch.no, k) != truth  # [n, k]
        bits += truth.numel()
        errors += int(wrong.sum())
        errors_map += int(wrong_map.sum())
        n01 += int((wrong & ~wrong_map).sum())
        n10 += int((~wrong & wrong_map).sum())
        chunk = min(2 * chunk, max_chunk)  # low-BER points would crawl at a fixed chunk size
    return bits, errors, errors_map, n01, n10


def _point_row(ebno_db: float, k: int, counts) -> dict:
    """Result row of one Eb/N0 point from its paired counts."""
    bits, errors, errors_map, n01, n10 = counts
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
        "n01": n01,
        "n10": n10,
        "mcnemar_p": mcnemar_pvalue(n01, n10),
        "ber_theory_nearest": float(reference.ber_nearest(ebno_db, k)),
        "ber_theory_map": float(reference.ber_map(ebno_db, k)),
    }


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


def trial_ratio_to_map(points: list[dict]) -> tuple[float | None, int]:
    """A trial's figure of merit and how many of its points had no MAP errors.

    Input
    -----
    points : rows of :func:`evaluate_ber`

    Output
    ------
    ber_ratio_map : float | None
        Mean over **all** points of :func:`ratio_to_map` (none dropped); None without points.
    points_no_map_errors : int
        Points where MAP made no errors (their ratio rests on the continuity correction).
    """
    if not points:
        return None, 0
    errors = np.array([p["errors"] for p in points])
    errors_map = np.array([p["errors_map"] for p in points])
    return float(np.mean(ratio_to_map(errors, errors_map))), int((errors_map == 0).sum())


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
    """Monte Carlo BER of a detector, paired with bitwise MAP on the same samples.

    Parameters
    ----------
    detect : callable
        ``detect(batch: channel.Batch) -> [n, k] bool`` hard bit decisions.
    num_bits_per_symbol : int
        Bits per symbol ``k``.
    ebno_db_points : iterable of float
        Eb/N0 values in dB; each point uses a fixed Eb/N0.
    min_errors : int
        Stop a point once the detector made at least this many bit errors.
    max_bits : int
        Bit budget per point; never exceeded (the last chunk is trimmed).
    seed : int
        The trial's seed. Point ``e`` draws from ``seeded_generator(seed, "test",
        point_key(e))`` (:mod:`trainables.channel`): common random numbers across trials.
    device : torch.device | str | None
        Device the samples are moved to (they are drawn on the CPU).
    chunk_symbols, max_chunk_symbols : int
        First chunk size in symbols; it doubles each chunk up to ``max_chunk_symbols``.

    Output
    ------
    rows : list of dict, one per point, with keys ``ebno_db, bits, errors, ber, ci_low, ci_high,
        errors_map, ber_map, ber_ratio_map, n01, n10, mcnemar_p, ber_theory_nearest,
        ber_theory_map``; ``ber_ratio_map`` is :func:`ratio_to_map`.
        ``n01``: detector wrong and MAP right; ``n10``: detector right and MAP wrong; ``ci_*`` is
        the 95 % Clopper-Pearson interval of ``ber``.
    """
    chunks = (int(chunk_symbols), int(max_chunk_symbols))
    rows = []
    with torch.no_grad():
        for ebno in ebno_db_points:
            counts = _count_point(
                detect, num_bits_per_symbol, ebno, min_errors, max_bits, seed, device, chunks
            )
            rows.append(_point_row(float(ebno), num_bits_per_symbol, counts))
    return rows
