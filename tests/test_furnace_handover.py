"""A furnace is handed to the next experiment only when it is safe to load."""

from __future__ import annotations

import threading

import pytest
from campaign_files import write_campaign

from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.store import ExperimentState

S = ExperimentState


@pytest.mark.slow
def test_after_a_stop_mid_anneal_resume_waits_until_the_furnaces_are_cool(tmp_path):
    path = write_campaign(tmp_path, budget={"max_experiments": 5})
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        first = CampaignRunner(config, session.lab, session.store)
        first.start(lab_config)
        hot = threading.Event()

        def stop_when_hot() -> None:  # the operator stops while furnaces are at temperature
            while not hot.is_set():
                temperatures = [e.thermal.pv for n, e in session.sim.emulators.items()
                                if n.startswith("furnace")]  # fmt: skip
                if max(temperatures) > 600:
                    hot.set()
                    first.request_stop("the operator stopped it")
                hot.wait(0.01)

        watcher = threading.Thread(target=stop_when_hot, daemon=True)
        watcher.start()
        first.run()
        hot.set()
        assert session.store.campaign("mini").status == "stopped"
        again = CampaignRunner(config, session.lab, session.store)
        again.recover()
        again.run()
        experiments = session.store.experiments("mini")
        assert len([e for e in experiments if e.state == S.ANALYSED]) == 5, [
            e.reason for e in experiments if e.state == S.FAILED
        ]
        assert not [e for e in experiments if e.state == S.FAILED]  # no hot-furnace refusals
