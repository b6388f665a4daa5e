"""Trial records on local disk and on a non-local pyarrow filesystem (pyarrow's in-memory mock,
which like S3 has no rename): atomic files, bulk listing, finished records never rewritten."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from symgrid.trainables.records import RecordStore
from symgrid.trainables.shared_set import Predictions
from symgrid.trainables.storage_io import join_uri
from symgrid.trainables.trial import TrialOutcome


def outcome(status="completed", ber=0.1) -> TrialOutcome:
    rows = [{"epoch": 1, "lr": 0.01, "train_loss": 0.5, "val_loss": 0.4, "train_ber": ber,
             "val_ber": ber}]  # fmt: skip
    p = np.full((3, 4), 0.25, np.float32)  # [n, k]
    y, no = np.zeros(3, np.complex64), np.ones(3, np.float32)
    predictions = {4.0: Predictions(p, p, y, no)}
    return TrialOutcome(status, rows, [], {"status": status, "wall_s": 1.0}, predictions)


def test_join_uri_keeps_the_query_at_the_end():
    uri = "s3://bucket/prefix?endpoint_override=http://127.0.0.1:9000"
    assert join_uri(uri, "run-1", "records") == (
        "s3://bucket/prefix/run-1/records?endpoint_override=http://127.0.0.1:9000"
    )
    assert join_uri("/tmp/out/", "trials") == "/tmp/out/trials"


@pytest.fixture(params=["local", "mock"])
def store(request, tmp_path) -> RecordStore:
    return RecordStore(tmp_path / "trials" if request.param == "local" else "mock:///records")


def test_records_are_listed_in_bulk_and_finished_ones_are_never_rewritten(store, tmp_path):
    store.write_outcome(outcome(), "t0000", {"axes": {"seed": 0}})
    store.write_failed("t0001", "RuntimeError: boom", [], {"axes": {"seed": 1}})
    store.write_outcome(outcome("diverged"), "t0002", {"axes": {"seed": 2}})
    assert store.statuses() == {"t0000": "completed", "t0001": "failed", "t0002": "diverged"}
    assert store.finished() == {"t0000": "completed", "t0002": "diverged"}
    store.write_outcome(outcome(ber=0.3), "t0000", {})  # a resumed run reporting it again
    store.write_failed("t0002", "late error", [], {})
    store.write_outcome(outcome(), "t0001", {"axes": {"seed": 1}})  # a failed trial's rerun
    assert store.statuses() == {"t0000": "completed", "t0001": "completed", "t0002": "diverged"}
    local = tmp_path / "copy"
    store.copy_to(local)
    epochs = pd.read_parquet(local / "t0000" / "epochs.parquet")
    assert list(epochs.train_ber) == [0.1]  # the first record, not the rewrite
    record = json.loads((local / "t0002" / "trial.json").read_text())
    assert record["status"] == "diverged" and "error" not in record
    assert sorted(p.name for p in (local / "t0000").iterdir()) == [
        "ber.parquet",
        "epochs.parquet",
        "predictions.parquet",
        "trial.json",
    ]


def test_an_unreadable_record_counts_as_none(tmp_path):
    store = RecordStore(tmp_path)
    (tmp_path / "t0000").mkdir()
    (tmp_path / "t0000" / "trial.json").write_text('{"status": "compl')  # cut short
    assert store.status("t0000") is None and store.statuses() == {}
