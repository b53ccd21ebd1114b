"""The Aeris emulator spoken to over a plain socket, with the messages of instruments.md."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest

from athanor.config_files import ConfigError, ConfigSource
from athanor.simulators.aeris import AerisEmulator, AerisSimSettings
from athanor.simulators.world import FixedTruth, PhaseState

XRDML = "{http://www.xrdml.com/XRDMeasurement/2.1}"


TRUTH = FixedTruth(PhaseState({"BaTiO3": 0.8, "TiO2": 0.2}))


@pytest.fixture
def aeris(loop, clock, tmp_path):
    emulator = AerisEmulator(tmp_path / "exchange", TRUTH, clock)
    url = loop.start(emulator)
    emulator.url = url
    yield emulator
    loop.call(emulator.stop())


def send(url: str, message: str, timeout: float = 5.0, half_close: bool = False) -> str:
    """One message on one connection, the reply read until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout) as sock:
        sock.sendall(message.encode("ascii"))
        if half_close:  # nothing more will come: lets the server see an unframed message end
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode("ascii")


def wait_wall(condition, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_status_requests_answer_as_the_manual_says(aeris):
    reply = send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    assert reply == "@STATUS_REQUEST@UNIT=xrd@READY=yes@normal@END"
    reply = send(aeris.url, "@STATUS_REQUEST@SYSTEM@END")
    assert reply == "@STATUS_REQUEST@SYSTEM@SYSTEM=remote@normal@END"
    reply = send(aeris.url, "@STATUS_REQUEST@LOCATION=0,1@END")
    assert reply == "@STATUS_REQUEST@LOCATION=0,1@STATE=free@normal@END"


def test_add_occupies_the_slot_and_is_safe_to_repeat(aeris):
    add = "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,2@END"
    assert send(aeris.url, add) == add.removesuffix("@END") + "@normal@END"
    assert send(aeris.url, add).endswith("@normal@END")
    assert "STATE=occupied" in send(aeris.url, "@STATUS_REQUEST@LOCATION=0,2@END")
    other = send(aeris.url, "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S2@AT=0,2@END")
    assert "@fatal@REASON=location 0,2 is occupied by sample S1" in other


def test_measurement_is_busy_for_the_program_time_then_writes_the_files(aeris, clock):
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,1@END")
    reply = send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=10-100_8-minutes@END")
    assert reply.endswith("@normal@END")
    clock.advance(479.0)
    assert "READY=no" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    assert not (aeris.exchange_dir / "S1.xrdml").exists()
    second = send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=10-100_8-minutes@END")
    assert "fatal@REASON=instrument busy" in second
    assert "is being measured" in send(aeris.url, "@SAMPLE@REMOVE@SAMPLE_ID=S1@END")
    clock.advance(1.0)
    assert "READY=yes" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    root = ET.parse(aeris.exchange_dir / "S1.xrdml").getroot()
    points = root.find(f"{XRDML}xrdMeasurement/{XRDML}scan/{XRDML}dataPoints")
    axis = points.find(f"{XRDML}positions[@axis='2Theta']")
    assert float(axis.find(f"{XRDML}startPosition").text) == 10.0
    assert float(axis.find(f"{XRDML}endPosition").text) == 100.0
    counts = points.find(f"{XRDML}counts").text.split()
    assert len(counts) == 9001
    assert float(points.find(f"{XRDML}commonCountingTime").text) * 9001 == pytest.approx(480, 1e-3)
    rows = (aeris.exchange_dir / "S1.xy").read_text().splitlines()
    assert len(rows) == 9001 and rows[0].split()[1] == counts[0]
    assert send(aeris.url, "@SAMPLE@REMOVE@SAMPLE_ID=S1@END").endswith("@normal@END")
    assert "STATE=free" in send(aeris.url, "@STATUS_REQUEST@LOCATION=0,1@END")


def test_the_pattern_appears_without_anyone_asking(aeris, clock):
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=20-60_2-minutes@SAMPLE_ID=S3@AT=0,3@END")
    send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S3@APPLICATION=20-60_2-minutes@END")
    clock.advance(120.0)
    assert wait_wall((aeris.exchange_dir / "S3.xrdml").exists)


def test_move_takes_the_sample_to_another_slot(aeris):
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,1@END")
    assert send(aeris.url, "@SAMPLE@MOVE@SAMPLE_ID@AT=0,1@TO=0,4@END").endswith("@normal@END")
    assert "STATE=free" in send(aeris.url, "@STATUS_REQUEST@LOCATION=0,1@END")
    assert "STATE=occupied" in send(aeris.url, "@STATUS_REQUEST@LOCATION=0,4@END")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("@SAMPLE@MEASURE@SAMPLE_ID=nobody@APPLICATION=10-100_8-minutes@END", "ADD it first"),
        ("@SAMPLE@ADD@APPLICATION=1-2_3-days@SAMPLE_ID=S1@AT=0,1@END", "unknown application"),
        ("@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,99@END", "slot 1-6"),
        ("@SAMPLE@REMOVE@SAMPLE_ID=nobody@END", "not on the instrument"),
        ("@STATUS_REQUEST@UNIT=xrd", "framed"),
        ("@HELLO@END", "unknown command"),
    ],
)
def test_refusals_are_fatal_with_a_reason(aeris, message, reason):
    reply = send(aeris.url, message, half_close=True)
    assert "@fatal@REASON=" in reply and reason in reply and reply.endswith("@END")


