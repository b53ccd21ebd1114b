"""The transfer robot emulator over a plain socket: golden lines from its protocol document."""

import re
import socket
import time
from urllib.parse import urlsplit

import pytest

from athanor.clock import ManualClock, ScaledClock
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.materials import Composition, MaterialsTruth
from athanor.simulators.samples import SampleRegistry
from athanor.simulators.transfer import TransferEmulator, TransferSimSettings


class Line:
    """A plain line client: send a request, return the reply line."""

    def __init__(self, url, timeout=2.0):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout)
        self.buffer = b""

    def ask(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1024)
            if not chunk:
                raise ConnectionResetError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def until_idle(self, timeout=5.0) -> bytes:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = self.ask(b"STATUS\n")
            if b"STATE=busy" not in status:
                return status
            time.sleep(0.005)
        raise AssertionError("the robot stayed busy")


class HotFurnace:
    temperature = 640.0

    def history(self, start, end):
        return [start, end], [self.temperature, self.temperature]


def serve(clock=None, **settings):
    clock = clock or ManualClock()
    registry = SampleRegistry(MaterialsTruth(seed=2), clock, locations=["xrd:slot1", "uvvis"])
    furnace = HotFurnace()
    registry.add_furnace("furnace1", furnace, lambda: furnace.temperature)
    emulator = TransferEmulator(registry, clock, TransferSimSettings(**settings))
    loop = BackgroundLoop()
    url = loop.start(emulator)
    return loop, url, emulator, registry, furnace


@pytest.fixture
def robot():
    loop, url, emulator, registry, furnace = serve()
    client = Line(url)
    yield client, emulator, registry, furnace
    client.sock.close()
    loop.close()


def test_start_returns_a_tcp_url_on_a_free_port(robot):
    client, *_ = robot
    host, port = client.sock.getpeername()
    assert host == "127.0.0.1" and port > 0


def test_identity_and_idle_status(robot):
    client, *_ = robot
    assert client.ask(b"IDN\n") == b"OK athanor simulated transfer robot v1\n"
    assert client.ask(b"STATUS\r\n") == b"OK STATE=idle TASK=- SAMPLE=- RESULT=- REMAINING=0\n"


def test_prepare_then_move_then_where(robot):
    client, _, registry, _ = robot
    assert client.ask(b"PREPARE S1 ba_ti_ratio=1.0 dopant=0.05\n") == b"OK PREPARING S1 ETA=600\n"
    assert client.until_idle() == b"OK STATE=idle TASK=prepare SAMPLE=S1 RESULT=done REMAINING=0\n"
    assert client.ask(b"WHERE S1\n") == b"OK S1 rack\n"
    assert registry.get("S1").composition.dopant == 0.05

    assert client.ask(b"MOVE S1 rack xrd:slot1\n") == b"OK MOVING S1 ETA=30\n"
    assert client.until_idle() == b"OK STATE=idle TASK=move SAMPLE=S1 RESULT=done REMAINING=0\n"
    assert client.ask(b"WHERE S1\n") == b"OK S1 xrd:slot1\n"
    # Asking again for where it already is: no motion.
    assert client.ask(b"MOVE S1 rack xrd:slot1\n") == b"OK AT S1 xrd:slot1\n"
    assert [v.location for v in registry.get("S1").visits] == ["rack", "transfer", "xrd:slot1"]


@pytest.mark.parametrize(
    ("request_line", "reply"),
    [
        (b"FLY S1\n", b"ERR 10 unknown command FLY\n"),
        (b"\n", b"ERR 10 empty request\n"),
        (b"MOVE S1 rack\n", b"ERR 11 usage: MOVE <id> <from> <to>\n"),
        (b"WHERE S9\n", b"ERR 20 unknown sample S9\n"),
        (b"MOVE S9 rack uvvis\n", b"ERR 20 unknown sample S9\n"),
        (b"PREPARE S1\n", b"ERR 21 sample S1 already exists\n"),
        (b"MOVE S1 uvvis xrd:slot1\n", b"ERR 22 sample S1 is at rack, not uvvis\n"),
        (
            b"MOVE S1 rack garage\n",
            b"ERR 23 unknown location garage; known: furnace1, rack, transfer, uvvis, xrd:slot1\n",
        ),
        (
            b"PREPARE S2 colour=red\n",
            b"ERR 11 unknown recipe key colour; allowed: ba_ti_ratio, dopant, at\n",
        ),
        (b"PREPARE S2 dopant=lots\n", b"ERR 11 dopant=lots is not a number\n"),
        (
            b"PREPARE S2 dopant=3\n",
            b"ERR 11 dopant = 3.0 is not allowed: it must be a number from 0 to 1\n",
        ),
        (
            b"MOVE S1 rack furnace1\n",
            b"ERR 30 furnace1 is at 640 C, above the handling temperature 200 C\n",
        ),
    ],
)
def test_refusals(robot, request_line, reply):
    client, _, registry, _ = robot
    registry.create("S1", Composition())
    assert client.ask(request_line) == reply


def test_a_hot_furnace_is_not_opened(robot):
    client, _, registry, furnace = robot
    furnace.temperature = 25.0
    client.ask(b"PREPARE S1 at=furnace1\n")
    client.until_idle()
    furnace.temperature = 640.0
    assert client.ask(b"MOVE S1 furnace1 rack\n") == (
        b"ERR 30 furnace1 is at 640 C, above the handling temperature 200 C\n"
    )
    assert registry.location("S1") == "furnace1"


def test_busy_while_preparing():
    loop, url, *_ = serve(ScaledClock(1.0))
    try:
        client = Line(url)
        client.ask(b"PREPARE S1\n")
        assert client.ask(b"PREPARE S2\n") == b"BUSY\n"
        status = client.ask(b"STATUS\n")
        assert re.fullmatch(
            rb"OK STATE=busy TASK=prepare SAMPLE=S1 RESULT=- REMAINING=\d+\n", status
        )
    finally:
        loop.close()


