"""How a campaign ends when nobody can answer: SIGTERM, closed input, a crash, a plan that
will not stop. Each leaves the store telling the truth and the furnaces safe, and
``athanor resume`` finishes what is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.campaign import runner as runner_module
from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.cli import app
from athanor.drivers.eurotherm import Eurotherm
from athanor.planner.encoding import PlannerError
from athanor.planner.planner import Planner
from athanor.store import ExperimentState, Store

S = ExperimentState
EXE = Path(sys.executable).parent / "athanor"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
IN_FLIGHT = (S.RUNNING, S.MEASURING)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Path]:
    """The sim lab at 10000x served by ``athanor sim serve`` in a process of its own, so
    that its furnaces outlive a campaign process; yields the lab config it wrote."""
    folder = tmp_path_factory.mktemp("served")
    write_campaign(folder)
    written = folder / "served.yaml"
    process = subprocess.Popen(
        [EXE, "sim", "serve", str(folder / "lab.yaml"), "--write-lab", str(written)],
        cwd=folder, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not written.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert written.exists(), "sim serve never wrote its lab config"
        yield written
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def furnace_modes(lab: Path) -> dict[str, str]:
    """Each furnace's controller mode, read over its own wire."""
    modes = {}
    for name, inst in yaml.safe_load(lab.read_text())["instruments"].items():
        if inst["kind"] == "furnace":
            driver = Eurotherm(inst["connection"], unit=inst["unit"], model=inst["model"])
            modes[name] = driver.mode()
            driver.close()
    return modes


