"""An instrument's fault is not its recipe's failure: the campaign retries, takes the
instrument out until a probe passes, and pauses with the reason instead of burning the
budget."""

from __future__ import annotations

import pytest
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.campaign.progress import Progress
from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.cli import app
from athanor.store import ExperimentState, Store

S = ExperimentState


def test_a_diffractometer_that_fails_twice_pauses_the_campaign_and_resume_continues(tmp_path):
    path = write_campaign(tmp_path, "tube", budget={"max_experiments": 6})
    config, lab_config = load_for_run(path, None)
    db = str(tmp_path / "lab.db")
    with open_session(config, lab_config, db) as session:
        session.sim.emulators["xrd"].faults.fatal = "tube failure"
        runner = CampaignRunner(config, session.lab, session.store)
        runner.start(lab_config)
        summary = runner.run()

        assert summary["status"] == "paused"
        assert "xrd failed 2 experiments in a row" in summary["paused_for"]
        store = Store(db)
        campaign = store.campaign("tube")
        assert campaign.status == "paused" and "tube failure" in campaign.waiting
        experiments = store.experiments("tube")
        assert not [e for e in experiments if e.state == S.FAILED]  # no recipe blamed
        faulted = [e for e in experiments if e.reason.startswith("instrument fault")]
        assert len(faulted) == 2, [e.reason for e in experiments]
        assert not [o for o in runner.planner.observations if o.status == "failed"]
        modes = {name: session.lab.drivers[name].mode() for name in session.lab.furnaces}
        assert set(modes.values()) == {"standby"}, modes

        session.sim.emulators["xrd"].faults.fatal = None  # the tube is replaced
        resumed = CampaignRunner(config, session.lab, session.store)
        resumed.recover()
        summary = resumed.run()

    assert summary["status"] == "finished", summary
    analysed = Store(db).experiments("tube", [S.ANALYSED])
    assert len(analysed) == 6  # the budget was kept for the recipes


def test_a_furnace_with_a_sensor_break_stays_out_while_the_others_carry_on(tmp_path):
    path = write_campaign(tmp_path, "break", budget={"max_experiments": 8})
    config, lab_config = load_for_run(path, None)
    db = str(tmp_path / "lab.db")
    told: list[str] = []
    with open_session(config, lab_config, db) as session:
        faults = session.sim.emulators["furnace2"].faults

        def break_when_furnace2_anneals(progress: Progress) -> None:
            if progress.furnaces["furnace2"][0] != "idle":
                faults.sensor_break = True

        runner = CampaignRunner(
            config, session.lab, session.store, notify=told.append,
            on_progress=break_when_furnace2_anneals,
        )  # fmt: skip
        runner.start(lab_config)
        summary = runner.run()

    assert summary["status"] == "finished", summary
    experiments = Store(db).experiments("break")
    on_furnace2 = [e for e in experiments if e.furnace == "furnace2"]
    assert len(on_furnace2) == 1, [(e.number, e.furnace, e.reason) for e in experiments]
    assert on_furnace2[0].reason.startswith("instrument fault"), on_furnace2[0].reason
    assert len([e for e in experiments if e.state == S.ANALYSED]) == 8
    assert any("furnace2 stays out of service" in note for note in told), told
    assert runner.pool.out_of_service().keys() == {"furnace2"}


def test_athanor_run_exits_3_with_the_instrument_and_the_reason_when_faults_pause_it(tmp_path):
    def tube_failure(instruments, folder):
        instruments["xrd"]["sim"] = {"faults": {"fatal": "tube failure"}}

    path = write_campaign(tmp_path, "tube", instruments=tube_failure)
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code == 3, result.output
    assert "paused: xrd failed 2 experiments in a row" in result.output
    assert "tube failure" in result.output and "athanor resume tube" in result.output
    assert Store(db).campaign("tube").status == "paused"


@pytest.mark.slow
def test_a_furnace_that_stops_answering_is_left_to_the_others_and_reported_not_safe(tmp_path):
    path = write_campaign(tmp_path, "silent", budget={"max_experiments": 6})
    config, lab_config = load_for_run(path, None)
    db = tmp_path / "lab.db"
    with open_session(config, lab_config, str(db)) as session:
        faults = session.sim.emulators["furnace2"].faults

        def silence_when_furnace2_anneals(progress: Progress) -> None:
            if progress.furnaces["furnace2"][0] != "idle":
                faults.no_reply = True

        runner = CampaignRunner(
            config, session.lab, session.store, on_progress=silence_when_furnace2_anneals
        )
        runner.start(lab_config)
        summary = runner.run()

    assert summary["status"] == "finished", summary
    assert list(summary["unsafe"]) == ["furnace2"]
    analysed = Store(db).experiments("silent", [S.ANALYSED])
    assert len(analysed) == 6 and "furnace2" not in {e.furnace for e in analysed}
    status = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert "silent: NOT SAFE: furnace2" in " ".join(status.output.split()), status.output
