"""The physical limit: exact LLRs, optimal decisions and closed-form / exact BER curves.

The bitwise-MAP detector (sign of the exact LLR) minimizes the BER of every bit; nearest-symbol
(max-log) decisions are what a hard symbol detector does. Both have BER curves computed here
without Monte Carlo: Cho & Yoon's closed form for nearest-symbol and 1-D numerical integration over
the MAP decision regions of each PAM axis for bitwise MAP.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import erfc, logsumexp, ndtr
from symgrid.trainables.channel import ebno_db_to_no
from symgrid.trainables.constellation import bit_labels, check_num_bits_per_symbol, pam, qam

__all__ = [
    "ber_average",
    "ber_map",
    "ber_nearest",
    "exact_llr",
    "map_bits",
    "nearest_symbol_bits",
    "posterior",
]

_GRID_POINTS = 4_000  # root scan per axis; even, so x = 0 is never on it; 1e5 agrees to 1e-15
_GRID_SIGMAS = 40.0  # grid spans the constellation +- 40 sigma: tails beyond are < 1e-300


def _distances(y: torch.Tensor, no, num_bits_per_symbol: int) -> torch.Tensor:
    """Scaled negative squared distances ``-|y - c|^2 / N0``: float ``[n, 2**k]``."""
    points = qam(num_bits_per_symbol, y.device)  # [2**k]
    no = torch.as_tensor(no, dtype=y.real.dtype, device=y.device).expand(y.shape[:1])  # [n]
    return -(y[:, None] - points[None, :]).abs().square() / no[:, None]  # [n, 2**k]


def exact_llr(y: torch.Tensor, no, num_bits_per_symbol: int) -> torch.Tensor:
    """Exact per-bit log-likelihood ratios for Gray QAM over AWGN.

    Parameters
    ----------
    y : [n], torch.complex64
        Received samples.
    no : float | [n] torch.Tensor
        Noise power spectral density ``N0`` (one value or one per sample).
    num_bits_per_symbol : int
        Bits per symbol ``k``.

    Output
    ------
    llr : [n, k], torch.float32

    Note
    ----
    ``LLR_j = log sum_{c: b_j=1} exp(-|y-c|^2/N0) - log sum_{c: b_j=0} exp(-|y-c|^2/N0)``,
    i.e. ``log P(b_j=1 | y) / P(b_j=0 | y)`` for equiprobable symbols. Memory is about
    ``n * k * 2**k`` floats: callers chunk large ``n``.
    """
    labels = bit_labels(num_bits_per_symbol, y.device).bool()  # [2**k, k]
    # Each bit is 1 on exactly half the points: gather their indices per bit.
    order = torch.argsort(labels.T.to(torch.uint8), dim=1, stable=True)  # [k, 2**k]
    half = labels.shape[0] // 2
    idx0, idx1 = order[:, :half], order[:, half:]  # [k, 2**(k-1)] each
    d = _distances(y, no, num_bits_per_symbol)  # [n, 2**k]
    llr = torch.logsumexp(d[:, idx1], dim=-1) - torch.logsumexp(d[:, idx0], dim=-1)  # [n, k]
    return llr.to(torch.float32)


def map_bits(y: torch.Tensor, no, num_bits_per_symbol: int) -> torch.Tensor:
    """Bitwise-MAP hard decisions ``LLR > 0``: bool ``[n, k]`` (inputs as :func:`exact_llr`)."""
    return exact_llr(y, no, num_bits_per_symbol) > 0


def posterior(y: torch.Tensor, no, num_bits_per_symbol: int) -> torch.Tensor:
    """Exact posterior ``P(b_j = 1 | y) = sigmoid(LLR_j)``: float32 ``[n, k]``.

    Inputs as :func:`exact_llr`. In float32 it rounds to exactly 0 or 1 once ``|LLR| > ~17``.
    """
    return torch.sigmoid(exact_llr(y, no, num_bits_per_symbol))


def nearest_symbol_bits(y: torch.Tensor, num_bits_per_symbol: int) -> torch.Tensor:
    """Bits of the nearest constellation point (max-log / minimum-distance decision).

    Parameters
    ----------
    y : [n], torch.complex64
        Received samples.
    num_bits_per_symbol : int
        Bits per symbol ``k``.

    Output
    ------
    bits : [n, k], torch.bool
    """
    points = qam(num_bits_per_symbol, y.device)  # [2**k]
    nearest = (y[:, None] - points[None, :]).abs().argmin(dim=1)  # [n]
    return bit_labels(num_bits_per_symbol, y.device).bool()[nearest]  # [n, k]


def ber_nearest(ebno_db, num_bits_per_symbol: int) -> np.ndarray:
    """Closed-form BER of nearest-symbol detection of Gray square M-QAM over AWGN.

    Parameters
    ----------
    ebno_db : float | array_like
        Eb/N0 in dB.
    num_bits_per_symbol : int
        Bits per symbol ``k = log2 M``.

    Output
    ------
    ber : numpy.float64, same shape as ``ebno_db``

    Note
    ----
    Cho & Yoon (2002), with ``I = sqrt(M)`` and ``g = Eb/N0``:
    ``P_b = (1/log2 I) sum_{j=1}^{log2 I} P_b(j)``,
    ``P_b(j) = (1/I) sum_{i=0}^{(1-2^-j) I - 1} (-1)^floor(i 2^(j-1) / I)
    (2^(j-1) - floor(i 2^(j-1) / I + 1/2)) erfc((2i + 1) sqrt(3 log2(M) g / (2 (M - 1))))``.
    """
    k = check_num_bits_per_symbol(num_bits_per_symbol)
    m, axis_bits = 2**k, k // 2
    size = 2**axis_bits  # I
    gamma = 10.0 ** (np.asarray(ebno_db, dtype=np.float64) / 10.0)
    arg = np.sqrt(3.0 * k * gamma / (2.0 * (m - 1)))[..., None]  # [..., 1]
    total = np.zeros_like(gamma)
    for j in range(1, axis_bits + 1):  # loop over bit positions, not symbols
        i = np.arange(int((1.0 - 2.0**-j) * size))  # [terms]
        ratio = i * 2 ** (j - 1) / size
        weight = (-1.0) ** np.floor(ratio) * (2 ** (j - 1) - np.floor(ratio + 0.5))  # [terms]
        total = total + (weight * erfc((2 * i + 1) * arg)).sum(axis=-1) / size
    return total / axis_bits


def _axis_roots(llr, width: float) -> tuple[np.ndarray, bool]:
    """Sign changes of ``llr`` on ``[-width, width]`` refined by brentq, and ``llr(-width) > 0``."""
    grid = np.linspace(-width, width, _GRID_POINTS)  # [G]
    positive = llr(grid) > 0  # [G]
    change = np.flatnonzero(positive[:-1] != positive[1:])  # [R]
    roots = [brentq(llr, grid[c], grid[c + 1], xtol=1e-15) for c in change]
    return np.asarray(roots, dtype=np.float64), bool(positive[0])


def _interval_probability(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``P(lo < Z < hi)`` for standard normal ``Z``, accurate for far tails on either side."""
    upper = ndtr(-lo) - ndtr(-hi)  # exact when both ends are above 0
    lower = ndtr(hi) - ndtr(lo)  # exact when both ends are below 0
    return np.where(lo >= 0, upper, lower)


