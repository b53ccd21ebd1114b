"""The Aeris driver against the emulator on a loopback port, and the pattern file parsers."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest

from athanor.clock import ScaledClock
from athanor.drivers.aeris import Aeris
from athanor.drivers.errors import (
    ConnectionLost,
    InstrumentFault,
    InstrumentTimeout,
    ProtocolError,
)
from athanor.drivers.xrdml import PatternFileError, read_pattern, read_xrdml, read_xy
from athanor.simulators.aeris import AerisEmulator
from athanor.simulators.world import FixedTruth, PhaseState

PROGRAM = "20-60_2-minutes"


TRUTH = FixedTruth(PhaseState({"BaTiO3": 1.0}))


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(time_scale=1e5)  # a 2-minute scan takes about a millisecond


@pytest.fixture
def emulator(loop, clock, tmp_path):
    emulator = AerisEmulator(tmp_path / "exchange", TRUTH, clock)
    emulator.url = loop.start(emulator)
    yield emulator
    loop.call(emulator.stop())


@pytest.fixture
def aeris(emulator) -> Aeris:
    return Aeris(emulator.url, emulator.exchange_dir, io_timeout=0.5)


def test_full_cycle_add_measure_wait_remove(aeris, clock):
    assert aeris.status().system == "remote"
    assert aeris.is_ready()
    aeris.add("S-1", 1, PROGRAM)
    aeris.add("S-1", 1, PROGRAM)  # repeating is safe
    assert aeris.slot_state(1) == "occupied"
    aeris.measure("S-1", PROGRAM)
    pattern = aeris.wait_for_pattern("S-1", timeout_lab_s=3600, clock=clock)
    assert pattern.two_theta[0] == 20 and pattern.two_theta[-1] == 60
    assert pattern.counts.shape == pattern.two_theta.shape
    assert pattern.counting_time * pattern.counts.size == pytest.approx(120, rel=1e-3)
    assert pattern.metadata["sample_id"] == "S-1"
    near_101 = np.abs(pattern.two_theta - 31.5) < 0.1
    assert pattern.counts[near_101].max() > 10 * np.median(pattern.counts)
    assert aeris.is_ready()
    xy = read_xy(aeris.exchange_dir / "S-1.xy")
    assert np.array_equal(xy.counts, pattern.counts)
    aeris.remove("S-1")
    assert aeris.slot_state(1) == "free"


def test_fatal_reply_is_an_instrument_fault_with_the_reason(aeris, emulator):
    with pytest.raises(InstrumentFault) as caught:
        aeris.measure("never-added", PROGRAM)
    assert "ADD it first" in caught.value.reason
    emulator.faults.fatal = "door open"
    with pytest.raises(InstrumentFault) as caught:
        aeris.add("S-2", 2, PROGRAM)
    assert caught.value.reason == "door open"


def test_busy_instrument_is_not_ready_and_refuses_a_measurement(aeris, emulator):
    aeris.add("S-3", 3, PROGRAM)
    emulator.faults.busy = True
    assert not aeris.is_ready()
    with pytest.raises(InstrumentFault, match="busy"):
        aeris.measure("S-3", PROGRAM)


def test_no_reply_is_a_timeout(aeris, emulator):
    emulator.faults.no_reply = True
    with pytest.raises(InstrumentTimeout, match="no reply"):
        aeris.is_ready()


def test_dropped_connection_is_connection_lost(aeris, emulator):
    emulator.faults.drop_connection = True
    with pytest.raises(ConnectionLost, match="without replying"):
        aeris.slot_state(1)


def test_nobody_listening_is_connection_lost(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionLost):
        Aeris(f"tcp://127.0.0.1:{port}", tmp_path, io_timeout=0.5).is_ready()


def test_missing_file_is_a_timeout_in_lab_time(aeris, emulator, clock):
    emulator.faults.no_file = True
    aeris.add("S-4", 4, PROGRAM)
    aeris.measure("S-4", PROGRAM)
    with pytest.raises(InstrumentTimeout, match=r"S-4\.xrdml within 600 lab s"):
        aeris.wait_for_pattern("S-4", timeout_lab_s=600, clock=clock)


def test_truncated_file_is_a_clear_error(aeris, emulator, clock):
    emulator.faults.truncated_file = True
    aeris.add("S-5", 5, PROGRAM)
    aeris.measure("S-5", PROGRAM)
    with pytest.raises(PatternFileError, match=r"S-5.xrdml: not well-formed XML.*truncated"):
        aeris.wait_for_pattern("S-5", timeout_lab_s=3600, clock=clock)


def test_a_stale_file_from_an_earlier_scan_is_not_taken(aeris, emulator, clock):
    stale = emulator.exchange_dir / "S-6.xrdml"
    stale.write_text(GOLDEN_NEW)
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    emulator.faults.no_file = True
    aeris.add("S-6", 6, PROGRAM)
    aeris.measure("S-6", PROGRAM)
    with pytest.raises(InstrumentTimeout):
        aeris.wait_for_pattern("S-6", timeout_lab_s=600, clock=clock)


@pytest.mark.parametrize("bad", ["", "a@b", "../x", "S 1", "x=y"])
def test_bad_sample_ids_are_refused_before_the_wire(bad, tmp_path):
    aeris = Aeris("tcp://127.0.0.1:9", tmp_path)  # nothing listens: the wire is never used
    with pytest.raises(ValueError, match="sample_id"):
        aeris.add(bad, 1, PROGRAM)


def test_bad_connection_url_is_refused(tmp_path):
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        Aeris("socket://127.0.0.1:702", tmp_path)


def test_incomplete_reply_is_a_protocol_error(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        aeris = Aeris(f"tcp://127.0.0.1:{port}", tmp_path, io_timeout=2)

        def answer_badly():
            connection, _ = server.accept()
            connection.recv(1024)
            connection.sendall(b"@STATUS_REQUEST@UNIT=xrd@READY=y")
            connection.close()

        thread = threading.Thread(target=answer_badly)
        thread.start()
        with pytest.raises(ProtocolError, match="no @END"):
            aeris.is_ready()
        thread.join()


# ---------------------------------------------------------------- parsers, golden files

GOLDEN_NEW = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.1" status="Completed">
  <sample type="To be analyzed"><id>golden-2</id></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">1.5405980</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <startPosition>10.0000</startPosition>
          <endPosition>10.0400</endPosition>
        </positions>
        <positions axis="Omega" unit="deg">
          <startPosition>5.0000</startPosition>
          <endPosition>5.0200</endPosition>
        </positions>
        <commonCountingTime unit="seconds">0.50</commonCountingTime>
        <counts unit="counts">12 15 40 18 11</counts>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""

GOLDEN_OLD = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.0">
  <xrdMeasurement measurementType="Scan">
    <scan appendNumber="0" mode="Pre-set time" scanAxis="Gonio">
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <listPositions>20.00 20.02 20.04</listPositions>
        </positions>
        <commonCountingTime unit="seconds">1.0</commonCountingTime>
        <intensities unit="counts">100.0 250.5 99.0</intensities>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""


def test_golden_xrdml_with_counts(tmp_path):
    path = tmp_path / "golden-2.xrdml"
    path.write_text(GOLDEN_NEW)
    pattern = read_xrdml(path)
    assert np.allclose(pattern.two_theta, [10.0, 10.01, 10.02, 10.03, 10.04])
    assert list(pattern.counts) == [12, 15, 40, 18, 11]
    assert pattern.counting_time == 0.5
    assert pattern.metadata["kAlpha1"] == "1.5405980"
    assert pattern.metadata["sample_id"] == "golden-2"


def test_golden_xrdml_with_intensities_and_listed_positions(tmp_path):
    path = tmp_path / "old.xrdml"
    path.write_text(GOLDEN_OLD)
    pattern = read_pattern(path)
    assert list(pattern.two_theta) == [20.0, 20.02, 20.04]
    assert list(pattern.counts) == [100.0, 250.5, 99.0]
    assert pattern.metadata["intensity_element"] == "intensities"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOLDEN_NEW[: len(GOLDEN_NEW) // 2], "not well-formed XML"),
        ("", "empty"),
        (GOLDEN_NEW.replace("12 15 40 18 11", ""), "no data points"),
        (GOLDEN_NEW.replace("12 15 40", "12 x 40"), "not a number: 'x'"),
        (GOLDEN_NEW.replace('axis="2Theta"', 'axis="Chi"'), 'positions axis="2Theta"'),
        (GOLDEN_NEW.replace("counts unit", "foo unit").replace("</counts>", "</foo>"), "neither"),
        (GOLDEN_OLD.replace("20.04", ""), "2 2Theta positions but 3"),
        ("<html><body/></html>", "not <xrdMeasurements>"),
    ],
)
def test_bad_xrdml_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.xrdml"
    path.write_text(text)
    with pytest.raises(PatternFileError, match=r"bad\.xrdml") as caught:
        read_xrdml(path)
    assert problem in caught.value.problem
    assert isinstance(caught.value, ValueError)


def test_xy_and_xye(tmp_path):
    xy = tmp_path / "a.xy"
    xy.write_text("# 2theta counts\n10.00 5\n10.02 7\n\n10.04 6\n")
    pattern = read_xy(xy)
    assert list(pattern.two_theta) == [10.0, 10.02, 10.04] and pattern.sigma is None
    xye = tmp_path / "a.xye"
    xye.write_text("Header from some program\n10.0 4 2.0\n10.1 9 3.0\n")
    pattern = read_pattern(xye)
    assert list(pattern.sigma) == [2.0, 3.0] and pattern.metadata["format"] == "xye"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0 5\n10.1 6\n10.2", "line 3 has 1 columns"),
        ("# nothing\n", "no data points"),
        ("10.0 5\n10.1 oops\n", "line 2 is not numbers"),
        ("10.1 5\n10.0 6\n", "not strictly increasing"),
        ("10.0 5 1 7\n", "4 columns"),
    ],
)
def test_bad_xy_names_the_file_line_and_problem(tmp_path, text, problem):
    path = tmp_path / "bad.xy"
    path.write_text(text)
    with pytest.raises(PatternFileError, match=f"bad.xy: .*{problem}"):
        read_xy(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(PatternFileError, match="no such file"):
        read_xrdml(tmp_path / "gone.xrdml")
    with pytest.raises(PatternFileError, match="unknown pattern format"):
        read_pattern(tmp_path / "x.raw")


def test_measuring_a_sample_again_waits_for_the_new_pattern(aeris, clock):
    slow = "10-100_30-minutes"  # 18 ms of wall time here: the old file is there meanwhile
    for _ in range(2):  # the second scan must not be answered by the first one's file
        aeris.add("S-8", 1, slow)
        aeris.measure("S-8", slow)
        aeris.wait_for_pattern("S-8", timeout_lab_s=3600, clock=clock)
        aeris.remove("S-8")  # refused while the instrument is still measuring
