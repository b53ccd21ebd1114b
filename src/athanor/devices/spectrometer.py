"""The optical spectrometer as an ophyd device: trigger acquires one spectrum."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.status import Status

from athanor.devices.signals import ValueSignal
from athanor.drivers.errors import InstrumentFault
from athanor.drivers.ocean_optics import SpectrometerDriver


class Saturated(InstrumentFault):
    """Saturated even at the shortest integration time: the light path is too bright."""


class Spectrometer(Device):
    """A spectrometer that takes one spectrum per trigger.

    Settings (``integration_time``, ``averages``, ``boxcar``) are sent before each
    acquisition (the driver skips what is already in force). ``source`` switches the
    light source: off gives the dark spectrum. ``saturated`` says whether any pixel of
    the last spectrum reached full scale; analysis rejects such spectra.

    Parameters
    ----------
    driver
        Any :class:`~athanor.drivers.ocean_optics.SpectrometerDriver` (serial or USB).
    """

    wavelengths = Cpt(ValueSignal, value=np.zeros(0), units="nm", kind=Kind.normal)
    counts = Cpt(ValueSignal, value=np.zeros(0), units="counts", kind=Kind.hinted)
    saturated = Cpt(ValueSignal, value=False, kind=Kind.normal)
    source = Cpt(ValueSignal, value=True, kind=Kind.normal)
    integration_time = Cpt(ValueSignal, value=100.0, units="ms", kind=Kind.config)
    averages = Cpt(ValueSignal, value=1, kind=Kind.config)
    boxcar = Cpt(ValueSignal, value=0, kind=Kind.config)
    full_scale = Cpt(ValueSignal, value=0, units="counts", kind=Kind.config)
    min_integration_time = Cpt(ValueSignal, value=0.0, units="ms", kind=Kind.omitted)

    def __init__(self, driver: SpectrometerDriver, *, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.driver = driver
        self.full_scale.put(driver.full_scale)
        self.min_integration_time.put(driver.spec.min_integration_ms)
        self.wavelengths.put(driver.wavelengths())

    def trigger(self) -> Status:
        status = Status(obj=self, timeout=None)

        def acquire() -> None:
            try:
                driver = self.driver
                driver.set_integration_time(float(self.integration_time.get()))
                driver.set_averaging(int(self.averages.get()))
                driver.set_boxcar(int(self.boxcar.get()))
                driver.lamp(bool(self.source.get()))
                counts = driver.acquire()
                self.counts.put(counts)
                self.saturated.put(driver.saturated(counts))
                status.set_finished()
            except Exception as exc:
                status.set_exception(exc)

        threading.Thread(target=acquire, name=f"{self.name}-acquire", daemon=True).start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Switch the light source off."""
        self.driver.lamp(False)
