"""Tune's knobs (``grid/tuning.py``) against Tune itself: the trial ids are shared by every
variant Tune generates, not copied into each (O(N^2) before the first trial)."""

import copy

import pytest
from ray import tune
from ray.tune.experiment import Experiment
from ray.tune.impl.placeholder import create_resolvers_map, inject_placeholders
from ray.tune.search import BasicVariantGenerator
from symgrid.grid import tuning


def noop(config):
    return None


def trial_ids_generated(generator, ids: list[str], tmp_path, monkeypatch) -> tuple[list, int]:
    """The trial ids ``generator`` gives Tune's controller for a grid over ``ids``, with the
    param space prepared as ``tune.run`` prepares it, and how often the ids were shared."""
    shared = []
    share = lambda self, memo: shared.append(1) or self  # noqa: E731
    monkeypatch.setattr(tuning.TrialIds, "__deepcopy__", share)
    config = {"trial": tune.grid_search(tuning.TrialIds(ids))}
    config = inject_placeholders(copy.deepcopy(config), create_resolvers_map())  # as tune.run
    shared.clear()  # counted from here: the variants
    generator.add_configurations([Experiment("grid", noop, config=config,
                                             storage_path=str(tmp_path))])  # fmt: skip
    got = []
    while (trial := generator.next_trial()) is not None:
        got.append(trial.config["trial"])
    return got, len(shared)


@pytest.mark.parametrize("limit", [0, 3])
def test_every_variant_shares_the_trial_ids(tmp_path, monkeypatch, limit):
    ids = [f"t{i:04d}" for i in range(40)]
    generator = tuning.SharedIdsGrid(max_concurrent=limit)
    got, shared = trial_ids_generated(generator, ids, tmp_path, monkeypatch)
    assert got == (ids if not limit else ids[:limit])  # in order; the limit holds new trials back
    assert shared >= len(got)  # each variant's copy of the param space reused the one list


def test_tunes_own_generator_copies_the_ids_into_every_variant(tmp_path, monkeypatch):
    """Why SharedIdsGrid exists: Tune's placeholder pass turns the ids into a plain list."""
    ids = [f"t{i:04d}" for i in range(40)]
    got, shared = trial_ids_generated(BasicVariantGenerator(), ids, tmp_path, monkeypatch)
    assert got == ids and shared == 0


def test_a_restored_generator_keeps_the_limit_it_was_given():
    saved = tuning.SharedIdsGrid(max_concurrent=2).get_state()
    restored = tuning.SharedIdsGrid(max_concurrent=5)
    restored.set_state(saved)
    assert restored.max_concurrent == 5
