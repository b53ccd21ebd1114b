"""The Diffractometer device in a RunEngine, against the Aeris emulator on loopback."""

from __future__ import annotations

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from bluesky.utils import FailedStatus
from event_model import DocumentNames, schema_validators

from athanor.campaign.faults import blamed
from athanor.clock import ScaledClock
from athanor.devices.diffractometer import Diffractometer
from athanor.drivers.aeris import Aeris
from athanor.drivers.errors import InstrumentFault
from athanor.simulators.aeris import AerisEmulator
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.world import FixedTruth, PhaseState

PURE_BATIO3 = FixedTruth(PhaseState({"BaTiO3": 1.0}, {"BaTiO3": 60.0}))


@pytest.fixture
def xrd(tmp_path):
    clock = ScaledClock(1e5)
    with BackgroundLoop() as loop:
        emulator = AerisEmulator(tmp_path / "exchange", PURE_BATIO3, clock)
        url = loop.start(emulator)
        device = Diffractometer(Aeris(url, emulator.exchange_dir), clock, name="xrd")
        device.program.put("20-60_2-minutes")
        yield device, emulator


def test_count_gives_a_pattern_with_shape_and_units_in_valid_documents(xrd):
    device, _ = xrd
    device.sample_id.put("S-1")
    docs = []
    RE = RunEngine({}, context_managers=[])
    RE(count([device]), lambda name, doc: docs.append((name, doc)))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    descriptor = next(doc for name, doc in docs if name == "descriptor")
    keys = descriptor["data_keys"]
    assert keys["xrd_counts"]["shape"] == [4001] and keys["xrd_counts"]["units"] == "counts"
    assert keys["xrd_two_theta"]["units"] == "deg"
    assert descriptor["configuration"]["xrd"]["data"]["xrd_program"] == "20-60_2-minutes"
    event = next(doc for name, doc in docs if name == "event")
    counts = event["data"]["xrd_counts"]
    assert len(counts) == 4001 and max(counts) > 100


def test_instrument_refusal_fails_the_trigger_with_the_reason(xrd):
    device, emulator = xrd
    device.sample_id.put("S-2")
    emulator.faults.fatal = "door open"
    RE = RunEngine({}, context_managers=[])
    with pytest.raises(FailedStatus) as failed:
        RE(count([device]))
    assert isinstance(failed.value.__cause__, InstrumentFault)
    assert failed.value.__cause__.reason == "door open"


def test_trigger_without_a_sample_is_refused(xrd):
    device, _ = xrd
    RE = RunEngine({}, context_managers=[])
    with pytest.raises(FailedStatus) as failed:
        RE(count([device]))
    assert "set sample_id" in str(failed.value.__cause__)


def test_the_sample_is_signed_out_only_once_the_instrument_is_ready(xrd):
    device, emulator = xrd
    emulator.settings.busy_after_file_s = 7200  # the file comes two lab hours before READY
    device.sample_id.put("S-3")
    RunEngine({}, context_managers=[])(count([device]))
    assert emulator.slots == {} and emulator.scans == ["S-3"]


def test_lost_replies_neither_fail_the_trigger_nor_scan_twice(xrd):
    device, emulator = xrd
    emulator.faults.lose_replies = {"ADD": 1, "MEASURE": 1, "REMOVE": 1, "STATUS_REQUEST": 1}
    device.sample_id.put("S-4")
    RunEngine({}, context_managers=[])(count([device]))
    assert len(device.counts.get()) == 4001
    assert emulator.slots == {} and emulator.scans == ["S-4"]


def test_a_truncated_pattern_is_the_instruments_fault_and_frees_the_slot(xrd):
    device, emulator = xrd
    emulator.faults.truncated_file = True
    device.sample_id.put("s-1")
    with pytest.raises(Exception) as failure:
        device.trigger().wait(60)
    fault = blamed(failure.value)
    assert fault is not None and fault.instrument == device.driver.name, failure.value
    assert device.driver.slot_state(1) == "free"  # the next sample can be added