def start_run(path: Path, db: Path, **popen: Any) -> subprocess.Popen[str]:
    """``athanor run`` in a process of its own, returned once an experiment anneals."""
    process = subprocess.Popen(
        [EXE, "run", str(path), "--db", str(db), "--no-live"], cwd=path.parent, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            store = Store(db)
            running = store.experiments(path.stem, [S.RUNNING]) if store.campaigns() else []
            store.close()
            if running:
                return process
    process.kill()
    pytest.fail(f"no experiment ever ran:\n{process.communicate()[0]}")


def said(output: str) -> str:
    """Console output with the line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.slow
def test_sigterm_stops_as_the_operator_would_and_resume_finishes_the_campaign(served, tmp_path):
    path = write_campaign(tmp_path, "term", lab=str(served), budget={"max_experiments": 6})
    db = tmp_path / "lab.db"
    process = start_run(path, db)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):  # impatient: again
        process.send_signal(signum)
    output = process.communicate(timeout=90)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "terminated (SIGTERM)" in said(output)
    assert set(furnace_modes(served).values()) == {"standby"}
    store = Store(db)
    assert store.campaign("term").status == "stopped"
    experiments = store.experiments("term")
    assert not [e for e in experiments if e.state in IN_FLIGHT]
    stopped = [e for e in experiments if e.state == S.ABANDONED]
    assert stopped and all("stopped by the operator" in e.reason for e in stopped)
    assert all(run.exit_status is not None for run in store.runs("term"))
    result = subprocess.run(
        [EXE, "resume", "term", "--db", str(db), "--no-live"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert store.campaign("term").status == "finished"
    done = store.experiments("term", [S.ANALYSED, S.FAILED])
    assert len(done) == 6
    assert not [e.reason for e in done if e.state == S.FAILED]  # nothing left in the way
    assert all(e.params in [d.params for d in done] for e in stopped)  # run again, to the end


@pytest.mark.slow
def test_ctrl_c_with_the_input_closed_stops_the_campaign_and_says_why(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    process = start_run(path, db, stdin=subprocess.DEVNULL)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=90)[0]
    assert process.returncode == 0, output
    assert "no answer (the input is closed): stopping" in said(output)
    store = Store(db)
    assert store.campaign("mini").status == "stopped"
    assert not store.experiments("mini", list(IN_FLIGHT))
    status = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert "stopped" in status.output and "finished" not in status.output


@pytest.mark.slow
def test_sigterm_while_the_pause_menu_waits_for_an_answer_stops_the_campaign(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    process = start_run(path, db, stdin=subprocess.PIPE)  # open, and nobody answers
    process.send_signal(signal.SIGINT)
    store = Store(db)
    deadline = time.monotonic() + 60
    while store.campaign("mini").status != "paused" and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=90)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    assert store.campaign("mini").status == "stopped"
    assert not store.experiments("mini", list(IN_FLIGHT))


def test_an_approval_prompt_with_the_input_closed_stops_the_campaign(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(
        app, ["run", str(path), "--db", str(db), "--no-live", "--approve"], input=""
    )
    assert result.exit_code == 0, result.output
    assert "no answer (the input is closed): stopping" in said(result.output)
    store = Store(db)
    assert store.campaign("mini").status == "stopped"
    assert store.experiments("mini") == []  # the unanswered proposal is not taken as one


@pytest.mark.slow
def test_a_crash_is_recorded_as_crashed_in_one_line_and_resume_recovers_it(
    served, tmp_path, monkeypatch
):
    path = write_campaign(tmp_path, "crash", lab=str(served), budget={"max_experiments": 6})
    db = tmp_path / "lab.db"
    suggest, calls = Planner.suggest, []

    def suggest_then_fail(self: Planner, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 5:  # the four furnaces have their experiments
            raise PlannerError("the model cannot be fitted")
        return suggest(self, *args, **kwargs)

    monkeypatch.setattr(Planner, "suggest", suggest_then_fail)
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "crashed: PlannerError: the model cannot be fitted." in said(result.output)
    assert set(furnace_modes(served).values()) == {"standby"}
    store = Store(db)
    assert store.campaign("crash").status == "crashed"
    experiments = store.experiments("crash")
    assert len(experiments) == 4  # left in flight, as a kill leaves them
    assert all(e.state in (S.QUEUED, *IN_FLIGHT) for e in experiments)
    status = runner.invoke(app, ["status", "--db", str(db)])
    assert "crashed" in status.output and "finished" not in status.output
    resumed = runner.invoke(app, ["resume", "crash", "--db", str(db), "--no-live"])
    assert resumed.exit_code == 0, resumed.output
    assert store.campaign("crash").status == "finished"
    done = store.experiments("crash", [S.ANALYSED, S.FAILED])
    assert len(done) == 6
    assert not [e.reason for e in done if e.state == S.FAILED]  # nothing left in the way


def plan_that_will_not_stop(ctx: Any, **_params: Any) -> Generator[Any, Any, None]:
    """Waits; when stopped, its clean-up waits an hour of wall time."""
    yield from bps.checkpoint()
    yield from bpp.finalize_wrapper(bps.sleep(3600), bps.sleep(3600))


@pytest.mark.slow
def test_a_stop_ends_even_when_a_plan_will_not_and_names_the_experiment(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "STOP_WAIT", 1.0)
    path = write_campaign(tmp_path, protocol=f"{__name__}:plan_that_will_not_stop")
    config, lab_config = load_for_run(path, None)
    notes: list[str] = []

    def pause_once_launched(_progress: Any) -> None:
        if runner.flight:
            runner.request_pause()

    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        runner = CampaignRunner(
            config, session.lab, session.store, decide=lambda: "stop",
            on_progress=pause_once_launched, notify=notes.append,
        )  # fmt: skip
        runner.start(lab_config)
        runner.run()
        store = session.store
        assert store.campaign("mini").status == "stopped"
        cut = store.experiments("mini", [S.ABANDONED])
    assert cut and all("its plan did not end within 1 s" in e.reason for e in cut)
    assert any(f"experiment {cut[0].number}: stopped by the operator" in n for n in notes)


@pytest.mark.slow
def test_an_edit_outside_the_search_space_is_refused_at_the_prompt_with_the_allowed_range(
    tmp_path,
):
    path = write_campaign(tmp_path, budget={"max_experiments": 1}, initial_experiments=1)
    db = tmp_path / "lab.db"
    # edit; temperature 1300 and the rest as proposed; refused; edit again with 950
    answers = "edit\n1300\n\n\n\n\n" + "950\n\n\n\n\n"
    result = CliRunner().invoke(
        app, ["run", str(path), "--db", str(db), "--no-live", "--approve"], input=answers
    )
    assert result.exit_code == 0, result.output
    refusal = "edited proposal.temperature_c: 1300 is outside the allowed range 800 to 1150"
    assert f"refused: {refusal}" in " ".join(result.output.split()), result.output
    (experiment,) = Store(db).experiments("mini")
    assert experiment.params["temperature_c"] == 950.0
    assert [p.decision for p in Store(db).proposals("mini")] == ["edited"]
