"""Gray-labelled square QAM constellations, labelled like NVIDIA Sionna's ``qam``.

Point ``i`` of a constellation carries the bit label ``i`` written MSB first: bit ``j`` of point
``i`` is ``(i >> (k - 1 - j)) & 1`` for ``k = num_bits_per_symbol``. The even-position bits
``b0, b2, ...`` select the real-axis PAM level and the odd-position bits ``b1, b3, ...`` the
imaginary one, each through the recursive Gray PAM map. Points are scaled to unit average energy.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

__all__ = ["SUPPORTED_BITS", "bit_labels", "check_num_bits_per_symbol", "pam", "qam"]

SUPPORTED_BITS = (2, 4, 6, 8)  # square QAM: QPSK, 16-, 64- and 256-QAM


def check_num_bits_per_symbol(num_bits_per_symbol) -> int:
    """Return ``num_bits_per_symbol`` as an int or raise a one-line ``ValueError``."""
    ok = isinstance(num_bits_per_symbol, (int, np.integer)) and not isinstance(
        num_bits_per_symbol, (bool, np.bool_)
    )
    if not ok or int(num_bits_per_symbol) not in SUPPORTED_BITS:
        raise ValueError(
            f"num_bits_per_symbol: got {num_bits_per_symbol!r}, allowed {SUPPORTED_BITS}"
        )
    return int(num_bits_per_symbol)


def _binary_labels(num_bits: int) -> np.ndarray:
    """Labels of ``0 .. 2**num_bits - 1``, MSB first: int64 ``[2**num_bits, num_bits]``."""
    index = np.arange(2**num_bits)[:, None]  # [2**num_bits, 1]
    shifts = num_bits - 1 - np.arange(num_bits)[None, :]  # [1, num_bits]
    return (index >> shifts) & 1


def _pam_gray(bits: np.ndarray) -> np.ndarray:
    """Unnormalized Gray PAM level of each row of ``bits`` (``[..., m]`` of 0/1), float64 ``[...]``.

    Unrolls ``pam_gray(b) = (1 - 2 b[0]) (2**len(b[1:]) - pam_gray(b[1:]))`` from the last bit, so
    the loop runs over bit positions, never over symbols.
    """
    m = bits.shape[-1]
    level = 1.0 - 2.0 * bits[..., m - 1]
    for p in range(m - 2, -1, -1):
        level = (1.0 - 2.0 * bits[..., p]) * (2.0 ** (m - 1 - p) - level)
    return level


@cache
def _qam_numpy(num_bits_per_symbol: int) -> tuple[np.ndarray, float]:
    """Unit-energy QAM points complex128 ``[2**k]`` and the scale that normalized them."""
    labels = _binary_labels(num_bits_per_symbol)  # [2**k, k]
    points = _pam_gray(labels[:, 0::2]) + 1j * _pam_gray(labels[:, 1::2])  # [2**k]
    scale = float(np.sqrt(np.mean(np.abs(points) ** 2)))
    points = points / scale
    points.setflags(write=False)  # cached: callers get copies
    return points, scale


def qam(num_bits_per_symbol: int, device=None) -> torch.Tensor:
    """Gray-labelled square QAM constellation with unit average energy.

    Parameters
    ----------
    num_bits_per_symbol : int
        Bits per symbol ``k``, one of :data:`SUPPORTED_BITS`.
    device : torch.device | str | None
        Device of the output.

    Output
    ------
    points : [2**k], torch.complex64
        ``points[i]`` carries the bit label ``i`` (MSB first).

    Note
    ----
    Real part ``pam_gray(b0, b2, ...)``, imaginary part ``pam_gray(b1, b3, ...)``, divided by
    ``sqrt(mean |c|^2)`` so that ``Es = 1``. Identical to Sionna's ``qam(k, normalize=True)``.
    """
    points, _ = _qam_numpy(check_num_bits_per_symbol(num_bits_per_symbol))
    return torch.tensor(points, dtype=torch.complex64, device=device)


def bit_labels(num_bits_per_symbol: int, device=None) -> torch.Tensor:
    """Bit labels of the constellation points.

    Parameters
    ----------
    num_bits_per_symbol : int
        Bits per symbol ``k``, one of :data:`SUPPORTED_BITS`.
    device : torch.device | str | None
        Device of the output.

    Output
    ------
    labels : [2**k, k], torch.float32
        ``labels[i, j]`` is bit ``j`` (MSB first) of the index ``i``, as 0.0 or 1.0.
    """
    labels = _binary_labels(check_num_bits_per_symbol(num_bits_per_symbol))
    return torch.tensor(labels, dtype=torch.float32, device=device)


def pam(num_bits_per_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-axis PAM of the QAM constellation, for exact 1-D BER computations.

    Parameters
    ----------
    num_bits_per_symbol : int
        Bits per QAM symbol ``k``, one of :data:`SUPPORTED_BITS`.

    Output
    ------
    amplitudes : [2**(k/2)], numpy.float64
        Real-axis levels, already divided by the QAM normalization; ``amplitudes[m]`` is the level
        whose real-axis bits ``(b0, b2, ...)`` spell ``m`` MSB first.
    labels : [2**(k/2), k/2], numpy.int64
        Those real-axis bits (0/1).

    Note
    ----
    Square Gray QAM is two independent copies of this PAM (the imaginary axis uses the same rule on
    ``b1, b3, ...``), which is what makes the bitwise-MAP BER a 1-D integral.
    """
    k = check_num_bits_per_symbol(num_bits_per_symbol)
    _, scale = _qam_numpy(k)
    labels = _binary_labels(k // 2)  # [2**(k/2), k/2]
    return _pam_gray(labels) / scale, labels
