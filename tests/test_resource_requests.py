"""Protocols say what they need; the scheduler serves any lab that has it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.cli import app
from athanor.clock import ManualClock
from athanor.resources import ResourcePool
from athanor.store import ExperimentState, Store

ROOT = Path(__file__).parent.parent


def _second_diffractometer(instruments, folder: Path) -> None:
    instruments["xrd2"] = dict(instruments["xrd"], exchange_dir=str(folder / "xrd2"))


def _no_spectrometer(instruments, folder: Path) -> None:
    del instruments["uvvis"]


@pytest.mark.slow
def test_a_lab_with_two_diffractometers_measures_on_both(tmp_path):
    path = write_campaign(
        tmp_path, "requests", instruments=_second_diffractometer, budget={"max_experiments": 8}
    )
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code == 0, result.output
    store = Store(db)
    experiments = store.experiments("requests")
    assert all(e.state == ExperimentState.ANALYSED for e in experiments), [
        e.reason for e in experiments
    ]
    xrd_runs = [r for r in store.runs("requests") if r.plan_name == "measure_xrd"]
    assert len(xrd_runs) == 8
    starts = [dict(store.documents(r.uid))["start"] for r in xrd_runs]
    assert {start["detectors"][0] for start in starts} == {"xrd", "xrd2"}


def test_a_lab_without_the_requested_spectrometer_is_refused_before_anything_moves(tmp_path):
    path = write_campaign(tmp_path, "requests", instruments=_no_spectrometer)
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code != 0
    assert "requests a spectrometer (role 'spectrometer')" in result.output
    assert "has none" in result.output and "4 furnaces" in result.output
    assert not db.exists()  # refused before the store, let alone an instrument


def test_plan_check_refuses_a_lab_without_the_requested_spectrometer(tmp_path):
    path = write_campaign(tmp_path, "requests", instruments=_no_spectrometer)
    args = ["temperature_c=900", "dwell_h=2", "ramp_c_per_min=10"]
    lab = str(tmp_path / "lab.yaml")
    params = [word for arg in args for word in ("-p", arg)]
    result = CliRunner().invoke(
        app, ["plan", "check", "synthesize_and_characterize", *params, "--lab", lab]
    )
    assert result.exit_code != 0, result.output
    assert "requests a spectrometer" in result.output
    assert path.exists()


def test_waiting_requests_are_served_by_priority_then_arrival():
    pool = ResourcePool({"diffractometer": ["xrd"]}, clock=ManualClock())
    pool.try_acquire("diffractometer", "first")
    order: list[str] = []

    def wait(holder: str, priority: int) -> None:
        pool.acquire("diffractometer", holder, timeout=10, priority=priority)
        order.append(holder)
        pool.release("xrd", holder)

    threads = []
    for holder, priority in (("early", 0), ("late", 0), ("urgent", 5)):
        threads.append(threading.Thread(target=wait, args=(holder, priority)))
        threads[-1].start()
        while len(pool.waiting()) < len(threads):
            threading.Event().wait(0.01)
    assert [w.holder for w in pool.waiting()] == ["urgent", "early", "late"]
    assert pool.try_acquire("diffractometer", "walk-in") is None  # waiting ones come first
    pool.release("xrd", "first")
    for thread in threads:
        thread.join(10)
    assert order == ["urgent", "early", "late"]


def test_one_after_another_requests_take_turns_on_instruments_of_a_kind():
    pool = ResourcePool({"diffractometer": ["xrd", "xrd2"]}, clock=ManualClock())
    taken = []
    for number in range(4):
        name = pool.try_acquire("diffractometer", f"experiment-{number}")
        taken.append(name)
        pool.release(name, f"experiment-{number}")
    assert taken == ["xrd", "xrd2", "xrd", "xrd2"]
