"""Training throughput: the trial's training step next to the course notebook's DataLoader loop.

The trial's step is a ``Trainer.train_epoch`` with ``fresh_each_epoch: true`` (so drawing the
symbols is timed too). The reference is written the way the notebook does it: a ``Dataset`` whose
``__getitem__`` draws a fresh 64 x 1024-bit frame (64 x 256 Gray 16-QAM symbols, one Eb/N0 per
frame uniform in [-20, 20] dB), a ``DataLoader`` of 32 frames per batch, the 2 -> 32 -> 4 Sigmoid
network with BCELoss and SGD lr 0.1. A third loop, "bare step", runs only the baseline's
forward, backward and SGD step over fixed contiguous tensors: the ceiling for this network on this
machine. All run in this process with the same thread count, interleaved over the repeats.

    python benchmarks/throughput.py            # about 2 minutes on 2 cores
    python benchmarks/throughput.py --smoke    # a few seconds
"""

from __future__ import annotations

import time

import torch
from common import machine, median, parser, table, write
from symgrid.trainables.channel import ebno_db_to_no
from symgrid.trainables.config import parse_trial_config
from symgrid.trainables.constellation import qam
from symgrid.trainables.trial import Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

FRAME_ROWS, FRAME_BITS = 64, 1024  # one notebook frame: 64 x 1024 bits
FRAME_SYMBOLS = FRAME_ROWS * FRAME_BITS // 4  # 16-QAM: 16,384 symbols
FRAMES_PER_BATCH = 32  # the notebook's DataLoader batch: 524,288 symbols

MODELS = {
    # the notebook's network and optimizer, as a trial
    "baseline": {
        "model": {"name": "baseline"},
        "loss": "bce",
        "optimizer": {"name": "sgd", "lr": 0.1},
    },
    # the 2-hidden-layer MLP that reaches the MAP limit (trial defaults: Adam, bce_logits)
    "mlp64x64": {"model": {"name": "mlp", "hidden": [64, 64]}},
}


class NotebookFrames(Dataset):
    """Fresh random bits on every read, as the notebook's dataset does."""

    def __init__(self, frames: int):
        self.frames = frames
        self.points = qam(4)  # [16] complex64, Gray labels = binary index
        self.weights = torch.tensor([8, 4, 2, 1])  # bits -> point index

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, i):
        bits = torch.randint(0, 2, (FRAME_ROWS, FRAME_BITS)).float()  # [64, 1024]
        groups = bits.reshape(FRAME_ROWS, -1, 4)  # [64, 256, 4]
        index = (groups.long() * self.weights).sum(-1)  # [64, 256]
        ebno_db = torch.empty(()).uniform_(-20.0, 20.0)
        no = ebno_db_to_no(ebno_db, 4)
        w = torch.randn(index.shape, dtype=torch.complex64)
        y = self.points[index] + torch.sqrt(no) * w  # [64, 256]
        return torch.stack([y.real, y.imag], dim=-1), groups  # [64, 256, 2], [64, 256, 4]


def reference_rate(frames: int) -> float:
    """Symbols/s of the notebook-style loop over ``frames`` frames (after a warm-up batch)."""
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4), nn.Sigmoid())
    criterion, opt = nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(NotebookFrames(frames + FRAMES_PER_BATCH), batch_size=FRAMES_PER_BATCH)
    start, seen = None, 0
    for x, bits in loader:
        opt.zero_grad()
        loss = criterion(model(x), bits)
        loss.backward()
        opt.step()
        if start is None:  # the first batch is the warm-up
            start = time.perf_counter()
        else:
            seen += x.shape[0] * FRAME_SYMBOLS
    return seen / (time.perf_counter() - start)


