"""The same store on PostgreSQL (set ATHANOR_TEST_POSTGRES to a database URL to run)."""

from __future__ import annotations

import os
import uuid

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from athanor.store import ExperimentState, Outcome, Store

URL = os.environ.get("ATHANOR_TEST_POSTGRES")
pytestmark = pytest.mark.skipif(
    not URL, reason="set ATHANOR_TEST_POSTGRES=postgresql+psycopg://user:pw@host/db to run"
)


def test_campaign_layer_and_documents_on_postgres():
    store = Store(URL)
    name = f"pg-{uuid.uuid4().hex[:8]}"
    store.create_campaign(name, config={"name": name}, lab={})
    exp = store.add_experiment(name, {"t": 900.0}, {"model": "sobol"})
    store.transition(exp.id, ExperimentState.RUNNING, furnace="furnace1")
    store.finish_experiment(
        exp.id, ExperimentState.FAILED, "sensor break",
        outcomes=[Outcome(experiment_id=0, name="x", value=1.0)],
        planner_state={"planner": {"seed": 1}, "ingested": [exp.id]},
    )  # fmt: skip
    assert store.experiment(exp.id).state == ExperimentState.FAILED
    assert store.campaign(name).planner_state["ingested"] == [exp.id]
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(store.document_writer(name))
    (uid,) = RE(count([det], num=2), campaign=name, experiment_id=exp.id)
    assert [n for n, _ in store.documents(uid)] == ["start", "descriptor", "event", "event", "stop"]
    store.close()
