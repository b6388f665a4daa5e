"""Evaluation speed: bits/s of the paired BER evaluation, and the bit budget low BER needs.

The paired evaluation draws symbols, runs the trained detector and the exact bitwise-MAP
reference on the same samples, and counts errors and discordant bits (``metrics.evaluate_ber``).
The detector is a short-trained trial (the ``quick`` preset's one-hidden-layer MLP); a run with a
dummy detector isolates what the channel and the MAP reference cost.

    python benchmarks/evaluation.py            # about a minute on 2 cores
    python benchmarks/evaluation.py --smoke    # a few seconds
"""

from __future__ import annotations

import time

import torch
from common import machine, median, parser, table, write
from symgrid.trainables.config import parse_trial_config
from symgrid.trainables.metrics import evaluate_ber
from symgrid.trainables.trial import Trainer

NEVER = 1 << 62  # min_errors that is never reached: the point runs to its bit budget


def trained_detector(k: int, symbols: int, epochs: int) -> Trainer:
    train = {"ebno_db": [-4, 16], "symbols": symbols, "val_symbols": 4096, "epochs": epochs}
    cfg = {"modulation": {"num_bits_per_symbol": k}, "model": {"hidden": [32]}, "train": train}
    trainer = Trainer(parse_trial_config(cfg))
    while not trainer.done:
        trainer.step()
    return trainer


def bits_per_s(detect, k: int, ebno_db: float, max_bits: int) -> float:
    start = time.perf_counter()
    rows = evaluate_ber(detect, k, [ebno_db], NEVER, max_bits, seed=1)
    return rows[0]["bits"] / (time.perf_counter() - start)


def speed_rows(trainers: dict, max_bits: int, repeats: int) -> list[dict]:
    """Paired bits/s per modulation, next to the same evaluation with a free detector."""
    rows = []
    for k, trainer in trainers.items():
        free = lambda batch, k=k: torch.zeros(batch.y.shape[0], k, dtype=torch.bool)  # noqa: E731
        paired, channel_map = [], []
        for _ in range(repeats):
            paired.append(bits_per_s(trainer.detect, k, 4.0, max_bits))
            channel_map.append(bits_per_s(free, k, 4.0, max_bits))
        p, c = median(paired), median(channel_map)
        rows.append(
            {
                "modulation": f"{2**k}-QAM",
                "num_bits_per_symbol": k,
                "bits": max_bits,
                "mbit_per_s": p / 1e6,
                "channel_map_only_mbit_per_s": c / 1e6,
                "detector_share": 1 - p / c,  # fraction of the time in the detector
            }
        )
    return rows


def budget_rows(trainer: Trainer, points, min_errors: int, max_bits: int) -> list[dict]:
    """Bits and seconds each Eb/N0 point needs to reach ``min_errors`` (16-QAM)."""
    rows = []
    for ebno_db in points:
        start = time.perf_counter()
        (r,) = evaluate_ber(trainer.detect, 4, [ebno_db], min_errors, max_bits, seed=2)
        rows.append(
            {
                "ebno_db": ebno_db,
                "ber": r["ber"],
                "ber_map": r["ber_map"],
                "errors": r["errors"],
                "bits": r["bits"],
                "seconds": time.perf_counter() - start,
                "budget_hit": r["errors"] < min_errors,
            }
        )
    return rows


def main() -> None:
    args = parser("evaluation", __doc__).parse_args()
    info = machine()
    torch.set_num_threads(1)  # as a Ray trial with cpu: 1 gets
    if args.smoke:
        plan = {"train_symbols": 8192, "epochs": 1, "max_bits": 1 << 18, "points": [0.0, 8.0]}
        plan.update(min_errors=50, budget=1 << 20)
        repeats = args.repeats or 1
    else:
        plan = {"train_symbols": 65536, "epochs": 6, "max_bits": 1 << 23}
        plan.update(
            points=[-4.0, 0.0, 4.0, 8.0, 10.0, 12.0, 14.0], min_errors=100, budget=2 * 10**8
        )
        repeats = args.repeats or 3
    trainers = {k: trained_detector(k, plan["train_symbols"], plan["epochs"]) for k in (4, 6)}
    speed = speed_rows(trainers, plan["max_bits"], repeats)
    budget = budget_rows(trainers[4], plan["points"], plan["min_errors"], plan["budget"])
    cols = ["modulation", "bits", "mbit_per_s", "channel_map_only_mbit_per_s", "detector_share"]
    print(table(speed, cols, f"paired evaluation at 4 dB, 1 thread, median of {repeats}"))
    title = f"16-QAM bits to reach min_errors={plan['min_errors']} (budget {plan['budget']:.3g})"
    print(table(budget, ["ebno_db", "ber", "ber_map", "errors", "bits", "seconds"], title))
    result = {"benchmark": "evaluation", "machine": info, "repeats": repeats, "plan": plan}
    write(args.json, {**result, "speed": speed, "budget": budget})


if __name__ == "__main__":
    main()
