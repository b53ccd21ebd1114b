"""Protocol plans on the RunEngine against the emulators, and in the RunEngine simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.simulators import RunEngineSimulator
from event_model import DocumentNames, schema_validators
from typer.testing import CliRunner

from athanor.cli import app
from athanor.clock import ScaledClock
from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.devices.spectrometer import Spectrometer
from athanor.drivers.aeris import Aeris
from athanor.drivers.errors import LimitError
from athanor.drivers.eurotherm import Eurotherm
from athanor.drivers.ocean_optics import OceanOpticsSerial
from athanor.lab_config import FurnaceLimits
from athanor.protocols.anneal import anneal
from athanor.protocols.measure import measure_spectrum, measure_xrd
from athanor.simulators.aeris import AerisEmulator
from athanor.simulators.eurotherm import EurothermEmulator
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.ocean_optics import OceanOpticsEmulator
from athanor.simulators.world import FixedTruth, OpticalProperties, PhaseState

TRUTH = FixedTruth(
    PhaseState({"BaTiO3": 0.8, "TiO2": 0.2}, {"BaTiO3": 60.0, "TiO2": 80.0}),
    OpticalProperties(band_gap_ev=3.0, absorbance_scale=2.0),
)


@pytest.fixture(scope="module")
def devices(tmp_path_factory):
    clock = ScaledClock(50_000)  # a 7-hour anneal in half a wall second
    folder = tmp_path_factory.mktemp("exchange")
    with BackgroundLoop() as loop:
        f_url = loop.start(
            EurothermEmulator("f1", "eurotherm3216", 1, "modbus-tcp://127.0.0.1:0", clock)
        )
        x_emulator = AerisEmulator(folder, TRUTH, clock)
        x_url = loop.start(x_emulator)
        s_emulator = OceanOpticsEmulator("pty://", {"model": "usb2000plus"}, clock=clock)
        s_url = loop.start(s_emulator)
        furnace = Furnace(Eurotherm(f_url, name="f1"), clock, name="f1",
                          limits=FurnaceLimits(max_temperature=1100, max_ramp_rate=20))  # fmt: skip
        xrd = Diffractometer(Aeris(x_url, folder), clock, name="xrd")
        uvvis = Spectrometer(OceanOpticsSerial(s_url, clock=clock), name="uvvis")
        yield {"furnace": furnace, "xrd": xrd, "uvvis": uvvis, "uvvis_emulator": s_emulator}


def run(plan):
    docs = []
    RunEngine({}, context_managers=[])(plan, lambda name, doc: docs.append((name, doc)))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    return docs


def test_anneal_records_the_profile_as_one_run(devices):
    docs = run(anneal(devices["furnace"], 900, 2, 20, cool_to=100, md={"sample_id": "S-1"}))
    start = docs[0][1]
    assert start["plan_name"] == "anneal" and start["sample_id"] == "S-1"
    assert start["predicted_duration"] == pytest.approx((800 / 20 + 120 + 800 / 20) * 60)
    temps = [d["data"]["f1_temperature"] for n, d in docs if n == "event"]
    assert max(temps) == pytest.approx(900, abs=15)
    assert docs[-1][1]["exit_status"] == "success"


def test_anneal_above_the_limit_is_refused_before_any_message(devices):
    messages = []
    with pytest.raises(LimitError, match="1100"):
        messages = RunEngineSimulator().simulate_plan(anneal(devices["furnace"], 1200, 1, 10))
    assert messages == []


def test_measure_xrd_puts_the_pattern_in_the_event(devices):
    docs = run(
        measure_xrd(devices["xrd"], "S-7", program="20-60_2-minutes", md={"experiment_id": 3})
    )
    start = docs[0][1]
    assert start["sample_id"] == "S-7" and start["experiment_id"] == 3
    (event,) = [d for n, d in docs if n == "event"]
    counts = np.asarray(event["data"]["xrd_counts"])
    two_theta = np.asarray(event["data"]["xrd_two_theta"])
    assert two_theta[np.argmax(counts)] == pytest.approx(31.5, abs=0.2)  # BaTiO3 (101)/(110)


def test_measure_spectrum_takes_dark_reference_and_sample_streams(devices):
    emulator = devices["uvvis_emulator"]
    emulator.load(None)

    def insert():
        emulator.load(TRUTH.optics("S-7"))
        yield from ()

    docs = run(measure_spectrum(devices["uvvis"], "S-7", insert_sample=insert, averages=2))
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    events = {
        streams[d["descriptor"]]: np.asarray(d["data"]["uvvis_counts"])
        for n, d in docs
        if n == "event"
    }
    assert set(events) == {"dark", "reference", "primary"}
    assert events["reference"].mean() > events["primary"].mean() > events["dark"].mean()


RECIPE = ["-p", "temperature_c=1000", "-p", "dwell_h=4", "-p", "ramp_c_per_min=10"]
SIM_LAB = str(Path(__file__).parent.parent / "lab_configs" / "sim_lab.yaml")


def test_plan_check_lists_steps_and_predicts_the_duration_in_lab_time():
    result = CliRunner().invoke(
        app, ["plan", "check", "synthesize_and_characterize", *RECIPE, "--lab", SIM_LAB]
    )
    assert result.exit_code == 0, result.output
    # weigh 10 min + 5 moves of 30 s + ramp 97.5 min + 4 h + cool 90 min + XRD 8 min
    assert "predicted duration 7.47 lab hours" in " ".join(result.output.split())
    assert "furnace1" in result.output and "10-100_8-minutes" in result.output


def test_plan_check_reports_a_limit_violation_before_anything_heats():
    hot = [a.replace("temperature_c=1000", "temperature_c=1300") for a in RECIPE]
    result = CliRunner().invoke(
        app, ["plan", "check", "synthesize_and_characterize", *hot, "--lab", SIM_LAB]
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "limit violation" in text and "1300" in text and "0–1150" in text


def test_plan_check_names_a_missing_parameter():
    result = CliRunner().invoke(
        app, ["plan", "check", "synthesize_and_characterize", "-p", "dwell_h=4", "--lab", SIM_LAB]
    )
    assert result.exit_code == 2
    assert "needs ramp_c_per_min, temperature_c" in " ".join(result.output.split())
