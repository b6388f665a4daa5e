"""What a grid will cost, from rates measured on this kind of machine (``grid/rates.json``).

A trial's time is modelled from its config, with rates that ``benchmarks/rates.py`` measures
(one torch thread, as a 1-CPU trial runs) and ``benchmarks/scale.py`` measures for Ray's part::

    build      = draw_us x (train.symbols + train.val_symbols) + trial_fixed_s
    train      = epochs x (symbols x (train_us + train_param_us x params
                                      + symbol_head_us x 2^k k [symbol head]
                                      + dropout_unit_us x hidden units [dropout])
                           + batches x (batch_us + penalty_param_us x params [l1, elastic_net]))
    forward    = forward_us + forward_param_us x params + forward_symbol_head_us x 2^k k [symbol
                 head], per symbol
    validate   = epochs x val_symbols x forward
    evaluate   = sum over Eb/N0 points of symbols(point) x (eval_cached_us[k] + forward)
                 + biasvar_symbols per point x forward
    reference  = (eval_us[k] - eval_cached_us[k]) x symbols(point), once per (seed, point) and
                 worker: min(slots, trials sharing it) times

``symbols(point)`` is ``trainables.map_reference.budget_symbols``, fixed before any detector is
seen: ``ceil(min_errors / (k BER_MAP))`` symbols, capped at ``max_bits / k``. The bitwise-MAP side
of a point's samples is computed once per worker process and cached (``eval_us`` is a point with
it computed, ``eval_cached_us`` one with it cached). Early stopping can only end trials sooner.
The wall time adds Ray's start, its per-trial overhead (between trials, and inside a trial: the
reports, the final checkpoint, the records) and the tables, and divides the trials over the slots
(trials running at once).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from symgrid.trainables.config import (
    TrialConfig,
    hidden_widths,
    network_size,
    parse_trial_config,
)
from symgrid.trainables.losses import head
from symgrid.trainables.map_reference import budget_symbols
from symgrid.trainables.network import BUILTIN_MODELS

__all__ = ["features", "grid_cost", "num_params", "rates", "trial_seconds"]

RATES_FILE = Path(__file__).with_name("rates.json")  # written by benchmarks/rates.py


@functools.cache
def rates() -> dict:
    """The measured rates (see the file's ``measured`` entry for the command and the load)."""
    return json.loads(RATES_FILE.read_text())


def num_params(config: dict) -> int:
    """Weights and biases of the trial's detector (inputs 2 or 3, outputs k or 2^k); a user
    network's counted on the module itself (built once when its config was checked)."""
    return detector_size(parse_trial_config(config))


def detector_size(cfg: TrialConfig) -> int:
    """:func:`num_params` of a parsed config."""
    if cfg.model.name not in BUILTIN_MODELS:
        return network_size(cfg)
    k = cfg.modulation.num_bits_per_symbol
    widths = [3 if cfg.model.noise_input else 2, *hidden_widths(cfg)]
    widths.append(k if head(cfg.loss) == "bit" else 2**k)
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))


@functools.lru_cache(maxsize=4096)
def eval_symbols(k: int, ebno_db: float, min_errors: int, max_bits: float) -> int:
    """Symbols one Eb/N0 point evaluates: its budget, whatever the detector does."""
    return budget_symbols(ebno_db, k, min_errors, int(max_bits))


def features(config: dict) -> dict[str, float]:
    """What a trial's time depends on beside its sizes: ``params``; ``symbol_head``, the 2^k k
    terms a symbol head marginalizes per symbol (0 for a bit head); ``dropout_units``, the hidden
    units dropout masks (0 without dropout, or for a user network); ``penalty``, 1 when a norm
    penalty (l1, elastic_net) is computed every batch."""
    cfg = parse_trial_config(config)
    k = cfg.modulation.num_bits_per_symbol
    names = {s.name for s in cfg.regularization}
    dropout = "dropout" in names or cfg.model.dropout > 0
    builtin = cfg.model.name in BUILTIN_MODELS
    return {
        "params": detector_size(cfg),
        "symbol_head": 2**k * k if head(cfg.loss) == "symbol" else 0,
        "dropout_units": sum(hidden_widths(cfg)) if dropout and builtin else 0,
        "penalty": 1 if names & {"l1", "elastic_net"} else 0,
    }


def trial_seconds(config: dict) -> dict[str, float]:
    """Modelled seconds of one trial on one core: ``train`` (build, epochs), ``eval`` (with MAP's
    side cached) and ``reference`` (MAP's side, paid by the first trial of the seed per worker)."""
    r, f = rates(), features(config)
    params = f["params"]
    train, ev = config["train"], config["eval"]
    k = config["modulation"]["num_bits_per_symbol"]
    forward = r["forward_us"] + r["forward_param_us"] * params
    forward = (forward + r["forward_symbol_head_us"] * f["symbol_head"]) * 1e-6  # s per symbol
    per_symbol = r["train_us"] + r["train_param_us"] * params
    per_symbol += r["symbol_head_us"] * f["symbol_head"] + r["dropout_unit_us"] * f["dropout_units"]
    per_batch = r["batch_us"] + r["penalty_param_us"] * params * f["penalty"]
    batches = math.ceil(train["symbols"] / train["batch_size"])
    epoch = (train["symbols"] * per_symbol + batches * per_batch) * 1e-6
    epoch += train["val_symbols"] * forward
    build = r["draw_us"] * 1e-6 * (train["symbols"] + train["val_symbols"]) + r["trial_fixed_s"]
    points = [
        eval_symbols(k, float(e), ev["min_errors"], float(ev["max_bits"])) for e in ev["ebno_db"]
    ]
    cached = r["eval_cached_us"][str(k)] * 1e-6
    evaluate = sum(points) * (cached + forward) + len(points) * ev["biasvar_symbols"] * forward
    reference = sum(points) * max(r["eval_us"][str(k)] * 1e-6 - cached, 0.0)
    return {"train": build + train["epochs"] * epoch, "eval": evaluate, "reference": reference}


def grid_cost(configs: list[dict], slots: int) -> dict[str, float]:
    """Core-hours of training and evaluation, and the wall time with ``slots`` trials at once."""
    grid, slots = rates()["grid"], max(1, slots)
    cache: dict[str, dict] = {}
    sharing: dict[str, list] = {}  # MAP's side: [seconds, trials] per (seed, k, eval settings)
    train = evaluate = longest = 0.0
    for config in configs:
        key = json.dumps({**config, "seed": None}, sort_keys=True)  # the seed costs nothing
        if key not in cache:
            cache[key] = trial_seconds(config)
        t = cache[key]
        train, evaluate = train + t["train"], evaluate + t["eval"]
        longest = max(longest, t["train"] + t["eval"] + t["reference"])
        ref = json.dumps([config.get("seed"), config["modulation"], config["eval"]], sort_keys=True)
        sharing.setdefault(ref, [t["reference"], 0])[1] += 1
    evaluate += sum(seconds * min(slots, trials) for seconds, trials in sharing.values())
    n = len(configs)
    per_trial = grid["per_trial_s"] + grid["in_ray_per_trial_s"]
    busy = max((train + evaluate + n * per_trial) / slots, longest)  # one trial: 1 core
    wall = grid["startup_s"] + busy + grid["finish_s"] + n * grid["finish_per_trial_s"]
    return {
        "train_core_h": train / 3600,
        "eval_core_h": evaluate / 3600,
        "wall_s": wall,
        "slots": slots,
    }