def test_dropped_sample_is_lost():
    loop, url, *_ = serve(faults={"dropped_sample": True})
    try:
        client = Line(url)
        client.ask(b"PREPARE S1\n")
        client.until_idle()
        assert client.ask(b"MOVE S1 rack uvvis\n") == b"OK MOVING S1 ETA=30\n"
        assert client.until_idle() == (
            b"OK STATE=idle TASK=move SAMPLE=S1 RESULT=dropped REMAINING=0\n"
        )
        assert client.ask(b"WHERE S1\n") == b"OK S1 lost\n"
        assert client.ask(b"MOVE S1 lost rack\n").startswith(b"ERR 25 sample S1 is lost")
    finally:
        loop.close()


def test_random_drops_follow_the_probability():
    loop, url, _, registry, _ = serve(drop_probability=1.0)
    try:
        client = Line(url)
        client.ask(b"PREPARE S1\n")
        client.until_idle()
        client.ask(b"MOVE S1 rack uvvis\n")
        client.until_idle()
        assert registry.location("S1") == "lost"
        assert "dropped" in registry.get("S1").lost_reason
    finally:
        loop.close()


def test_gripper_fault_holds_until_reset():
    loop, url, emulator, registry, _ = serve(faults={"gripper_fault": True})
    try:
        client = Line(url)
        client.ask(b"PREPARE S1\n")
        client.until_idle()
        client.ask(b"MOVE S1 rack uvvis\n")
        assert client.until_idle() == (
            b"OK STATE=fault FAULT=gripper_fault TASK=move SAMPLE=S1 RESULT=gripper_fault "
            b"REMAINING=0\n"
        )
        assert registry.location("S1") == "rack"
        assert client.ask(b"MOVE S1 rack uvvis\n") == b"ERR 40 gripper fault; send RESET\n"
        emulator.faults.gripper_fault = False
        assert client.ask(b"RESET\n") == b"OK RESET\n"
        assert client.ask(b"MOVE S1 rack uvvis\n") == b"OK MOVING S1 ETA=30\n"
    finally:
        loop.close()


def test_busy_fault_answers_busy():
    loop, url, *_ = serve(faults={"busy": True})
    try:
        assert Line(url).ask(b"PREPARE S1\n") == b"BUSY\n"
    finally:
        loop.close()


def test_no_reply_fault_is_silent():
    loop, url, emulator, *_ = serve(faults={"no_reply": True})
    try:
        client = Line(url, timeout=0.2)
        with pytest.raises(TimeoutError):
            client.ask(b"STATUS\n")
        emulator.faults.no_reply = False
    finally:
        loop.close()


def test_dropped_connection_fault_closes_the_socket():
    loop, url, *_ = serve(faults={"drop_connection": True})
    try:
        with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
            Line(url).ask(b"STATUS\n")
    finally:
        loop.close()


def test_sim_block_of_a_lab_yaml_is_checked_with_its_line(write_yaml):
    path = write_yaml(
        "name: lab\n"
        "instruments:\n"
        "  robot:\n"
        "    kind: transfer\n"
        "    connection: tcp://127.0.0.1:0\n"
        "    sim:\n"
        "      move_time_s: 20\n"
        "      drop_probability: 2\n"
    )
    lab = load_lab(path)
    with pytest.raises(ConfigError) as err:
        TransferSimSettings.from_lab(lab, "robot")
    assert f"{path}:8" in str(err.value)
    assert "instruments.robot.sim.drop_probability" in str(err.value)


def test_sim_block_with_faults_loads(write_yaml):
    path = write_yaml(
        "name: lab\n"
        "instruments:\n"
        "  robot:\n"
        "    kind: transfer\n"
        "    connection: tcp://127.0.0.1:0\n"
        "    sim: {move_time_s: 20, faults: {busy: true}}\n"
    )
    settings = TransferSimSettings.from_lab(load_lab(path), "robot")
    assert settings.move_time_s == 20 and settings.faults.busy


def test_a_lost_reply_is_carried_out_then_the_connection_closes():
    loop, url, emulator, registry, _ = serve(faults={"lose_replies": {"PREPARE": 1}})
    try:
        with pytest.raises(ConnectionResetError):
            Line(url).ask(b"PREPARE S1 dopant=0.1\n")
        client = Line(url)
        assert client.until_idle() == (
            b"OK STATE=idle TASK=prepare SAMPLE=S1 RESULT=done REMAINING=0\n"
        )
        assert registry.get("S1").composition.dopant == 0.1
        assert client.ask(b"PREPARE S2\n") == b"OK PREPARING S2 ETA=600\n"  # only one lost
        assert emulator.faults.lose_replies == {"PREPARE": 0}
    finally:
        loop.close()


def test_lose_reply_in_the_sim_block_names_known_commands(write_yaml):
    text = (
        "name: lab\n"
        "instruments:\n"
        "  robot:\n"
        "    kind: transfer\n"
        "    connection: tcp://127.0.0.1:0\n"
        "    sim: {faults: {lose_replies: {%s: 2}}}\n"
    )
    settings = TransferSimSettings.from_lab(load_lab(write_yaml(text % "MOVE")), "robot")
    assert settings.faults.lose_replies == {"MOVE": 2}
    assert TransferSimSettings().faults.lose_replies == {}
    with pytest.raises(ConfigError, match=r"instruments\.robot\.sim\.faults\.lose_replies"):
        TransferSimSettings.from_lab(load_lab(write_yaml(text % "FLY", "bad.yaml")), "robot")
