"""The Aeris driver against instrument variants the documented facts leave open.

Each variant is played by the emulator (``AerisSimSettings``, ``AerisFaults``) on a
loopback port: repeated ADD answered ``already known``, replies lost after the command was
carried out, busy for a while after the pattern file is written, program names that do not
encode a 2θ range. Golden frames from ``reference/instruments.md`` pin the wire format on
the driver's side, so driver and emulator cannot agree on a mistake.
"""

from __future__ import annotations

import socket
import threading

import pytest

from athanor.clock import ScaledClock
from athanor.config_files import ConfigError, ConfigSource
from athanor.drivers.aeris import Aeris, AerisStatus, PatternRangeError, program_range
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout
from athanor.simulators.aeris import AerisEmulator, AerisSimSettings
from athanor.simulators.world import FixedTruth, PhaseState

TRUTH = FixedTruth(PhaseState({"BaTiO3": 1.0}))
QUICK = "20-60_2-minutes"

# instruments.md, Diffractometer: ASCII over TCP, port 702, one message per connection.
GOLDEN_EXCHANGE = [
    (
        "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,1@END",
        "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,1@normal@END",
    ),
    (
        "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=10-100_8-minutes@END",
        "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=10-100_8-minutes@normal@END",
    ),
    ("@STATUS_REQUEST@UNIT=xrd@END", "@STATUS_REQUEST@UNIT=xrd@READY=no@normal@END"),
    ("@STATUS_REQUEST@SYSTEM@END", "@STATUS_REQUEST@SYSTEM@SYSTEM=remote@normal@END"),
    (
        "@STATUS_REQUEST@LOCATION=0,1@END",
        "@STATUS_REQUEST@LOCATION=0,1@STATE=occupied@normal@END",
    ),
    (
        "@SAMPLE@MOVE@SAMPLE_ID=S1@AT=0,1@TO=0,2@END",
        "@SAMPLE@MOVE@SAMPLE_ID=S1@AT=0,1@TO=0,2@normal@END",
    ),
    ("@SAMPLE@REMOVE@SAMPLE_ID=S1@END", "@SAMPLE@REMOVE@SAMPLE_ID=S1@normal@END"),
]

# An .xrdml from a 10-10.04° scan: the stale or wrong file for any program below.
WRONG_RANGE = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.1" status="Completed">
  <sample type="To be analyzed"><id>S1</id></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <startPosition>10.0000</startPosition>
          <endPosition>10.0400</endPosition>
        </positions>
        <commonCountingTime unit="seconds">0.50</commonCountingTime>
        <counts unit="counts">12 15 40 18 11</counts>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""


@pytest.fixture
def serve(loop, tmp_path):
    """Start an emulator with the given clock and settings; returns it and a driver."""
    started = []

    def start(clock, **settings) -> tuple[AerisEmulator, Aeris]:
        emulator = AerisEmulator(tmp_path / "exchange", TRUTH, clock, AerisSimSettings(**settings))
        url = loop.start(emulator)
        started.append(emulator)
        return emulator, Aeris(url, emulator.exchange_dir, io_timeout=2.0)

    yield start
    for emulator in started:
        loop.call(emulator.stop())


