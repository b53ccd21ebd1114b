"""Autonomous campaigns on the simulated lab: the loop, pause, abort, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from campaign_files import write_campaign
from event_model import DocumentNames, schema_validators
from typer.testing import CliRunner

from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.cli import app
from athanor.store import ExperimentState, Store

ROOT = Path(__file__).parent.parent
S = ExperimentState


def run_in_process(
    path: Path, db: Path, decide=None, pause_after: float | None = None, approve=None
):
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(db)) as session:
        runner = CampaignRunner(config, session.lab, session.store, decide=decide, approve=approve)
        runner.start(lab_config)
        if pause_after is not None:
            threading.Timer(pause_after, runner.request_pause).start()
        summary = runner.run()
        emulators = session.sim.emulators
        states = {n: e.thermal.mode for n, e in emulators.items() if n.startswith("furnace")}
    return summary, states


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(folder, summary, furnace modes) of one mini campaign run to its end."""
    folder = tmp_path_factory.mktemp("finished")
    path = write_campaign(folder, budget={"max_experiments": 14})
    summary, furnace_modes = run_in_process(path, folder / "lab.db")
    return folder, summary, furnace_modes


@pytest.mark.slow
def test_campaign_runs_every_experiment_once_and_stores_valid_documents(finished):
    folder, summary, furnace_modes = finished
    store = Store(folder / "lab.db")
    experiments = store.experiments("mini")
    assert [e.number for e in experiments] == list(range(1, 15))
    assert all(e.state == S.ANALYSED for e in experiments), [e.reason for e in experiments]
    assert len({e.furnace for e in experiments}) == 4  # every furnace was used
    assert set(furnace_modes.values()) == {"standby"}
    proposals = store.proposals("mini")
    assert [p.provenance["phase"] for p in proposals[:4]] == ["initial"] * 4
    assert any(p.provenance["phase"] == "model" for p in proposals)  # the model took over
    # the derived score is planned as a composite of fraction and band gap models
    modelled = [p.provenance["model"] for p in proposals if p.provenance["phase"] == "model"]
    assert all("composite" in m for m in modelled), modelled
    scores = [store.outcomes("mini")[e.id]["fraction_BaTiO3"].value for e in experiments]
    assert max(scores) > max(scores[:4])  # better than the initial design
    runs = store.runs("mini")
    assert {r.plan_name for r in runs} == {"anneal", "measure_xrd", "measure_spectrum"}
    assert all(r.exit_status == "success" for r in runs), [(r.plan_name, r.reason) for r in runs]
    for name, doc in store.documents(runs[0].uid):
        schema_validators[DocumentNames[name]].validate(doc)
    outcomes = store.outcomes("mini")
    assert all("fraction_BaTiO3" in outcomes[e.id] for e in experiments)
    assert summary["best"] is not None


@pytest.mark.slow
@pytest.mark.parametrize(("decision", "status"), [("abort", "aborted"), ("stop", "stopped")])
def test_operator_stop_or_abort_leaves_every_furnace_safe(tmp_path, decision, status):
    path = write_campaign(tmp_path)
    _summary, furnace_modes = run_in_process(
        path, tmp_path / "lab.db", decide=lambda: decision, pause_after=2.0
    )
    store = Store(tmp_path / "lab.db")
    assert store.campaign("mini").status == status
    assert set(furnace_modes.values()) == {"standby"}
    experiments = store.experiments("mini")
    assert not [e for e in experiments if e.state in (S.RUNNING, S.MEASURING)]
    interrupted = [e for e in experiments if e.state == S.ABANDONED]
    assert interrupted and all("operator" in e.reason for e in interrupted)
    assert not [e for e in experiments if e.state == S.FAILED]
    if decision == "abort":
        assert not [e for e in experiments if e.state == S.QUEUED]


@pytest.mark.slow
def test_pause_then_resume_finishes_the_campaign(tmp_path):
    path = write_campaign(tmp_path)
    _summary, _ = run_in_process(
        path, tmp_path / "lab.db", decide=lambda: "resume", pause_after=2.0
    )
    store = Store(tmp_path / "lab.db")
    assert store.campaign("mini").status == "finished"
    finished = store.experiments("mini", [S.ANALYSED, S.FAILED])
    assert len(finished) == 10


