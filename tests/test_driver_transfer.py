"""The transfer drivers: the robot against its emulator on loopback, and the manual mode."""

import socket
import threading

import pytest

from athanor.clock import ScaledClock
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout, ProtocolError
from athanor.drivers.transfer import ManualTransfer, TransferRobot
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.materials import MaterialsTruth
from athanor.simulators.samples import SampleRegistry
from athanor.simulators.transfer import TransferEmulator, TransferSimSettings


class Furnace:
    temperature = 25.0

    def history(self, start, end):
        return [start, end], [self.temperature, self.temperature]


@pytest.fixture
def lab():
    clock = ScaledClock(1000.0)  # a 30 s move takes 30 ms
    registry = SampleRegistry(MaterialsTruth(seed=3), clock)
    furnace = Furnace()
    registry.add_furnace("furnace1", furnace, lambda: furnace.temperature)
    emulator = TransferEmulator(registry, clock, TransferSimSettings(prepare_time_s=60))
    with BackgroundLoop() as loop:
        url = loop.start(emulator)
        robot = TransferRobot(url, io_timeout=1.0, clock=clock, poll_s=5.0)
        yield robot, emulator, registry, furnace
        robot.close()


def test_prepare_move_where_status(lab):
    robot, _, registry, _ = lab
    assert robot.identify() == "athanor simulated transfer robot v1"
    robot.prepare("S1", {"ba_ti_ratio": 1.02, "dopant": 0.1})
    assert robot.where("S1") == "rack"
    assert registry.get("S1").composition.ba_ti_ratio == 1.02
    robot.move("S1", "rack", "furnace1", timeout_lab_s=300)
    assert robot.where("S1") == "furnace1"
    status = robot.status()
    assert (status.state, status.task, status.sample, status.result) == (
        "idle",
        "move",
        "S1",
        "done",
    )


def test_repeating_a_move_or_prepare_does_nothing(lab):
    robot, _, registry, _ = lab
    robot.prepare("S1", {})
    robot.prepare("S1", {})
    robot.move("S1", "rack", "uvvis")
    visits = len(registry.get("S1").visits)
    robot.move("S1", "rack", "uvvis")
    assert len(registry.get("S1").visits) == visits


def test_refusal_is_an_instrument_fault_with_the_reason(lab):
    robot, _, registry, furnace = lab
    robot.prepare("S1", {}, location="furnace1")
    furnace.temperature = 640.0
    with pytest.raises(InstrumentFault) as err:
        robot.move("S1", "furnace1", "rack")
    assert "furnace1 is at 640 C" in err.value.reason
    assert err.value.detail == "ERR 30"
    assert registry.location("S1") == "furnace1"
    with pytest.raises(InstrumentFault, match="unknown sample S9"):
        robot.where("S9")


def test_dropped_sample(lab):
    robot, emulator, registry, _ = lab
    robot.prepare("S1", {})
    emulator.faults.dropped_sample = True
    with pytest.raises(InstrumentFault, match="sample dropped"):
        robot.move("S1", "rack", "uvvis")
    assert registry.location("S1") == "lost"
    with pytest.raises(InstrumentFault, match="sample lost"):
        robot.move("S1", "rack", "uvvis")


def test_gripper_fault_then_reset(lab):
    robot, emulator, _, _ = lab
    robot.prepare("S1", {})
    emulator.faults.gripper_fault = True
    with pytest.raises(InstrumentFault, match="gripper fault"):
        robot.move("S1", "rack", "uvvis")
    emulator.faults.gripper_fault = False
    with pytest.raises(InstrumentFault, match="send RESET"):
        robot.move("S1", "rack", "uvvis")
    robot.reset()
    robot.move("S1", "rack", "uvvis")
    assert robot.where("S1") == "uvvis"


def test_a_busy_robot_times_out_in_lab_time(lab):
    robot, emulator, _, _ = lab
    robot.prepare("S1", {})
    emulator.faults.busy = True
    with pytest.raises(InstrumentTimeout, match="still busy after 60 lab s"):
        robot.move("S1", "rack", "uvvis", timeout_lab_s=60)


def test_a_move_that_takes_too_long_times_out(lab):
    robot, emulator, _, _ = lab
    robot.prepare("S1", {})
    emulator.settings.move_time_s = 3600
    with pytest.raises(InstrumentTimeout, match="move of S1 not done within 60 lab s"):
        robot.move("S1", "rack", "uvvis", timeout_lab_s=60)


def test_no_reply_is_a_timeout(lab):
    robot, emulator, _, _ = lab
    robot.io_timeout = 0.1
    robot.close()
    emulator.faults.no_reply = True
    with pytest.raises(InstrumentTimeout, match="no reply to STATUS"):
        robot.status()


