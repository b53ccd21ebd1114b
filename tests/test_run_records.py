"""What the store keeps of a campaign's runs: how each run ended, where each sample went."""

from __future__ import annotations

from typing import Any

import pytest
from campaign_files import write_campaign

from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.store import ExperimentState

S = ExperimentState


@pytest.mark.slow
def test_runs_the_operator_stopped_end_as_aborted_with_the_reason(tmp_path):
    config, lab_config = load_for_run(write_campaign(tmp_path), None)

    def pause_once_a_run_is_open(_progress: Any) -> None:
        if any(run.exit_status is None for run in store.runs("mini")):
            runner.request_pause()

    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        store = session.store
        runner = CampaignRunner(
            config, session.lab, store, decide=lambda: "stop",
            on_progress=pause_once_a_run_is_open,
        )  # fmt: skip
        runner.start(lab_config)
        runner.run()
        stopped = [
            e for e in store.experiments("mini", [S.ABANDONED]) if "by the operator" in e.reason
        ]
        last_runs = [runs[-1] for e in stopped if (runs := store.runs("mini", e.id))]
    assert last_runs, "the stop came while no run was open"
    assert {run.exit_status for run in last_runs} == {"abort"}


@pytest.mark.slow
def test_every_move_of_a_sample_is_in_the_store(tmp_path):
    path = write_campaign(tmp_path, budget={"max_experiments": 1}, initial_experiments=1)
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        runner = CampaignRunner(config, session.lab, session.store)
        runner.start(lab_config)
        runner.run()
        (experiment,) = session.store.experiments("mini", [S.ANALYSED])
        moves = session.store.moves("mini")
    furnace = experiment.furnace
    assert [(m.source, m.target) for m in moves] == [
        ("rack", furnace), (furnace, "xrd"), ("xrd", "bench"), ("bench", "uvvis"),
        ("uvvis", "storage"),
    ]  # fmt: skip
    assert {(m.sample_id, m.by) for m in moves} == {(experiment.sample_id, "robot")}
    times = [m.lab_time for m in moves]
    assert all(t is not None for t in times) and times == sorted(times)
