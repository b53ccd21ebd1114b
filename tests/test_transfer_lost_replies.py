"""TransferRobot after a lost reply: the robot carried the request out, its answer never came.

The emulator's ``faults.lose_replies`` closes the connection instead of replying; the driver
must finish the job exactly once, whether the robot is still busy with the request when
the driver looks (a slow robot) or already done (a fast one).
"""

import pytest

from athanor.clock import ManualClock, ScaledClock
from athanor.drivers.errors import ConnectionLost, InstrumentFault
from athanor.drivers.transfer import TransferRobot
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.materials import MaterialsTruth
from athanor.simulators.samples import SampleRegistry
from athanor.simulators.transfer import TransferEmulator, TransferSimSettings

SPEEDS = {
    "robot still busy": lambda: ScaledClock(1000.0),  # a 300 s move takes 0.3 s of wall time
    "robot already done": ManualClock,  # its tasks end before the driver can look
}


@pytest.fixture(params=list(SPEEDS))
def lab(request):
    clock = SPEEDS[request.param]()
    registry = SampleRegistry(MaterialsTruth(seed=3), clock)
    settings = TransferSimSettings(move_time_s=300, prepare_time_s=300)
    emulator = TransferEmulator(registry, clock, settings)
    with BackgroundLoop() as loop:
        robot = TransferRobot(loop.start(emulator), io_timeout=1.0, clock=clock, poll_s=5.0)
        yield robot, emulator, registry
        robot.close()


def test_prepare_after_a_lost_reply_makes_one_sample(lab):
    robot, emulator, registry = lab
    emulator.faults.lose_replies = {"PREPARE": 1}
    robot.prepare("S1", {"ba_ti_ratio": 1.02})
    assert robot.where("S1") == "rack"
    assert registry.get("S1").composition.ba_ti_ratio == 1.02
    assert emulator.faults.lose_replies == {"PREPARE": 0}


def test_move_after_a_lost_reply_moves_once(lab):
    robot, emulator, registry = lab
    robot.prepare("S1", {})
    emulator.faults.lose_replies = {"MOVE": 1}
    robot.move("S1", "rack", "uvvis")
    assert [v.location for v in registry.get("S1").visits] == ["rack", "transfer", "uvvis"]


def test_a_move_that_failed_after_its_lost_reply_finishes_when_repeated(lab):
    robot, emulator, registry = lab
    robot.prepare("S1", {})
    emulator.faults.lose_replies = {"MOVE": 1, "STATUS": 2}
    with pytest.raises(ConnectionLost):
        robot.move("S1", "rack", "uvvis")  # the reply and both STATUS checks were lost
    robot.move("S1", "rack", "uvvis")
    assert robot.where("S1") == "uvvis"
    assert [v.location for v in registry.get("S1").visits] == ["rack", "transfer", "uvvis"]


def test_a_prepare_that_failed_after_its_lost_reply_finishes_when_repeated(lab):
    robot, emulator, registry = lab
    emulator.faults.lose_replies = {"PREPARE": 1, "STATUS": 2}
    with pytest.raises(ConnectionLost):
        robot.prepare("S1", {"dopant": 0.05})
    robot.prepare("S1", {"dopant": 0.05})  # waits for the first, or finds it done
    assert robot.where("S1") == "rack"
    assert registry.get("S1").composition.dopant == 0.05


def test_reset_after_a_lost_reply_clears_the_fault(lab):
    robot, emulator, _ = lab
    robot.prepare("S1", {})
    emulator.faults.gripper_fault = True
    with pytest.raises(InstrumentFault, match="gripper fault"):
        robot.move("S1", "rack", "uvvis")
    emulator.faults.gripper_fault = False
    emulator.faults.lose_replies = {"RESET": 1}
    robot.reset()
    assert robot.status().state == "idle"
    robot.move("S1", "rack", "uvvis")
    assert robot.where("S1") == "uvvis"


@pytest.mark.parametrize("command", ["IDN", "STATUS", "WHERE"])
def test_reads_after_a_lost_reply_answer(lab, command):
    robot, emulator, _ = lab
    robot.prepare("S1", {})
    emulator.faults.lose_replies = {command: 1}
    assert robot.identify() == "athanor simulated transfer robot v1"
    assert robot.status().state == "idle"
    assert robot.where("S1") == "rack"
    assert emulator.faults.lose_replies == {command: 0}
