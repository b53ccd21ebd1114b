"""What a campaign that died left in the lab is cleared before anything else starts."""

from __future__ import annotations

import pytest
from campaign_files import write_campaign

from athanor.campaign.leftovers import STORAGE, clear_leftovers
from athanor.campaign.session import load_for_run, open_session
from athanor.devices.transfer import Move, Prepare


def test_samples_left_on_the_diffractometer_and_in_a_hot_furnace_go_to_storage(tmp_path):
    path = write_campaign(tmp_path)
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        lab = session.lab
        robot, xrd = lab.of_kind("transfer")["robot"], lab.of_kind("diffractometer")["xrd"]
        furnace = lab.furnaces["furnace1"]
        # What a process killed mid-measurement and mid-anneal leaves behind:
        for sample, place in (("dead-001-1", "xrd"), ("dead-002-1", "furnace1")):
            robot.set(Prepare(sample, {"ba_ti_ratio": 1.0})).wait(30)
            robot.set(Move(sample, "rack", place)).wait(30)
        xrd.driver.add("dead-001-1", 1, "10-100_8-minutes")
        furnace.set(600.0).wait(60)
        furnace.safe()  # the resume made it safe; it is still hot
        told: list[str] = []

        notes = clear_leftovers(lab, ["dead-001-1", "dead-002-1", "never-made"], told.append)

        assert xrd.driver.slot_state(1) == "free", notes
        assert robot.where("dead-001-1") == STORAGE, notes
        assert robot.where("dead-002-1") == STORAGE, notes
        assert furnace.safe_to_load(furnace.temperature.get())
        assert any("furnace1" in note and "waiting to cool" in note for note in told), told
        assert len([n for n in notes if "dead-001-1" in n]) == 2, notes  # off the books, out
        assert not [n for n in notes if "never-made" in n], notes


def test_a_gripper_fault_latched_by_the_dead_process_is_reset(tmp_path):
    path = write_campaign(tmp_path)
    config, lab_config = load_for_run(path, None)
    with open_session(config, lab_config, str(tmp_path / "lab.db")) as session:
        robot = session.lab.of_kind("transfer")["robot"]
        emulator = session.sim.emulators["robot"]
        robot.set(Prepare("dead-003-1", {})).wait(30)
        emulator.faults.gripper_fault = True
        with pytest.raises(Exception, match="gripper"):
            robot.set(Move("dead-003-1", "rack", "furnace2")).wait(30)
        emulator.faults.gripper_fault = False
        assert robot.driver.status().state == "fault"

        notes = clear_leftovers(session.lab, ["dead-003-1"])

        assert robot.driver.status().state == "idle"
        assert any("gripper" in note and "reset" in note for note in notes), notes
