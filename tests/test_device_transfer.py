"""The SampleTransfer device against the robot emulator on loopback."""

from __future__ import annotations

import pytest

from athanor.clock import ScaledClock
from athanor.devices.transfer import Move, Prepare, SampleTransfer
from athanor.drivers.errors import InstrumentFault
from athanor.drivers.transfer import TransferRobot
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.materials import MaterialsTruth
from athanor.simulators.samples import SampleRegistry
from athanor.simulators.transfer import TransferEmulator, TransferSimSettings


@pytest.fixture
def handler(request):
    """(device, emulator); ``gripper_fault_probability`` from the test's parameter."""
    clock = ScaledClock(1000.0)
    registry = SampleRegistry(MaterialsTruth(seed=3), clock)
    chance = getattr(request, "param", 0.0)
    settings = TransferSimSettings(prepare_time_s=60, gripper_fault_probability=chance, seed=1)
    emulator = TransferEmulator(registry, clock, settings)
    with BackgroundLoop() as loop:
        driver = TransferRobot(loop.start(emulator), io_timeout=1.0, clock=clock, poll_s=5.0)
        yield SampleTransfer(driver, clock, name="robot"), emulator
        driver.close()


@pytest.mark.parametrize("handler", [0.3], indirect=True)
def test_moves_with_intermittent_gripper_faults_are_reset_and_done(handler):
    """Seed 1 faults the gripper on 7 of the 16 tries these 9 moves take."""
    robot, _ = handler
    robot.set(Prepare("S1", {})).wait(30)
    for source, target in [("rack", "uvvis"), ("uvvis", "xrd"), ("xrd", "rack")] * 3:
        robot.set(Move("S1", source, target)).wait(30)
        assert robot.where("S1") == target


def test_a_gripper_that_faults_every_time_fails_the_move_after_the_retries(handler):
    robot, emulator = handler
    robot.set(Prepare("S1", {})).wait(30)
    emulator.faults.gripper_fault = True
    with pytest.raises(InstrumentFault, match="gripper fault"):
        robot.set(Move("S1", "rack", "uvvis")).wait(30)
    assert robot.where("S1") == "rack"  # the sample stayed where it was
