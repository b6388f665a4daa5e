"""Bias-variance decompositions: the identities, closed-form cases and the run folder's table."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from symgrid.analysis.biasvar import (
    bias_variance_table,
    decompose_squared,
    decompose_zero_one,
    point_arrays,
    read_predictions,
)
from symgrid.trainables.reference import posterior
from symgrid.trainables.shared_set import shared_eval_set


def replicate_predictions(run: "pd.DataFrame", folder) -> tuple[np.ndarray, np.ndarray]:
    """eta [n, k] and p [replicates, n, k] of the first replicated group at its first point."""
    preds = read_predictions(folder, run["trial_id"])
    point = preds[preds["ebno_db"] == preds["ebno_db"].min()]
    return point_arrays(point, 4)


def exact_posterior(k: int, ebno_db: float, n: int) -> np.ndarray:
    batch = shared_eval_set(k, ebno_db, n)
    return posterior(batch.y, batch.no, k).to(torch.float64).numpy()


@pytest.fixture(scope="module")
def real(run_folder):
    trials = pd.read_parquet(run_folder / "trials.parquet")
    group = trials[(trials["scheduler"] == "none") & (trials["regularization"] == "none")]
    return replicate_predictions(group[group["model.hidden"] == "[8]"], run_folder)


@pytest.mark.slow
def test_squared_identity_on_real_predictions(real):
    eta, p = real
    d = decompose_squared(eta, p)
    assert p.shape[0] == 2 and d["variance"] > 0 and d["bias2"] > 0
    assert d["expected_loss"] == pytest.approx(d["noise"] + d["bias2"] + d["variance"], abs=1e-12)


@pytest.mark.slow
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


def test_known_spread_gives_the_unbiased_terms_by_hand():
    rng = np.random.default_rng(7)
    eta = rng.uniform(0.3, 0.7, size=(500, 4))
    offsets = np.array([-0.2, -0.1, 0.1, 0.2])  # mean 0; sum of squares 0.1
    p = eta[None] + 0.05 + offsets[:, None, None]  # a constant shift of 0.05 is pure bias
    d = decompose_squared(eta, p)
    assert d["variance"] == pytest.approx(0.1 / 3, rel=1e-12)  # ddof 1
    assert d["bias2"] == pytest.approx(0.05**2 - 0.1 / 3 / 4, rel=1e-9)  # minus s^2 / R
    assert d["expected_loss"] == pytest.approx(d["noise"] + d["bias2"] + d["variance"], rel=1e-12)


@pytest.mark.parametrize("replicates", [2, 3, 10])
def test_unbiased_estimators_recover_a_known_bias_and_variance(replicates):
    """p_r = eta + b(x) + sigma z_r: bias^2 = mean b^2 and variance = sigma^2 by construction."""
    rng = np.random.default_rng(replicates)
    n, k, sigma = 50_000, 4, 0.05
    eta = rng.uniform(0.3, 0.7, size=(n, k))
    b = 0.05 * np.sin(7 * eta)  # a bias that varies with the sample
    p = eta + b + sigma * rng.standard_normal((replicates, n, k))
    d = decompose_squared(eta, p)
    bias2, v = float((b**2).mean()), sigma**2 / replicates  # v: variance of the replicate mean
    # Standard errors of the per-sample terms' means (Gaussian moments, independent z_r).
    se_bias2 = np.sqrt(
        (4 * bias2 * v + 2 * v**2 + 2 * sigma**4 / (replicates - 1) / replicates**2) / (n * k)
    )
    se_var = sigma**2 * np.sqrt(2 / (replicates - 1) / (n * k))
    assert abs(d["bias2"] - bias2) < 5 * se_bias2
    assert abs(d["variance"] - sigma**2) < 5 * se_var
    # The plug-in terms the table used to report are off by sigma^2 / R each way.
    plug_in_bias2 = float(((eta - p.mean(axis=0)) ** 2).mean())
    plug_in_var = float(p.var(axis=0).mean())
    assert plug_in_bias2 - bias2 == pytest.approx(v, abs=5 * se_bias2)
    assert sigma**2 - plug_in_var == pytest.approx(v, abs=5 * se_var)
    assert v > 20 * max(se_bias2, se_var)  # so the old estimator fails this test


def test_one_replicate_has_no_variance_estimate():
    eta = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        decompose_squared(eta, eta[None])


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


@pytest.mark.slow
def test_stored_eta_belongs_to_the_stored_samples(run_folder):
    trials = pd.read_parquet(run_folder / "trials.parquet")
    preds = read_predictions(run_folder, trials["trial_id"])
    eta_cols = [f"eta{j}" for j in range(4)]
    for (trial_id, ebno_db), point in preds.groupby(["trial_id", "ebno_db"]):
        point = point.sort_values("symbol")
        y = torch.complex(torch.tensor(point["y_re"].values), torch.tensor(point["y_im"].values))
        no = torch.tensor(point["no"].values)
        expected = posterior(y, no, 4).numpy()  # the exact posterior of the stored samples
        np.testing.assert_allclose(point[eta_cols].to_numpy(), expected, rtol=0, atol=1e-6)
        shared = shared_eval_set(4, ebno_db, len(point))  # and they are the shared set
        assert torch.equal(y, shared.y) and torch.equal(no, shared.no), (trial_id, ebno_db)
    # eta of the other point is a different posterior: a mix-up would not pass the check above
    first, second = (g[eta_cols].to_numpy() for _, g in preds.groupby("ebno_db"))
    assert np.abs(first[: len(second)] - second[: len(first)]).max() > 0.5


@pytest.mark.slow
def test_replicates_on_different_samples_are_not_decomposed(run_folder):
    trials = pd.read_parquet(run_folder / "trials.parquet")
    preds = read_predictions(run_folder, trials["trial_id"])
    point = preds[(preds["ebno_db"] == 0) & preds["trial_id"].isin(["t0000", "t0001"])].copy()
    assert point_arrays(point, 4) is not None
    point.loc[point["trial_id"] == "t0001", "y_re"] += 1e-3  # another set of samples
    with pytest.warns(UserWarning, match="different samples"):
        assert point_arrays(point, 4) is None


@pytest.mark.slow
def test_table_of_the_run_folder(run_folder):
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


@pytest.mark.slow
def test_table_from_frames_matches_folder(run_folder):
    trials = pd.read_parquet(run_folder / "trials.parquet")
    preds = read_predictions(run_folder, trials["trial_id"])
    from_frames = bias_variance_table(trials, preds)
    pd.testing.assert_frame_equal(from_frames, bias_variance_table(run_folder))


@pytest.mark.slow
def test_single_replicates_give_an_empty_table(run_folder):
    trials = pd.read_parquet(run_folder / "trials.parquet")
    one_seed = trials[trials["seed"] == 0]
    table = bias_variance_table(one_seed, read_predictions(run_folder, one_seed["trial_id"]))
    assert table.empty and "expected_loss" in table
