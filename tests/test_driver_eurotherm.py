"""The Eurotherm driver against the emulator over every transport it speaks."""

from __future__ import annotations

import socket
import time

import pytest

from athanor.drivers.errors import (
    ConnectionLost,
    InstrumentFault,
    InstrumentTimeout,
    LimitError,
    ProtocolError,
)
from athanor.drivers.eurotherm import Eurotherm
from athanor.profile import Dwell, Ramp, Step
from athanor.simulators.eurotherm import EurothermEmulator, ModbusLine

TRANSPORTS = ["modbus-tcp://127.0.0.1:0", "socket://127.0.0.1:0", "pty://"]
MODELS = ["eurotherm3216", "eurotherm2416"]


@pytest.fixture
def furnace(loop, clock, request):
    """(emulator, driver) for ``request.param`` = (connection, model)."""
    connection, model = getattr(request, "param", (TRANSPORTS[0], MODELS[0]))
    emulator = EurothermEmulator("f", model, 3, connection, clock, {"pv_noise_c": 0.0})
    url = loop.start(emulator)
    driver = Eurotherm(url, unit=3, model=model, io_timeout=0.2, retries=1, name="f")
    yield emulator, driver
    driver.close()


EVERY = [(c, m) for c in TRANSPORTS for m in MODELS]


@pytest.mark.parametrize("furnace", EVERY, indirect=True)
def test_reads_are_scaled_and_consistent(furnace, clock):
    _emulator, tc = furnace
    assert tc.pv() == pytest.approx(22.0)
    assert tc.setpoint_limits() == (0.0, 1200.0)
    assert tc.set_ramp_rate(10.0) is True
    assert tc.ramp_rate() == pytest.approx(10.0)
    assert tc.set_setpoint(500.0) is True
    clock.advance(600)
    reading = tc.read()
    assert reading.target_setpoint == 500.0
    assert reading.working_setpoint == pytest.approx(122.0)
    assert reading.output > 0 and not reading.status.faults
    assert tc.read_float(1) == pytest.approx(reading.pv, abs=0.06)
    assert tc.identify()["type"] == int(tc.model[-4:])


@pytest.mark.parametrize("furnace", EVERY, indirect=True)
def test_setpoint_writes_are_never_repeated(furnace):
    emulator, tc = furnace
    for _ in range(3):
        tc.set_setpoint(650.0)
        tc.set_ramp_rate(5.0)
    assert emulator.eeprom_writes["TG.SP"] == 1
    assert emulator.eeprom_writes["SP.RAT"] == 1


FAULTS = [
    ("no_reply", True, InstrumentTimeout),
    ("late_reply_s", 0.3, InstrumentTimeout),
    ("garbage", True, ProtocolError),
    ("exception_code", 4, InstrumentFault),
    ("sensor_break", True, InstrumentFault),
    ("over_range", True, InstrumentFault),
    ("drop_connection", True, ConnectionLost),
]


@pytest.mark.parametrize("furnace", [(c, "eurotherm2416") for c in TRANSPORTS], indirect=True)
@pytest.mark.parametrize(("fault", "value", "error"), FAULTS)
def test_every_fault_maps_to_a_typed_error(furnace, fault, value, error):
    emulator, tc = furnace
    tc.config()
    tc.retries = 0  # on RTU a retry could pick up the late reply, which is the same value
    setattr(emulator.faults, fault, value)
    if fault == "drop_connection" and not tc.link.connection.startswith(("modbus", "socket")):
        error = InstrumentTimeout  # a serial line cannot drop; the request goes unanswered
    with pytest.raises(error) as info:
        tc.pv()
    if fault == "sensor_break":
        assert info.value.reason == "sensor break"
    elif fault == "over_range":
        assert info.value.reason == "PV over-range"
    elif fault == "exception_code":
        assert info.value.reason == "device failure"
    setattr(emulator.faults, fault, type(emulator.faults).model_fields[fault].default)
    if fault == "late_reply_s":
        time.sleep(0.35)  # let the late replies land; the driver must not take them as answers
    assert tc.pv() == pytest.approx(22.0)


def test_refused_write_decodes_the_exception(furnace):
    _emulator, tc = furnace
    with pytest.raises(InstrumentFault) as info:
        tc.write_registers(1, [5])  # PV is read-only
    assert info.value.reason == "illegal data value"
    with pytest.raises(InstrumentFault, match="illegal data address"):
        tc.read_registers(1000)


