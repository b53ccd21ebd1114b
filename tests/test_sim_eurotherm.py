"""The Eurotherm emulator, seen by third-party clients on the real wire, and its furnace.

Clients here are minimalmodbus, pymodbus and raw sockets with byte frames from the
Modbus specification, so the emulator cannot agree with our own driver on a mistake.
"""

from __future__ import annotations

import itertools
import socket
import struct

import minimalmodbus
import pytest
from pydantic import ValidationError
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from athanor.clock import ManualClock
from athanor.config_files import ConfigError, ConfigSource
from athanor.simulators.eurotherm import EurothermEmulator, EurothermSimSettings, ModbusLine

QUIET = {"pv_noise_c": 0.0, "ambient_c": 22.0}


def start(loop, connection, clock, model="eurotherm3216", unit=1, **settings):
    emulator = EurothermEmulator("furnace", model, unit, connection, clock, settings or QUIET)
    return emulator, loop.start(emulator)


def tcp_client(url: str, timeout: float = 1.0) -> ModbusTcpClient:
    host, port = url.split("//")[1].split(":")
    client = ModbusTcpClient(host, port=int(port), timeout=timeout, retries=0)
    client.connect()
    return client


def exchange(url: str, request: bytes, timeout: float = 0.5) -> bytes:
    """Send raw bytes, return what comes back before ``timeout`` (b"" for silence)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(256):
                data += chunk
                sock.settimeout(0.05)
        except TimeoutError:
            pass
        return data


# --------------------------------------------------------------------------- third-party clients


def test_minimalmodbus_reads_pv_and_sees_the_working_setpoint_ramp(loop, clock):
    _, path = start(loop, "pty://", clock)
    tc = minimalmodbus.Instrument(path, 1)
    tc.serial.timeout = 1.0
    try:
        assert tc.read_register(525) == 1  # one decimal place
        assert tc.read_register(1, number_of_decimals=1) == pytest.approx(22.0)
        tc.write_register(35, 10.0, number_of_decimals=1)  # SP.RAT 10 °C/min (3216: per minute)
        tc.write_register(2, 500.0, number_of_decimals=1)  # TG.SP
        clock.advance(600)
        assert tc.read_register(5, number_of_decimals=1) == pytest.approx(122.0)  # 22 + 10 * 10
        clock.advance(3600)
        assert tc.read_register(5, number_of_decimals=1) == pytest.approx(500.0)
        assert tc.read_register(1, number_of_decimals=1) == pytest.approx(500.0, abs=3)
    finally:
        tc.serial.close()


def test_2416_ramp_units_are_its_own(loop, clock):
    _emulator, url = start(loop, "modbus-tcp://127.0.0.1:0", clock, model="eurotherm2416")
    client = tcp_client(url)
    client.write_register(531, 1, device_id=1)  # 2416: 1 = per minute
    client.write_register(35, 60, device_id=1)  # 6.0 °C/min
    client.write_register(2, 3000, device_id=1)
    clock.advance(300)
    assert client.read_holding_registers(5, count=1, device_id=1).registers == [220 + 300]
    client.close()


def test_float_registers_hold_full_resolution_ieee754(loop, clock):
    _, url = start(loop, "modbus-tcp://127.0.0.1:0", clock, pv_noise_c=0.2)
    client = tcp_client(url)
    clock.advance(5)
    (raw,) = client.read_holding_registers(1, count=1, device_id=1).registers
    high, low = client.read_holding_registers(0x8000 + 2, count=2, device_id=1).registers
    value = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    assert value == pytest.approx(raw / 10, abs=0.051)
    high, low = client.read_holding_registers(0x8000 + 2 * 8, count=2, device_id=1).registers
    assert struct.unpack(">i", struct.pack(">HH", high, low))[0] == 120_000  # Ti in ms
    client.close()


# --------------------------------------------------------------------------- golden frames


def test_rtu_golden_frames_over_socket(loop, clock):
    _, url = start(loop, "socket://127.0.0.1:0", clock)
    # Read holding register 1 (PV) of unit 1; 22.0 °C reads 220 = 0x00DC.
    assert exchange(url, bytes.fromhex("01 03 00 01 00 01 D5 CA")) == bytes.fromhex(
        "01 03 02 00 DC B9 DD"
    )
    # Write TG.SP = 3276.7 °C: outside SP.LO..SP.HI -> exception 03, value kept.
    assert exchange(url, bytes.fromhex("01 06 00 02 7F FF 48 7A")) == bytes.fromhex(
        "01 86 03 02 61"
    )
    # Register 1000 does not exist -> exception 02.
    assert exchange(url, bytes.fromhex("01 03 03 E8 00 01 04 7A")) == bytes.fromhex(
        "01 83 02 C0 F1"
    )
    # Unit 2 is not on this line: an RTU device that is not addressed stays silent.
    assert exchange(url, bytes.fromhex("02 03 00 01 00 01 D5 F9")) == b""
    # A frame with a broken CRC is ignored, as on a real line.
    assert exchange(url, bytes.fromhex("01 03 00 01 00 01 D5 CB")) == b""


def test_modbus_tcp_golden_frames(loop, clock):
    _, url = start(loop, "modbus-tcp://127.0.0.1:0", clock)
    request = bytes.fromhex("00 07 00 00 00 06 01 03 00 01 00 01")
    assert exchange(url, request) == bytes.fromhex("00 07 00 00 00 05 01 03 02 00 DC")
    # A gateway answers 0x0B for a unit behind it that does not respond.
    missing = bytes.fromhex("00 08 00 00 00 06 09 03 00 01 00 01")
    assert exchange(url, missing) == bytes.fromhex("00 08 00 00 00 03 09 83 0B")


def test_shared_rtu_line_answers_each_unit(loop, clock):
    a = EurothermEmulator("a", "eurotherm3216", 1, clock=clock, settings=QUIET)
    b = EurothermEmulator("b", "eurotherm2416", 2, clock=clock, settings=QUIET)
    url = loop.start(ModbusLine("socket://127.0.0.1:0", [a, b]))
    assert exchange(url, bytes.fromhex("01 03 00 01 00 01 D5 CA"))[:2] == b"\x01\x03"
    assert exchange(url, bytes.fromhex("02 03 00 01 00 01 D5 F9"))[:2] == b"\x02\x03"
    assert (a.requests, b.requests) == (1, 1)


# --------------------------------------------------------------------------- writes


def test_writes_outside_limits_or_read_only_get_exception_03_and_keep_the_value(loop, clock):
    emulator, url = start(loop, "modbus-tcp://127.0.0.1:0", clock)
    client = tcp_client(url)
    assert client.write_register(2, 8000, device_id=1).isError() is False  # 800.0 °C
    for address, value in [(2, 12500), (2, (-100) & 0xFFFF), (30, 1200), (1, 5), (199, 7)]:
        reply = client.write_register(address, value, device_id=1)
        assert reply.isError() and reply.exception_code == 3, (address, value)
    assert client.read_holding_registers(2, count=1, device_id=1).registers == [8000]
    assert client.read_holding_registers(7, count=1, device_id=1).exception_code == 2
    assert client.read_holding_registers(34, count=1, device_id=1).exception_code == 2  # 2416 only
    assert emulator.eeprom_writes["TG.SP"] == 1
    client.close()


def test_standby_turns_the_heater_off(loop, clock):
    emulator, url = start(loop, "modbus-tcp://127.0.0.1:0", clock)
    client = tcp_client(url)
    client.write_register(2, 6000, device_id=1)
    clock.advance(600)
    assert client.read_holding_registers(4, count=1, device_id=1).registers[0] > 0
    client.write_register(199, 2, device_id=1)
    clock.advance(10)
    assert client.read_holding_registers(4, count=1, device_id=1).registers == [0]
    t_then = emulator.thermal.sample_temperature()
    clock.advance(1800)
    assert emulator.thermal.sample_temperature() < t_then
    client.close()


def test_3216_programmer_runs_a_profile_from_its_triplets(loop, clock):
    _emulator, url = start(loop, "modbus-tcp://127.0.0.1:0", clock)
    client = tcp_client(url)
    client.write_register(321, 1, device_id=1)  # dwell in minutes
    # (dwell, setpoint, ramp): ramp to 300.0 at 10.0 °C/min, dwell 30 min
    client.write_registers(1280, [30, 3000, 100], device_id=1)
    client.write_register(23, 1, device_id=1)  # run
    assert client.read_holding_registers(23, count=1, device_id=1).registers == [1]
    clock.advance(1800)
    assert client.read_holding_registers(5, count=1, device_id=1).registers == [3000]
    clock.advance(1800)
    assert client.read_holding_registers(23, count=1, device_id=1).registers == [3]  # end
    assert client.read_holding_registers(75, count=1, device_id=1).registers[0] >> 9 & 1
    client.close()


# --------------------------------------------------------------------------- faults


def test_faults_show_what_a_real_instrument_shows(loop, clock):
    emulator, url = start(loop, "modbus-tcp://127.0.0.1:0", clock)
    client = tcp_client(url, timeout=0.2)

    def read(address=1):
        return client.read_holding_registers(address, count=1, device_id=1)

    emulator.faults.sensor_break = True
    assert read().registers == [13720]  # upscale: the input range high
    assert read(75).registers[0] & (1 << 5) and read(258).registers == [1]
    emulator.faults.sensor_break = False
    emulator.faults.over_range = True
    assert read(75).registers[0] & (1 << 10)
    emulator.faults.over_range = False
    assert read(75).registers[0] & (1 << 12)  # the new alarm stays until acknowledged
    client.write_register(274, 1, device_id=1)
    assert read(75).registers == [0]

    emulator.faults.exception_code = 4
    assert read().exception_code == 4
    emulator.faults.exception_code = None

    emulator.faults.no_reply = True
    with pytest.raises(ModbusIOException):
        read()
    emulator.faults.no_reply = False

    emulator.faults.late_reply_s = 0.5
    with pytest.raises(ModbusIOException):
        read()
    emulator.faults.late_reply_s = 0
    client.close()

    emulator.faults.garbage = True
    reply = exchange(url, bytes.fromhex("00 07 00 00 00 06 01 03 00 01 00 01"))
    assert reply and reply[2:4] != b"\x00\x00"  # bytes arrive, but not a Modbus TCP frame
    emulator.faults.garbage = False

    emulator.faults.drop_connection = True
    assert exchange(url, bytes.fromhex("00 07 00 00 00 06 01 03 00 01 00 01")) == b""
    emulator.faults.drop_connection = False


def test_faults_can_be_set_from_settings(loop, clock):
    emulator, url = start(
        loop, "socket://127.0.0.1:0", clock, **QUIET, faults={"exception_code": 6}
    )
    assert exchange(url, bytes.fromhex("01 03 00 01 00 01 D5 CA"))[:3] == b"\x01\x83\x06"
    emulator.faults.exception_code = None
    assert exchange(url, bytes.fromhex("01 03 00 01 00 01 D5 CA"))[:2] == b"\x01\x03"


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"heater_power_w": -5}, ["heater_power_w", "greater than 0"]),
        ({"sp_high_c": 1300}, ["sp_high_c", "element_limit_c"]),
        ({"sp_high_c": 1500}, ["sp_high_c", "input range"]),
        ({"step_s": 30}, ["step_s", "time constant"]),
        ({"faults": {"exception_code": 99}}, ["exception_code"]),
        ({"heater_power": 5}, ["heater_power"]),
    ],
)
def test_impossible_settings_are_clear_errors(settings, words):
    with pytest.raises(ValidationError) as info:
        EurothermSimSettings.model_validate(settings)
    for word in words:
        assert word in str(info.value)


def test_settings_errors_in_a_lab_yaml_name_the_line():
    text = "instruments:\n  furnace1:\n    sim:\n      emissivity: 2\n"
    source = ConfigSource.parse(text, "lab.yaml")
    with pytest.raises(ConfigError, match=r"lab.yaml:4: .*emissivity"):
        source.validate(EurothermSimSettings, ("instruments", "furnace1", "sim"))


def test_unknown_connection_is_refused(clock):
    with pytest.raises(ValueError, match="modbus-tcp://HOST:PORT"):
        ModbusLine("tcp://127.0.0.1:0", [EurothermEmulator("f", clock=clock)])


# --------------------------------------------------------------------------- thermal model


def test_pid_overshoots_a_step_then_settles(clock):
    emulator = EurothermEmulator("f", clock=clock, settings=QUIET)
    model = emulator.thermal
    model.target_sp = 500.0
    peak = 0.0
    for _ in range(360):
        clock.advance(10)
        peak = max(peak, model.sample_temperature())
    assert 501.0 < peak < 540.0
    assert model.pv == pytest.approx(500.0, abs=0.5)


def test_pv_follows_a_ramp_and_the_furnace_cools_when_off(clock):
    model = EurothermEmulator("f", clock=clock, settings=QUIET).thermal
    model.ramp_rate, model.target_sp = 10 / 60, 800.0
    clock.advance(1800)  # working SP at 22 + 300 °C
    model.update()
    assert model.working_sp == pytest.approx(322.0)
    assert model.pv == pytest.approx(322.0, abs=8)
    model.set_mode("standby")
    temps = []
    for _ in range(6):
        clock.advance(1800)
        temps.append(model.sample_temperature())
    assert all(a > b for a, b in itertools.pairwise(temps))
    assert temps[-1] > 22.0


def test_history_covers_the_window_and_is_repeatable(clock):
    runs = []
    for _ in range(2):
        c = ManualClock()
        emulator = EurothermEmulator("f", clock=c, settings={"seed": 3})
        emulator.thermal.target_sp = 400.0
        c.advance(3600)
        runs.append(emulator.history(60, 600))
        times, temps = runs[-1]
        assert times[0] == 60 and times[-1] == 600
        assert all(b - a <= 10 for a, b in itertools.pairwise(times))
        assert temps[-1] > temps[0] > 22
        assert emulator.history(0, c.now())[0][-1] == c.now()
    assert runs[0] == runs[1]
