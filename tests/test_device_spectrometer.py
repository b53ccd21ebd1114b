"""The Spectrometer device in a RunEngine, against the Ocean Optics emulator on a pty."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.plans import count
from event_model import DocumentNames, schema_validators

from athanor.clock import ManualClock
from athanor.devices.spectrometer import Spectrometer
from athanor.drivers.ocean_optics import OceanOpticsSerial
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