def _ber_map_axis_bit(amplitudes, labels, bit: int, no: float) -> float:
    """Exact bitwise-MAP BER of real-axis bit ``bit`` for one ``N0``."""
    ones, zeros = amplitudes[labels[:, bit] == 1], amplitudes[labels[:, bit] == 0]

    def llr(x):  # 1-D LLR: the imaginary-axis sums cancel in the 2-D ratio
        x = np.asarray(x, dtype=np.float64)[..., None]  # [..., 1]
        return logsumexp(-((x - ones) ** 2) / no, axis=-1) - logsumexp(
            -((x - zeros) ** 2) / no, axis=-1
        )

    sigma = np.sqrt(no / 2.0)  # noise std per dimension
    roots, first = _axis_roots(llr, np.abs(amplitudes).max() + _GRID_SIGMAS * sigma)  # [R]
    edges = np.concatenate([[-np.inf], roots, [np.inf]])  # [R + 2]
    decision = first ^ (np.arange(roots.size + 1) % 2 == 1)  # flips at each root, [R + 1]
    lo = (edges[None, :-1] - amplitudes[:, None]) / sigma  # [I, R + 1]
    hi = (edges[None, 1:] - amplitudes[:, None]) / sigma  # [I, R + 1]
    wrong = decision[None, :] != (labels[:, bit, None] == 1)  # [I, R + 1]
    return float((_interval_probability(lo, hi) * wrong).sum() / amplitudes.size)


