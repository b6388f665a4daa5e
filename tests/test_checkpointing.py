"""The checkpoint policy: which epochs save, and that a trial restarted from the last checkpoint it
saved ends exactly where an uninterrupted trial ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from symgrid.trainables.checkpointing import CheckpointPolicy
from symgrid.trainables.config import config_to_dict, parse_trial_config
from symgrid.trainables.trial import run_trial
from symgrid.trainables.tune_adapter import STATE_FILE, save_state

CONFIG = {
    "train": {"symbols": 4096, "val_symbols": 2048, "batch_size": 512, "epochs": 6},
    "model": {"hidden": [16], "dropout": 0.1},  # dropout: one more random stream to restore
    "scheduler": {"name": "step", "step_size": 2, "gamma": 0.5},
    "eval": {"ebno_db": [4], "min_errors": 50, "max_bits": 100_000, "biasvar_symbols": 256},
}


def test_policy_saves_every_k_epochs_after_the_interval_and_always_the_final_state():
    policy = CheckpointPolicy(every_epochs=2, min_interval_s=10)
    assert [e for e in range(1, 7) if policy.due(e, False, 10.0)] == [2, 4, 6]
    assert not policy.due(2, False, 9.9)  # too soon after the last save
    assert policy.due(3, True, 0.0)  # the final state, whatever the epoch and the clock
    assert CheckpointPolicy() == CheckpointPolicy(every_epochs=1, min_interval_s=60.0)


class Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_a_trial_restarted_from_its_last_checkpoint_ends_with_the_same_weights(tmp_path):
    config = config_to_dict(parse_trial_config(CONFIG))
    final = {}

    def keep_final(row, trainer):
        if trainer.done:
            final["whole"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    whole = run_trial(config, keep_final)
    policy, saved = CheckpointPolicy(every_epochs=2, min_interval_s=0), []

    def crash_at_5(row, trainer):  # the adapter's rule, then a crash before epoch 5's save
        if trainer.epoch == 5:
            raise Crash
        if policy.due(trainer.epoch, trainer.done, since_last_s=0.0):
            (tmp_path / str(trainer.epoch)).mkdir()
            save_state(trainer, tmp_path / str(trainer.epoch))
            saved.append(trainer.epoch)

    with pytest.raises(Crash):
        run_trial(config, crash_at_5)
    assert saved == [2, 4]
    state = torch.load(tmp_path / "4" / STATE_FILE, weights_only=True)

    def keep_resumed(row, trainer):
        if trainer.done:
            final["resumed"] = trainer.model.state_dict()

    resumed = run_trial(config, keep_resumed, state)
    assert [r["epoch"] for r in resumed.epochs] == [1, 2, 3, 4, 5, 6]
    assert resumed.epochs == whole.epochs
    for name, tensor in final["whole"].items():
        assert torch.equal(final["resumed"][name], tensor), name
    for mine, theirs in zip(resumed.predictions[4.0], whole.predictions[4.0]):  # p, eta, y, no
        assert np.array_equal(mine, theirs)
    assert resumed.ber == whole.ber
