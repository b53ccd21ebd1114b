"""Eurotherm units that differ where the documented register map is silent.

Each variant is a switch of the emulator (``firmware:`` and ``faults.lose_replies``);
the driver and the furnace device must work with every one, on the real wire.
"""

from __future__ import annotations

import socket
import threading

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from athanor import profile
from athanor.devices.furnace import Furnace
from athanor.drivers.errors import InstrumentFault, NotSafe, ProtocolError, Unsupported
from athanor.drivers.eurotherm import PV, Eurotherm
from athanor.lab_config import FurnaceLimits
from athanor.profile import Dwell, Ramp
from athanor.simulators.eurotherm import EurothermEmulator

PROGRAMMER_REGISTERS = {22, 23, 36, 56, 58, 321, 328, 1280}


@pytest.fixture
def unit(loop, clock, request):
    """(emulator, driver) for a unit with ``request.param`` as its ``firmware:`` block."""
    model, firmware = getattr(request, "param", ("eurotherm3216", {}))
    settings = {"pv_noise_c": 0.0, "firmware": firmware}
    emulator = EurothermEmulator("f", model, 1, "modbus-tcp://127.0.0.1:0", clock, settings)
    driver = Eurotherm(loop.start(emulator), model=model, io_timeout=0.2, retries=1, name="f")
    yield emulator, driver
    driver.close()


MINIMAL = [(m, {"minimal_map": True}) for m in ("eurotherm3216", "eurotherm2416")]
NO_PROGRAMMER = [(m, {"programmer": False}) for m in ("eurotherm3216", "eurotherm2416")]


@pytest.mark.parametrize("unit", MINIMAL, indirect=True)
def test_a_unit_with_only_the_documented_map_reads_writes_and_identifies(unit, clock):
    _emulator, tc = unit
    assert tc.pv() == pytest.approx(22.0)
    assert tc.set_setpoint(400.0) and tc.set_ramp_rate(20.0)
    clock.advance(600)
    assert tc.read().working_setpoint == pytest.approx(222.0)
    assert tc.identify() == {
        "model": tc.model, "unit": 1, "type": "unknown", "version": "unknown"
    }  # fmt: skip
    assert any("input range" in lack for lack in tc.lacks)
    assert any("instrument type" in lack for lack in tc.lacks)
    tc.identify()
    assert len(tc.lacks) == len(set(tc.lacks)) == 3  # each said once


@pytest.mark.parametrize("unit", MINIMAL, indirect=True)
def test_sensor_break_is_caught_without_the_input_range_registers(unit):
    emulator, tc = unit
    emulator.faults.sensor_break = True
    with pytest.raises(InstrumentFault, match="sensor break"):
        tc.pv()


@pytest.mark.parametrize("unit", NO_PROGRAMMER, indirect=True)
def test_safe_completes_on_a_unit_without_programmer(unit):
    emulator, tc = unit
    tc.set_setpoint(500.0)
    tc.set_mode("auto")
    tc.safe()
    assert emulator.thermal.mode == "standby"
    assert emulator.thermal.target_sp == 0.0
    assert not tc.has_programmer()
    assert any("programmer" in lack for lack in tc.lacks)


@pytest.mark.parametrize("unit", NO_PROGRAMMER, indirect=True)
def test_a_unit_without_programmer_is_asked_once_and_its_programmer_never_touched(unit):
    emulator, tc = unit
    for _ in range(3):
        tc.reset_program()
        tc.safe()
    with pytest.raises(Unsupported, match="no programmer"):
        tc.run_profile([Ramp(300, 10)])
    touched = {a for a in emulator.requested if a in PROGRAMMER_REGISTERS or a >= 1280}
    assert touched == {23} and emulator.requested[23] == 1


def test_the_lab_config_can_say_there_is_no_programmer(loop, clock):
    settings = {"firmware": {"programmer": False}}
    emulator = EurothermEmulator(
        "f", "eurotherm3216", 1, "modbus-tcp://127.0.0.1:0", clock, settings
    )
    with Eurotherm(loop.start(emulator), io_timeout=0.2, programmer=False, name="f") as tc:
        tc.safe()
        tc.reset_program()
    assert 23 not in emulator.requested