def test_busy_fault_reports_not_ready_and_refuses_work(aeris):
    aeris.faults.busy = True
    assert "READY=no" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    reply = send(aeris.url, "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,1@END")
    assert "fatal@REASON=instrument busy" in reply
    aeris.faults.busy = False
    assert "READY=yes" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")


def test_fatal_fault_refuses_every_sample_command_with_its_reason(aeris):
    aeris.faults.fatal = "door open"
    reply = send(aeris.url, "@SAMPLE@REMOVE@SAMPLE_ID=S1@END")
    assert reply.endswith("@fatal@REASON=door open@END")


def test_no_reply_fault_leaves_the_client_waiting(aeris):
    aeris.faults.no_reply = True
    with pytest.raises(TimeoutError):
        send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END", timeout=0.3)


def test_dropped_connection_fault_closes_without_a_reply(aeris):
    aeris.faults.drop_connection = True
    assert send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END") == ""


@pytest.mark.parametrize("fault", ["no_file", "truncated_file"])
def test_file_faults(aeris, clock, fault):
    setattr(aeris.faults, fault, True)
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=20-60_2-minutes@SAMPLE_ID=S5@AT=0,5@END")
    send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S5@APPLICATION=20-60_2-minutes@END")
    clock.advance(120.0)
    assert "READY=yes" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    path = aeris.exchange_dir / "S5.xrdml"
    if fault == "no_file":
        assert not path.exists()
    else:
        with pytest.raises(ET.ParseError):
            ET.parse(path)


def test_settings_come_from_the_lab_yaml_sim_block():
    source = ConfigSource.parse(
        "xrd:\n  sim:\n    seed: 4\n    programs: [10-80_4-minutes]\n    faults: {busy: true}\n"
    )
    settings = source.validate(AerisSimSettings, ["xrd", "sim"])
    assert settings.seed == 4 and settings.faults.busy
    bad = ConfigSource.parse("xrd:\n  sim:\n    programs: [ten-to-eighty]\n", "lab.yaml")
    with pytest.raises(ConfigError, match=r"lab.yaml:3: xrd.sim.programs.*ten-to-eighty"):
        bad.validate(AerisSimSettings, ["xrd", "sim"])
    with pytest.raises(ConfigError, match=r"xrd\.sim\.faults\.reply_delay"):
        ConfigSource.parse("xrd:\n  sim:\n    faults: {reply_delay: -1}\n").validate(
            AerisSimSettings, ["xrd", "sim"]
        )


def test_repeated_add_can_be_answered_already_known(aeris):
    aeris.settings.repeat_add = "already_known"
    add = "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,2@END"
    assert send(aeris.url, add).endswith("@normal@END")
    assert send(aeris.url, add) == (
        "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,2"
        "@fatal@REASON=sample S1 already known@END"
    )
    assert aeris.slots == {2: "S1"}


def test_a_lost_reply_is_carried_out_then_closed_unanswered(aeris):
    aeris.faults.lose_replies = {"ADD": 1}
    add = "@SAMPLE@ADD@APPLICATION=10-100_8-minutes@SAMPLE_ID=S1@AT=0,2@END"
    assert send(aeris.url, add) == ""
    assert "STATE=occupied" in send(aeris.url, "@STATUS_REQUEST@LOCATION=0,2@END")
    assert send(aeris.url, add).endswith("@normal@END")  # only the next one was lost
    assert aeris.faults.lose_replies == {"ADD": 0}


def test_busy_after_file_keeps_the_instrument_busy_with_the_pattern_written(aeris, clock):
    aeris.settings.busy_after_file_s = 60
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=20-60_2-minutes@SAMPLE_ID=S1@AT=0,1@END")
    send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=20-60_2-minutes@END")
    clock.advance(120.0)
    assert "READY=no" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    assert (aeris.exchange_dir / "S1.xrdml").exists()
    assert "is being measured" in send(aeris.url, "@SAMPLE@REMOVE@SAMPLE_ID=S1@END")
    clock.advance(60.0)
    assert "READY=yes" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    assert send(aeris.url, "@SAMPLE@REMOVE@SAMPLE_ID=S1@END").endswith("@normal@END")


def test_a_named_program_runs_the_scan_it_names(aeris, clock):
    aeris.settings.named_programs = {"phase-id-fast": "20-60_2-minutes"}
    send(aeris.url, "@SAMPLE@ADD@APPLICATION=phase-id-fast@SAMPLE_ID=S1@AT=0,1@END")
    reply = send(aeris.url, "@SAMPLE@MEASURE@SAMPLE_ID=S1@APPLICATION=phase-id-fast@END")
    assert reply.endswith("@normal@END")
    clock.advance(120.0)
    assert "READY=yes" in send(aeris.url, "@STATUS_REQUEST@UNIT=xrd@END")
    root = ET.parse(aeris.exchange_dir / "S1.xrdml").getroot()
    axis = root.find(f".//{XRDML}positions[@axis='2Theta']")
    assert float(axis.find(f"{XRDML}endPosition").text) == 60.0
    assert "phase-id-fast" in root.find(f"{XRDML}comment").findtext(f"{XRDML}entry")
