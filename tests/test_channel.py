"""Unit tests for trainables.channel: noise level, Eb/N0 draws, features and seeded streams."""

import math

import numpy as np
import pytest
import torch
from symgrid.trainables.channel import (
    ebno_db_to_no,
    features,
    sample_ebno_db,
    seeded_generator,
    transmit,
)
from symgrid.trainables.constellation import bit_labels, qam


def test_ebno_db_to_no_closed_form():
    assert ebno_db_to_no(0.0, 4) == pytest.approx(0.25)
    assert ebno_db_to_no(10.0, 2, coderate=0.5) == pytest.approx(0.1)
    no = ebno_db_to_no(torch.tensor([0.0, 10.0]), 4)
    torch.testing.assert_close(no, torch.tensor([0.25, 0.025]))


@pytest.mark.parametrize("k, ebno_db", [(2, 0.0), (4, 6.0), (6, -3.0)])
def test_noise_variance_matches_no(k, ebno_db):
    n = 200_000
    batch = transmit(n, k, ebno_db, torch.Generator().manual_seed(123))
    noise = batch.y - qam(k)[batch.symbol_index]
    no = 1.0 / (10 ** (ebno_db / 10) * k)
    # Sample variance of n Gaussians has relative std sqrt(2 / n) ~ 0.3 %; allow 6 sigma.
    tol = 6 * math.sqrt(2 / n)
    assert noise.real.var().item() == pytest.approx(no / 2, rel=tol)
    assert noise.imag.var().item() == pytest.approx(no / 2, rel=tol)
    assert abs((noise.real * noise.imag).mean().item()) < 6 * (no / 2) / math.sqrt(n)
    torch.testing.assert_close(batch.no, torch.full((n,), no, dtype=torch.float32))


def test_batch_shapes_dtypes_and_labels():
    batch = transmit(1000, 4, (-2.0, 8.0), torch.Generator().manual_seed(1))
    assert batch.bits.shape == (1000, 4) and batch.bits.dtype == torch.float32
    assert batch.symbol_index.dtype == torch.int64
    assert batch.y.dtype == torch.complex64 and batch.no.dtype == torch.float32
    assert batch.ebno_db.dtype == torch.float32
    assert torch.equal(batch.bits, bit_labels(4)[batch.symbol_index])
    counts = torch.bincount(batch.symbol_index, minlength=16)
    assert (counts > 0).all()  # 1000 draws miss one of 16 points with probability ~1e-26


def test_uniform_ebno_range():
    draws = sample_ebno_db(100_000, (-20.0, 20.0), torch.Generator().manual_seed(7))
    assert draws.dtype == torch.float32
    assert draws.min() >= -20.0 and draws.max() <= 20.0
    assert draws.mean().item() == pytest.approx(0.0, abs=0.3)  # std of the mean ~0.04
    fixed = sample_ebno_db(5, 3.0, torch.Generator())
    assert torch.equal(fixed, torch.full((5,), 3.0))
    with pytest.raises(ValueError, match="ebno_db"):
        sample_ebno_db(5, (4.0, 2.0), torch.Generator())


def test_seeded_streams_reproducible_and_independent():
    a = torch.rand(8, generator=seeded_generator(3, "train"))
    b = torch.rand(8, generator=seeded_generator(3, "train"))
    assert torch.equal(a, b)
    others = [
        torch.rand(8, generator=seeded_generator(seed, stream))
        for seed, stream in [(3, "val"), (3, "test"), (4, "train"), (3, "init")]
    ]
    assert all(not torch.equal(a, o) for o in others)
    with pytest.raises(ValueError, match="seed"):
        seeded_generator(-1, "train")


def test_features():
    y = torch.tensor([1 + 2j, -3 - 4j], dtype=torch.complex64)
    torch.testing.assert_close(features(y), torch.tensor([[1.0, 2.0], [-3.0, -4.0]]))
    x = features(y, torch.tensor([0.1, 10.0]))
    assert x.shape == (2, 3) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 2], torch.tensor([-1.0, 1.0]))
    np.testing.assert_allclose(features(y, 0.01)[:, 2].numpy(), [-2.0, -2.0])


def test_streams_are_cpu_generators_and_keys_name_sub_streams():
    assert seeded_generator(3, "test", 7).device.type == "cpu"
    draws = {
        keys: torch.rand(8, generator=seeded_generator(3, "test", *keys))
        for keys in [(), (7,), (8,), (7, 0), (2**64 - 1,)]
    }
    values = list(draws.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1 :])
    again = torch.rand(8, generator=seeded_generator(3, "test", 2**64 - 1))
    assert torch.equal(again, draws[(2**64 - 1,)])


def test_samples_are_drawn_on_the_cpu_whatever_the_device():
    """The batch is computed on the CPU and only moved: on "meta" (a stand-in for CUDA here) the
    generator advances exactly as on the CPU, and on CUDA, when present, the values match."""
    cpu_gen, meta_gen = seeded_generator(1, "x"), seeded_generator(1, "x")
    on_cpu = transmit(1000, 4, (0.0, 10.0), cpu_gen, "cpu")
    on_meta = transmit(1000, 4, (0.0, 10.0), meta_gen, "meta")
    assert {t.device.type for t in on_meta} == {"meta"} and on_meta.y.shape == on_cpu.y.shape
    assert torch.equal(cpu_gen.get_state(), meta_gen.get_state())
    if torch.cuda.is_available():
        on_cuda = transmit(1000, 4, (0.0, 10.0), seeded_generator(1, "x"), "cuda")
        for a, b in zip(on_cpu, on_cuda, strict=True):
            assert torch.equal(a, b.cpu())
