"""A campaign that plans by lab hours: each proposal's predicted cost is its dry run."""

from __future__ import annotations

import pytest
from campaign_files import write_campaign

from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.store import ExperimentState, Store


@pytest.mark.slow
def test_a_cost_aware_campaign_records_each_proposals_predicted_lab_hours(tmp_path):
    path = write_campaign(
        tmp_path, "hours", budget={"max_experiments": 7, "max_lab_hours": 400},
        planner={"cost": "dry_run"}, initial_experiments=2,
    )  # fmt: skip
    config, lab_config = load_for_run(path, None)
    db = str(tmp_path / "lab.db")
    with open_session(config, lab_config, db) as session:
        runner = CampaignRunner(config, session.lab, session.store)
        runner.start(lab_config)
        summary = runner.run()
    assert summary["status"] == "finished", summary
    store = Store(db)
    assert len(store.experiments("hours", [ExperimentState.ANALYSED])) == 7
    costs = [p.provenance["predicted_cost"] for p in store.proposals("hours")]
    assert all(cost is not None and 1 < cost < 100 for cost in costs), costs
