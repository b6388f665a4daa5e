"""Bias-variance decompositions: the identities, closed-form cases and the run folder's table."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from runfolder import run_folder  # noqa: F401  (session fixture)

from analysis.biasvar import (
    bias_variance_table,
    decompose_squared,
    decompose_zero_one,
    exact_posterior,
    read_predictions,
)


def replicate_predictions(run: "pd.DataFrame", folder) -> tuple[np.ndarray, np.ndarray]:
    """eta [n, k] and p [replicates, n, k] of the first replicated group at its first point."""
    preds = read_predictions(folder, run["trial_id"])
    ebno = preds["ebno_db"].min()
    point = preds[preds["ebno_db"] == ebno].sort_values(["trial_id", "symbol"])
    n = point["symbol"].nunique()
    p = point[[f"p{j}" for j in range(4)]].to_numpy(np.float64).reshape(-1, n, 4)
    return exact_posterior(4, ebno, n), p


@pytest.fixture(scope="module")
def real(run_folder):  # noqa: F811
    trials = pd.read_parquet(run_folder / "trials.parquet")
    group = trials[(trials["scheduler"] == "none") & (trials["regularization"] == "none")]
    return replicate_predictions(group[group["model.hidden"] == "[8]"], run_folder)


def test_squared_identity_on_real_predictions(real):
    eta, p = real
    d = decompose_squared(eta, p)
    assert p.shape[0] == 2 and d["variance"] > 0 and d["bias2"] > 0
    assert d["expected_loss"] == pytest.approx(d["noise"] + d["bias2"] + d["variance"], abs=1e-12)


def test_zero_one_identity_on_real_predictions(real):
    eta, p = real
    d = decompose_zero_one(eta, p)
    assert d["loss01"] == pytest.approx(d["identity01"], abs=1e-12)
    assert d["loss01"] >= d["noise01"]  # nothing beats the MAP decision on average


def test_posterior_as_model_has_no_bias_or_variance():
    eta = exact_posterior(4, 3.0, 2048)
    d = decompose_squared(eta, np.stack([eta] * 3))
    assert d["bias2"] == pytest.approx(0, abs=1e-15)
    assert d["variance"] == pytest.approx(0, abs=1e-15)
    assert d["expected_loss"] == pytest.approx(d["noise"], rel=1e-12)
    z = decompose_zero_one(eta, np.stack([eta] * 3))
    assert z["bias01"] == 0 and z["var01"] == 0 and z["loss01"] == pytest.approx(z["noise01"])


def test_known_spread_gives_known_variance():
    rng = np.random.default_rng(7)
    eta = rng.uniform(0.3, 0.7, size=(500, 4))
    offsets = np.array([-0.2, -0.1, 0.1, 0.2])  # mean 0; population variance (0.04+0.01)/2
    p = eta[None] + offsets[:, None, None]
    d = decompose_squared(eta, p)
    assert d["variance"] == pytest.approx(0.025, rel=1e-12)
    assert d["bias2"] == pytest.approx(0, abs=1e-15)
    shifted = decompose_squared(eta, p + 0.05)  # a constant shift is pure bias
    assert shifted["bias2"] == pytest.approx(0.0025, rel=1e-9)
    assert shifted["variance"] == pytest.approx(0.025, rel=1e-12)


def test_zero_one_terms_by_hand():
    eta = np.array([[0.9, 0.2, 0.6]])  # MAP decisions 1, 0, 1
    p = np.array([[[0.8, 0.7, 0.4]], [[0.6, 0.9, 0.3]], [[0.1, 0.1, 0.7]]])  # 3 replicates
    d = decompose_zero_one(eta, p)
    # bit 0: main 1 = y*, V = 1/3; bit 1: main 1 != y*, B = 1, V = 1/3;
    # bit 2: main 0 != y*, B = 1, V = 1/3
    assert d["bias01"] == pytest.approx(2 / 3)
    assert d["var01"] == pytest.approx(1 / 3)
    assert d["net_var01"] == pytest.approx((1 / 3 - 1 / 3 - 1 / 3) / 3)
    assert d["noise01"] == pytest.approx((0.1 + 0.2 + 0.4) / 3)
    assert d["loss01"] == pytest.approx(d["identity01"], abs=1e-15)


def test_tied_vote_goes_to_the_map_decision():
    eta = np.array([[0.8]])
    d = decompose_zero_one(eta, np.array([[[0.9]], [[0.1]]]))
    assert d["bias01"] == 0 and d["var01"] == 0.5
    assert d["loss01"] == pytest.approx(d["identity01"])


def test_table_of_the_run_folder(run_folder):  # noqa: F811
    table = pd.read_parquet(run_folder / "bias_variance.parquet")
    meta = json.loads(pq.read_schema(run_folder / "bias_variance.parquet").metadata[b"symgrid"])
    assert meta["spec_name"] == "tiny"
    groups = ["scheduler", "regularization", "model.hidden"]
    assert set(groups + ["num_params", "train.symbols", "ebno_db", "replicates"]) <= set(table)
    assert len(table) == 8 * 2  # 8 settings x 2 eval points, each with seeds 0 and 1
    assert (table["replicates"] == 2).all() and "seed" not in table
    total = table["noise"] + table["bias2"] + table["variance"]
    assert np.allclose(table["expected_loss"], total, rtol=0, atol=1e-12)
    assert set(table["num_params"]) == {60, 228}


def test_table_from_frames_matches_folder(run_folder):  # noqa: F811
    trials = pd.read_parquet(run_folder / "trials.parquet")
    preds = read_predictions(run_folder, trials["trial_id"])
    from_frames = bias_variance_table(trials, preds)
    pd.testing.assert_frame_equal(from_frames, bias_variance_table(run_folder))


def test_single_replicates_give_an_empty_table(run_folder):  # noqa: F811
    trials = pd.read_parquet(run_folder / "trials.parquet")
    one_seed = trials[trials["seed"] == 0]
    table = bias_variance_table(one_seed, read_predictions(run_folder, one_seed["trial_id"]))
    assert table.empty and "expected_loss" in table