@pytest.mark.slow
def test_kill_mid_campaign_then_resume_loses_and_repeats_nothing(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    exe = Path(sys.executable).parent / "athanor"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [exe, "run", str(path), "--db", str(db), "--no-live"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if db.exists():
            store = Store(db)
            states = [e.state for e in store.experiments("mini")]
            store.close()
            if S.ANALYSED in states and S.RUNNING in states:
                break
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    store = Store(db)
    before = {e.number: e.state for e in store.experiments("mini")}
    interrupted = [n for n, s in before.items() if s in (S.RUNNING, S.MEASURING)]
    assert interrupted, f"the kill came at a moment with nothing in a furnace: {before}"
    open_runs = {r.uid for r in store.runs("mini") if r.exit_status is None}
    result = subprocess.run(
        [exe, "resume", "mini", "--db", str(db), "--no-live"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    after = store.experiments("mini")
    numbers = [e.number for e in after]
    assert numbers == sorted(set(numbers)), "an experiment number appears twice"
    for number in interrupted:
        exp = next(e for e in after if e.number == number)
        assert exp.state == S.ABANDONED and "interrupted" in exp.reason
    requeued = [p for p in store.proposals("mini") if p.provenance.get("model") == "requeued"]
    assert sorted(p.provenance["requeued_from"] for p in requeued) == sorted(interrupted)
    assert not [e for e in after if e.state in (S.QUEUED, S.RUNNING, S.MEASURING)]
    counted = [e for e in after if e.state in (S.ANALYSED, S.FAILED)]
    assert len(counted) == 10  # the budget, each experiment once
    runs = {r.uid: r.exit_status for r in store.runs("mini")}
    assert None not in runs.values(), "a run was left without an exit status"
    assert {uid: runs[uid] for uid in open_runs} == dict.fromkeys(open_runs, "interrupted")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": "no_such_plan"}, "neither built in"),
        ({"protocol": "athanor.protocols.synthesis:nothing"}, "has no function"),
        ({"protocol_args": {"colour": "red"}}, "takes no parameter(s) colour"),
        ({"budget": {"max_experiments": 2}}, "initial_experiments"),
        ({"budget": {"max_experiments": -1}}, "budget.max_experiments"),
    ],
)
def test_bad_campaign_is_refused_before_any_instrument_moves(tmp_path, change, message):
    path = write_campaign(tmp_path, **change)
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(tmp_path / "lab.db")])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "lab.db").exists()


@pytest.mark.slow
def test_status_report_and_reanalysis_of_a_finished_campaign(finished):
    folder = finished[0]
    db = str(folder / "lab.db")
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--db", db])
    assert status.exit_code == 0 and "mini" in status.output and "finished" in status.output
    report = runner.invoke(app, ["report", "mini", "--db", db, "--out", str(folder / "r.html")])
    assert report.exit_code == 0, report.output
    page = (folder / "r.html").read_text()
    for heading in ("Best value over experiments", "Parameter space coverage",
                    "Best samples", "Instrument utilisation", "Every experiment"):  # fmt: skip
        assert heading in page
    assert page.count("data:image/png;base64") >= 6
    store = Store(folder / "lab.db")
    before = {e: o["fraction_BaTiO3"].value for e, o in store.outcomes("mini").items()}
    again = runner.invoke(app, ["analyse", "mini", "--db", db, "--method", "xrd.peak_ratio"])
    assert again.exit_code == 0, again.output
    after = store.outcomes("mini")
    assert {e: o["fraction_BaTiO3"].method for e, o in after.items()} == {
        e: "xrd.peak_ratio" for e in before
    }
    assert any(after[e]["fraction_BaTiO3"].value != v for e, v in before.items())
    unknown = runner.invoke(app, ["analyse", "nope", "--db", db])
    assert unknown.exit_code == 2 and "no campaign named 'nope'" in unknown.output


@pytest.mark.slow
def test_approve_mode_runs_accepted_and_edited_proposals_and_skips_rejected_ones(tmp_path):
    path = write_campaign(tmp_path, budget={"max_experiments": 5})
    verdicts = iter(["reject", "edit"])

    def approve(suggestion):
        verdict = next(verdicts, "accept")
        if verdict == "reject":
            return None
        if verdict == "edit":
            return {**suggestion.params, "temperature_c": 950.0}
        return suggestion.params

    run_in_process(path, tmp_path / "lab.db", approve=approve)
    store = Store(tmp_path / "lab.db")
    decisions = [p.decision for p in store.proposals("mini")]
    assert decisions[:2] == ["rejected", "edited"] and set(decisions[2:]) == {"accepted"}
    experiments = store.experiments("mini")
    assert experiments[0].state == S.ABANDONED
    assert experiments[1].params["temperature_c"] == 950.0
    assert len(store.experiments("mini", [S.ANALYSED, S.FAILED])) == 5