@pytest.mark.parametrize("furnace", [(TRANSPORTS[1], "eurotherm3216")], indirect=True)
def test_setpoint_outside_limits_is_refused_before_the_wire(furnace):
    emulator, tc = furnace
    tc.setpoint_limits()
    before = emulator.requests
    with pytest.raises(LimitError, match="0–1200"):
        tc.set_setpoint(1300.0)  # above the instrument's SP.HI
    with pytest.raises(LimitError, match="0–1100"):
        tc.set_setpoint(1150.0, limits=(0.0, 1100.0))  # above the lab's limit
    with pytest.raises(LimitError, match="ramp rate"):
        tc.set_ramp_rate(30.0, max_rate=20.0)
    with pytest.raises(LimitError):
        tc.run_profile([Ramp(1190.0, 10.0)], limits=(0.0, 1100.0))
    assert emulator.requests == before  # nothing went on the wire
    assert not emulator.eeprom_writes


def test_gateway_without_the_unit_times_out(loop, clock):
    emulator = EurothermEmulator("f", unit=1, clock=clock)
    url = loop.start(emulator)
    with Eurotherm(url, unit=9, io_timeout=0.2, retries=0) as tc, pytest.raises(InstrumentTimeout):
        tc.pv()


def test_nothing_listening_is_connection_lost():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tc = Eurotherm(f"modbus-tcp://127.0.0.1:{port}", io_timeout=0.2, retries=0)
    with tc, pytest.raises(ConnectionLost):
        tc.pv()


def test_two_controllers_share_one_rtu_line(loop, clock):
    a = EurothermEmulator("a", "eurotherm3216", 1, clock=clock, settings={"pv_noise_c": 0})
    b = EurothermEmulator("b", "eurotherm2416", 2, clock=clock, settings={"pv_noise_c": 0})
    path = loop.start(ModbusLine("pty://", [a, b]))
    with (
        Eurotherm(path, unit=1, model="eurotherm3216", io_timeout=0.5) as ta,
        Eurotherm(path, unit=2, model="eurotherm2416", io_timeout=0.5) as tb,
    ):
        assert ta.link is tb.link  # one serial port, opened once
        ta.set_setpoint(300.0)
        tb.set_setpoint(400.0)
        assert (ta.target_setpoint(), tb.target_setpoint()) == (300.0, 400.0)


@pytest.mark.parametrize("furnace", [(TRANSPORTS[0], m) for m in MODELS], indirect=True)
def test_safe_turns_the_heater_off_and_stops_the_program(furnace, clock):
    emulator, tc = furnace
    tc.run_profile([Ramp(800.0, 20.0), Dwell(60)])
    clock.advance(1200)
    assert tc.output() > 0
    tc.safe()
    clock.advance(60)
    assert (tc.mode(), tc.program_state(), tc.target_setpoint()) == ("standby", "reset", 0.0)
    assert tc.output() == 0.0
    hot = emulator.thermal.sample_temperature()
    clock.advance(3600)
    assert emulator.thermal.sample_temperature() < hot


@pytest.mark.parametrize("furnace", [(TRANSPORTS[1], m) for m in MODELS], indirect=True)
def test_profile_runs_to_completion_in_lab_time(furnace, clock):
    emulator, tc = furnace
    start = clock.now()
    tc.run_profile([Ramp(900.0, 20.0), Dwell(240), Ramp(200.0, 10.0), Step(25.0)], max_rate=20)
    assert tc.program_state() == "run"
    states = []
    for _ in range(16):
        clock.advance(1800)
        states.append(tc.program_state())
    assert states[0] == "run" and states[-1] == "complete"
    assert tc.status().program_end
    times, temps = emulator.history(start, clock.now())
    hot = [t for t, y in zip(times, temps, strict=True) if y > 895]
    assert hot[-1] - hot[0] >= 4 * 3600  # the four-hour dwell happened at 900 °C
    assert max(temps) < 915
    assert tc.working_setpoint() == 25.0


def test_profile_needs_a_start_on_the_3216(furnace):
    _, tc = furnace
    with pytest.raises(ValueError, match="start with a Ramp"):
        tc.load_profile([Dwell(10)])
