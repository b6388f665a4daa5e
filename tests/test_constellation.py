"""Unit tests for trainables.constellation: energy, Gray labelling, PAM consistency, validation."""

import numpy as np
import pytest
import torch
from symgrid.trainables.constellation import SUPPORTED_BITS, bit_labels, pam, qam


@pytest.mark.parametrize("k", SUPPORTED_BITS)
def test_unit_average_energy(k):
    points = qam(k).to(torch.complex128)
    assert points.dtype == torch.complex128 and points.shape == (2**k,)
    assert torch.mean(points.abs() ** 2).item() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("k", SUPPORTED_BITS)
def test_gray_neighbours_differ_in_one_bit(k):
    points = qam(k).numpy()
    labels = bit_labels(k).numpy().astype(int)
    side = 2 ** (k // 2)
    re_levels = np.unique(np.round(points.real, 6))
    im_levels = np.unique(np.round(points.imag, 6))
    assert re_levels.size == side and im_levels.size == side
    # Place every point on its integer (row, column) of the square grid.
    col = np.searchsorted(re_levels, np.round(points.real, 6))
    row = np.searchsorted(im_levels, np.round(points.imag, 6))
    grid = np.full((side, side), -1)
    grid[row, col] = np.arange(2**k)
    assert (grid >= 0).all()
    horizontal = (labels[grid[:, :-1]] != labels[grid[:, 1:]]).sum(-1)
    vertical = (labels[grid[:-1, :]] != labels[grid[1:, :]]).sum(-1)
    assert (horizontal == 1).all() and (vertical == 1).all()


@pytest.mark.parametrize("k", SUPPORTED_BITS)
def test_bit_label_is_index_msb_first(k):
    labels = bit_labels(k)
    assert labels.dtype == torch.float32 and labels.shape == (2**k, k)
    weights = 2.0 ** torch.arange(k - 1, -1, -1)
    assert torch.equal(labels @ weights, torch.arange(2**k, dtype=torch.float32))


def test_16qam_levels_and_sionna_labels():
    points = qam(4).to(torch.complex128) * np.sqrt(10.0)
    assert sorted(set(np.round(points.real.numpy(), 5))) == [-3.0, -1.0, 1.0, 3.0]
    # Sionna's Gray map: bits (b0, b2) = 00 -> +1, 01 -> +3, 10 -> -1, 11 -> -3 on the real axis.
    assert points[0].item() == pytest.approx(1 + 1j)
    assert points[0b0100].item() == pytest.approx(1 - 1j)
    assert points[0b0010].item() == pytest.approx(3 + 1j)
    assert points[0b1111].item() == pytest.approx(-3 - 3j)


@pytest.mark.parametrize("k", SUPPORTED_BITS)
def test_pam_matches_qam_real_axis(k):
    amplitudes, labels = pam(k)
    assert amplitudes.dtype == np.float64 and amplitudes.shape == (2 ** (k // 2),)
    assert labels.shape == (2 ** (k // 2), k // 2)
    qam_bits = bit_labels(k).numpy().astype(int)[:, 0::2]  # real-axis bits of every point
    index = qam_bits @ (2 ** np.arange(k // 2 - 1, -1, -1))
    np.testing.assert_allclose(amplitudes[index], qam(k).real.numpy(), atol=1e-6)
    np.testing.assert_array_equal(labels[index], qam_bits)


@pytest.mark.parametrize("bad", [0, 1, 3, 10, -4, 4.0, "4", True, None])
def test_bad_num_bits_per_symbol_raises(bad):
    for fn in (qam, bit_labels, pam):
        with pytest.raises(ValueError, match="num_bits_per_symbol"):
            fn(bad)