def test_dropped_connection_is_connection_lost_and_recovers(lab):
    robot, emulator, _, _ = lab
    robot.status()
    emulator.faults.drop_connection = True
    with pytest.raises(ConnectionLost):
        robot.status()
    emulator.faults.drop_connection = False
    assert robot.status().state == "idle"


def test_bad_input_is_refused_before_the_wire(lab):
    robot, *_ = lab
    with pytest.raises(ValueError, match="sample id 'two words'"):
        robot.where("two words")
    with pytest.raises(ValueError, match="must be finite"):
        robot.prepare("S1", {"dopant": float("nan")})
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        TransferRobot("socket://127.0.0.1:1")


def scripted_server(replies):
    """A one-connection server that records request lines and answers from a script."""
    server = socket.create_server(("127.0.0.1", 0))
    requests = []

    def run():
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as lines:
            for reply in replies:
                requests.append(lines.readline())
                conn.sendall(reply)
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}", requests


def test_the_driver_sends_the_documented_lines():
    url, requests = scripted_server(
        [
            b"OK S1 rack\n",
            b"OK MOVING S1 ETA=30\n",
            b"OK STATE=idle TASK=move SAMPLE=S1 RESULT=done REMAINING=0\n",
            b"OK S1 furnace1\n",
        ]
    )
    robot = TransferRobot(url, clock=ScaledClock(1000.0))
    robot.move("S1", "rack", "furnace1")
    robot.close()
    assert requests == [
        b"WHERE S1\n",
        b"MOVE S1 rack furnace1\n",
        b"STATUS\n",
        b"WHERE S1\n",
    ]


def test_prepare_sends_the_documented_lines():
    url, requests = scripted_server(
        [
            b"ERR 20 unknown sample S1\n",
            b"OK STATE=idle TASK=- SAMPLE=- RESULT=- REMAINING=0\n",
            b"OK PREPARING S1 ETA=600\n",
            b"OK STATE=idle TASK=prepare SAMPLE=S1 RESULT=done REMAINING=0\n",
            b"OK S1 rack\n",
        ]
    )
    robot = TransferRobot(url, clock=ScaledClock(1000.0))
    robot.prepare("S1", {"ba_ti_ratio": 1.02, "dopant": 0.05})
    robot.close()
    assert requests == [
        b"WHERE S1\n",
        b"STATUS\n",
        b"PREPARE S1 ba_ti_ratio=1.02 dopant=0.05 at=rack\n",
        b"STATUS\n",
        b"WHERE S1\n",
    ]


def test_garbage_is_a_protocol_error():
    url, _ = scripted_server([b"\x00\xffHELLO\n"])
    with pytest.raises(ProtocolError):
        TransferRobot(url).identify()


def test_unreachable_robot_is_connection_lost():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(ConnectionLost, match="cannot connect"):
        TransferRobot(f"tcp://127.0.0.1:{port}", io_timeout=0.5).status()


# ---- manual transfer


def test_manual_move_asks_the_operator_once():
    asked = []
    manual = ManualTransfer(lambda message: asked.append(message) or "")
    manual.prepare("S1", {"ba_ti_ratio": 1.0, "dopant": 0.05})
    manual.move("S1", "rack", "furnace1")
    manual.move("S1", "rack", "furnace1")
    assert asked == [
        "Prepare sample S1 (ba_ti_ratio=1 dopant=0.05) and put it at rack.",
        "Move sample S1 from rack to furnace1.",
    ]
    assert manual.where("S1") == "furnace1"
    assert manual.status().state == "idle"


def test_manual_failure_is_an_instrument_fault():
    manual = ManualTransfer(lambda message: "no, the crucible cracked")
    with pytest.raises(InstrumentFault, match="operator reported the move failed") as err:
        manual.move("S1", "rack", "furnace1")
    assert err.value.detail == "no, the crucible cracked"
    with pytest.raises(InstrumentFault, match="unknown sample"):
        manual.where("S1")


def test_manual_without_an_answer_times_out_in_lab_time():
    release = threading.Event()
    manual = ManualTransfer(lambda message: release.wait(5) and "", clock=ScaledClock(1000.0))
    try:
        with pytest.raises(InstrumentTimeout, match="no confirmation of move S1 within 50 lab s"):
            manual.move("S1", "rack", "furnace1", timeout_lab_s=50)
    finally:
        release.set()


def test_manual_without_an_operator_is_a_fault():
    def closed_stdin(message):
        raise EOFError

    with pytest.raises(InstrumentFault, match="no operator answer"):
        ManualTransfer(closed_stdin).move("S1", "rack", "furnace1")