def test_safe_names_every_step_it_could_not_do(unit):
    emulator, tc = unit
    tc.config()
    emulator.faults.no_reply = True
    with pytest.raises(NotSafe) as failed:
        tc.safe()
    assert set(failed.value.failed) == {"standby", "program reset", "setpoint low"}
    assert "NOT SAFE" in str(failed.value) and "f:" in str(failed.value)


@pytest.mark.parametrize(
    "unit", [("eurotherm2416", {"float_word_order": "low_first"})], indirect=True
)
def test_float_word_order_is_learnt_from_the_16_bit_registers(unit, clock):
    _emulator, tc = unit
    tc.set_setpoint(700.0)
    tc.set_ramp_rate(20.0)
    clock.advance(1800)
    assert tc.read_float(PV) == pytest.approx(tc.pv(), abs=0.1)
    assert any("low word first" in lack for lack in tc.lacks)


def test_a_float_with_swapped_words_is_refused_not_taken_for_a_temperature(loop, clock):
    settings = {"firmware": {"float_word_order": "low_first"}}
    emulator = EurothermEmulator(
        "f", "eurotherm2416", 1, "modbus-tcp://127.0.0.1:0", clock, settings
    )
    url = loop.start(emulator)
    with (
        Eurotherm(url, model="eurotherm2416", float_word_order="high_first", name="f") as tc,
        pytest.raises(ProtocolError, match="not a plausible reading"),
    ):
        tc.read_float(PV)


# --------------------------------------------------------------------------- lost replies

# Each public method, called once while the unit carries out the request but its reply
# is lost; the retry must leave the unit as one call would.
CALLS = {
    "pv": lambda tc: tc.pv(),
    "read": lambda tc: tc.read(),
    "read_float": lambda tc: tc.read_float(PV),
    "status": lambda tc: tc.status(),
    "mode": lambda tc: tc.mode(),
    "identify": lambda tc: tc.identify(),
    "output": lambda tc: tc.output(),
    "ramp_rate": lambda tc: tc.ramp_rate(),
    "output_limits": lambda tc: tc.output_limits(),
    "set_setpoint": lambda tc: tc.set_setpoint(450.0),
    "set_ramp_rate": lambda tc: tc.set_ramp_rate(7.0),
    "set_mode": lambda tc: tc.set_mode("manual"),
    "acknowledge_alarms": lambda tc: tc.acknowledge_alarms(),
    "load_profile": lambda tc: tc.load_profile([Ramp(300, 10), Dwell(30)]),
    "run_profile": lambda tc: tc.run_profile([Ramp(300, 10), Dwell(30)]),
    "hold_program": lambda tc: tc.hold_program(),
    "reset_program": lambda tc: tc.reset_program(),
    "safe": lambda tc: tc.safe(),
}


