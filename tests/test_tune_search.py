"""``symgrid.trainable`` under a Ray Tune searcher and scheduler, on a real local Ray: random
search over ``optimizer.lr`` with ASHA (README "Any Ray Tune searcher"), and exact resume from the
checkpoint a trial reported."""

import pytest
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from symgrid.trainables.config import config_to_dict, parse_trial_config
from symgrid.trainables.trial import run_trial
from symgrid.trainables.tune_adapter import STATE_FILE, nested

import symgrid

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 2
BASE = {
    "train": {"symbols": 4096, "val_symbols": 2048, "batch_size": 1024, "epochs": EPOCHS},
    "model": {"hidden": [8]},
    "eval": {"ebno_db": [2, 8], "min_errors": 50, "max_bits": 1.0e5, "biasvar_symbols": 256},
}
EPOCH_KEYS = {"lr", "train_loss", "val_loss", "val_loss_plain", "val_ber"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Four random learning rates under ASHA (2 CPUs, one trial per CPU)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        tuner = tune.Tuner(
            symgrid.trainable,
            param_space={**BASE, "optimizer.lr": tune.loguniform(1e-4, 1e-1), "seed": 0},
            tune_config=tune.TuneConfig(
                metric="val_loss",
                mode="min",
                num_samples=4,
                scheduler=ASHAScheduler(max_t=EPOCHS, grace_period=1, reduction_factor=2),
            ),
            run_config=tune.RunConfig(
                storage_path=str(tmp_path_factory.mktemp("tune")),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                verbose=0,
            ),
        )
        yield tuner.fit()
    finally:
        ray.shutdown()


def test_random_search_under_asha_reports_every_epoch_and_ber_ratio_map(results):
    assert len(results) == 4 and not results.errors
    lrs = {r.config["optimizer.lr"] for r in results}
    assert len(lrs) == 4  # sampled, and reached the trial as optimizer.lr
    finished = [r for r in results if r.metrics.get("final")]
    assert finished, "no trial ran to its end"
    for r in finished:
        assert r.metrics["epoch"] == EPOCHS and r.metrics["training_iteration"] == EPOCHS
        assert 0 < r.metrics["ber_ratio_map"] < 100 and r.metrics["status"] == "completed"
    for r in results:  # ASHA saw a row per epoch; the ones it stopped at its rung ended at 1
        history = r.metrics_dataframe
        assert set(history.columns) >= EPOCH_KEYS
        assert list(history["epoch"]) == list(range(1, len(history) + 1))
        assert len(history) == EPOCHS or not r.metrics.get("final")
    stopped = [r for r in results if not r.metrics.get("final")]
    assert all(len(r.metrics_dataframe) == 1 for r in stopped)  # ASHA stopped them at rung 1


def test_a_reported_checkpoint_resumes_exactly(results):
    """The epoch-1 checkpoint of a finished trial, continued in-process, gives the same last
    epoch and the same BER ratio as the uninterrupted trial."""
    done = next(r for r in results if r.metrics.get("final"))
    first = next(c for c, m in done.best_checkpoints if m["epoch"] == 1)
    with first.as_directory() as folder:
        state = torch.load(f"{folder}/{STATE_FILE}", weights_only=True)
    torch.set_num_threads(1)  # as the trial's worker (1 CPU)
    config = config_to_dict(parse_trial_config(nested(done.config)))
    outcome = run_trial(config, state=state)
    assert [r["epoch"] for r in outcome.epochs] == [1, 2]
    assert outcome.epochs[-1]["val_loss"] == done.metrics["val_loss"]
    assert outcome.epochs[-1]["train_loss"] == done.metrics["train_loss"]
    assert outcome.summary["ber_ratio_map"] == done.metrics["ber_ratio_map"]


def test_dotted_keys_set_one_field_over_nested_sections():
    config = {"optimizer": {"name": "adam", "lr": 1.0}, "optimizer.lr": 0.5, "train.epochs": 3}
    assert nested(config) == {"optimizer": {"name": "adam", "lr": 0.5}, "train": {"epochs": 3}}