@pytest.mark.slow
def test_two_objective_campaign_reports_its_pareto_front(tmp_path):
    objectives = [
        {"name": "fraction_BaTiO3", "goal": "maximize"},
        {"name": "band_gap_ev", "goal": "target", "target": 3.0},
    ]
    path = write_campaign(
        tmp_path, objectives=objectives, derived={}, budget={"max_experiments": 6}
    )
    run_in_process(path, tmp_path / "lab.db")
    result = CliRunner().invoke(
        app, ["report", "mini", "--db", str(tmp_path / "lab.db"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    assert "Pareto front" in (tmp_path / "r.html").read_text()
    store = Store(tmp_path / "lab.db")
    assert len(store.experiments("mini", [S.ANALYSED])) == 6


@pytest.mark.slow
def test_warm_start_plans_from_an_earlier_campaigns_experiments(finished, tmp_path):
    folder, _summary, _ = finished
    db = tmp_path / "lab.db"
    db.write_bytes((folder / "lab.db").read_bytes())
    path = write_campaign(
        tmp_path, name="again", warm_start=["mini"], budget={"max_experiments": 4}
    )
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(db)) as session:
        runner = CampaignRunner(config, session.lab, session.store)
        notes = runner.start(lab_config)
        runner.run()
    assert notes == ["warm start from 'mini': 14 analysed and 0 failed experiments"]
    store = Store(db)
    proposals = store.proposals("again")
    # the 14 earlier experiments stand in for the initial design: the model plans at once
    assert [p.provenance["phase"] for p in proposals] == ["model"] * 4
    assert all(p.provenance["n_observations"] >= 14 for p in proposals)
    observations = store.campaign("again").planner_state["planner"]["observations"]
    assert sum(o["prior"] for o in observations) == 14


def test_warm_start_from_an_unknown_campaign_is_refused_before_anything_is_stored(tmp_path):
    path = write_campaign(tmp_path, name="again", warm_start=["nosuch"])
    result = CliRunner().invoke(
        app, ["run", str(path), "--db", str(tmp_path / "lab.db"), "--no-live"]
    )
    assert result.exit_code != 0
    assert "warm_start" in result.output and "'nosuch'" in result.output
    assert Store(tmp_path / "lab.db").campaigns() == []


def test_warm_start_leaves_out_experiments_that_do_not_fit_the_new_space():
    from athanor.campaign.prior import PriorCampaign, warm_start
    from athanor.planner import Planner

    space = {
        "parameters": [
            {"name": "temperature", "type": "continuous", "low": 900, "high": 1100},
            {"name": "atmosphere", "type": "fixed", "value": "air"},
        ]
    }
    planner = Planner(space, [{"name": "score", "goal": "maximize"}])
    prior = PriorCampaign(
        "old",
        records=[
            {
                "experiment": 1,
                "params": {"temperature": 1000, "atmosphere": "air"},
                "outcomes": {"score": 0.5},
            },
            {
                "experiment": 2,
                "params": {"temperature": 950, "hold": 2},
                "outcomes": {"score": 0.4},
            },
            {
                "experiment": 3,
                "params": {"temperature": 800, "atmosphere": "air"},
                "outcomes": {"score": 0.1},
            },
            {
                "experiment": 4,
                "params": {"temperature": 1000, "atmosphere": "argon"},
                "outcomes": {"score": 0.9},
            },
            {"experiment": 5, "params": {"temperature": 1090}, "status": "failed"},
        ],
        skipped=["experiment 7: no finite outcome 'score' for 'score'"],
    )
    (note,) = warm_start(planner, [prior])
    assert note.startswith("warm start from 'old': 1 analysed and 1 failed experiments; 4 left out")
    assert "no finite outcome" in note
    kept = [(o.params["temperature"], o.status) for o in planner.observations]
    assert kept == [(1000, "completed"), (1090, "failed")]
    assert all(o.prior for o in planner.observations)