@pytest.mark.parametrize("model", ["eurotherm3216", "eurotherm2416"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_public_method_is_safe_to_repeat_after_a_lost_reply(loop, clock, model, name):
    emulator = EurothermEmulator("f", model, 1, "socket://127.0.0.1:0", clock, {"pv_noise_c": 0})
    with Eurotherm(loop.start(emulator), model=model, io_timeout=0.2, retries=2, name="f") as tc:
        tc.config(), tc.has_programmer()
        emulator.faults.lose_replies = 1
        CALLS[name](tc)  # the first attempt is carried out, its reply never arrives
        assert emulator.faults.lose_replies == 0
        writes = dict(emulator.eeprom_writes)
        assert all(count == 1 for key, count in writes.items() if key != "PROGRAM"), writes
        if name == "run_profile":
            assert tc.program_state() == "run"


def test_a_run_command_whose_reply_was_lost_does_not_restart_the_program(unit, clock):
    emulator, tc = unit
    tc.run_profile([Ramp(300, 10), Dwell(60)])
    clock.advance(600)
    emulator.thermal.update()  # the model integrates lazily
    segment_time = emulator.thermal.program_time_left()
    emulator.faults.lose_replies = 1
    tc.run_program()
    assert tc.program_state() == "run"
    assert emulator.thermal.program_time_left() == segment_time


# --------------------------------------------------------------------------- the device


def _furnace(loop, clock, firmware: dict, handling: float = 200.0):
    emulator = EurothermEmulator(
        "f1", "eurotherm3216", 1, "modbus-tcp://127.0.0.1:0", clock, {"firmware": firmware}
    )
    driver = Eurotherm(loop.start(emulator), io_timeout=0.5, name="f1")
    limits = FurnaceLimits(max_temperature=1000, max_ramp_rate=20, handling_temperature=handling)
    return Furnace(driver, clock, name="f1", limits=limits, poll=30.0), emulator


def run(plan) -> None:
    RunEngine({}, context_managers=[])(plan)


def test_a_profile_on_a_unit_without_programmer_is_stepped_from_the_host(loop, clock):
    furnace, emulator = _furnace(loop, clock, {"programmer": False})
    segments = profile.anneal(600, dwell_hours=1, ramp_rate=20, cool_to=50)
    run(bps.mv(furnace, segments))
    times, temps = emulator.history(0, clock.now())
    hot = [t for t, temp in zip(times, temps, strict=True) if temp >= 590]
    assert max(temps) == pytest.approx(600, abs=15)
    assert hot[-1] - hot[0] >= 3600 * 0.95  # the dwell was held for its hour
    assert temps[-1] <= furnace.limits.handling_temperature
    assert emulator.thermal.mode == "standby"
    assert emulator.eeprom_writes["TG.SP"] <= 4  # one setpoint per segment, then SP.LO
    assert not {a for a in emulator.requested if a in PROGRAMMER_REGISTERS - {23}}


def test_a_stepped_profile_stops_at_once_and_leaves_the_furnace_safe(loop, clock):
    furnace, emulator = _furnace(loop, clock, {"programmer": False})
    status = furnace.set(profile.anneal(600, dwell_hours=10, ramp_rate=20, cool_to=50))
    while clock.now() < 2 * 3600:
        threading.Event().wait(0.01)
    furnace.stop()
    with pytest.raises(Exception, match="stopped"):
        status.wait(5)
    assert emulator.thermal.mode == "standby"


def test_a_plain_move_below_the_handling_temperature_waits_until_it_is_there(loop, clock):
    furnace, emulator = _furnace(loop, clock, {}, handling=150.0)
    furnace.ramp_rate.put(1.0)  # 40 lab minutes from 20 °C to 60 °C
    run(bps.mv(furnace, 60.0))
    assert abs(emulator.thermal.pv - 60.0) <= furnace.tolerance.get()
    assert clock.now() >= 30 * 60


# --------------------------------------------------------------------------- golden frames


def _scripted_rtu_server(replies: dict[bytes, bytes]) -> tuple[str, threading.Thread]:
    """A TCP server that answers each known RTU request frame with a fixed reply."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.settimeout(2.0)
            buffer = b""
            while data := conn.recv(256):
                buffer += data
                for request, reply in replies.items():
                    if buffer.startswith(request):
                        conn.sendall(reply)
                        buffer = buffer[len(request) :]

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"socket://127.0.0.1:{server.getsockname()[1]}", thread


def test_golden_exception_02_frames_read_as_absent_registers():
    # Modbus RTU, unit 1, function 03: request register 122 (00 7A) and 107 (00 6B);
    # the reply 01 83 02 C0 F1 is exception 02, illegal data address (CRC low byte first).
    url, thread = _scripted_rtu_server({
        bytes.fromhex("01 03 00 7A 00 01 A5 D3"): bytes.fromhex("01 83 02 C0 F1"),
        bytes.fromhex("01 03 00 6B 00 01 F5 D6"): bytes.fromhex("01 83 02 C0 F1"),
    })  # fmt: skip
    with Eurotherm(url, io_timeout=0.5, retries=0, name="golden") as tc:
        ident = tc.identify()
    thread.join(3)
    assert ident["type"] == ident["version"] == "unknown"
    assert tc.lacks == ["instrument type (register 122)", "firmware version (register 107)"]
