"""Rates for ``symgrid validate``'s cost estimate, written to ``grid/rates.json``.

One torch thread (a 1-CPU trial). Training and validation are timed per epoch on detectors of
several sizes and batch sizes, with both heads and with the regularizers that cost time, and
fitted by non-negative least squares to::

    train epoch = symbols x (train_us + train_param_us x params
                             + symbol_head_us x 2^k k [symbol head]
                             + dropout_unit_us x hidden units [dropout])
                  + batches x (batch_us + penalty_param_us x params [l1, elastic_net])
    validation  = symbols x (forward_us + forward_param_us x params
                             + forward_symbol_head_us x 2^k k [symbol head])

(a symbol head marginalizes its 2^k softmax outputs to k bit logits for every symbol it
decides, ``detector.bit_logits``). The paired evaluation
(channel, bitwise MAP, counting; the detector's forward pass is added from the fit) is timed per
symbol for each supported modulation. ``trial_fixed_s`` is what a tiny trial costs beyond the
model (building, the shared evaluation sets, the summary). The ``grid`` section is Ray's part,
copied from ``benchmarks/results/scale.json`` (``benchmarks/scale.py``): start-up to the first
trial, the steady per-trial overhead, the time after the last trial (fixed + per trial), and what
a trial costs inside Ray beyond the model (its reports and final checkpoint, its records).

    python benchmarks/rates.py              # ~1 minute; writes grid/rates.json
    python benchmarks/rates.py --smoke      # fewer repeats; writes only the --json file
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, machine, median, parser, write
from scipy.optimize import nnls

RATES = Path(__file__).resolve().parents[1] / "grid" / "rates.json"
BIT, SYMBOL = "bce_logits", "cross_entropy"
CASES = [  # hidden widths, batch, loss, regularization
    ([16], 1024, BIT, "none"), ([16], 4096, BIT, "none"), ([32], 2048, BIT, "none"),
    ([64, 64], 1024, BIT, "none"), ([64, 64], 4096, BIT, "none"),
    ([16], 1024, SYMBOL, "none"), ([32, 32], 1024, SYMBOL, "none"),
    ([64, 64], 4096, SYMBOL, "none"),
    ([32], 2048, BIT, "dropout"), ([32, 32], 1024, BIT, "dropout"),
    ([64, 64], 1024, BIT, "dropout"),
    ([16], 1024, BIT, "l1"), ([32, 32], 1024, BIT, "l1"), ([64, 64], 1024, BIT, "l1"),
]  # fmt: skip
SYMBOLS = 65536


def config(hidden, batch, symbols=SYMBOLS, epochs=1, loss=BIT, regularization="none") -> dict:
    from symgrid.trainables.config import config_to_dict, parse_trial_config

    raw = {
        "train": {"symbols": symbols, "val_symbols": symbols, "batch_size": batch},
        "model": {"name": "mlp", "hidden": hidden},
        "optimizer": {"name": "adam", "lr": 0.01},
        "loss": loss,
        "regularization": regularization,
        "eval": {"ebno_db": [4], "min_errors": 10, "max_bits": 4096, "biasvar_symbols": 64},
    }
    raw["train"]["epochs"] = epochs
    return config_to_dict(parse_trial_config(raw))


def epoch_times(repeats: int) -> list[dict]:
    from symgrid.grid.cost import features
    from symgrid.trainables.config import parse_trial_config
    from symgrid.trainables.trial import Trainer

    rows = []
    for hidden, batch, loss, regularization in CASES:
        cfg = config(hidden, batch, loss=loss, regularization=regularization)
        trainer = Trainer(parse_trial_config(cfg))
        trainer.train_epoch()  # warm-up
        train, val = [], []
        for _ in range(repeats):  # interleaved, so a load spike hits both alike
            train.append(timed(trainer.train_epoch))
            val.append(timed(trainer.validate))
        rows.append({**features(cfg), "hidden": hidden, "batch": batch, "loss": loss,
                     "regularization": regularization, "train_s": median(train),
                     "validate_s": median(val)})  # fmt: skip
    return rows


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fit(rows: list[dict]) -> dict:
    """Least squares of the epoch model (see the module docstring), in microseconds."""
    col = lambda key: np.array([r[key] for r in rows], float)  # noqa: E731
    p, marg, units, pen = col("params"), col("symbol_head"), col("dropout_units"), col("penalty")
    batches = SYMBOLS / col("batch")
    a = np.column_stack([np.full_like(p, SYMBOLS), SYMBOLS * p, batches, SYMBOLS * marg,
                         SYMBOLS * units, batches * p * pen])  # fmt: skip
    train = nnls(a, col("train_s"))[0] * 1e6  # rates are >= 0
    b = np.column_stack([np.full_like(p, SYMBOLS), SYMBOLS * p, SYMBOLS * marg])
    forward = nnls(b, col("validate_s"))[0] * 1e6
    names = ["train_us", "train_param_us", "batch_us", "symbol_head_us", "dropout_unit_us",
             "penalty_param_us"]  # fmt: skip
    fitted = dict(zip(names, map(float, train), strict=True))
    names = ["forward_us", "forward_param_us", "forward_symbol_head_us"]
    return {**fitted, **dict(zip(names, map(float, forward), strict=True))}


def eval_us(repeats: int, symbols: int, cached: bool = False) -> dict[str, float]:
    """Paired evaluation per symbol without the detector (its forward pass comes from the fit):
    with MAP's side of the point computed (``cached`` False) or found in the worker's cache."""
    from symgrid.trainables.constellation import SUPPORTED_BITS

    out = {}
    for k in SUPPORTED_BITS:
        out[str(k)] = median([eval_once(k, symbols, cached) for _ in range(repeats)])
    return out


def eval_once(k: int, symbols: int, cached: bool) -> float:
    """Microseconds per symbol of one Eb/N0 point of ``symbols`` with a constant detector."""
    from symgrid.trainables import map_reference
    from symgrid.trainables.metrics import evaluate_ber

    detect = lambda batch: torch.zeros(batch.y.shape[0], k, dtype=torch.bool)  # noqa: E731
    map_reference.clear_cache()
    if cached:
        evaluate_ber(detect, k, [4.0], 1 << 40, symbols * k, seed=0)  # fills the cache
    start = time.perf_counter()
    evaluate_ber(detect, k, [4.0], 1 << 40, symbols * k, seed=0)  # the budget is max_bits
    return (time.perf_counter() - start) / symbols * 1e6


def trial_fixed_s(rates: dict, repeats: int) -> float:
    """A tiny trial's wall time less what the model predicts for its sizes (``trial_fixed_s`` 0)."""
    from symgrid.grid import cost
    from symgrid.trainables.trial import run_trial

    tiny = config([16], 1024, symbols=4096, epochs=2)
    cost.rates.cache_clear()
    cost.rates = lambda: {**rates, "trial_fixed_s": 0.0}  # this process only
    modelled = sum(cost.trial_seconds(tiny).values())
    return median([timed(lambda: run_trial(tiny)) for _ in range(repeats)]) - modelled


