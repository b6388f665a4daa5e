"""AWGN channel for QAM symbols, noise-level conversion, detector features and seeded streams.

All randomness flows through explicit ``torch.Generator`` arguments; :func:`seeded_generator`
derives one independent, reproducible generator per (seed, purpose). Every generator is a CPU
generator and every sample is drawn on the CPU, then moved to the device: CUDA's generator
(Philox) and the CPU's (MT19937) give different numbers for one seed, so drawing on the device
would make a seed mean different samples on a GPU node and on a CPU node.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import torch
from symgrid.trainables.constellation import bit_labels, qam

__all__ = [
    "Batch",
    "ebno_db_to_no",
    "features",
    "point_key",
    "sample_ebno_db",
    "seeded_generator",
    "transmit",
]


def ebno_db_to_no(ebno_db, num_bits_per_symbol: int, coderate: float = 1.0):
    """Noise power spectral density ``N0`` for a given Eb/N0, with ``Es = 1``.

    Parameters
    ----------
    ebno_db : float | numpy.ndarray | torch.Tensor
        Eb/N0 in dB.
    num_bits_per_symbol : int
        Bits per symbol ``k``.
    coderate : float
        Code rate; 1.0 for uncoded transmission.

    Output
    ------
    no : same type and shape as ``ebno_db``
        ``N0 = 1 / (10**(ebno_db / 10) * k * coderate)``.
    """
    return 1.0 / (10.0 ** (ebno_db / 10.0) * num_bits_per_symbol * coderate)


def sample_ebno_db(n: int, ebno_db, generator: torch.Generator, device=None) -> torch.Tensor:
    """Eb/N0 per symbol: fixed, or uniform on a range.

    Parameters
    ----------
    n : int
        Number of symbols.
    ebno_db : float | tuple[float, float]
        A fixed Eb/N0 in dB, or ``(lo, hi)`` to draw each symbol's Eb/N0 uniformly in dB.
    generator : torch.Generator
        Source of randomness (used only for a range); a CPU generator.
    device : torch.device | str | None
        Device of the output (drawn on the CPU, then moved).

    Output
    ------
    ebno_db : [n], torch.float32
    """
    if isinstance(ebno_db, (tuple, list)):
        lo, hi = (float(v) for v in ebno_db)
        if not lo <= hi:
            raise ValueError(f"ebno_db: got range {tuple(ebno_db)!r}, expected (lo, hi), lo <= hi")
        u = torch.rand(n, generator=generator)  # [n] in [0, 1), on the CPU
        return (lo + (hi - lo) * u).to(device)
    return torch.full((n,), float(ebno_db), dtype=torch.float32, device=device)


class Batch(NamedTuple):
    """One batch of transmitted symbols.

    bits : [n, k], torch.float32 (0.0 / 1.0), the label of ``symbol_index``.
    symbol_index : [n], torch.int64.
    y : [n], torch.complex64, received samples.
    no : [n], torch.float32, noise power spectral density of each sample.
    ebno_db : [n], torch.float32, Eb/N0 of each sample in dB.
    """

    bits: torch.Tensor
    symbol_index: torch.Tensor
    y: torch.Tensor
    no: torch.Tensor
    ebno_db: torch.Tensor

    def to(self, device) -> Batch:
        """The same batch on ``device`` (the values are copied bit for bit)."""
        return Batch(*(t.to(device) for t in self))


def transmit(
    n: int,
    num_bits_per_symbol: int,
    ebno_db,
    generator: torch.Generator,
    device=None,
    constellation: torch.Tensor | None = None,
) -> Batch:
    """Send ``n`` uniformly random QAM symbols through complex AWGN.

    Parameters
    ----------
    n : int
        Number of symbols.
    num_bits_per_symbol : int
        Bits per symbol ``k``.
    ebno_db : float | tuple[float, float]
        Fixed Eb/N0 in dB or a ``(lo, hi)`` range drawn uniformly per symbol.
    generator : torch.Generator
        Source of all randomness (symbols, Eb/N0, noise); a CPU generator.
    device : torch.device | str | None
        Device of the outputs. The batch is computed on the CPU and then moved, so the same
        generator state gives bit-identical samples on every device.
    constellation : [2**k], torch.complex64 | None
        Precomputed ``qam(k)`` (on the CPU) to skip rebuilding it; ``None`` builds it.

    Output
    ------
    batch : :class:`Batch`

    Note
    ----
    ``y = x + sqrt(N0) w`` with ``w ~ CN(0, 1)``: real and imaginary parts each have variance
    ``N0 / 2``. The draw order (indices, Eb/N0, noise) is fixed, so a seeded generator reproduces
    batches.
    """
    if generator.device.type != "cpu":
        raise ValueError(f"generator: got one on {generator.device}, allowed: a CPU generator")
    points = qam(num_bits_per_symbol) if constellation is None else constellation
    labels = bit_labels(num_bits_per_symbol)  # [2**k, k]
    index = torch.randint(0, points.numel(), (n,), generator=generator)  # [n]
    ebno = sample_ebno_db(n, ebno_db, generator)  # [n]
    no = ebno_db_to_no(ebno, num_bits_per_symbol).to(torch.float32)  # [n]
    w = torch.randn(n, dtype=torch.complex64, generator=generator)  # [n]
    # index_select: the same values as points[index], several times faster than fancy indexing.
    y = points.index_select(0, index) + torch.sqrt(no) * w  # [n]
    bits = labels.index_select(0, index)  # [n, k]
    batch = Batch(bits=bits, symbol_index=index, y=y, no=no, ebno_db=ebno)
    return batch if device is None or torch.device(device).type == "cpu" else batch.to(device)


def features(y: torch.Tensor, no=None) -> torch.Tensor:
    """Real-valued detector input.

    Parameters
    ----------
    y : [n], torch.complex64
        Received samples.
    no : float | [n] torch.Tensor | None
        Noise level; when given, ``log10(no)`` is appended as a third column.

    Output
    ------
    x : [n, 2] or [n, 3], torch.float32
        ``[Re y, Im y]`` or ``[Re y, Im y, log10 no]``.
    """
    columns = [y.real, y.imag]
    if no is not None:
        no = torch.as_tensor(no, dtype=torch.float32, device=y.device)
        columns.append(torch.log10(no).expand(y.shape))  # scalar or [n] -> [n]
    return torch.stack(columns, dim=-1).to(torch.float32)  # [n, 2 or 3]


def _stream_key(stream: str) -> int:
    # Python's hash() of a str is salted per process; CRC-32 of the name is stable everywhere, so
    # the same (seed, stream) gives the same draws in every Ray worker and every rerun.
    return zlib.crc32(stream.encode("utf-8"))


def point_key(ebno_db: float) -> int:
    """A stable integer for an Eb/N0 value: the IEEE-754 binary64 bit pattern of ``ebno_db``.

    ``-0.0`` counts as ``0.0``. Two values get the same key exactly when they are the same double,
    on every machine and in every process (no salted ``hash()``, no decimal formatting).
    """
    value = float(ebno_db) + 0.0  # -0.0 + 0.0 == +0.0
    return int(np.float64(value).view(np.uint64))


def seeded_generator(seed: int, stream: str, *keys: int) -> torch.Generator:
    """Independent, reproducible CPU generator for one purpose of one trial.

    Parameters
    ----------
    seed : int
        Non-negative trial seed.
    stream : str
        Purpose, e.g. ``"init" | "train" | "val" | "test" | "shuffle" | "dropout" | "biasvar"``.
    keys : int
        Further non-negative integers that name a sub-stream, e.g. ``point_key(ebno_db)`` for
        the test stream of one Eb/N0 point.

    Output
    ------
    generator : torch.Generator
        A CPU generator seeded from ``numpy.random.SeedSequence(seed,
        spawn_key=(crc32(stream), *keys))``, so streams of one seed are statistically independent
        and never overlap by accident. Draw on the CPU and move the result (see module note).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, allowed non-negative int")
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream: got {stream!r}, allowed non-empty str")
    spawn_key = (_stream_key(stream), *(int(key) for key in keys))
    sequence = np.random.SeedSequence(int(seed), spawn_key=spawn_key)
    state = int(sequence.generate_state(1, dtype=np.uint64)[0])
    return torch.Generator(device="cpu").manual_seed(state)