@lru_cache(maxsize=4096)
def _ber_map_scalar(ebno_db: float, num_bits_per_symbol: int) -> float:
    amplitudes, labels = pam(num_bits_per_symbol)
    no = float(ebno_db_to_no(ebno_db, num_bits_per_symbol))
    bers = [_ber_map_axis_bit(amplitudes, labels, b, no) for b in range(labels.shape[1])]
    return float(np.mean(bers))


def ber_map(ebno_db, num_bits_per_symbol: int) -> np.ndarray:
    """Exact BER of bitwise-MAP detection of Gray square QAM over AWGN.

    Parameters
    ----------
    ebno_db : float | array_like
        Eb/N0 in dB.
    num_bits_per_symbol : int
        Bits per symbol ``k``.

    Output
    ------
    ber : numpy.float64, same shape as ``ebno_db``

    Note
    ----
    Square Gray QAM is two independent, identical PAM axes, so the BER is the mean over the
    ``k/2`` real-axis bits. For bit ``j`` the MAP decision regions are intervals between the roots
    of the 1-D ``LLR_j(x)`` (noise variance ``N0/2`` per dimension), found by a sign scan and
    brentq; ``BER_j = (1/I) sum_m P(decision != b_j(m) | a_m)`` is a sum of Gaussian interval
    probabilities, accurate far into the tails (BER well below 1e-12).
    """
    k = check_num_bits_per_symbol(num_bits_per_symbol)
    ebno = np.asarray(ebno_db, dtype=np.float64)
    flat = [_ber_map_scalar(float(e), k) for e in ebno.ravel()]
    return np.asarray(flat, dtype=np.float64).reshape(ebno.shape)


def ber_average(ber_fn, lo_db: float, hi_db: float, num_bits_per_symbol: int) -> float:
    """BER averaged uniformly over Eb/N0 in dB on ``[lo_db, hi_db]``.

    Parameters
    ----------
    ber_fn : callable
        ``ber_fn(ebno_db, num_bits_per_symbol) -> ber``, e.g. :func:`ber_map` or
        :func:`ber_nearest`.
    lo_db, hi_db : float
        Range of Eb/N0 in dB, ``lo_db < hi_db``.
    num_bits_per_symbol : int
        Bits per symbol ``k``.

    Output
    ------
    ber : float
        ``(1 / (hi - lo)) integral_lo^hi ber_fn(e) de``; matches a training set whose Eb/N0 is
        drawn uniformly in dB per frame.
    """
    if not lo_db < hi_db:
        raise ValueError(f"ebno_db range: got ({lo_db!r}, {hi_db!r}), expected lo_db < hi_db")
    value, _ = quad(lambda e: float(ber_fn(e, num_bits_per_symbol)), lo_db, hi_db, limit=200)
    return value / (hi_db - lo_db)
