"""The Furnace device in a RunEngine, against the Eurotherm emulator over Modbus TCP."""

from __future__ import annotations

import threading

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.plans import count
from bluesky.utils import FailedStatus
from event_model import DocumentNames, schema_validators

from athanor import profile
from athanor.clock import ManualClock, ScaledClock
from athanor.devices.furnace import Furnace, MoveInterrupted
from athanor.drivers.errors import InstrumentFault, InstrumentTimeout, LimitError
from athanor.drivers.eurotherm import Eurotherm
from athanor.lab_config import FurnaceLimits
from athanor.simulators.eurotherm import EurothermEmulator
from athanor.simulators.hosting import BackgroundLoop


@pytest.fixture
def lab(request):
    """(furnace device, emulator, clock); by default lab time moves only when the device
    waits (ManualClock); ``@pytest.mark.parametrize("lab", [clock], indirect=True)``
    gives another clock."""
    clock = getattr(request, "param", None) or ManualClock()
    with BackgroundLoop() as loop:
        emulator = EurothermEmulator("f1", "eurotherm2416", 1, "modbus-tcp://127.0.0.1:0", clock)
        url = loop.start(emulator)
        driver = Eurotherm(url, unit=1, model="eurotherm2416", io_timeout=0.5, name="f1")
        limits = FurnaceLimits(max_temperature=1000, max_ramp_rate=20)
        yield Furnace(driver, clock, name="f1", limits=limits), emulator, clock
        driver.close()


def lab_time_reaches(clock, seconds: float, status) -> None:
    """Wait until the device's move has taken lab time to ``seconds`` (or has ended)."""
    while clock.now() < seconds and not status.done:
        threading.Event().wait(0.01)
    assert not status.done, f"the move ended at {clock.now():g} lab s: {status.exception()}"


def run(plan):
    RE = RunEngine({}, context_managers=[])
    docs = []
    RE(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def test_set_point_completes_within_tolerance(lab):
    furnace, emulator, _ = lab
    furnace.ramp_rate.put(20)
    run(bps.mv(furnace, 400))
    assert abs(emulator.thermal.pv - 400) <= furnace.tolerance.get()


def test_profile_runs_in_the_controller_and_ends_cool(lab):
    furnace, emulator, clock = lab
    segments = profile.anneal(800, dwell_hours=1, ramp_rate=20, cool_to=50)
    run(bps.mv(furnace, segments))
    _, temps = emulator.history(0, clock.now())
    assert max(temps) == pytest.approx(800, abs=15)
    assert temps[-1] <= furnace.limits.handling_temperature
    assert clock.now() >= profile.duration(segments, start=22) * 0.9


def test_readings_are_valid_documents_with_units(lab):
    furnace, _, _ = lab
    docs = run(count([furnace], num=2))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    descriptor = next(doc for name, doc in docs if name == "descriptor")
    assert descriptor["data_keys"]["f1_temperature"]["units"] == "degC"
    config = descriptor["configuration"]["f1"]["data"]
    assert config["f1_max_temperature"] == 1000 and config["f1_max_ramp_rate"] == 20


@pytest.mark.parametrize(
    "target",
    [1100.0, [profile.Ramp(700, 50)], [profile.Ramp(700, 10), profile.Ramp(1300, 10)]],
)
def test_out_of_limit_requests_are_refused_before_the_wire(lab, target):
    furnace, emulator, _ = lab
    before = emulator.requests
    with pytest.raises(LimitError):
        furnace.set(target)
    assert emulator.requests == before
    assert not emulator.eeprom_writes


@pytest.mark.parametrize("lab", [ScaledClock(600)], indirect=True)
def test_stop_while_ramping_leaves_the_furnace_safe(lab):
    furnace, emulator, clock = lab
    furnace.ramp_rate.put(5)  # 900 °C takes three lab hours: 18 wall seconds here
    status = furnace.set(900)
    clock.sleep(120)
    assert not status.done
    furnace.stop()
    with pytest.raises(MoveInterrupted):
        status.wait(5)
    assert emulator.thermal.mode == "standby"
    assert emulator.thermal.target_sp <= furnace.min_temperature.get() + 1
    clock.sleep(60)
    emulator.thermal.update()  # the model integrates lazily
    assert emulator.thermal.output == 0


def test_sensor_break_fails_the_move_with_the_fault(lab):
    furnace, emulator, _ = lab
    emulator.faults.sensor_break = True
    with pytest.raises(FailedStatus) as failed:
        run(bps.mv(furnace, 300))
    assert isinstance(failed.value.__cause__, InstrumentFault)
    assert failed.value.__cause__.reason == "sensor break"


def test_plan_end_puts_the_furnace_in_standby(lab):
    furnace, emulator, _ = lab
    run(bps.mv(furnace, 300))
    assert emulator.thermal.mode == "standby"


def test_a_finished_experiment_leaves_the_next_one_on_the_same_furnace_alone(lab):
    furnace, emulator, _ = lab
    first, second = furnace.twin(), furnace.twin()
    run(bps.mv(first, profile.anneal(300, dwell_hours=0.1, ramp_rate=20, cool_to=50)))
    status = second.set(400)
    first.stop()  # what the first experiment's RunEngine does when its plan ends
    status.wait(30)
    assert emulator.thermal.mode == "auto"
    assert abs(emulator.thermal.pv - 400) <= second.tolerance.get()


def test_a_program_reset_by_someone_else_fails_the_anneal_instead_of_finishing_it(lab):
    furnace, _, clock = lab
    segments = profile.anneal(800, dwell_hours=1, ramp_rate=20, cool_to=50)
    status = furnace.set(segments)
    while clock.now() < 1800:  # half an hour into a four-hour program
        threading.Event().wait(0.01)
    furnace.driver.safe()  # another process puts the furnace in standby
    with pytest.raises(InstrumentFault, match="reset or changed by someone else"):
        status.wait(30)


def test_a_setpoint_changed_by_someone_else_fails_the_move(lab):
    furnace, _, clock = lab
    furnace.ramp_rate.put(5)
    status = furnace.set(600)
    lab_time_reaches(clock, 600, status)
    furnace.driver.set_setpoint(200.0)
    with pytest.raises(InstrumentFault, match="setpoint changed to 200"):
        status.wait(30)


def test_an_anneal_rides_out_a_controller_that_stops_answering_for_a_while(lab):
    furnace, emulator, clock = lab
    segments = profile.anneal(500, dwell_hours=1, ramp_rate=20, cool_to=50)
    status = furnace.set(segments)
    lab_time_reaches(clock, 1800, status)
    emulator.faults.no_reply = True  # the line goes quiet; the program runs on
    lost_at = clock.now()
    lab_time_reaches(clock, lost_at + 300, status)
    emulator.faults.no_reply = False
    status.wait(60)
    assert status.success
    assert clock.now() >= profile.duration(segments, start=22) * 0.9


def test_a_controller_silent_for_longer_than_the_bound_fails_the_move(lab):
    furnace, emulator, clock = lab
    furnace.lost_contact = 120.0
    status = furnace.set(profile.anneal(500, dwell_hours=1, ramp_rate=20, cool_to=50))
    lab_time_reaches(clock, 600, status)
    emulator.faults.no_reply = True
    with pytest.raises(InstrumentTimeout):
        status.wait(60)
