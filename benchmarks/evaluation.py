"""Evaluation speed: bits/s of the paired BER evaluation, MAP's side cached or not, and budgets.

The paired evaluation draws symbols, runs the trained detector and the exact bitwise-MAP
reference on the same samples, and counts errors, discordant bits and cross-entropies
(``metrics.evaluate_ber``). MAP's side of a point is the same for every trial of a seed, so a
worker computes it once (``map_reference.map_side``): "cold" is a worker's first trial of the seed,
"cached" every later one. The detector is a short-trained trial (the ``quick`` preset's
one-hidden-layer MLP); a run with a dummy detector isolates what the channel and MAP cost.

    python benchmarks/evaluation.py            # about a minute on 2 cores
    python benchmarks/evaluation.py --smoke    # a few seconds
"""

from __future__ import annotations

import time

import torch
from common import machine, median, parser, table, write
from symgrid.trainables import map_reference
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


def bits_per_s(detect, k: int, ebno_db: float, max_bits: int, cached: bool) -> float:
    map_reference.clear_cache()
    if cached:
        evaluate_ber(detect, k, [ebno_db], NEVER, max_bits, seed=1)  # a first trial of the seed
    start = time.perf_counter()
    rows = evaluate_ber(detect, k, [ebno_db], NEVER, max_bits, seed=1)
    return rows[0]["bits"] / (time.perf_counter() - start)


def speed_rows(trainers: dict, max_bits: int, repeats: int) -> list[dict]:
    """Paired bits/s per modulation, MAP computed and cached, and with a free detector."""
    rows = []
    for k, trainer in trainers.items():
        free = lambda batch, k=k: torch.zeros(batch.y.shape[0], k, dtype=torch.bool)  # noqa: E731
        runs = {"cold": [], "cached": [], "free": []}
        for _ in range(repeats):
            runs["cold"].append(bits_per_s(trainer.soft_bits, k, 4.0, max_bits, False))
            runs["cached"].append(bits_per_s(trainer.soft_bits, k, 4.0, max_bits, True))
            runs["free"].append(bits_per_s(free, k, 4.0, max_bits, False))
        cold, cached, free_rate = (median(runs[x]) for x in ("cold", "cached", "free"))
        rows.append(
            {
                "modulation": f"{2**k}-QAM",
                "num_bits_per_symbol": k,
                "bits": max_bits,
                "mbit_per_s": cold / 1e6,
                "cached_mbit_per_s": cached / 1e6,
                "speedup": cached / cold,
                "channel_map_only_mbit_per_s": free_rate / 1e6,
                "detector_share": 1 - cold / free_rate,  # fraction of the cold time in the detector
            }
        )
    return rows


def trial_eval_rows(trainer: Trainer, points, min_errors: int, max_bits: int, repeats: int):
    """A whole trial's evaluation (16-QAM, the given eval settings): first and later trials."""
    times = {"cold": [], "cached": []}
    for _ in range(repeats):
        map_reference.clear_cache()
        for kind in ("cold", "cached"):
            start = time.perf_counter()
            evaluate_ber(trainer.soft_bits, 4, points, min_errors, max_bits, seed=2)
            times[kind].append(time.perf_counter() - start)
    cold, cached = median(times["cold"]), median(times["cached"])
    return [{"points": len(points), "cold_s": cold, "cached_s": cached, "speedup": cold / cached}]


def budget_rows(trainer: Trainer, points, min_errors: int, max_bits: int) -> list[dict]:
    """Each Eb/N0 point's budget (bits at which MAP expects ``min_errors``) and its seconds."""
    rows = []
    map_reference.clear_cache()
    for ebno_db in points:
        start = time.perf_counter()
        (r,) = evaluate_ber(trainer.soft_bits, 4, [ebno_db], min_errors, max_bits, seed=2)
        rows.append(
            {
                "ebno_db": ebno_db,
                "ber": r["ber"],
                "ber_map": r["ber_map"],
                "errors": r["errors"],
                "errors_map": r["errors_map"],
                "bits": r["bits"],
                "seconds": time.perf_counter() - start,
                "rate_gap": r["rate_gap"],
                "rate_gap_se": r["rate_gap_se"],
                "log_ratio_map_se": r["log_ratio_map_se"],
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
    lecture = [-4.0, 0.0, 4.0, 8.0, 12.0]  # the lecture preset's eval: min_errors 200, 2e7 bits
    trial = trial_eval_rows(trainers[4], lecture, 200, 20_000_000, repeats)
    budget = budget_rows(trainers[4], plan["points"], plan["min_errors"], plan["budget"])
    cols = ["modulation", "bits", "mbit_per_s", "cached_mbit_per_s", "speedup"]
    cols += ["channel_map_only_mbit_per_s", "detector_share"]
    print(table(speed, cols, f"paired evaluation at 4 dB, 1 thread, median of {repeats}"))
    title = f"a lecture trial's evaluation (16-QAM, 5 points), median of {repeats}"
    print(table(trial, ["points", "cold_s", "cached_s", "speedup"], title))
    title = f"16-QAM budgets at min_errors={plan['min_errors']} (cap {plan['budget']:.3g} bits)"
    cols = ["ebno_db", "ber", "ber_map", "errors", "errors_map", "bits", "seconds", "rate_gap"]
    print(table(budget, [*cols, "rate_gap_se", "log_ratio_map_se"], title))
    result = {"benchmark": "evaluation", "machine": info, "repeats": repeats, "plan": plan}
    write(args.json, {**result, "speed": speed, "trial": trial, "budget": budget})


if __name__ == "__main__":
    main()