def scripted(replies: list[str]) -> tuple[str, list[str]]:
    """A server that answers one message per connection from ``replies`` and records them."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[str] = []

    def run() -> None:
        with server:
            for reply in replies:
                connection, _ = server.accept()
                with connection:
                    data = b""
                    while not data.endswith(b"@END"):
                        data += connection.recv(4096)
                    received.append(data.decode("ascii"))
                    connection.sendall(reply.encode("ascii"))

    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}", received


def test_the_driver_sends_the_documented_frames_and_reads_the_documented_replies(tmp_path):
    url, received = scripted([reply for _, reply in GOLDEN_EXCHANGE])
    aeris = Aeris(url, tmp_path, io_timeout=2.0)
    aeris.add("S1", 1, "10-100_8-minutes")
    aeris.measure("S1", "10-100_8-minutes")
    assert aeris.status() == AerisStatus(ready=False, system="remote")
    assert aeris.slot_state(1) == "occupied"
    aeris.move("S1", 1, 2)
    aeris.remove("S1")
    assert received == [request for request, _ in GOLDEN_EXCHANGE]


def test_program_names_give_their_range_and_site_names_give_none():
    assert program_range("10-100_8-minutes") == (10.0, 100.0)
    assert program_range("10-140_2-min") == (10.0, 140.0)
    assert program_range("5.5-80_30-seconds") == (5.5, 80.0)
    assert program_range("phase-id-fast") is None


# ---------------------------------------------------------------- ADD


@pytest.mark.parametrize("repeat_add", ["normal", "already_known"])
def test_add_is_safe_to_repeat_after_a_lost_reply(serve, clock, repeat_add):
    emulator, aeris = serve(clock, repeat_add=repeat_add)
    emulator.faults.lose_replies = {"ADD": 1}
    aeris.add("S1", 1, QUICK)  # carried out, reply lost, sent again
    aeris.add("S1", 1, QUICK)  # and repeated by the caller
    assert emulator.slots == {1: "S1"}
    assert aeris.slot_state(1) == "occupied"


def test_already_known_is_not_taken_for_success_elsewhere(serve, clock):
    emulator, aeris = serve(clock, repeat_add="already_known")
    aeris.add("S1", 1, QUICK)
    with pytest.raises(InstrumentFault, match="already at 0,1"):
        aeris.add("S1", 2, QUICK)  # the instrument has it, but not at slot 2
    with pytest.raises(InstrumentFault, match="occupied by sample S1"):
        aeris.add("S2", 1, QUICK)
    assert emulator.slots == {1: "S1"}


# ---------------------------------------------------------------- MEASURE


def test_a_lost_measure_reply_during_the_scan_starts_no_second_scan(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    emulator.faults.lose_replies = {"MEASURE": 1}
    aeris.measure("S1", QUICK)
    aeris.measure("S1", QUICK)  # a repeat while it scans
    clock.advance(120)
    assert aeris.is_ready()
    pattern = aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert (pattern.two_theta[0], pattern.two_theta[-1]) == (20, 60)
    assert emulator.scans == ["S1"]


def test_a_lost_measure_reply_after_the_scan_ended_starts_no_second_scan(serve):
    clock = ScaledClock(1e9)  # the 2-minute scan is over before the driver can look
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    emulator.faults.lose_replies = {"MEASURE": 1}
    aeris.measure("S1", QUICK)
    pattern = aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert (pattern.two_theta[0], pattern.two_theta[-1]) == (20, 60)
    assert emulator.scans == ["S1"]


def test_measure_repeated_after_it_failed_finds_the_scan_it_started(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    emulator.faults.lose_replies = {"MEASURE": 1, "STATUS_REQUEST": 2}
    with pytest.raises(ConnectionLost):
        aeris.measure("S1", QUICK)  # the reply and both checks after it were lost
    aeris.measure("S1", QUICK)
    clock.advance(120)
    assert aeris.is_ready()
    aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert emulator.scans == ["S1"]


def test_measuring_again_after_the_pattern_was_collected_is_a_new_scan(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    for _ in range(2):
        aeris.measure("S1", QUICK)
        clock.advance(120)
        assert aeris.is_ready()
        aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert emulator.scans == ["S1", "S1"]


def test_a_refused_measure_is_a_fault(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    emulator.faults.busy = True
    with pytest.raises(InstrumentFault, match="busy"):
        aeris.measure("S1", QUICK)
    assert emulator.scans == []


# ---------------------------------------------------------------- REMOVE, MOVE


def test_remove_is_safe_to_repeat_after_a_lost_reply(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 2, QUICK)
    emulator.faults.lose_replies = {"REMOVE": 1}
    aeris.remove("S1")
    aeris.remove("S1")
    assert emulator.slots == {}


def test_remove_of_a_sample_the_driver_did_not_place_is_a_fault(serve, clock):
    _, aeris = serve(clock)
    with pytest.raises(InstrumentFault, match="not on the instrument"):
        aeris.remove("S9")


def test_move_is_safe_to_repeat_after_a_lost_reply(serve, clock):
    emulator, aeris = serve(clock)
    aeris.add("S1", 1, QUICK)
    emulator.faults.lose_replies = {"MOVE": 1}
    aeris.move("S1", 1, 4)
    aeris.move("S1", 1, 4)
    assert emulator.slots == {4: "S1"}
    with pytest.raises(InstrumentFault, match="0,2 is empty"):
        aeris.move("S1", 2, 5)  # nothing at 2, and 5 is free: not done before


@pytest.mark.parametrize("query", ["is_ready", "status", "slot_state"])
def test_status_queries_survive_a_lost_reply(serve, clock, query):
    emulator, aeris = serve(clock)
    emulator.faults.lose_replies = {"STATUS_REQUEST": 1}
    answer = aeris.slot_state(3) if query == "slot_state" else getattr(aeris, query)()
    assert answer in (True, "free", AerisStatus(ready=True, system="remote"))
    assert emulator.faults.lose_replies == {"STATUS_REQUEST": 0}


# ---------------------------------------------------------------- busy after the file


def test_the_pattern_is_returned_once_the_instrument_is_ready_so_remove_works(serve, clock):
    emulator, aeris = serve(clock, busy_after_file_s=600)
    aeris.add("S1", 1, QUICK)
    aeris.measure("S1", QUICK)
    clock.advance(120)
    assert not aeris.is_ready()
    assert aeris.pattern_path("S1").exists()
    with pytest.raises(InstrumentFault, match="being measured"):
        aeris.remove("S1")  # the file is there, but the instrument still holds it
    aeris.wait_for_pattern("S1", timeout_lab_s=3600, clock=clock)
    assert clock.now() >= 720
    aeris.remove("S1")
    assert emulator.slots == {}


def test_an_instrument_that_stays_busy_after_the_file_times_out_in_lab_time(serve, clock):
    _, aeris = serve(clock, busy_after_file_s=7200)
    aeris.add("S1", 1, QUICK)
    aeris.measure("S1", QUICK)
    clock.advance(120)
    assert not aeris.is_ready()
    with pytest.raises(InstrumentTimeout, match="still reports READY=no after 600 lab s"):
        aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)


# ---------------------------------------------------------------- 2θ range


def test_a_pattern_with_another_range_is_refused_naming_sample_and_ranges(serve, clock):
    emulator, aeris = serve(clock)
    emulator.faults.no_file = True
    aeris.add("S1", 1, QUICK)
    aeris.measure("S1", QUICK)
    clock.advance(120)
    assert aeris.is_ready()
    aeris.pattern_path("S1").write_text(WRONG_RANGE)  # someone else's file, written now
    with pytest.raises(PatternRangeError) as refused:
        aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    error = refused.value
    assert (error.sample_id, error.program) == ("S1", QUICK)
    assert (error.expected, error.found) == ((20, 60), (10, 10.04))
    assert "sample S1" in str(error) and "10–10.04°" in str(error) and "20–60°" in str(error)
    emulator.faults.no_file = False
    aeris.measure("S1", QUICK)  # the wrong file does not count as this scan's
    clock.advance(120)
    assert aeris.is_ready()
    pattern = aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert (pattern.two_theta[0], pattern.two_theta[-1]) == (20, 60)
    assert emulator.scans == ["S1", "S1"]


def test_a_program_whose_name_has_no_range_is_not_range_checked(serve, clock):
    _, aeris = serve(clock, named_programs={"phase-id-fast": QUICK})
    aeris.add("S1", 1, "phase-id-fast")
    aeris.measure("S1", "phase-id-fast")
    clock.advance(120)
    assert aeris.is_ready()
    pattern = aeris.wait_for_pattern("S1", timeout_lab_s=600, clock=clock)
    assert (pattern.two_theta[0], pattern.two_theta[-1]) == (20, 60)


# ---------------------------------------------------------------- the lab YAML


def test_the_variants_come_from_the_lab_yaml_sim_block():
    source = ConfigSource.parse(
        "xrd:\n"
        "  sim:\n"
        "    repeat_add: already_known\n"
        "    busy_after_file_s: 30\n"
        "    named_programs: {phase-id-fast: 10-80_4-minutes}\n"
        "    faults: {lose_replies: {MEASURE: 1, STATUS_REQUEST: 2}}\n"
    )
    settings = source.validate(AerisSimSettings, ["xrd", "sim"])
    assert settings.repeat_add == "already_known" and settings.busy_after_file_s == 30
    assert settings.scan_program("phase-id-fast").end == 80
    assert settings.faults.lose_replies == {"MEASURE": 1, "STATUS_REQUEST": 2}
    assert AerisSimSettings().faults.lose_replies == {}
    assert AerisSimSettings().repeat_add == "normal"


@pytest.mark.parametrize(
    ("sim", "field"),
    [
        ("faults: {lose_replies: {FLY: 1}}", "xrd.sim.faults.lose_replies"),
        ("faults: {lose_replies: {ADD: -1}}", "xrd.sim.faults.lose_replies"),
        ("repeat_add: sometimes", "xrd.sim.repeat_add"),
        ("busy_after_file_s: -5", "xrd.sim.busy_after_file_s"),
        ("named_programs: {fast: quick}", "xrd.sim.named_programs"),
    ],
)
def test_bad_variant_settings_name_the_field(sim, field):
    source = ConfigSource.parse(f"xrd:\n  sim:\n    {sim}\n", "lab.yaml")
    with pytest.raises(ConfigError, match=rf"lab.yaml:3: {field}"):
        source.validate(AerisSimSettings, ["xrd", "sim"])
