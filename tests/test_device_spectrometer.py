"""The Spectrometer device in a RunEngine, against the Ocean Optics emulator on a pty."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.plans import count
from event_model import DocumentNames, schema_validators

from athanor.campaign.faults import blamed
from athanor.clock import ManualClock
from athanor.devices.spectrometer import Spectrometer
from athanor.drivers.ocean_optics import OceanOpticsSerial
from athanor.protocols.measure import measure_spectrum
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.ocean_optics import OceanOpticsEmulator
from athanor.simulators.world import OpticalProperties


@pytest.fixture
def uvvis():
    clock = ManualClock()
    with BackgroundLoop() as loop:
        emulator = OceanOpticsEmulator("pty://", {"model": "usb2000plus", "seed": 1}, clock=clock)
        driver = OceanOpticsSerial(loop.start(emulator), model="usb2000plus", clock=clock)
        yield Spectrometer(driver, name="uvvis"), emulator
        driver.close()


def test_count_gives_a_spectrum_with_shape_and_units_in_valid_documents(uvvis):
    device, _ = uvvis
    docs = []
    RunEngine({}, context_managers=[])(count([device]), lambda n, d: docs.append((n, d)))
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
    keys = next(doc for name, doc in docs if name == "descriptor")["data_keys"]
    assert keys["uvvis_counts"]["shape"] == [2048] and keys["uvvis_counts"]["units"] == "counts"
    assert keys["uvvis_wavelengths"]["units"] == "nm"


def test_dark_reference_and_sample_differ_as_light_does(uvvis):
    device, emulator = uvvis
    RE = RunEngine({}, context_managers=[])
    spectra = {}

    def take(label):
        yield from bps.trigger(device, wait=True)
        spectra[label] = device.counts.get().copy()

    def plan():
        yield from bps.mv(device.source, False)
        yield from take("dark")
        yield from bps.mv(device.source, True)
        yield from take("reference")
        emulator.load(OpticalProperties(band_gap_ev=2.5, absorbance_scale=3.0))
        yield from take("sample")

    RE(plan())
    wavelengths = device.wavelengths.get()
    blue = (wavelengths > 400) & (wavelengths < 450)  # above the 2.5 eV gap (496 nm)
    red = (wavelengths > 650) & (wavelengths < 750)
    transmitted = (spectra["sample"] - spectra["dark"]) / (spectra["reference"] - spectra["dark"])
    assert np.median(spectra["reference"][red]) > np.median(spectra["dark"][red]) + 100
    assert np.median(transmitted[blue]) < 0.05
    assert np.median(transmitted[red]) > 0.8


def test_a_saturating_lamp_gets_a_shorter_integration_time_not_a_failed_measurement(uvvis):
    device, emulator = uvvis
    emulator.faults.saturation = True  # the lamp is 100 times too bright
    docs = []
    RunEngine({}, context_managers=[])(
        measure_spectrum(device, "s-1", averages=1), lambda n, d: docs.append((n, d))
    )
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 2 and not any(e["data"]["uvvis_saturated"] for e in events)
    descriptor = next(d for n, d in docs if n == "descriptor")
    used = descriptor["configuration"]["uvvis"]["data"]["uvvis_integration_time"]
    assert used < 100.0, used  # shortened from the requested 100 ms


def test_saturation_at_the_shortest_integration_time_is_the_spectrometers_fault(uvvis):
    device, emulator = uvvis
    emulator.faults.saturation = True
    emulator.physics.gain *= 1000  # too bright even at the shortest time
    with pytest.raises(Exception) as failure:
        RunEngine({}, context_managers=[])(measure_spectrum(device, "s-1", averages=1))
    assert blamed(failure.value) is not None
    assert "saturated at 1 ms" in str(blamed(failure.value))