def bare_rate(batch_size: int, symbols: int) -> float:
    """Symbols/s of the baseline's optimizer steps alone: fixed contiguous tensors, no data
    generation, shuffling or bookkeeping; the ceiling the trial's step can approach."""
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4), nn.Sigmoid())
    criterion, opt = nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=0.1)
    x, bits = torch.randn(symbols, 2), torch.randint(0, 2, (symbols, 4)).float()
    start = time.perf_counter()
    for first in range(0, symbols, batch_size):
        opt.zero_grad(set_to_none=True)
        criterion(model(x[first : first + batch_size]), bits[first : first + batch_size]).backward()
        opt.step()
    return symbols / (time.perf_counter() - start)


def trial_trainer(model: str, batch_size: int, symbols: int) -> Trainer:
    train = {
        "ebno_db": [-20, 20],
        "symbols": symbols,
        "fresh_each_epoch": True,
        "val_symbols": 1024,
        "batch_size": batch_size,
        "epochs": 1000,
    }
    trainer = Trainer(parse_trial_config({**MODELS[model], "train": train}))
    trainer.step()  # warm-up; later epochs redraw their symbols (epoch > 0)
    return trainer


def trial_rate(trainer: Trainer, epochs: int) -> float:
    """Symbols/s of ``epochs`` training epochs, each drawing fresh symbols."""
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.train_epoch()
    return epochs * trainer.cfg.train.symbols / (time.perf_counter() - start)


def measure(threads: int, batch_sizes, frames: int, symbols: int, repeats: int) -> list[dict]:
    """Interleaved rounds of every case at one thread count; medians."""
    torch.set_num_threads(threads)
    cases = [(m, b) for m in MODELS for b in batch_sizes]
    trainers = {c: trial_trainer(c[0], c[1], max(symbols, 4 * c[1])) for c in cases}
    bare = [("bare", b) for b in batch_sizes]
    rates: dict = {c: [] for c in ["reference", *bare, *cases]}
    for _ in range(repeats):
        rates["reference"].append(reference_rate(frames))
        for c in cases:
            rates[c].append(trial_rate(trainers[c], 1))
        for c in bare:
            rates[c].append(bare_rate(c[1], max(symbols, 4 * c[1])))
    ref = median(rates["reference"])
    rows = [
        row(threads, "notebook loop", "2-32-4 bce sgd", FRAMES_PER_BATCH * FRAME_SYMBOLS, ref, ref)
    ]
    for _, batch in bare:
        rows.append(
            row(threads, "bare step", "2-32-4 bce sgd", batch, median(rates[("bare", batch)]), ref)
        )
    for (model, batch), values in ((c, rates[c]) for c in cases):
        label = "2-32-4 bce sgd" if model == "baseline" else "2-64-64-4 bce_logits adam"
        rows.append(row(threads, f"trial {model}", label, batch, median(values), ref))
    return rows


def row(threads, loop, net, batch, rate, ref) -> dict:
    return {
        "threads": threads,
        "loop": loop,
        "network": net,
        "batch_symbols": batch,
        "msym_per_s": rate / 1e6,
        "x_reference": rate / ref,
    }


def main() -> None:
    args = parser("throughput", __doc__).parse_args()
    info = machine()
    if args.smoke:
        plan = {"threads": [1], "batch_sizes": [4096], "frames": 64, "symbols": 1 << 16}
        repeats = args.repeats or 1
    else:
        plan = {"threads": [1, 2], "batch_sizes": [4096, 32768, 524288], "frames": 256}
        plan["symbols"], repeats = 1 << 21, args.repeats or 5
    rows = []
    for threads in plan["threads"]:
        rows += measure(threads, plan["batch_sizes"], plan["frames"], plan["symbols"], repeats)
    columns = ["threads", "loop", "network", "batch_symbols", "msym_per_s", "x_reference"]
    print(table(rows, columns, f"training throughput, median of {repeats} (M symbols/s)"))
    write(
        args.json,
        {
            "benchmark": "throughput",
            "machine": info,
            "repeats": repeats,
            "plan": plan,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