def in_ray_s(runs: list[dict], rates: dict) -> float:
    """What a trial costs inside Ray beyond the model (its reports, its final checkpoint, the
    records): the scale runs' summed trial wall_s less the modelled seconds, per trial."""
    from scale import spec_text
    from symgrid.grid import cost
    from symgrid.grid.spec import expand, load_spec

    cost.rates = lambda: {**rates, "grid": {}}  # this process only
    excess = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            path = Path(tmp) / f"scale{run['trials']}.yaml"
            path.write_text(spec_text(run["trials"]))
            trials = expand(load_spec(str(path), allow_large=True))
            modelled = sum(sum(cost.trial_seconds(t.config).values()) for t in trials)
            excess.append((run["sum_trial_wall_s"] - modelled) / run["trials"])
    return max(median(excess), 0.0)


def grid_rates(rates: dict) -> dict:
    """Ray's part from the scale benchmark's runs: a line through its sizes for the finish."""
    runs = json.loads((RESULTS / "scale.json").read_text())["runs"]
    n = np.array([r["trials"] for r in runs], float)
    after = np.array([r["after_last_trial_s"] for r in runs])
    slope, intercept = np.polyfit(n, after, 1) if len(runs) > 1 else (0.0, after[0])
    return {
        "startup_s": median([r["to_first_trial_s"] for r in runs]),
        "per_trial_s": median([r["steady_overhead_per_trial_s"] for r in runs]),
        "finish_s": float(max(intercept, 0.0)),
        "finish_per_trial_s": float(max(slope, 0.0)),
        "in_ray_per_trial_s": in_ray_s(runs, rates),
        "from": "benchmarks/results/scale.json",
    }


def main() -> None:
    p = parser("rates", __doc__)
    args = p.parse_args()
    torch.set_num_threads(1)
    repeats = args.repeats or (1 if args.smoke else 5)
    info = machine()
    rows = epoch_times(repeats)
    rates = {**fit(rows), "draw_us": draw_us(repeats)}
    rates["eval_us"] = eval_us(repeats, 1 << 14 if args.smoke else 1 << 18)
    rates["eval_cached_us"] = eval_us(repeats, 1 << 14 if args.smoke else 1 << 18, cached=True)
    rates["trial_fixed_s"] = max(trial_fixed_s(rates, repeats), 0.0)
    rates["grid"] = grid_rates(rates)
    rates["measured"] = {"command": "python benchmarks/rates.py", "machine": info, "epochs": rows}
    if not args.smoke:
        RATES.write_text(json.dumps(rates, indent=1) + "\n")
        print(f"wrote {RATES}")
    print(json.dumps({k: v for k, v in rates.items() if k != "measured"}, indent=1))
    write(args.json, {"benchmark": "rates", "machine": info, **rates})


def draw_us(repeats: int) -> float:
    """Drawing training/validation symbols (a Trainer's build), per symbol."""
    from symgrid.trainables.channel import seeded_generator, transmit

    gen = seeded_generator(0, "draw")
    n = 1 << 20
    return (
        median([timed(lambda: transmit(n, 4, (-20.0, 20.0), gen)) for _ in range(repeats)])
        / n
        * 1e6
    )


if __name__ == "__main__":
    main()
