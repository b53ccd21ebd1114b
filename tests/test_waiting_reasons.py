"""The scheduler says why an experiment waits (`athanor status` shows it), and its live
view reads furnaces sparingly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.campaign.progress import READING_INTERVAL, FurnaceReadings
from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.cli import app
from athanor.devices.furnace import Furnace
from athanor.drivers.eurotherm import Eurotherm
from athanor.resources import ResourcePool
from athanor.simulators.eurotherm import EurothermEmulator, ModbusLine

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_status_shows_that_experiments_wait_for_the_diffractometer_and_who_has_it(tmp_path):
    path = write_campaign(tmp_path, "waits", time_scale=20_000, budget={"max_experiments": 4})
    config, lab_config = load_for_run(path, None)
    db = tmp_path / "lab.db"
    with open_session(config, lab_config, str(db)) as session:
        runner = CampaignRunner(config, session.lab, session.store)
        runner.start(lab_config)
        runner.pool.try_acquire("xrd", "maintenance")  # a person is aligning it
        worker = threading.Thread(target=runner.run)
        worker.start()
        try:
            deadline, out = time.monotonic() + 120, ""
            while time.monotonic() < deadline and "waiting for a diffractometer" not in out:
                time.sleep(0.5)
                out = CliRunner().invoke(app, ["status", "--db", str(db)]).output
            assert "waiting for a diffractometer (xrd has maintenance)" in out, out
            assert "waits #" in out and "(running)" in out
        finally:
            runner.pool.release("xrd", "maintenance")
            worker.join(300)
    final = CliRunner().invoke(app, ["status", "--db", str(db)]).output
    assert "waiting for" not in final  # a finished campaign waits for nothing
    assert "4 analysed" in final, final


def test_the_live_view_reads_furnaces_on_a_shared_line_at_most_once_per_interval(loop, clock):
    line_units = [
        EurothermEmulator(f"f{unit}", "eurotherm3216", unit, clock=clock) for unit in (1, 2)
    ]
    url = loop.start(ModbusLine("socket://127.0.0.1:0", line_units))
    furnaces = {
        f"f{unit}": Furnace(Eurotherm(url, unit=unit, name=f"f{unit}"), clock, name=f"f{unit}")
        for unit in (1, 2)
    }
    pool = ResourcePool({"furnace": list(furnaces)}, clock)
    readings = FurnaceReadings(furnaces, clock)
    before = [e.requests for e in line_units]
    for _ in range(1000):  # the scheduler loop refreshing the view, 0.1 lab s apart
        table = readings.table(pool)
        clock.advance(0.1)
    assert table["f1"] == ("idle", pytest.approx(22.0, abs=2))
    for emulator, start in zip(line_units, before, strict=True):
        reads = emulator.requests - start
        assert reads <= 100 / READING_INTERVAL + 1, reads  # 100 lab s of refreshing
