"""The bitwise-MAP side of a test point: its bit budget, its samples' chunks, and a bounded cache.

A point's budget and samples depend only on the seed, the Eb/N0, ``k`` and the eval settings, never
on the detector, so the MAP decisions and bit cross-entropies on those samples are the same for
every trial with that seed. A worker process (Ray reuses one for many trials) computes them once and
keeps them in a small in-process cache bounded in bytes.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from symgrid.trainables import reference
from symgrid.trainables.channel import point_key, seeded_generator, transmit
from symgrid.trainables.constellation import qam

__all__ = [
    "CACHE_BYTES",
    "bit_cross_entropy",
    "budget_symbols",
    "cache_bytes",
    "chunk_sizes",
    "clear_cache",
    "compute_map_side",
    "map_side",
    "point_chunks",
    "unpack",
]

TEST_STREAM = "test"  # the test samples of Eb/N0 point e come from (seed, "test", point_key(e))
# Samples x points per exact-LLR slice: bounds its memory (256-QAM too), and slices that fit in
# cache run 2-3x faster than 2**24 (benchmarks/evaluation.py).
_MAP_ELEMENTS = 1 << 20
# One worker's cache of MAP sides. An entry holds 9 bytes per test symbol (packed MAP errors, one
# float64 cross-entropy: float64 so that a detector equal to MAP has a rate gap of exactly 0), so
# a point at the default cap (2e7 bits of 16-QAM: 5e6 symbols) takes 45 MB, while the lecture
# preset's 3 seeds x 5 points take ~10 MB together (their budgets stop far below the cap).
# 128 MiB keeps every point of a few seeds at default settings and is small beside a worker's
# other memory (torch alone is ~300 MB).
CACHE_BYTES = 128 << 20


def budget_symbols(ebno_db: float, k: int, min_errors: int, max_bits: int) -> int:
    """Test symbols of one Eb/N0 point, fixed before any detector is seen.

    ``ceil(min_errors / (k * BER_MAP))`` symbols, the number at which bitwise MAP (exact BER
    :func:`reference.ber_map`) is expected to make ``min_errors`` errors, capped at
    ``floor(max_bits / k)``; ``bits = k * symbols``. A BER that underflows to 0 takes the cap.
    """
    cap = int(max_bits) // k
    ber = float(reference.ber_map(float(ebno_db), k))
    if ber <= 0.0:
        return cap
    return min(math.ceil(min_errors / (k * ber)), cap)


def chunk_sizes(symbols: int, first: int, largest: int) -> list[int]:
    """Chunks of ``symbols``: ``first``, doubling up to ``largest``, the last one trimmed."""
    sizes, chunk = [], first
    while sum(sizes) < symbols:
        sizes.append(min(chunk, symbols - sum(sizes)))
        chunk = min(2 * chunk, largest)
    return sizes


def point_chunks(seed: int, ebno_db: float, k: int, sizes: list[int], device):
    """The point's test batches, chunk by chunk, from its own (seed, Eb/N0) stream."""
    generator = seeded_generator(seed, TEST_STREAM, point_key(ebno_db))
    points = qam(k)
    for n in sizes:
        yield transmit(n, k, float(ebno_db), generator, device, constellation=points)


def bit_cross_entropy(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-symbol sum over bits of the binary cross-entropy in nats: float64 ``[n]``.

    ``BCE_j = -log P(b_j | y) = softplus((1 - 2 b_j) * logit_j)``, stable for any logit.
    """
    signed = torch.where(truth, -logits, logits).to(torch.float64)  # [n, k]
    return F.softplus(signed).sum(dim=1)


@dataclass(frozen=True)
class MapSide:
    """MAP's outcome on a point's samples, chunk by chunk (CPU tensors).

    wrong : per chunk, ``[n]`` uint8, bit j set where MAP decided bit j wrongly
    bce : per chunk, ``[n]`` float64, MAP's per-symbol bit cross-entropy (nats, summed over bits)
    """

    wrong: tuple[torch.Tensor, ...]
    bce: tuple[torch.Tensor, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.wrong, *self.bce))


def _exact_llr_sliced(y: torch.Tensor, no: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`reference.exact_llr` over row slices so its ``[n, 2**k]`` work stays bounded."""
    rows = max(1, _MAP_ELEMENTS // 2**k)
    parts = [
        reference.exact_llr(y[s : s + rows], no[s : s + rows], k) for s in range(0, len(y), rows)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, k)  # [n, k]


def pack(wrong: torch.Tensor) -> torch.Tensor:
    """``[n, k]`` bool -> ``[n]`` uint8 (k <= 8): bit j of the byte is column j."""
    weights = 2 ** torch.arange(wrong.shape[1], device=wrong.device)
    return (wrong.to(torch.int64) * weights).sum(dim=1).to(torch.uint8)


def unpack(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`pack`: ``[n, k]`` bool."""
    shifts = torch.arange(k, device=packed.device)
    return (packed.to(torch.int64)[:, None] >> shifts) & 1 == 1


def compute_map_side(seed: int, ebno_db: float, k: int, sizes: tuple[int, ...], device) -> MapSide:
    """MAP decisions and cross-entropies on the point's samples (no cache)."""
    wrong, bce = [], []
    for batch in point_chunks(seed, ebno_db, k, list(sizes), device):
        truth = batch.bits.bool()  # [n, k]
        llr = _exact_llr_sliced(batch.y, batch.no, k)  # [n, k]
        wrong.append(pack((llr > 0) != truth).cpu())
        bce.append(bit_cross_entropy(llr, truth).cpu())
    return MapSide(tuple(wrong), tuple(bce))


_cache: OrderedDict[tuple, MapSide] = OrderedDict()


def map_side(seed: int, ebno_db: float, k: int, sizes: tuple[int, ...], device) -> MapSide:
    """:func:`compute_map_side`, kept in a least-recently-used cache of at most ``CACHE_BYTES``.

    The key is everything the samples and MAP's outcome depend on: seed, Eb/N0, ``k``, the chunk
    sizes (they fix the budget and the draws) and the device. An entry larger than the bound is
    returned without being kept.
    """
    key = (int(seed), float(ebno_db) + 0.0, int(k), tuple(sizes), str(device))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    side = compute_map_side(seed, ebno_db, k, sizes, device)
    if side.nbytes <= CACHE_BYTES:
        _cache[key] = side
        while cache_bytes() > CACHE_BYTES:
            _cache.popitem(last=False)
    return side


def cache_bytes() -> int:
    """Bytes held by the cache now (never above ``CACHE_BYTES``)."""
    return sum(side.nbytes for side in _cache.values())


def clear_cache() -> None:
    _cache.clear()
