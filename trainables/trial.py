"""One trial end to end: data, model, training with every option, and the paired BER evaluation.

No Ray here. :func:`run_trial` takes a config dict and an ``on_epoch`` callback; the Ray adapter
(``trainables.tune_adapter``) and the ``symgrid trial`` command both drive it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch
from symgrid.trainables import network, optimizers
from symgrid.trainables import regularization as reg
from symgrid.trainables.channel import Batch, features, seeded_generator, transmit
from symgrid.trainables.config import (
    TrialConfig,
    dropout_p,
    hidden_widths,
    model_shape,
    optimizer_kwargs,
    parse_trial_config,
)
from symgrid.trainables.constellation import bit_labels
from symgrid.trainables.detector import Detector, bit_logits, num_parameters
from symgrid.trainables.losses import PROBABILITY_LOSSES, head, make_loss
from symgrid.trainables.metrics import LOGIT_CLAMP, evaluate_ber, trial_ratio_to_map
from symgrid.trainables.schedulers import Schedule
from symgrid.trainables.shared_set import Predictions, predict_shared

__all__ = ["Trainer", "TrialOutcome", "run_trial", "trial_summary"]

EVAL_CHUNK = 65536  # symbols per forward pass when no gradient is needed
SHUFFLE_SYMBOLS = 1 << 20  # shuffled training symbols gathered at once: ~40 MB, not a set copy


@dataclass
class TrialOutcome:
    status: str  # "completed" | "diverged"
    epochs: list[dict]
    ber: list[dict]
    summary: dict
    predictions: dict[float, Predictions] = field(default_factory=dict)  # keyed by ebno_db


class Trainer:
    """Everything one trial needs between epochs; ``state_dict`` continues it identically."""

    def __init__(self, cfg: TrialConfig, device: str | torch.device = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        k = cfg.modulation.num_bits_per_symbol
        self.head = head(cfg.loss)
        self.labels = bit_labels(k, device=self.device)
        self.knobs = reg.knobs(cfg.regularization)
        gen = lambda stream: seeded_generator(cfg.seed, stream)  # noqa: E731  (CPU generators)
        self.train_gen, self.shuffle_gen, self.dropout_gen = (
            gen("train"),
            gen("shuffle"),
            gen("dropout"),
        )
        self.model = self._build_model(gen("init")).to(self.device)
        if cfg.model.name not in network.BUILTIN_MODELS:  # its dropout draws from torch's RNG
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=self.dropout_gen)))
        # A finite training set is drawn once and fixed by the seed; fresh symbols come per block.
        fresh = cfg.train.fresh_each_epoch
        self.train_set = None if fresh else self._draw(cfg.train.symbols, self.train_gen)
        self.val_set = self._draw(cfg.train.val_symbols, gen("val"))
        self.val_x = self.inputs(self.val_set)  # the set is fixed: its features once, not per epoch
        self.loss_fn = make_loss(cfg.loss, k, self.knobs.label_smoothing)
        # The loss without label smoothing: what val_loss_plain reports, comparable across settings.
        smoothed = self.knobs.label_smoothing > 0
        self.plain_loss_fn = make_loss(cfg.loss, k) if smoothed else self.loss_fn
        groups = reg.param_groups(self.model, self.knobs.weight_decay)
        self.optimizer = build_optimizer(cfg, groups)
        batches = math.ceil(cfg.train.symbols / cfg.train.batch_size)
        self.schedule = Schedule(cfg.scheduler, self.optimizer, cfg.train.epochs, batches)
        self.stopper = reg.EarlyStopper(self.knobs.early_stopping)
        self.epoch, self.rows, self.stopped_early, self.train_seconds = 0, [], False, 0.0
        self.started_at = datetime.now(timezone.utc).isoformat()  # kept across restarts

    def _build_model(self, init_gen: torch.Generator) -> torch.nn.Module:
        cfg = self.cfg
        inputs, outputs = model_shape(cfg)
        dropout, model = dropout_p(cfg), cfg.model
        # nn.Linear initializes from the global RNG: seed it inside a fork so nothing leaks out.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=init_gen)))
            if model.name not in network.BUILTIN_MODELS:
                return network.instantiate(model.name, model.kwargs, inputs, outputs, dropout)
            return Detector(
                inputs,
                hidden_widths(cfg),
                outputs,
                model.activation,
                dropout,
                self.dropout_gen,
            )

    def _draw(self, n: int, generator: torch.Generator) -> Batch:
        k = self.cfg.modulation.num_bits_per_symbol
        return transmit(n, k, self.cfg.train.ebno_db, generator, self.device)

    def inputs(self, batch: Batch) -> torch.Tensor:
        return features(batch.y, batch.no if self.cfg.model.noise_input else None)

    @property
    def diverged(self) -> bool:
        """A non-finite loss or weight in the last epoch (a result, not an error)."""
        row = self.rows[-1] if self.rows else {"train_loss": 0.0, "val_loss": 0.0}
        finite = math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
        return not (finite and all(p.isfinite().all() for p in self.model.parameters()))

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.train.epochs or self.stopped_early

    def train_epoch(self) -> dict:
        """One pass over the training set; returns the epoch's row (losses without penalties)."""
        cfg, start = self.cfg, time.perf_counter()
        n, size, fresh = cfg.train.symbols, cfg.train.batch_size, cfg.train.fresh_each_epoch
        # Fresh symbols are already in random order: draw them block by block, store no epoch.
        # Drawn on the CPU (as every stream) and moved: the same order on every device.
        perm = None if fresh else torch.randperm(n, generator=self.shuffle_gen).to(self.device)
        span = max(1, SHUFFLE_SYMBOLS // size) * size  # whole batches per gathered block
        penalized = self.knobs.l1 > 0 or self.knobs.l2 > 0
        loss_sum = torch.zeros((), device=self.device)
        errors = torch.zeros((), dtype=torch.int64, device=self.device)
        lr_sum = 0.0
        self.model.train()
        for first in range(0, n, size):
            if first % span == 0:
                block = (
                    self._fresh(min(span, n - first))
                    if fresh
                    else self._shuffled(perm[first : first + span])
                )
                x, bits, symbol_index = block
                target = bits.bool()  # [span, k]
            sl = slice(first % span, first % span + size)  # a contiguous view of the block
            count = min(size, n - first)
            lr_sum += self.optimizer.param_groups[0]["lr"] * count
            logits = self.model(x[sl])
            loss = self.loss_fn(logits, bits[sl], symbol_index[sl])
            self.optimizer.zero_grad(set_to_none=True)
            # Adding a 0.0 penalty would still cost an autograd node per batch.
            (loss + reg.penalty(self.model, self.knobs) if penalized else loss).backward()
            self.optimizer.step()
            self.schedule.after_batch()
            loss_sum += loss.detach() * count
            errors += self.hard_bits(logits.detach()).ne(target[sl]).sum()
        self.train_seconds += time.perf_counter() - start
        k = cfg.modulation.num_bits_per_symbol
        return {
            "lr": lr_sum / n,
            "train_loss": float(loss_sum) / n,
            "train_ber": int(errors) / (n * k),
        }

    def _fresh(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features [m, d], bits [m, k] and symbol indices [m] of m new training symbols."""
        batch = self._draw(m, self.train_gen)
        return self.inputs(batch), batch.bits, batch.symbol_index

    def _shuffled(self, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features [m, d], bits [m, k] and symbol indices [m] of the training symbols ``perm``.

        Gathering a block of 1-D columns at once is several times faster than fancy-indexing
        every batch (``aten::index`` was half of an epoch's time); the values are the same.
        """
        data = self.train_set
        symbol_index = data.symbol_index.index_select(0, perm)  # [n]
        bits = self.labels.index_select(0, symbol_index)  # [n, k]: Batch.bits is labels[index]
        no = data.no.index_select(0, perm) if self.cfg.model.noise_input else None
        return features(data.y.index_select(0, perm), no), bits, symbol_index

    @torch.no_grad()
    def validate(self) -> dict:
        """Over the whole validation set (not its last batch): ``val_loss`` (the training
        objective, label smoothing included), ``val_loss_plain`` (the same loss without label
        smoothing) and ``val_ber``. Penalties are in neither loss."""
        self.model.eval()
        x, data, n = self.val_x, self.val_set, self.val_set.y.shape[0]
        loss_sum, plain_sum, errors = 0.0, 0.0, 0
        for first in range(0, n, EVAL_CHUNK):
            sl = slice(first, first + EVAL_CHUNK)
            logits, bits, symbols = self.model(x[sl]), data.bits[sl], data.symbol_index[sl]
            loss = float(self.loss_fn(logits, bits, symbols))
            same = self.plain_loss_fn is self.loss_fn
            plain = loss if same else float(self.plain_loss_fn(logits, bits, symbols))
            loss_sum, plain_sum = loss_sum + loss * len(logits), plain_sum + plain * len(logits)
            errors += int(self.hard_bits(logits).ne(bits.bool()).sum())
        k = self.cfg.modulation.num_bits_per_symbol
        return {
            "val_loss": loss_sum / n,
            "val_loss_plain": plain_sum / n,
            "val_ber": errors / (n * k),
        }

    def step(self) -> dict:
        """Train one epoch, validate, step the scheduler; the row for this epoch.

        Early stopping and ``plateau`` follow ``val_loss``, the training objective (with label
        smoothing when it is on); ``val_loss_plain`` is recorded beside it for comparisons.
        """
        row = self.train_epoch()
        val = self.validate()
        val_loss = val["val_loss"]
        self.epoch += 1
        row = {"epoch": self.epoch, **row, **val}
        if math.isfinite(row["train_loss"]) and math.isfinite(val_loss):
            self.stopped_early = self.stopper.update(self.epoch, val_loss, self.model)
            self.schedule.after_epoch(val_loss)
        self.rows.append(row)
        return row

    def hard_bits(self, logits: torch.Tensor) -> torch.Tensor:
        return bit_logits(logits, self.head, self.labels) > 0  # [n, k], bool

    @torch.no_grad()
    def detect(self, batch: Batch) -> torch.Tensor:
        """Hard bit decisions [n, k] (bool) of the trained detector."""
        return self._eval_logits(batch) > 0

    @torch.no_grad()
    def soft_bits(self, batch: Batch) -> torch.Tensor:
        """Soft bit decisions [n, k] as logits: a symbol head's softmax marginalized per bit
        (``detector.bit_logits``), a bit-logit head's outputs as they are, and a sigmoid head's
        probabilities clamped to ``[PROB_EPS, 1 - PROB_EPS]`` (``metrics``), i.e. its logits to
        ``+-LOGIT_CLAMP``. ``soft_bits > 0`` is :meth:`detect`."""
        logits = self._eval_logits(batch)
        if self.cfg.loss.name in PROBABILITY_LOSSES:
            return logits.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        return logits

    @torch.no_grad()
    def probabilities(self, batch: Batch) -> torch.Tensor:
        return torch.sigmoid(self._eval_logits(batch))

    @torch.no_grad()
    def _eval_logits(self, batch: Batch) -> torch.Tensor:
        """Bit logits [n, k] in EVAL_CHUNK slices: activations that stay in cache run ~3x faster
        than one forward pass over a million-symbol evaluation chunk."""
        self.model.eval()
        x = self.inputs(batch)
        starts = range(0, max(x.shape[0], 1), EVAL_CHUNK)  # one empty slice when n = 0
        parts = [
            bit_logits(self.model(x[s : s + EVAL_CHUNK]), self.head, self.labels) for s in starts
        ]
        return torch.cat(parts)  # [n, k]

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "rows": self.rows,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "started_at": self.started_at,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "stopper": self.stopper.state_dict(),
            "generators": {k: g.get_state() for k, g in self.generators().items()},
            "torch_rng": torch_rng_state(self.device),  # a user network's dropout masks
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.rows = state["epoch"], list(state["rows"])
        self.stopped_early, self.train_seconds = state["stopped_early"], state["train_seconds"]
        self.started_at = state.get("started_at", self.started_at)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.stopper.load_state_dict(state["stopper"])
        for name, gen in self.generators().items():
            gen.set_state(state["generators"][name])
        if self.cfg.model.name not in network.BUILTIN_MODELS:
            set_torch_rng_state(state["torch_rng"], self.device)

    def generators(self) -> dict[str, torch.Generator]:
        return {"train": self.train_gen, "shuffle": self.shuffle_gen, "dropout": self.dropout_gen}


def torch_rng_state(device: torch.device) -> dict:
    """torch's global random state (CPU, and the CUDA device's when the trial runs there)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_torch_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def build_optimizer(cfg: TrialConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return optimizers.build(cfg.optimizer.name, groups, cfg.optimizer.lr, optimizer_kwargs(cfg))


def run_trial(
    config: dict,
    on_epoch: Callable[[dict, Trainer], None] | None = None,
    state: dict | None = None,
    device: str | torch.device = "cpu",
) -> TrialOutcome:
    """Train and evaluate one trial.

    Parameters
    ----------
    config : a trial config dict (see ``trainables.config``); validated here
    on_epoch : called after every epoch with the epoch's row and the trainer (for checkpoints)
    state : a ``Trainer.state_dict()`` to continue from
    device : where tensors live
    """
    cfg = parse_trial_config(config)
    trainer = Trainer(cfg, device)
    if state is not None:
        trainer.load_state_dict(state)
    status = "diverged" if trainer.diverged else "completed"
    while status == "completed" and not trainer.done:
        row = trainer.step()
        if on_epoch is not None:
            on_epoch(row, trainer)
        if trainer.diverged:
            status = "diverged"
            break
    if status == "completed":
        trainer.stopper.restore(trainer.model)
    return evaluate_trial(trainer, status, datetime.fromisoformat(trainer.started_at))


def evaluate_trial(trainer: Trainer, status: str, started: datetime) -> TrialOutcome:
    cfg, k = trainer.cfg, trainer.cfg.modulation.num_bits_per_symbol
    ber, predictions = [], {}
    if status == "completed":
        ev = cfg.eval
        ber = evaluate_ber(
            trainer.soft_bits, k, ev.ebno_db, ev.min_errors, ev.max_bits, cfg.seed, trainer.device
        )
        predictions = predict_shared(
            trainer.probabilities, k, ev.ebno_db, ev.biasvar_symbols, trainer.device
        )
    return TrialOutcome(
        status, trainer.rows, ber, trial_summary(trainer, status, started, ber), predictions
    )


def trial_summary(trainer: Trainer, status: str, started: datetime, ber: list[dict]) -> dict:
    rows, cfg = trainer.rows, trainer.cfg
    finite = [r for r in rows if math.isfinite(r["val_loss"])]
    best = min(finite, key=lambda r: r["val_loss"]) if finite else None
    scores = trial_ratio_to_map(ber)
    finished = datetime.now(timezone.utc)
    trained = cfg.train.symbols * len(rows)
    return {
        "status": status,
        "epochs_run": len(rows),
        "best_epoch": best["epoch"] if best else None,
        "stopped_early": trainer.stopped_early,
        "val_loss_best": best["val_loss"] if best else None,
        "val_ber_best": best["val_ber"] if best else None,
        # metrics.trial_ratio_to_map: over every point, continuity-corrected; ber_ratio_map is
        # the geometric mean of the point ratios, exp(log_ratio_map)
        **scores,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "wall_s": (finished - started).total_seconds(),
        "symbols_per_s": trained / trainer.train_seconds if trainer.train_seconds else None,
        "device": str(trainer.device),
        "num_params": num_parameters(trainer.model),
        "network": network.describe(cfg.model.name, cfg.model.kwargs),
    }
